import time

import pytest
import sqlalchemy as sa

from bastion.errors import AuthError, InvalidInput, NotFound
from bastion.identity import ApiKeyStore, PrincipalStore
from bastion.storage import tables


class Clock:
    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now


@pytest.fixture
def setup(database):
    clock = Clock()
    principals = PrincipalStore(database=database, hash_key=b"k" * 32, clock=clock)
    keys = ApiKeyStore(database=database, principals=principals, hash_key=b"k" * 32, clock=clock)
    principals.add("ana", role="analyst", attributes={})
    return keys, principals, clock


def test_keys_authenticate_their_principal_within_scope(setup, database):
    """A key authenticates its principal, carries its scope, and is stored only hashed."""
    keys, _, _ = setup
    record, key = keys.create("ana", actions=("infer",), models=("digits",), days=30)
    principal, used = keys.authenticate(key.get_secret_value())
    assert principal.name == "ana" and used.key_id == record.key_id
    assert used.allows("infer", "digits") and not used.allows("infer", "other")
    assert not used.allows("describe", "digits")
    with database.transaction() as db:
        stored = repr(db.execute(sa.select(tables.api_keys)).all())
    assert key.get_secret_value().split("_")[-1] not in stored
    assert keys.list()[0].last_used_at is not None


@pytest.mark.parametrize(
    "presented",
    ["", "bak_", "bak_0123456789abcdef_short", "Bearer x", "bak_0123456789abcdef_" + "A" * 43],
)
def test_malformed_and_unknown_keys_are_refused(setup, presented):
    """Anything but a known key is one opaque AuthError."""
    keys, _, _ = setup
    with pytest.raises(AuthError):
        keys.authenticate(presented)


def test_wrong_secret_expired_revoked_and_disabled(setup):
    """A wrong secret, an expired or revoked key, or a disabled principal is refused."""
    keys, principals, clock = setup
    record, key = keys.create("ana", actions=("infer",), models=("*",), days=1)
    value = key.get_secret_value()
    with pytest.raises(AuthError):
        keys.authenticate(value[:-1] + ("A" if value[-1] != "A" else "B"))
    clock.now += 86_401
    with pytest.raises(AuthError) as expired:
        keys.authenticate(value)
    assert expired.value.detail == "expired api key"
    clock.now -= 86_401
    principals.disable("ana")
    with pytest.raises(AuthError):
        keys.authenticate(value)
    keys.revoke(record.key_id)
    with pytest.raises(AuthError):
        keys.authenticate(value)
    with pytest.raises(NotFound):
        keys.revoke("0000000000000000")


def test_creation_is_checked(setup):
    """Unknown principals, empty scopes and silly lifetimes are refused."""
    keys, _, _ = setup
    with pytest.raises(NotFound):
        keys.create("nobody", actions=("infer",), models=("*",), days=1)
    for bad in ({"actions": ()}, {"models": ()}, {"days": 0}, {"days": 400}):
        with pytest.raises(InvalidInput):
            keys.create("ana", **({"actions": ("infer",), "models": ("*",), "days": 1} | bad))
