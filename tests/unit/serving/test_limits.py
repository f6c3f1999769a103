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
