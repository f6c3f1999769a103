"""Rate limits shared by every gateway process, in Redis (one atomic Lua token bucket)."""

from __future__ import annotations

import redis

from bastion.errors import BackendError, RateLimited

# KEYS[1]: the bucket; ARGV: rate per second, burst. Redis's own clock, so every gateway
# agrees on time. Returns {1, 0} when a token was taken, else {0, milliseconds to wait}.
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


class RedisTokenBucketLimiter:
    """The same token bucket as the in-memory limiter, shared through Redis."""

    def __init__(self, *, client: redis.Redis, rate: float, burst: int, prefix: str) -> None:
        self._client = client
        self._rate = rate
        self._burst = burst
        self._prefix = prefix
        self._script = client.register_script(_BUCKET_SCRIPT)

    @classmethod
    def from_url(cls, url: str, *, rate: float, burst: int, prefix: str) -> RedisTokenBucketLimiter:
        """Connect to the Redis at ``url`` (connections are made on first use)."""
        return cls(client=redis.Redis.from_url(url), rate=rate, burst=burst, prefix=prefix)

    def check(self, key: str) -> None:
        """Take one token from ``key``'s shared bucket.

        Raises:
            RateLimited: the bucket is empty.
            BackendError: Redis does not answer (the request is refused, not let through).
        """
        try:
            allowed, wait_ms = self._script(
                keys=[f"{self._prefix}{key}"], args=[self._rate, self._burst]
            )
        except redis.RedisError as exc:
            raise BackendError(
                "The rate limiter is unavailable.", detail=type(exc).__name__
            ) from None
        if not allowed:
            raise RateLimited(retry_after=int(wait_ms) / 1000)
