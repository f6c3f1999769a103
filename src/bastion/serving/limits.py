"""Rate limits (token buckets) and daily quotas, in memory (one gateway process).

``redis_limits.py`` has the same two, shared by every gateway process through Redis. The
methods are coroutines because the shared ones wait on Redis without blocking the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from threading import Lock
from typing import Protocol

from bastion.errors import RateLimited
from bastion.types import Clock

_MAX_TRACKED = 100_000
_DAY = 86_400


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter(Protocol):
    """Takes one request from a key's budget."""

    async def check(self, key: str) -> None:
        """Raise RateLimited when ``key`` is over its rate (BackendUnavailable: cannot tell)."""
        ...


class QuotaCounter(Protocol):
    """Counts requests per key and UTC day."""

    async def take(self, key: str, quota: int) -> None:
        """Count one request of ``key`` today; raise RateLimited once ``quota`` is spent."""
        ...


class TokenBucketLimiter:
    """Allows ``rate`` requests per second with bursts of up to ``burst``."""

    def __init__(self, *, rate: float, burst: int, clock: Clock, limit: str = "rate") -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._limit = limit
        self._buckets: dict[str, _Bucket] = {}
        self._lock = Lock()

    async def check(self, key: str) -> None:
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
                wait = (1 - bucket.tokens) / self._rate
                raise RateLimited(retry_after=wait, limit=self._limit)
            bucket.tokens -= 1

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled carries no state worth keeping.
        refill = self._burst / self._rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < refill}


class DailyQuotas:
    """Requests per key and UTC day; a new day starts every count afresh."""

    def __init__(self, *, clock: Clock) -> None:
        self._clock = clock
        self._day = -1
        self._counts: dict[str, int] = {}
        self._lock = Lock()

    async def take(self, key: str, quota: int) -> None:
        """Count one request of ``key``.

        Raises:
            RateLimited: ``quota`` requests were made today; retry after midnight UTC.
        """
        now = self._clock()
        with self._lock:
            day = int(now // _DAY)
            if day != self._day:
                self._day, self._counts = day, {}
            count = self._counts.get(key, 0)
            if count >= quota:
                raise RateLimited(retry_after=until_midnight(now), limit=f"daily quota of {key}")
            self._counts[key] = count + 1


def until_midnight(now: float) -> float:
    """Seconds from ``now`` (Unix time) to the next midnight UTC."""
    return _DAY - now % _DAY
