"""RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and consistency proofs.

Leaves hash as ``SHA-256(0x00 ‖ entry)`` and nodes as ``SHA-256(0x01 ‖ left ‖ right)``;
a tree of n > 1 leaves splits at the largest power of two strictly below n, and the
empty tree hashes to ``SHA-256("")``. Proof generation works on leaf hashes; proof
verification follows RFC 9162 §2.1.3.2 and §2.1.4.2.

>>> root([leaf_hash(b"")]).hex()
'6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d'
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from bastion.errors import IntegrityError

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    """The hash of one log entry."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of ``leaves`` (leaf hashes), in O(n) time and O(log n) space."""
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()


class Frontier:
    """The right edge of a growing tree: appends and its root in O(log n)."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash."""
        height, current = 0, leaf
        while self._stack and self._stack[-1][0] == height:
            current = node_hash(self._stack.pop()[1], current)
            height += 1
        self._stack.append((height, current))
        self.size += 1

    @classmethod
    def restore(cls, size: int, nodes: bytes) -> Frontier:
        """The frontier of a tree of ``size`` leaves from its :attr:`nodes`.

        Raises:
            ValueError: ``nodes`` does not hold one 32-byte hash per set bit of ``size``.
        """
        heights = [bit for bit in reversed(range(size.bit_length())) if size >> bit & 1]
        if size < 0 or len(nodes) != 32 * len(heights):
            raise ValueError("the frontier does not fit the tree size")
        frontier = cls()
        frontier.size = size
        frontier._stack = [
            (height, nodes[32 * i : 32 * (i + 1)]) for i, height in enumerate(heights)
        ]
        return frontier

    @property
    def nodes(self) -> bytes:
        """The roots of the complete subtrees on the right edge, largest first, concatenated."""
        return b"".join(node for _, node in self._stack)

    def copy(self) -> Frontier:
        """An independent frontier at the same place."""
        return Frontier.restore(self.size, self.nodes)

    def root(self) -> bytes:
        """The tree hash of every leaf appended so far."""
        if not self._stack:
            return EMPTY_ROOT
        current = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            current = node_hash(left, current)
        return current


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The audit path for leaf ``index`` in the tree of ``leaves`` (RFC 9162 §2.1.3.1).

    Raises:
        ValueError: ``index`` is not in the tree.
    """
    if not 0 <= index < len(leaves):
        raise ValueError("index is outside the tree")
    return _path(index, leaves)


def consistency_proof(first: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The proof that the tree of ``first`` leaves is a prefix of ``leaves`` (§2.1.4.1).

    Raises:
        ValueError: ``first`` is not between 1 and the tree size.
    """
    if not 0 < first <= len(leaves):
        raise ValueError("first size must be between 1 and the tree size")
    return _subproof(first, leaves, complete=True)


def verify_inclusion(
    *, index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes
) -> None:
    """Check an inclusion proof (RFC 9162 §2.1.3.2).

    Raises:
        IntegrityError: the proof does not lead from ``leaf`` to ``root_hash``.
    """
    if not 0 <= index < size:
        raise IntegrityError("The leaf index is outside the tree.")
    fn, sn, current = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            raise IntegrityError("The inclusion proof is too long.")
        if fn % 2 == 1 or fn == sn:
            current = node_hash(sibling, current)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            current = node_hash(current, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or current != root_hash:
        raise IntegrityError("The inclusion proof does not match the root.")


def verify_consistency(
    *, first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that tree ``second`` extends tree ``first`` (RFC 9162 §2.1.4.2).

    Raises:
        IntegrityError: the trees are not consistent: the log was rewritten or forked.
    """
    path = _consistency_path(first, second, first_root, second_root, proof)
    if not path:
        return  # two trees of one size, with the same root
    fn, sn = first - 1, second - 1
    while fn % 2 == 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for node in path[1:]:
        if sn == 0:
            raise IntegrityError("The consistency proof is too long.")
        if fn % 2 == 1 or fn == sn:
            fr, sr = node_hash(node, fr), node_hash(node, sr)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, node)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or fr != first_root or sr != second_root:
        raise IntegrityError("The consistency proof does not match the roots.")


def _consistency_path(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> list[bytes]:
    if not 0 < first <= second:
        raise IntegrityError("Consistency needs 0 < first <= second.")
    if first == second:
        if proof or first_root != second_root:
            raise IntegrityError("Trees of the same size have different roots.")
        return []
    if not proof:
        raise IntegrityError("The consistency proof is empty.")
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the first root starts the path
        path.insert(0, first_root)
    return path


def _split(n: int) -> int:
    """The largest power of two strictly below n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    if len(leaves) <= 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*_path(index, leaves[:k]), root(leaves[k:])]
    return [*_path(index - k, leaves[k:]), root(leaves[:k])]


def _subproof(m: int, leaves: Sequence[bytes], *, complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete=complete), root(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], complete=False), root(leaves[:k])]
