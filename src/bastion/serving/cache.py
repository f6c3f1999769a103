"""Small bounded caches with per-entry expiry, for the request path."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from anyio import to_thread

from bastion.registry import ModelRegistry, ModelVersion
from bastion.types import Clock

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


_MODELS = 10_000
# A named version never changes, but "the newest version" does when one is registered:
# a new version is served (and its labels apply) within this many seconds.
MODEL_SECONDS = 2.0


class ModelCache:
    """Registered versions for the request path, so a request costs no database read.

    Shared by the stages that need the model (authorize, validate, describe). Lookups
    that fail are not kept, so a registration is seen at once.
    """

    def __init__(self, *, registry: ModelRegistry, clock: Clock) -> None:
        self._registry = registry
        self._clock = clock
        self._entries: TtlCache[tuple[str, str | None], ModelVersion] = TtlCache(size=_MODELS)

    async def get(self, name: str, version: str | None) -> ModelVersion:
        """The version (the newest when ``version`` is None).

        Raises:
            NotFound: no such model or version.
        """
        now = self._clock()
        model = self._entries.get((name, version), now=now)
        if model is None:
            model = await to_thread.run_sync(self._registry.get, name, version)
            self._entries.put((name, version), model, expires=now + MODEL_SECONDS)
        return model
