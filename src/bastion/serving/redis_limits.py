"""Limits shared by every gateway process, in Redis: token buckets, daily quotas, lockouts.

Each is one atomic Lua script on Redis's own clock, so gateways agree on time and two
processes can never both take the last token. The client is ``redis.asyncio`` with short
timeouts (``redis_timeout_seconds``, ``redis_connect_timeout_seconds``): a Redis that is
down, or accepts connections and never answers, costs the one request that needs it a
quick 503 (:class:`BackendUnavailable`), never a blocked event loop, and is never let through.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bastion.errors import BackendUnavailable, RateLimited
from bastion.identity.lockout import (
    CLIENT_SPENT,
    PAIR_LOCKED,
    LockedOut,
    LockoutRules,
    StateKeys,
    state_keys,
)
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

# The lockout (identity/lockout.py has the same rules in memory). KEYS: pair count, pair
# lock, client count, address count, trusted pair. Counts start their window at 1.
_LOCKOUT_COMMON = """
local pair, pair_lock, client, address, trusted = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local function value(key) return tonumber(redis.call('GET', key) or '0') end
local function add(key, ttl)
  if redis.call('INCR', key) == 1 then redis.call('PEXPIRE', key, ttl) end
end
local function refund(key)
  if value(key) > 0 then redis.call('DECR', key) end
end
"""

# ARGV: pair failures, window ms, client failures, client window ms. Returns {0, ms to
# wait, which} when refused (1: the pair is locked, 2: the client's budget is spent), else {1}.
_ATTEMPT_SCRIPT = (
    _LOCKOUT_COMMON
    + """
local locked = redis.call('PTTL', pair_lock)
if locked > 0 then return {0, locked, 1} end
if value(pair) >= tonumber(ARGV[1]) then return {0, redis.call('PTTL', pair), 1} end
if redis.call('EXISTS', trusted) == 0 and value(client) >= tonumber(ARGV[3]) then
  return {0, redis.call('PTTL', client), 2}
end
add(pair, ARGV[2])
add(client, ARGV[4])
add(address, ARGV[2])
return {1}
"""
)

# ARGV: pair failures, lock ms. Returns the largest of the three failure counts.
_FAILURE_SCRIPT = (
    _LOCKOUT_COMMON
    + """
local counts = {value(pair), value(address), value(client)}
if counts[1] >= tonumber(ARGV[1]) then
  redis.call('SET', pair_lock, '1', 'PX', ARGV[2])
  redis.call('DEL', pair)
end
return math.max(counts[1], counts[2], counts[3])
"""
)

# ARGV: trust ms.
_SUCCESS_SCRIPT = (
    _LOCKOUT_COMMON
    + """
redis.call('DEL', pair, pair_lock, address)
refund(client)
redis.call('SET', trusted, '1', 'PX', ARGV[1])
return 1
"""
)

_RELEASE_SCRIPT = (
    _LOCKOUT_COMMON
    + """
