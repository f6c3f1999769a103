"""Format-preserving encryption: FF1 (NIST SP 800-38G Rev. 1) over AES-256.

FF1 encrypts a string of numerals in base ``radix`` to another string of the same length
and alphabet, so a card number stays sixteen digits and an account code stays
alphanumeric. It is deterministic for a key and tweak, reversible with the key, and
bound to the tweak (use the column or entity name, so equal values in different
columns encrypt differently).

SP 800-38G Rev. 1 requires ``radix ** length >= 1_000_000``: shorter values have too
few possible ciphertexts to hide anything (a 4-digit PIN has 10 000), and FF1 refuses
them instead of pretending.

>>> ff1 = FF1(bytes(32), alphabet="0123456789")
>>> token = ff1.encrypt("4111111111111111", tweak=b"card")
>>> len(token), token.isdigit(), ff1.decrypt(token, tweak=b"card")
(16, True, '4111111111111111')
"""

from __future__ import annotations

import math
from typing import Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bastion.errors import InvalidInput

DIGITS: Final = "0123456789"
ALPHANUMERIC: Final = "0123456789abcdefghijklmnopqrstuvwxyz"
_ROUNDS = 10
_MIN_DOMAIN = 1_000_000  # SP 800-38G Rev. 1, §5.2
_MAX_LENGTH = 2**32 - 1
_BLOCK = 16


class FF1:
    """FF1 with one AES key over one alphabet (radix = its length).

    Args:
        key: 16, 24 or 32 bytes (Bastion uses 32, from the keyring).
        alphabet: the numerals, in order; every character of a value must be one of them.
    """

    def __init__(self, key: bytes, *, alphabet: str) -> None:
        if len(key) not in {16, 24, 32}:
            raise ValueError("FF1 keys are 16, 24 or 32 bytes")
        if len(set(alphabet)) != len(alphabet) or not 2 <= len(alphabet) <= 2**16:  # noqa: PLR2004
            raise ValueError("the alphabet needs 2 to 65536 distinct characters")
        self.alphabet = alphabet
        self.radix = len(alphabet)
        self._index = {char: i for i, char in enumerate(alphabet)}
        # FF1's round function: a CBC-MAC with a zero IV, then AES on counter blocks.
        self._cbc = Cipher(algorithms.AES(key), modes.CBC(bytes(_BLOCK)))
        self._ecb = Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305
        self.min_length = math.ceil(math.log(_MIN_DOMAIN) / math.log(self.radix) - 1e-9)

    def __getstate__(self) -> object:
        raise TypeError("FF1 holds a key; it cannot be pickled")

    def __repr__(self) -> str:
        return f"FF1(radix={self.radix})"

    def encrypt(self, value: str, *, tweak: bytes) -> str:
        """The FF1 ciphertext of ``value``, in the same alphabet and length.

        Raises:
            InvalidInput: ``value`` has a character outside the alphabet, or is too short.
        """
        return self._run(value, tweak, decrypt=False)

    def decrypt(self, value: str, *, tweak: bytes) -> str:
        """The plaintext of an FF1 ciphertext made with the same key and tweak.

        Raises:
            InvalidInput: ``value`` has a character outside the alphabet, or is too short.
        """
        return self._run(value, tweak, decrypt=True)

    def _run(self, value: str, tweak: bytes, *, decrypt: bool) -> str:
        numerals = self._numerals(value)
        n, radix = len(numerals), self.radix
        u, v = n // 2, n - n // 2
        a, b = numerals[:u], numerals[u:]
        width = math.ceil(math.ceil(v * math.log2(radix)) / 8)
        d = 4 * math.ceil(width / 4) + 4
        p = (
            bytes([1, 2, 1])
            + radix.to_bytes(3, "big")
            + bytes([10, u % 256])
            + n.to_bytes(4, "big")
            + len(tweak).to_bytes(4, "big")
        )
        q_prefix = tweak + bytes((-len(tweak) - width - 1) % _BLOCK)
        rounds = range(_ROUNDS - 1, -1, -1) if decrypt else range(_ROUNDS)
        for i in rounds:
            source = a if decrypt else b
            q = q_prefix + bytes([i]) + _number(source, radix).to_bytes(width, "big")
            y = int.from_bytes(self._expand(p + q, d), "big")
            m = u if i % 2 == 0 else v
            if decrypt:
                c = (_number(b, radix) - y) % radix**m
                a, b = _string(c, radix, m), a
            else:
                c = (_number(a, radix) + y) % radix**m
                a, b = b, _string(c, radix, m)
        return "".join(self.alphabet[x] for x in a + b)

    def _expand(self, message: bytes, length: int) -> bytes:
        """PRF (AES-CBC-MAC of the message) then FF1's counter-mode expansion to ``length``."""
        r = self._cbc.encryptor().update(message)[-_BLOCK:]
        blocks = math.ceil(length / _BLOCK)
        if blocks == 1:
            return r[:length]
        mask = int.from_bytes(r, "big")
        counters = b"".join((mask ^ j).to_bytes(_BLOCK, "big") for j in range(1, blocks))
        return (r + self._ecb.encryptor().update(counters))[:length]

    def _numerals(self, value: str) -> list[int]:
        if len(value) < self.min_length or len(value) > _MAX_LENGTH:
            raise InvalidInput(
                f"FF1 over {self.radix} symbols needs at least {self.min_length} of them "
                "(NIST SP 800-38G: a domain of at least 1,000,000 values)."
            )
        try:
            return [self._index[char] for char in value]
        except KeyError:
            raise InvalidInput("The value has characters outside the FF1 alphabet.") from None


def _number(numerals: list[int], radix: int) -> int:
    total = 0
    for x in numerals:
        total = total * radix + x
    return total


def _string(number: int, radix: int, length: int) -> list[int]:
    out = [0] * length
    for i in range(length - 1, -1, -1):
        number, out[i] = divmod(number, radix)
    return out
