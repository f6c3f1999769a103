"""Revoked access tokens, by ``jti``, kept until the token would have expired anyway.

The list lives in the database, shared by every gateway. The request path asks
:meth:`RevocationList.cached` first: a copy of the whole list (it only holds tokens that
are still valid, so it stays small) reloaded at most every ``cache_seconds``, which costs
no query and no thread hop. A revocation made through this process is in the copy at once;
one made by another gateway reaches it within ``cache_seconds``.
"""

from __future__ import annotations

from threading import Lock

import sqlalchemy as sa

from bastion.errors import AuthError, Conflict
from bastion.storage import Database, tables
from bastion.types import Clock


class RevocationList:
    """The set of revoked token ids, shared by every gateway on the database."""

    def __init__(self, *, database: Database, clock: Clock, cache_seconds: float = 0.0) -> None:
        self._db = database
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._copy: frozenset[str] = frozenset()
        self._fresh_until = float("-inf")
        self._local: dict[str, float] = {}  # revoked here, by when: kept across a reload
        self._lock = Lock()

    def revoke(self, jti: str, *, expires_at: float) -> None:
        """Revoke token ``jti`` (idempotent); expired entries are swept on the way."""
        table = tables.revoked_tokens
        try:
            with self._db.transaction() as db:
                db.execute(table.delete().where(table.c.expires_at < self._clock()))
                db.execute(table.insert().values(jti=jti, expires_at=expires_at))
        except Conflict:
            pass  # revoked already
        with self._lock:
            self._local[jti] = self._clock()
            self._copy = self._copy | {jti}

    def is_revoked(self, jti: str) -> bool:
        """Whether ``jti`` was revoked (asks the database)."""
        table = tables.revoked_tokens
        with self._db.transaction() as db:
            return db.execute(sa.select(table.c.jti).where(table.c.jti == jti)).first() is not None

    @property
    def fresh_until(self) -> float:
        """Until when the in-memory copy counts as fresh (``-inf``: there is none).

        A cache that relies on the copy (a verified token remembered by the gateway) must
        not outlive it, or a revocation made elsewhere would take longer than
        ``cache_seconds`` to apply.
        """
        return self._fresh_until

    def cached(self, jti: str) -> bool | None:
        """Whether ``jti`` was revoked, from the in-memory copy; None when it is stale."""
        if self._clock() >= self._fresh_until:
            return None
        return jti in self._copy

    def check(self, jti: str) -> None:
        """Refuse a revoked token, reloading the in-memory copy when it is stale.

        Raises:
            AuthError: ``jti`` was revoked.
        """
        revoked = self.cached(jti)
        if revoked is None:
            revoked = self._reload(jti)
        if revoked:
            raise AuthError(detail="revoked token")

    def _reload(self, jti: str) -> bool:
        if self._cache_seconds <= 0:
            return self.is_revoked(jti)
        table = tables.revoked_tokens
        now = self._clock()
        with self._db.transaction() as db:
            rows = db.execute(sa.select(table.c.jti).where(table.c.expires_at >= now))
            copy = frozenset(row.jti for row in rows)
        with self._lock:
            # A revocation committed while the query ran may be missing from its rows.
            self._local = {j: t for j, t in self._local.items() if t > now - self._cache_seconds}
            copy |= self._local.keys()
            self._copy, self._fresh_until = copy, now + self._cache_seconds
        return jti in copy
