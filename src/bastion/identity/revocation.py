"""Revoked access tokens, by ``jti``, kept until the token would have expired anyway."""

from __future__ import annotations

import sqlalchemy as sa

from bastion.errors import AuthError, Conflict
from bastion.storage import Database, tables
from bastion.types import Clock


class RevocationList:
    """The set of revoked token ids, shared by every gateway on the database."""

    def __init__(self, *, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock

    def revoke(self, jti: str, *, expires_at: float) -> None:
        """Revoke token ``jti`` (idempotent); expired entries are swept on the way."""
        table = tables.revoked_tokens
        try:
            with self._db.transaction() as db:
                db.execute(table.delete().where(table.c.expires_at < self._clock()))
                db.execute(table.insert().values(jti=jti, expires_at=expires_at))
        except Conflict:
            pass  # revoked already

    def is_revoked(self, jti: str) -> bool:
        """Whether ``jti`` was revoked."""
        table = tables.revoked_tokens
        with self._db.transaction() as db:
            return db.execute(sa.select(table.c.jti).where(table.c.jti == jti)).first() is not None

    def check(self, jti: str) -> None:
        """Refuse a revoked token.

        Raises:
            AuthError: ``jti`` was revoked.
        """
        if self.is_revoked(jti):
            raise AuthError(detail="revoked token")
