"""The token-signing keys: one current key, and retired keys still trusted for a while.

Rotation makes a new current key and keeps the old one as *retired*: it signs nothing
more, but tokens it signed still verify and it stays in the JWKS until every such token
has expired (the longest token lifetime plus clock skew). Gateways notice a rotation
on their own (they re-read the key folder when it changes), so rotating refuses no
valid token.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from threading import Lock

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bastion.crypto import SigningKey
from bastion.errors import ConfigError
from bastion.types import Clock

RETIRED_FOR_SECONDS = 900 + 600  # the longest token lifetime plus the largest clock skew
_RECHECK_SECONDS = 1.0


class SigningKeyring:
    """``current`` signs; ``verification_keys`` lists every key a valid token may carry."""

    def __init__(self, *, current: Path, clock: Clock) -> None:
        self._current_path = current
        self._retired = current.with_name(current.stem + ".retired")
        self._clock = clock
        self._lock = Lock()
        self._stamp: tuple[float, float] | None = None
        self._current: SigningKey | None = None
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._checked = float("-inf")  # monotonic time the key folder was last looked at

    def current(self) -> SigningKey:
        """The key that signs new tokens."""
        self._refresh()
        if self._current is None:
            raise ConfigError(f"No token-signing key at {self._current_path}.")
        return self._current

    def verification_keys(self) -> Mapping[str, Ed25519PublicKey]:
        """Kid → public key for the current key and the retired keys still in their window."""
        self._refresh()
        return self._keys

    def verification_key(self, kid: str) -> Ed25519PublicKey | None:
        """The trusted public key named ``kid``, if any.

        On the request path: the key folder is looked at when ``kid`` is unknown (a
        rotation elsewhere is seen at once) and otherwise at most once a second (a key
        deleted by hand stops verifying within a second).
        """
        now = time.monotonic()
        if kid not in self._keys or now - self._checked >= _RECHECK_SECONDS:
            self._refresh()
            self._checked = now
        return self._keys.get(kid)

    def rotate(self) -> SigningKey:
        """Retire the current key and make a new one current."""
        with self._lock:
            self._retired.mkdir(mode=0o700, exist_ok=True)
            old = SigningKey.load(self._current_path)
            retired = self._retired / f"{int(self._clock())}-{old.kid}.pem"
            os.replace(self._current_path, retired)
            fresh = SigningKey.generate(self._current_path)
            for path in self._retired.glob("*.pem"):  # past their window: nothing to verify
                if self._clock() - _retired_at(path) > RETIRED_FOR_SECONDS:
                    path.unlink()
            self._stamp, self._checked = None, float("-inf")
        return fresh

    def _refresh(self) -> None:
        stamp = (_mtime(self._current_path), _mtime(self._retired))
        if stamp == self._stamp:
            return
        with self._lock:
            current = SigningKey.load(self._current_path)
            keys = {current.kid: current.public_key}
            if self._retired.is_dir():
                for path in sorted(self._retired.glob("*.pem")):
                    if self._clock() - _retired_at(path) <= RETIRED_FOR_SECONDS:
                        key = SigningKey.load(path)
                        keys[key.kid] = key.public_key
            self._current, self._keys, self._stamp = current, keys, stamp


def _retired_at(path: Path) -> float:
    return float(path.name.split("-", 1)[0])


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime_ns / 1e9
    except FileNotFoundError:
        return 0.0
