import pytest

from bastion.errors import RateLimited
from bastion.serving.limits import TokenBucketLimiter


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_burst_then_refill():
    """A principal may burst, is then refused with a retry time, and recovers at the rate."""
    clock = FakeClock()
    limiter = TokenBucketLimiter(rate=2.0, burst=3, clock=clock)
    for _ in range(3):
        limiter.check("a")
    with pytest.raises(RateLimited) as caught:
        limiter.check("a")
    assert caught.value.retry_after == pytest.approx(0.5)
    clock.now += 0.5
    limiter.check("a")
    with pytest.raises(RateLimited):
        limiter.check("a")


def test_principals_have_separate_buckets():
    """One principal's burst does not limit another."""
    limiter = TokenBucketLimiter(rate=1.0, burst=1, clock=FakeClock())
    limiter.check("a")
    limiter.check("b")
    with pytest.raises(RateLimited):
        limiter.check("a")


def test_refill_is_capped_at_the_burst():
    """Idle time does not bank more than the burst."""
    clock = FakeClock()
    limiter = TokenBucketLimiter(rate=10.0, burst=2, clock=clock)
    clock.now += 3600
    limiter.check("a")
    limiter.check("a")
    with pytest.raises(RateLimited):
        limiter.check("a")


def test_redis_bucket_is_shared_and_fails_closed(request):
    """Two limiters on one Redis share a bucket; an unreachable Redis refuses, never allows."""
    import secrets

    import redis

    from bastion.errors import BackendError
    from bastion.serving.redis_limits import RedisTokenBucketLimiter

    url = "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url).ping()
    except redis.RedisError:
        if request.config.getoption("--require-services"):
            pytest.fail("Redis at 127.0.0.1:6379 is required")
        pytest.skip("Redis at 127.0.0.1:6379 is not running")
    prefix = f"bastion-test-{secrets.token_hex(4)}:"
    first, second = (
        RedisTokenBucketLimiter.from_url(url, rate=0.01, burst=2, prefix=prefix) for _ in range(2)
    )
    first.check("ana")
    second.check("ana")
    with pytest.raises(RateLimited) as caught:
        first.check("ana")
    assert 1 < caught.value.retry_after <= 100
    second.check("bob")  # other principals have their own bucket
    down = RedisTokenBucketLimiter.from_url("redis://127.0.0.1:1/0", rate=1, burst=1, prefix="x")
    with pytest.raises(BackendError):
        down.check("ana")