refund(pair)
refund(client)
refund(address)
return 1
"""
)


def connect(url: str, *, timeout: float, connect_timeout: float) -> aioredis.Redis:
    """An asyncio Redis client that gives up quickly.

    One retry (no backoff) survives a connection Redis closed while idle; a Redis that does
    not answer costs at most about ``connect_timeout + 2 * timeout``.
    """
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=connect_timeout,
        retry=Retry(NoBackoff(), 1),
    )


@asynccontextmanager
async def _answering(what: str) -> AsyncIterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        # Refused, never let through: a limit nobody can check is a limit nobody enforces.
        raise BackendUnavailable(detail=f"redis ({what}): {type(exc).__name__}") from None


class RedisTokenBucketLimiter:
    """The same token bucket as the in-memory limiter, shared through Redis."""

    def __init__(
        self, *, client: aioredis.Redis, rate: float, burst: int, prefix: str, limit: str = "rate"
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._prefix = prefix
        self._limit = limit
        self._script: Any = client.register_script(_BUCKET_SCRIPT)

    async def check(self, key: str) -> None:
        """Take one token from ``key``'s shared bucket.

        Raises:
            RateLimited: the bucket is empty.
            BackendUnavailable: Redis does not answer (the request is refused, not let through).
        """
        async with _answering("rate limiter"):
            allowed, wait_ms = await self._script(
                keys=[f"{self._prefix}{key}"], args=[self._rate, self._burst]
            )
        if not allowed:
            raise RateLimited(retry_after=int(wait_ms) / 1000, limit=self._limit)


class RedisDailyQuotas:
    """Requests per key and UTC day, counted in Redis by every gateway."""

    def __init__(self, *, client: aioredis.Redis, prefix: str, clock: Clock) -> None:
        self._prefix = prefix
        self._clock = clock
        self._script: Any = client.register_script(_QUOTA_SCRIPT)

    async def take(self, key: str, quota: int) -> None:
        """Count one request of ``key`` today.

        Raises:
            RateLimited: the quota is spent; retry after midnight UTC.
            BackendUnavailable: Redis does not answer.
        """
        now = self._clock()
        async with _answering("quota counter"):
            counted, _ = await self._script(
                keys=[f"{self._prefix}{int(now // 86_400)}:{key}"], args=[quota]
            )
        if not counted:
            raise RateLimited(retry_after=until_midnight(now), limit=f"daily quota of {key}")


class RedisLockout:
    """The lockout of failed client authentication, shared by every gateway (same rules)."""

    def __init__(self, *, client: aioredis.Redis, prefix: str, rules: LockoutRules) -> None:
        self.rules = rules
        self._prefix = prefix
        self._attempt: Any = client.register_script(_ATTEMPT_SCRIPT)
        self._failure: Any = client.register_script(_FAILURE_SCRIPT)
        self._success: Any = client.register_script(_SUCCESS_SCRIPT)
        self._release: Any = client.register_script(_RELEASE_SCRIPT)

    async def attempt(self, *, client_id: str, source: str) -> None:
        """Refuse a locked pair, or a stranger once the client's budget is spent; count the rest.

        Raises:
            LockedOut: refused; ``retry_after`` says for how long.
            BackendUnavailable: Redis does not answer.
        """
        rules = self.rules
        args = [rules.pair_failures, _ms(rules.window), rules.client_failures]
        async with _answering("lockout"):
            answer = await self._attempt(
                keys=self._keys(client_id, source), args=[*args, _ms(rules.client_window)]
            )
        if not int(answer[0]):
            limit = PAIR_LOCKED if int(answer[2]) == 1 else CLIENT_SPENT
            raise LockedOut(retry_after=max(int(answer[1]), 1) / 1000, limit=limit)

    async def failure(self, *, client_id: str, source: str) -> float:
        """Lock the pair once it reached its limit; return the delay before answering."""
        args = [self.rules.pair_failures, _ms(self.rules.lock_seconds)]
        async with _answering("lockout"):
            worst = await self._failure(keys=self._keys(client_id, source), args=args)
        return self.rules.delay(int(worst))

    async def success(self, *, client_id: str, source: str) -> None:
        """Refund the attempt, clear the pair and the address, and trust the pair."""
        async with _answering("lockout"):
            await self._success(
                keys=self._keys(client_id, source), args=[_ms(self.rules.trust_seconds)]
            )

    async def release(self, *, client_id: str, source: str) -> None:
        """Refund the attempt."""
        async with _answering("lockout"):
            await self._release(keys=self._keys(client_id, source), args=[])

    def _keys(self, client_id: str, source: str) -> list[str]:
        keys: StateKeys = state_keys(client_id, source)
        names = (keys.pair, keys.pair_lock, keys.client, keys.address, keys.trusted)
        return [f"{self._prefix}{name}" for name in names]


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
