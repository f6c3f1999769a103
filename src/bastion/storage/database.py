"""One database interface over SQLite (default) and PostgreSQL.

Callers get a :class:`Database`, run statements inside :meth:`Database.transaction`,
and see only Bastion errors: driver exceptions are translated at this boundary.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine

from bastion.errors import BackendError, Conflict

_MIGRATIONS = Path(__file__).with_name("migrations")


class Database:
    """A migrated SQL database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> Database:
        """Connect to ``url`` (``sqlite:///…`` or ``postgresql+psycopg://…``).

        Raises:
            BackendError: the URL names an unsupported database.
        """
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError:
            raise BackendError("The database URL is malformed.") from None
        if parsed.get_backend_name() == "sqlite":
            engine = sa.create_engine(
                parsed, connect_args={"check_same_thread": False, "timeout": 30}
            )
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        elif parsed.get_backend_name() == "postgresql":
            engine = sa.create_engine(parsed, pool_pre_ping=True)
        else:
            raise BackendError("Only SQLite and PostgreSQL databases are supported.")
        return cls(engine)

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` (the newest migration by default).

        Raises:
            BackendError: the database cannot be reached or migrated.
        """
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with self.transaction() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection inside one transaction, committed when the block ends.

        Raises:
            Conflict: a unique constraint was violated.
            BackendError: the database failed or cannot be reached.
        """
        try:
            with self.engine.begin() as connection:
                yield connection
        except sa.exc.IntegrityError:
            raise Conflict() from None
        except sa.exc.SQLAlchemyError as exc:
            # Driver messages can echo statement parameters; keep only the class name.
            raise BackendError(detail=type(exc).__name__) from None

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the writer; FULL sync makes an acknowledged commit durable.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
