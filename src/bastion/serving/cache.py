"""A small bounded cache with per-entry expiry, for the authentication hot path."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Keeps at most ``size`` entries, each until its own expiry time; oldest out first."""

    def __init__(self, *, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K, *, now: float) -> V | None:
        """The live value for ``key``, or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= now:
            del self._entries[key]
            return None
        return value

    def put(self, key: K, value: V, *, expires: float) -> None:
        """Store ``value`` until ``expires``."""
        self._entries[key] = (expires, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def discard(self, key: K) -> None:
        """Forget ``key`` now."""
        self._entries.pop(key, None)
