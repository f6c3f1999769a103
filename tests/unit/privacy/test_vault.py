"""The tokenization vault, on SQLite and PostgreSQL."""

import secrets
import time

import pytest
import sqlalchemy as sa

from bastion.errors import CryptoError, InvalidInput, NotFound
from bastion.privacy import TokenVault
from bastion.privacy.vault import check_token
from bastion.storage import tables


@pytest.fixture
def vault(database):
    return TokenVault(database=database, key=secrets.token_bytes(64), clock=time.time)


def test_tokens_are_random_stable_and_reversible(vault):
    """Equal values share a token per field; tokens reveal exactly; fields do not mix."""
    values = ["Ann Lee", "Bob Roy", "Ann Lee", "Zoë ✓"]
    tokens = vault.tokenize(values, field="name")
    assert tokens[0] == tokens[2] and len(set(tokens)) == 3
    assert all(check_token(t) == t for t in tokens)
    assert vault.tokenize(["Ann Lee"], field="name") == [tokens[0]]
    assert vault.tokenize(["Ann Lee"], field="contact") != [tokens[0]]
    assert vault.detokenize(tokens, field="name") == values
    assert vault.apply("Bob Roy", field="name") == tokens[1]


def test_unknown_and_moved_tokens_are_refused(vault):
    """A token of another field is not found; a ciphertext moved to another token fails closed."""
    [ann, bob] = vault.tokenize(["Ann", "Bob"], field="name")
    with pytest.raises(NotFound):
        vault.detokenize([ann], field="contact")
    with pytest.raises(InvalidInput):
        check_token("tok_short")
    db = vault._db
    with db.transaction() as connection:
        blob = connection.execute(
            sa.select(tables.vault_tokens.c.ciphertext).where(tables.vault_tokens.c.token == bob)
        ).scalar_one()
        connection.execute(
            tables.vault_tokens.update()
            .where(tables.vault_tokens.c.token == ann)
            .values(ciphertext=blob)
        )
    with pytest.raises(CryptoError):
        vault.detokenize([ann], field="name")


def test_values_are_stored_encrypted(vault):
    """The database holds no value in clear."""
    vault.tokenize(["very-secret-value@example.com"], field="email")
    with vault._db.transaction() as connection:
        rows = connection.execute(sa.select(tables.vault_tokens)).all()
    assert rows and all(b"very-secret" not in bytes(row.ciphertext) for row in rows)
    assert all("very-secret" not in row.lookup for row in rows)


def test_two_vaults_on_one_database_agree(database):
    """Two processes' vaults with the same key give one token per value, whoever came first."""
    key = secrets.token_bytes(64)
    first = TokenVault(database=database, key=key, clock=time.time)
    second = TokenVault(database=database, key=key, clock=time.time)
    a = first.tokenize([f"v{i}" for i in range(600)], field="f")
    b = second.tokenize([f"v{i}" for i in range(300, 900)], field="f")
    assert a[300:] == b[:300]
    with pytest.raises(ValueError, match="64 bytes"):
        TokenVault(database=database, key=bytes(32), clock=time.time)
