"""Limits shared by every gateway process, in Redis: token buckets, daily quotas, lockouts.

Each is one atomic Lua script on Redis's own clock, so gateways agree on time and two
processes can never both take the last token. When Redis does not answer, the request
is refused (503), never let through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis

from bastion.errors import BackendError, RateLimited
from bastion.identity.lockout import SLOW_DOWN_SECONDS, LockedOut
from bastion.serving.limits import until_midnight
from bastion.types import Clock

# KEYS[1]: the bucket; ARGV: rate per second, burst. Returns {1, 0} when a token was
# taken, else {0, milliseconds to wait}.
_BUCKET_SCRIPT = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or burst
local updated = tonumber(state[2]) or t
tokens = math.min(burst, tokens + (t - updated) * rate)
local allowed, wait = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(t))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, wait}
"""

# KEYS[1]: the day's counter; ARGV: quota. Returns {1, n} when counted, {0, n} when spent.
_QUOTA_SCRIPT = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then
  return {0, used}
end
used = redis.call('INCR', KEYS[1])
if used == 1 then
  redis.call('EXPIRE', KEYS[1], 172800)
end
return {1, used}
"""

# KEYS: failure counters then lock flags of the client id and the address; ARGV: limit,
# window and lock seconds. Returns the larger failure count (0 once a lock is set).
_FAILURE_SCRIPT = """
local limit, window, lock = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local worst = 0
for i = 1, 2 do
  local count = redis.call('INCR', KEYS[i])
  if count == 1 then
    redis.call('EXPIRE', KEYS[i], window)
  end
  if count >= limit then
    redis.call('SET', KEYS[i + 2], '1', 'EX', lock)
    redis.call('DEL', KEYS[i])
    count = 0
  end
  worst = math.max(worst, count)
end
return worst
"""


@contextmanager
def _answering(what: str) -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise BackendError(f"The {what} is unavailable.", detail=type(exc).__name__) from None


class RedisTokenBucketLimiter:
    """The same token bucket as the in-memory limiter, shared through Redis."""

    def __init__(
        self, *, client: redis.Redis, rate: float, burst: int, prefix: str, limit: str = "rate"
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._prefix = prefix
        self._limit = limit
        self._script: Callable[..., Any] = client.register_script(_BUCKET_SCRIPT)

    def check(self, key: str) -> None:
        """Take one token from ``key``'s shared bucket.

        Raises:
            RateLimited: the bucket is empty.
            BackendError: Redis does not answer (the request is refused, not let through).
        """
        with _answering("rate limiter"):
            allowed, wait_ms = self._script(
                keys=[f"{self._prefix}{key}"], args=[self._rate, self._burst]
            )
        if not allowed:
            raise RateLimited(retry_after=int(wait_ms) / 1000, limit=self._limit)


class RedisDailyQuotas:
    """Requests per key and UTC day, counted in Redis by every gateway."""

    def __init__(self, *, client: redis.Redis, prefix: str, clock: Clock) -> None:
        self._prefix = prefix
        self._clock = clock
        self._script: Callable[..., Any] = client.register_script(_QUOTA_SCRIPT)

    def take(self, key: str, quota: int) -> None:
        """Count one request of ``key`` today.

        Raises:
            RateLimited: the quota is spent; retry after midnight UTC.
            BackendError: Redis does not answer.
        """
        now = self._clock()
        with _answering("quota counter"):
            counted, _ = self._script(
                keys=[f"{self._prefix}{int(now // 86_400)}:{key}"], args=[quota]
            )
        if not counted:
            raise RateLimited(retry_after=until_midnight(now), limit=f"daily quota of {key}")


class RedisLockout:
    """The lockout of failed client authentication, shared by every gateway (same rules)."""

    def __init__(
        self,
        *,
        client: redis.Redis,
        prefix: str,
        limit: int,
        window: float,
        lock_seconds: float,
        slow_after: int = 3,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self.limit, self.window, self.lock_seconds = limit, window, lock_seconds
        self.slow_after = slow_after
        self._script: Callable[..., Any] = client.register_script(_FAILURE_SCRIPT)

    def check(self, *, client_id: str, source: str) -> None:
        """Refuse a locked client id or address.

        Raises:
            LockedOut: either is locked; ``retry_after`` says for how long.
            BackendError: Redis does not answer.
        """
        with _answering("lockout"):
            remaining = [
                self._client.pttl(self._key("locked", kind, value))
                for kind, value in (("client", client_id), ("source", source))
            ]
        longest = max(int(ms) for ms in remaining)  # -2: no lock
        if longest > 0:
            raise LockedOut(retry_after=longest / 1000)

    def failure(self, *, client_id: str, source: str) -> float:
        """Count a failure; return how long to wait before answering it."""
        keys = [
            self._key("failures", "client", client_id),
            self._key("failures", "source", source),
            self._key("locked", "client", client_id),
            self._key("locked", "source", source),
        ]
        with _answering("lockout"):
            worst = self._script(
                keys=keys, args=[self.limit, int(self.window), int(self.lock_seconds)]
            )
        return SLOW_DOWN_SECONDS if int(worst) > self.slow_after else 0.0

    def success(self, *, client_id: str) -> None:
        """Forget the client's failures once it authenticates."""
        with _answering("lockout"):
            self._client.delete(self._key("failures", "client", client_id))

    def _key(self, what: str, kind: str, value: str) -> str:
        return f"{self._prefix}{what}:{kind}:{value}"
