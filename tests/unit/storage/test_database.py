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


def test_hash_chained_records_migrate_into_the_merkle_log(database_url, tmp_path):
    """Records of the first schema become the first entries of the Merkle log, in order."""
    import time

    from bastion.audit import AuditLog
    from bastion.crypto import SigningKey

    db = Database.open(database_url)
    db.migrate("0001")
    old = sa.table(
        "audit_records",
        *(
            sa.column(c)
            for c in (
                "seq",
                "time",
                "request_id",
                "principal",
                "action",
                "resource",
                "decision",
                "policy_ids",
                "status",
                "latency_ms",
                "input_sha256",
                "reason",
                "prev_hash",
                "hash",
            )
        ),
    )
    with db.transaction() as connection:
        connection.execute(
            old.insert(),
            [
                {
                    "seq": n,
                    "time": 1.0 + n,
                    "request_id": f"r{n}",
                    "principal": "bcl_a",
                    "action": "infer",
                    "resource": "m@1",
                    "decision": "allow",
                    "policy_ids": '["p"]',
                    "status": 200,
                    "latency_ms": 1.0,
                    "input_sha256": "",
                    "reason": "",
                    "prev_hash": "0" * 64,
                    "hash": "0" * 64,
                }
                for n in (1, 2, 3)
            ],
        )
    db.migrate()
    log = AuditLog(
        database=db,
        signing_key=SigningKey.generate(tmp_path / "k.pem"),
        origin="t/audit",
        clock=time.time,
    )
    entries = log.tail(10)
    assert [(e.seq, e.event.request_id, e.event.event) for e in entries] == [
        (0, "r1", "migrated"),
        (1, "r2", "migrated"),
        (2, "r3", "migrated"),
    ]
    assert entries[0].event.policy_ids == ("p",)
    assert log.verify().size == 3
    db.close()
