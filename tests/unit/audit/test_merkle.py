"""RFC 6962 hashing and RFC 9162 proofs: known answers and exhaustive checks."""

from __future__ import annotations

import pytest

from bastion.audit.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from bastion.errors import IntegrityError

# The test vectors of RFC 6962's reference implementation (certificate-transparency-go).
ENTRIES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
LEAVES = [leaf_hash(bytes([i % 256, i // 256])) for i in range(64)]


@pytest.mark.parametrize(("size", "expected"), ROOTS.items())
def test_known_roots(size, expected):
    """The roots of trees of size 1, 2 and 8 match the published vectors."""
    assert root([leaf_hash(e) for e in ENTRIES[:size]]).hex() == expected


def test_empty_tree():
    """The empty tree hashes to SHA-256 of nothing."""
    assert root([]) == EMPTY_ROOT
    assert EMPTY_ROOT.hex().startswith("e3b0c442")


def test_every_inclusion_proof_of_trees_up_to_64_verifies():
    """For every size 1..64 and every index, the inclusion proof verifies."""
    for size in range(1, 65):
        leaves, top = LEAVES[:size], root(LEAVES[:size])
        for index in range(size):
            verify_inclusion(
                index=index,
                size=size,
                leaf=leaves[index],
                proof=inclusion_proof(index, leaves),
                root_hash=top,
            )


def test_every_consistency_proof_of_trees_up_to_64_verifies():
    """For every pair of sizes 1 <= m <= n <= 64, the consistency proof verifies."""
    for second in range(1, 65):
        top = root(LEAVES[:second])
        for first in range(1, second + 1):
            verify_consistency(
                first=first,
                second=second,
                first_root=root(LEAVES[:first]),
                second_root=top,
                proof=consistency_proof(first, LEAVES[:second]),
            )


def flips(proof):
    for i, node in enumerate(proof):
        for bit in range(len(node) * 8):
            changed = bytearray(node)
            changed[bit // 8] ^= 1 << (bit % 8)
            yield [*proof[:i], bytes(changed), *proof[i + 1 :]]


def test_every_single_bit_corruption_of_an_inclusion_proof_is_rejected():
    """Flipping any bit of any proof node, for trees up to 16, is rejected."""
    for size in range(2, 17):
        leaves, top = LEAVES[:size], root(LEAVES[:size])
        for index in range(size):
            for bad in flips(inclusion_proof(index, leaves)):
                with pytest.raises(IntegrityError):
                    verify_inclusion(
                        index=index, size=size, leaf=leaves[index], proof=bad, root_hash=top
                    )


def test_every_single_bit_corruption_of_a_consistency_proof_is_rejected():
    """Flipping any bit of any consistency-proof node, for trees up to 16, is rejected."""
    for second in range(2, 17):
        top = root(LEAVES[:second])
        for first in range(1, second):
            first_root = root(LEAVES[:first])
            for bad in flips(consistency_proof(first, LEAVES[:second])):
                with pytest.raises(IntegrityError):
                    verify_consistency(
                        first=first,
                        second=second,
                        first_root=first_root,
                        second_root=top,
                        proof=bad,
                    )


@pytest.mark.parametrize(
    "change",
    [
        {"index": 3},  # another leaf's position
        {"size": 9},
        {"leaf": LEAVES[5]},
        {"proof": []},
        {"root_hash": EMPTY_ROOT},
    ],
)
def test_wrong_inclusion_claims_are_rejected(change):
    """Wrong index, size, leaf, a truncated proof or another root are rejected."""
    claim = {
        "index": 2,
        "size": 8,
        "leaf": LEAVES[2],
        "proof": inclusion_proof(2, LEAVES[:8]),
        "root_hash": root(LEAVES[:8]),
    } | change
    with pytest.raises(IntegrityError):
        verify_inclusion(**claim)


def test_a_fork_fails_consistency():
    """Two different trees of a size are not consistent with each other's extensions."""
    forked = [*LEAVES[:5], leaf_hash(b"forged"), *LEAVES[6:10]]
    with pytest.raises(IntegrityError):
        verify_consistency(
            first=6,
            second=10,
            first_root=root(forked[:6]),
            second_root=root(LEAVES[:10]),
            proof=consistency_proof(6, LEAVES[:10]),
        )
    with pytest.raises(IntegrityError):
        verify_consistency(
            first=8, second=8, first_root=root(forked[:8]), second_root=root(LEAVES[:8]), proof=[]
        )


def test_bit_corruption_is_rejected_at_every_size_up_to_64():
    """For every size to 64: every bit of the proofs of the first, middle and last leaf."""
    for size in range(2, 65):
        leaves, top = LEAVES[:size], root(LEAVES[:size])
        for index in sorted({0, size // 2, size - 1}):
            for bad in flips(inclusion_proof(index, leaves)):
                with pytest.raises(IntegrityError):
                    verify_inclusion(
                        index=index, size=size, leaf=leaves[index], proof=bad, root_hash=top
                    )
        for first in sorted({1, size // 2, size - 1}):
            first_root = root(LEAVES[:first])
            for bad in flips(consistency_proof(first, leaves)):
                with pytest.raises(IntegrityError):
                    verify_consistency(
                        first=first, second=size, first_root=first_root, second_root=top, proof=bad
                    )
