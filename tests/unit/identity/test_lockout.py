"""The lockout, one checklist over both backends (in memory and Redis), plus attacker cases."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from bastion.errors import BackendUnavailable
from bastion.identity.lockout import (
    CLIENT_SPENT,
    PAIR_LOCKED,
    LockedOut,
    Lockout,
    LockoutCounter,
    LockoutRules,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
RULES = LockoutRules(pair_failures=5, window=900, lock_seconds=900, client_failures=40)
CLIENT = "bcl_victim"
HOME = "198.51.100.7"  # where the real client authenticates from


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


MakeLockout = Callable[[LockoutRules], AbstractAsyncContextManager[LockoutCounter]]


@pytest.fixture(params=["memory", "redis"])
def make_lockout(request: pytest.FixtureRequest) -> MakeLockout:
    """Factory: a lockout with the given rules in memory, or on the real Redis."""

    @asynccontextmanager
    async def memory(rules: LockoutRules) -> AsyncIterator[LockoutCounter]:
        yield Lockout(rules=rules, clock=FakeClock())

    @asynccontextmanager
    async def shared(rules: LockoutRules) -> AsyncIterator[LockoutCounter]:
        from bastion.serving.redis_limits import RedisLockout, connect

        client = connect(REDIS_URL, timeout=2, connect_timeout=2)
        try:
            await client.ping()
        except Exception:
            await client.aclose()
            if request.config.getoption("--require-services"):
                pytest.fail("Redis at 127.0.0.1:6379 is required")
            pytest.skip("Redis at 127.0.0.1:6379 is not running")
        prefix = f"bastion-test-{secrets.token_hex(4)}:"
        try:
            yield RedisLockout(client=client, prefix=prefix, rules=rules)
        finally:
            keys = [key async for key in client.scan_iter(f"{prefix}*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()

    return memory if request.param == "memory" else shared


async def guess(lockout: LockoutCounter, *, client_id: str = CLIENT, source: str) -> bool:
    """One wrong secret: True when the guess reached the secret check, False when refused."""
    try:
        await lockout.attempt(client_id=client_id, source=source)
    except LockedOut:
        return False
    await lockout.failure(client_id=client_id, source=source)
    return True


async def log_in(lockout: LockoutCounter, *, client_id: str = CLIENT, source: str = HOME) -> None:
    """The right secret: raises LockedOut when refused before it is checked."""
    await lockout.attempt(client_id=client_id, source=source)
    await lockout.success(client_id=client_id, source=source)


@pytest.mark.anyio
async def test_a_pair_is_locked_only_at_the_address_that_guessed(make_lockout):
    """After its failures a (client, address) pair is refused; the client elsewhere is not."""
    async with make_lockout(RULES) as lockout:
        reached = [await guess(lockout, source="203.0.113.9") for _ in range(8)]
        with pytest.raises(LockedOut) as caught:
            await log_in(lockout, source="203.0.113.9")
        await log_in(lockout, source=HOME)
    assert reached == [True] * 5 + [False] * 3
    assert 800 < caught.value.retry_after <= 900
    assert PAIR_LOCKED in caught.value.detail


@pytest.mark.anyio
async def test_an_attacker_elsewhere_cannot_lock_the_real_client_out(make_lockout):
    """Hammering a known client id from other addresses never refuses the client at home."""
    async with make_lockout(RULES) as lockout:
        await log_in(lockout)  # the client has authenticated from home before
        for n in range(200):  # enough addresses to spend the whole client budget, many times
            await guess(lockout, source=f"203.0.113.{n}")
        for _ in range(3):
            await log_in(lockout)  # raises LockedOut if the attacker had locked it out


@pytest.mark.anyio
async def test_a_single_attacker_address_cannot_block_a_new_client_address(make_lockout):
    """One attacking address is bounded by its pair limit, far below the client budget."""
    async with make_lockout(RULES) as lockout:
        for _ in range(500):
            await guess(lockout, source="203.0.113.66")
        await log_in(lockout, source="192.0.2.200")  # never seen before: still let in


@pytest.mark.anyio
async def test_one_bad_client_behind_a_shared_address_locks_out_no_other(make_lockout):
    """Behind one NAT, a client spraying wrong secrets for many ids blocks no other client."""
    nat = "100.64.0.1"
    async with make_lockout(RULES) as lockout:
        await log_in(lockout, client_id="bcl_known", source=nat)
        for n in range(60):
            for _ in range(RULES.pair_failures + 2):
                await guess(lockout, client_id=f"bcl_spray{n}", source=nat)
        for _ in range(10):
            await guess(lockout, client_id="bcl_bad", source=nat)
        await log_in(lockout, client_id="bcl_known", source=nat)
        await log_in(lockout, client_id="bcl_new", source=nat)  # first time from there


@pytest.mark.anyio
async def test_brute_force_from_many_addresses_is_bounded_by_the_client_budget(make_lockout):
    """From 100 addresses an attacker gets exactly ``client_failures`` guesses per window."""
    async with make_lockout(RULES) as lockout:
        reached = 0
        for n in range(100):  # each address tries as many guesses as it can get
            for _ in range(10):
                reached += await guess(lockout, source=f"10.0.{n}.1")
        with pytest.raises(LockedOut) as caught:
            await log_in(lockout, source="192.0.2.1")  # a new address now waits for the window
    assert reached == RULES.client_failures
    assert CLIENT_SPENT in caught.value.detail
    assert 0 < caught.value.retry_after <= RULES.client_window


@pytest.mark.anyio
async def test_concurrent_guesses_cannot_overrun_the_limits(make_lockout):
    """Attempts are counted before the secret is checked: 50 at once from one address, 5 get in."""
    async with make_lockout(RULES) as lockout:
        results = await asyncio.gather(*(guess(lockout, source="203.0.113.5") for _ in range(50)))
    assert sum(results) == RULES.pair_failures


@pytest.mark.anyio
async def test_success_clears_the_address_and_the_pair(make_lockout):
    """A success resets its pair and its address; failures from there start slow again at zero."""
    nat = "100.64.0.2"
    rules = LockoutRules(pair_failures=50, window=900, lock_seconds=900, client_failures=500)
    async with make_lockout(rules) as lockout:
        for _ in range(6):
            await guess(lockout, source=nat)
        await lockout.attempt(client_id="bcl_other", source=nat)
        slowed = await lockout.failure(client_id="bcl_other", source=nat)  # address count: 7
        await log_in(lockout, source=nat)
        await lockout.attempt(client_id="bcl_third", source=nat)
        after = await lockout.failure(client_id="bcl_third", source=nat)
        await lockout.attempt(client_id=CLIENT, source=nat)
        own = await lockout.failure(client_id=CLIENT, source=nat)  # the pair starts again too
    assert slowed == rules.delay(7) > 0
    assert after == 0.0
    assert own == rules.delay(7)  # the client-wide count (6 failures + this one) still slows


@pytest.mark.anyio
async def test_refunded_attempts_count_for_nothing(make_lockout):
    """An attempt that ended before its secret was judged (release) never locks anybody."""
    async with make_lockout(RULES) as lockout:
        for _ in range(3 * RULES.pair_failures):
            await lockout.attempt(client_id=CLIENT, source="203.0.113.8")
            await lockout.release(client_id=CLIENT, source="203.0.113.8")
        await log_in(lockout, source="203.0.113.8")


@pytest.mark.anyio
async def test_failures_are_answered_ever_more_slowly(make_lockout):
    """From the fourth failure on each answer waits longer, up to a cap of two seconds."""
    rules = LockoutRules(pair_failures=50, window=900, lock_seconds=900, client_failures=500)
    async with make_lockout(rules) as lockout:
        delays = []
        for _ in range(9):
            await lockout.attempt(client_id=CLIENT, source="203.0.113.3")
            delays.append(await lockout.failure(client_id=CLIENT, source="203.0.113.3"))
    assert delays == [0.0, 0.0, 0.0, 0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


@pytest.mark.anyio
async def test_client_ids_are_kept_apart_whatever_they_contain(make_lockout):
    """Ids with separators or of any length name their own counters (digested keys)."""
    rules = LockoutRules(pair_failures=2, window=900, lock_seconds=900, client_failures=500)
    async with make_lockout(rules) as lockout:
        for _ in range(2):
            await guess(lockout, client_id="a:b", source="c")
        await log_in(lockout, client_id="a", source="b:c")
        await log_in(lockout, client_id="a:b" * 5000, source="c")
        with pytest.raises(LockedOut):
            await log_in(lockout, client_id="a:b", source="c")


@pytest.mark.anyio
async def test_an_ipv6_attacker_gains_nothing_by_walking_its_64(make_lockout):
    """IPv6 counts by /64: new addresses in one block share a pair; trust covers the block."""
    async with make_lockout(RULES) as lockout:
        await log_in(lockout, source="2001:db8:0:7::aaaa")  # the client, on IPv6
        await log_in(lockout, source="198.51.100.7")  # and on IPv4
        reached = [await guess(lockout, source=f"2001:db8:0:66::{n:x}") for n in range(50)]
        await log_in(lockout, source="2001:db8:0:67::1")  # the next /64 is somebody else
        for block in range(100):  # a larger attacker spends the client budget
            for _ in range(RULES.pair_failures):
                await guess(lockout, source=f"2001:db8:{block + 1:x}::1")
        await log_in(lockout, source="2001:db8:0:7::bbbb")  # a new address in the client's /64
        await log_in(lockout, source="::ffff:198.51.100.7")  # IPv4-mapped is the IPv4 address
        with pytest.raises(LockedOut):
            await log_in(lockout, source="2001:db8:0:8::1")
    assert sum(reached) == RULES.pair_failures


def test_guesses_per_day_stay_within_the_budget():
    """Simulated over 24 h from fresh addresses every second: at most the budget per hour."""
    clock = FakeClock()
    lockout = Lockout(rules=RULES, clock=clock)

    async def day() -> list[int]:
        per_hour = [0] * 24
        for second in range(0, 24 * 3600, 5):
            clock.now = 1_000_000.0 + second
            per_hour[second // 3600] += await guess(lockout, source=f"x{second}")
        return per_hour

    per_hour = asyncio.run(day())
    assert max(per_hour) <= RULES.client_failures  # 40 guesses an hour at the secret
    assert sum(per_hour) <= 24 * RULES.client_failures
    # A client secret is 256 random bits: at this rate a guess succeeds once in ~10^71 years.


def test_locks_budgets_and_trust_lapse_with_time():
    """A pair lock ends after lock_seconds, a spent budget after its hour, trust after 30 days."""
    clock = FakeClock()
    lockout = Lockout(rules=RULES, clock=clock)
    guesser, stranger = "203.0.113.250", "192.0.2.9"

    async def refused(source: str) -> str:
        with pytest.raises(LockedOut) as caught:
            await log_in(lockout, source=source)
        return caught.value.detail

    async def run() -> None:
        await log_in(lockout)
        for _ in range(RULES.pair_failures):
            await guess(lockout, source=guesser)
        for n in range(100):
            await guess(lockout, source=f"203.0.113.{n}")
        assert PAIR_LOCKED in await refused(guesser)
        assert CLIENT_SPENT in await refused(stranger)
        await log_in(lockout)  # home is trusted
        clock.now += RULES.lock_seconds
        assert CLIENT_SPENT in await refused(guesser)  # its lock ended, the budget has not
        clock.now += RULES.client_window
        await log_in(lockout, source=guesser)
        await log_in(lockout, source=stranger)
        clock.now += RULES.trust_seconds
        for n in range(100):
            await guess(lockout, source=f"203.0.114.{n}")
        assert CLIENT_SPENT in await refused(HOME)  # last seen 30 days ago: no longer trusted

    asyncio.run(run())


def test_memory_stays_bounded_and_keeps_the_counts_that_limit_a_guesser(monkeypatch):
    """Past its table size the in-memory lockout drops small counts, never a spent budget."""
    from bastion.identity import lockout as module

    monkeypatch.setattr(module, "_MAX_TRACKED", 200)
    lockout = Lockout(rules=RULES, clock=FakeClock())

    async def run() -> None:
        for n in range(100):
            await guess(lockout, source=f"203.0.113.{n}")  # spends the victim's budget
        for n in range(2000):  # one-off failures of other ids from other addresses
            await guess(lockout, client_id=f"bcl_{n}", source=f"10.1.{n // 256}.{n % 256}")
        assert len(lockout._counts) <= 200
        with pytest.raises(LockedOut) as caught:
            await log_in(lockout, source="192.0.2.77")
        assert CLIENT_SPENT in caught.value.detail

    asyncio.run(run())


def test_delays_follow_the_rules():
    """No delay up to slow_after failures, then doubling from first_delay to max_delay."""
    rules = LockoutRules(pair_failures=5, window=1, lock_seconds=1, client_failures=5)
    assert [rules.delay(n) for n in range(1, 9)] == [0, 0, 0, 0.25, 0.5, 1.0, 2.0, 2.0]
    assert rules.delay(10**6) == 2.0  # no overflow, however large the count


@pytest.mark.anyio
async def test_an_unreachable_redis_refuses_every_attempt():
    """With Redis down the lockout raises BackendUnavailable: no attempt passes unchecked."""
    from bastion.serving.redis_limits import RedisLockout, connect

    client = connect("redis://127.0.0.1:1/0", timeout=0.2, connect_timeout=0.2)
    lockout = RedisLockout(client=client, prefix="x:", rules=RULES)
    try:
        with pytest.raises(BackendUnavailable):
            await log_in(lockout)
    finally:
        await client.aclose()
