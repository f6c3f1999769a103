import pytest

from bastion.errors import BackendError, RateLimited
from bastion.identity import LockedOut
from bastion.serving.limits import DailyQuotas, TokenBucketLimiter
from bastion.serving.redis_limits import RedisDailyQuotas, RedisLockout, RedisTokenBucketLimiter


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


@pytest.fixture
def redis_client(request):
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        client.ping()
    except redis.RedisError:
        if request.config.getoption("--require-services"):
            pytest.fail("Redis at 127.0.0.1:6379 is required")
        pytest.skip("Redis at 127.0.0.1:6379 is not running")
    return client


@pytest.fixture
def prefix():
    import secrets

    return f"bastion-test-{secrets.token_hex(4)}:"


def test_redis_bucket_is_shared_and_fails_closed(redis_client, prefix):
    """Two limiters on one Redis share a bucket; an unreachable Redis refuses, never allows."""
    import redis

    first, second = (
        RedisTokenBucketLimiter(client=redis_client, rate=0.01, burst=2, prefix=prefix)
        for _ in range(2)
    )
    first.check("ana")
    second.check("ana")
    with pytest.raises(RateLimited) as caught:
        first.check("ana")
    assert 1 < caught.value.retry_after <= 100
    second.check("bob")  # other principals have their own bucket
    unreachable = redis.Redis.from_url("redis://127.0.0.1:1/0")
    down = RedisTokenBucketLimiter(client=unreachable, rate=1, burst=1, prefix="x")
    with pytest.raises(BackendError):
        down.check("ana")


@pytest.mark.parametrize("shared", [False, True])
def test_daily_quotas_stop_at_the_quota_until_midnight(shared, request, prefix):
    """Three requests a day: the fourth is refused until midnight UTC; a new day starts afresh."""
    clock = FakeClock()
    clock.now = 1_800_057_600.0 - 100  # 100 s before midnight UTC
    if shared:
        client = request.getfixturevalue("redis_client")
        quotas = [RedisDailyQuotas(client=client, prefix=prefix, clock=clock) for _ in range(2)]
    else:
        quotas = [DailyQuotas(clock=clock)] * 2
    for n in range(3):
        quotas[n % 2].take("principal:ana", 3)
    with pytest.raises(RateLimited) as caught:
        quotas[1].take("principal:ana", 3)
    assert caught.value.retry_after == pytest.approx(100)
    assert "daily quota" in caught.value.detail
    quotas[0].take("principal:bob", 3)
    clock.now += 100
    quotas[1].take("principal:ana", 3)


def test_redis_lockout_is_shared_by_gateways(redis_client, prefix):
    """Failures at two gateways add up; the lock holds on both; success forgets the count."""
    gateways = [
        RedisLockout(client=redis_client, prefix=prefix, limit=4, window=60, lock_seconds=30)
        for _ in range(2)
    ]
    delays = [gateways[n % 2].failure(client_id="bcl_x", source=f"10.0.0.{n}") for n in range(3)]
    assert delays == [0.0, 0.0, 0.0]
    gateways[0].check(client_id="bcl_x", source="10.0.0.9")
    gateways[1].failure(client_id="bcl_x", source="10.0.0.9")  # the fourth: locked
    for gateway in gateways:
        with pytest.raises(LockedOut) as caught:
            gateway.check(client_id="bcl_x", source="10.9.9.9")
        assert 25 < caught.value.retry_after <= 30
    gateways[0].check(client_id="bcl_other", source="10.9.9.9")
    gateways[0].failure(client_id="bcl_y", source="10.1.1.1")
    gateways[1].success(client_id="bcl_y")
    assert redis_client.get(f"{prefix}failures:client:bcl_y") is None
