import pytest

from bastion.errors import BackendUnavailable, RateLimited
from bastion.serving.limits import DailyQuotas, TokenBucketLimiter
from bastion.serving.redis_limits import RedisDailyQuotas, RedisTokenBucketLimiter, connect


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.mark.anyio
async def test_burst_then_refill():
    """A principal may burst, is then refused with a retry time, and recovers at the rate."""
    clock = FakeClock()
    limiter = TokenBucketLimiter(rate=2.0, burst=3, clock=clock)
    for _ in range(3):
        await limiter.check("a")
    with pytest.raises(RateLimited) as caught:
        await limiter.check("a")
    assert caught.value.retry_after == pytest.approx(0.5)
    clock.now += 0.5
    await limiter.check("a")
    with pytest.raises(RateLimited):
        await limiter.check("a")


@pytest.mark.anyio
async def test_principals_have_separate_buckets():
    """One principal's burst does not limit another."""
    limiter = TokenBucketLimiter(rate=1.0, burst=1, clock=FakeClock())
    await limiter.check("a")
    await limiter.check("b")
    with pytest.raises(RateLimited):
        await limiter.check("a")


@pytest.mark.anyio
async def test_refill_is_capped_at_the_burst():
    """Idle time does not bank more than the burst."""
    clock = FakeClock()
    limiter = TokenBucketLimiter(rate=10.0, burst=2, clock=clock)
    clock.now += 3600
    await limiter.check("a")
    await limiter.check("a")
    with pytest.raises(RateLimited):
        await limiter.check("a")


@pytest.fixture
def redis_client(request):
    import redis

    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/0").ping()
    except redis.RedisError:
        if request.config.getoption("--require-services"):
            pytest.fail("Redis at 127.0.0.1:6379 is required")
        pytest.skip("Redis at 127.0.0.1:6379 is not running")
    return connect("redis://127.0.0.1:6379/0", timeout=2, connect_timeout=2)


@pytest.fixture
def prefix():
    import secrets

    return f"bastion-test-{secrets.token_hex(4)}:"


@pytest.mark.anyio
async def test_redis_bucket_is_shared_and_fails_closed(redis_client, prefix):
    """Two limiters on one Redis share a bucket; an unreachable Redis refuses, never allows."""
    first, second = (
        RedisTokenBucketLimiter(client=redis_client, rate=0.01, burst=2, prefix=prefix)
        for _ in range(2)
    )
    await first.check("ana")
    await second.check("ana")
    with pytest.raises(RateLimited) as caught:
        await first.check("ana")
    assert 1 < caught.value.retry_after <= 100
    await second.check("bob")  # other principals have their own bucket
    unreachable = connect("redis://127.0.0.1:1/0", timeout=0.2, connect_timeout=0.2)
    down = RedisTokenBucketLimiter(client=unreachable, rate=1, burst=1, prefix="x")
    with pytest.raises(BackendUnavailable):
        await down.check("ana")
    await unreachable.aclose()
    await redis_client.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("shared", [False, True])
async def test_daily_quotas_stop_at_the_quota_until_midnight(shared, request, prefix):
    """Three requests a day: the fourth is refused until midnight UTC; a new day starts afresh."""
    clock = FakeClock()
    clock.now = 1_800_057_600.0 - 100  # 100 s before midnight UTC
    if shared:
        client = request.getfixturevalue("redis_client")
        quotas = [RedisDailyQuotas(client=client, prefix=prefix, clock=clock) for _ in range(2)]
    else:
        quotas = [DailyQuotas(clock=clock)] * 2
    for n in range(3):
        await quotas[n % 2].take("principal:ana", 3)
    with pytest.raises(RateLimited) as caught:
        await quotas[1].take("principal:ana", 3)
    assert caught.value.retry_after == pytest.approx(100)
    assert "daily quota" in caught.value.detail
    await quotas[0].take("principal:bob", 3)
    clock.now += 100
    await quotas[1].take("principal:ana", 3)
    if shared:
        await client.aclose()


def test_the_redis_client_gives_up_after_the_configured_timeouts():
    """The Redis timeouts are settings (0 < t <= 10 s) that the client is built with."""
    from pydantic import ValidationError

    from bastion.settings import Settings

    client = connect("redis://127.0.0.1:6379/0", timeout=0.3, connect_timeout=0.2)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (0.3, 0.2)
    defaults = Settings()
    assert (defaults.redis_timeout_seconds, defaults.redis_connect_timeout_seconds) == (0.5, 0.25)
    for bad in ({"redis_timeout_seconds": 0}, {"redis_connect_timeout_seconds": 11}):
        with pytest.raises(ValidationError):
            Settings(**bad)
