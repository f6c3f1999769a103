import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bastion.errors import BackendError, Conflict
from bastion.storage import Database, tables


def test_migrations_match_the_tables(database):
    """The migrated schema is exactly what tables.py declares, on each backend."""
    with database.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), tables.metadata)
    assert diff == []


def test_migrate_twice_is_harmless(database):
    """Running migrations again changes nothing."""
    database.migrate()
    with database.transaction() as db:
        assert db.execute(sa.select(sa.func.count()).select_from(tables.principals)).scalar() == 0


def test_unique_violation_becomes_conflict(database):
    """Driver integrity errors surface as Conflict."""
    row = {
        "client_id": "c",
        "name": "n",
        "role": "r",
        "attributes": {},
        "secret_hash": "h",
        "disabled": False,
        "created_at": 0.0,
    }
    with database.transaction() as db:
        db.execute(tables.principals.insert().values(**row))
    with pytest.raises(Conflict), database.transaction() as db:
        db.execute(tables.principals.insert().values(**row))


def test_driver_errors_become_backend_errors_without_parameters(database):
    """Other driver errors surface as BackendError, without echoing statement values."""
    with pytest.raises(BackendError) as caught, database.transaction() as db:
        db.execute(sa.text("select * from no_such_table where x = 'hunter2'"))
    assert "hunter2" not in str(caught.value) + caught.value.detail


@pytest.mark.parametrize("url", ["mysql://x/y", "not a url", "oracle://a"])
def test_unsupported_urls(url):
    """Only SQLite and PostgreSQL URLs are accepted."""
    with pytest.raises(BackendError):
        Database.open(url)


def test_unreachable_postgres_is_a_backend_error():
    """A server that does not answer is a BackendError, not a driver traceback."""
    db = Database.open("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    with pytest.raises(BackendError):
        db.migrate()
