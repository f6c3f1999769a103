import pytest

from bastion.errors import AuthError
from bastion.identity import RevocationList


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_revocation_here_applies_at_once_and_one_elsewhere_within_the_cache_time(database):
    """Two gateways on one database: the revoking one refuses at once, the other after a reload."""
    clock = Clock()
    here = RevocationList(database=database, clock=clock, cache_seconds=2)
    there = RevocationList(database=database, clock=clock, cache_seconds=2)
    for gateway in (here, there):
        gateway.check("t1")  # loads the in-memory copies
    assert here.cached("t1") is False and there.cached("t1") is False

    here.revoke("t1", expires_at=clock.now + 300)
    with pytest.raises(AuthError) as refused:
        here.check("t1")
    assert refused.value.detail == "revoked token"
    assert there.cached("t1") is False  # still its old copy

    clock.now += 2
    assert there.cached("t1") is None  # stale: the next check asks the database
    with pytest.raises(AuthError):
        there.check("t1")
    assert there.cached("t1") is True


def test_without_a_cache_every_check_asks_the_database(database):
    clock = Clock()
    here = RevocationList(database=database, clock=clock)
    there = RevocationList(database=database, clock=clock)
    there.check("t2")
    here.revoke("t2", expires_at=clock.now + 300)
    assert there.cached("t2") is None
    with pytest.raises(AuthError):
        there.check("t2")


def test_expired_revocations_leave_the_copy(database):
    clock = Clock()
    revocations = RevocationList(database=database, clock=clock, cache_seconds=1)
    revocations.revoke("old", expires_at=clock.now + 10)
    clock.now += 11
    revocations.check("other")  # reloads: only entries of tokens that could still verify
    assert revocations.cached("old") is False
