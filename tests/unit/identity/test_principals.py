import time

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from bastion.errors import AuthError, Conflict, InvalidInput, NotFound
from bastion.identity import PrincipalStore
from bastion.storage import tables


@pytest.fixture
def store(database):
    return PrincipalStore(database=database, hash_key=b"k" * 32, clock=time.time)


def test_add_and_authenticate(store):
    """A new client authenticates with its one-time secret."""
    created = store.add("ana", role="analyst", attributes={"team": "fraud"})
    principal = store.authenticate(created.principal.client_id, created.secret)
    assert principal.name == "ana"
    assert principal.attributes == {"team": "fraud"}


def test_only_a_keyed_hash_is_stored(store, database):
    """The database holds a keyed hash, never the secret."""
    created = store.add("ana", role="analyst", attributes={})
    secret = created.secret.get_secret_value()
    with database.transaction() as db:
        rows = db.execute(sa.select(tables.principals)).all()
    assert secret not in repr(rows)
    assert len(rows[0].secret_hash) == 64


@pytest.mark.parametrize("secret", ["", "bsk_wrong", "x" * 500])
def test_wrong_secret_is_refused(store, secret):
    """A wrong secret is one opaque AuthError."""
    created = store.add("ana", role="analyst", attributes={})
    with pytest.raises(AuthError):
        store.authenticate(created.principal.client_id, SecretStr(secret))


def test_unknown_client_is_refused_the_same_way(store):
    """Unknown and wrong look alike to the caller."""
    with pytest.raises(AuthError) as caught:
        store.authenticate("bcl_nobody", SecretStr("bsk_x"))
    assert str(caught.value) == "Authentication failed."


def test_disabled_client_is_refused(store):
    """Disabling a client stops it authenticating."""
    created = store.add("ana", role="analyst", attributes={})
    assert store.disable("ana").disabled
    with pytest.raises(AuthError):
        store.authenticate(created.principal.client_id, created.secret)


def test_names_are_unique(store):
    """A second principal with the same name is a conflict."""
    store.add("ana", role="analyst", attributes={})
    with pytest.raises(Conflict, match="ana"):
        store.add("ana", role="guest", attributes={})


@pytest.mark.parametrize(
    ("name", "role", "attributes"),
    [
        ("", "analyst", {}),
        ("a b", "analyst", {}),
        ("ana", "Admin!", {}),
        ("ana", "analyst", {"Bad Key": "v"}),
    ],
)
def test_malformed_names_roles_and_attributes_are_refused(store, name, role, attributes):
    """Names, roles and attribute keys are checked before anything is stored."""
    with pytest.raises(InvalidInput):
        store.add(name, role=role, attributes=attributes)
    assert store.list() == []


def test_list_get_and_unknown(store):
    """Principals are listed by name; unknown ones are NotFound."""
    store.add("zed", role="guest", attributes={})
    ana = store.add("ana", role="analyst", attributes={}).principal
    assert [p.name for p in store.list()] == ["ana", "zed"]
    assert store.get(ana.client_id) == ana
    with pytest.raises(NotFound):
        store.get("bcl_nobody")
    with pytest.raises(NotFound):
        store.disable("nobody")
