"""Per-principal token-bucket rate limiting, in memory (one gateway process)."""

from __future__ import annotations

from dataclasses import dataclass
from threading import Lock
from typing import Protocol

from bastion.errors import RateLimited
from bastion.types import Clock

_MAX_TRACKED = 100_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter(Protocol):
    """Takes one request from a key's budget."""

    def check(self, key: str) -> None:
        """Raise RateLimited when ``key`` is over its rate."""
        ...


class TokenBucketLimiter:
    """Allows ``rate`` requests per second with bursts of up to ``burst``."""

    def __init__(self, *, rate: float, burst: int, clock: Clock) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = Lock()

    def check(self, key: str) -> None:
        """Take one token from ``key``'s bucket.

        Raises:
            RateLimited: the bucket is empty; ``retry_after`` says when a token returns.
        """
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= _MAX_TRACKED:
                    self._forget_full(now)
                bucket = self._buckets[key] = _Bucket(self._burst, now)
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
            if bucket.tokens < 1:
                raise RateLimited(retry_after=(1 - bucket.tokens) / self._rate)
            bucket.tokens -= 1

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled carries no state worth keeping.
        refill = self._burst / self._rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < refill}
