"""API keys: prefixed, random, shown once, stored as keyed hashes, scoped, expiring, revocable.

A key reads ``bak_<id>_<secret>``. The id finds the record; only an HMAC-SHA256 of the
secret is stored. A key acts for one principal, and only for the actions and models it
was created for (Cedar still decides on top of that).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from pydantic import SecretStr

from bastion.errors import AuthError, InvalidInput, NotFound
from bastion.identity.principals import Principal, PrincipalStore
from bastion.identity.scalars import all_encodable, encodable
from bastion.storage import Database, tables
from bastion.types import Clock

PREFIX = "bak_"
ANY_MODEL = "*"
_KEY = re.compile(r"^bak_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_LAST_USED_EVERY = 60.0  # seconds: last-use time is recorded at most this often per key
_DAY = 86_400


@dataclass(frozen=True)
class ApiKey:
    """An API key's record (never its secret)."""

    key_id: str
    client_id: str
    actions: tuple[str, ...]
    models: tuple[str, ...]
    expires_at: float
    revoked: bool
    created_at: float
    last_used_at: float | None

    def allows(self, action: str, model: str) -> bool:
        """Whether this key may be used for ``action`` on ``model``."""
        return action in self.actions and (ANY_MODEL in self.models or model in self.models)


class ApiKeyStore:
    """Creates, lists, revokes and checks API keys."""

    def __init__(
        self, *, database: Database, principals: PrincipalStore, hash_key: bytes, clock: Clock
    ) -> None:
        self._db = database
        self._principals = principals
        self._hash_key = hash_key
        self._clock = clock

    def create(
        self, principal_name: str, *, actions: tuple[str, ...], models: tuple[str, ...], days: int
    ) -> tuple[ApiKey, SecretStr]:
        """A new key for ``principal_name``; the returned secret is shown once.

        Raises:
            NotFound: no such principal.
            InvalidInput: no actions or models, or a lifetime outside 1..365 days, or an
                action or model that is not valid Unicode.
        """
        if not actions or not models or not 1 <= days <= 365:  # noqa: PLR2004
            raise InvalidInput("An API key needs actions, models and 1 to 365 days of life.")
        if not all_encodable((actions, models)):  # never store what no listing can encode
            raise InvalidInput("Actions and models must be valid Unicode text.")
        principal = next((p for p in self._principals.list() if p.name == principal_name), None)
        if principal is None:
            raise NotFound(f"No principal named {principal_name!r}.")
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        now = self._clock()
        record = ApiKey(
            key_id,
            principal.client_id,
            tuple(actions),
            tuple(models),
            now + days * _DAY,
            revoked=False,
            created_at=now,
            last_used_at=None,
        )
        with self._db.transaction() as db:
            db.execute(
                tables.api_keys.insert().values(
                    key_id=key_id,
                    client_id=principal.client_id,
                    actions=list(actions),
                    models=list(models),
                    secret_hash=self._hash(secret),
                    expires_at=record.expires_at,
                    revoked=False,
                    created_at=now,
                    last_used_at=None,
                )
            )
        return record, SecretStr(f"{PREFIX}{key_id}_{secret}")

    def list(self) -> list[ApiKey]:
        """Every key, oldest first."""
        with self._db.transaction() as db:
            rows = db.execute(sa.select(tables.api_keys).order_by(tables.api_keys.c.created_at))
            return [_record(row) for row in rows]

    def revoke(self, key_id: str) -> None:
        """Revoke a key at once, on every gateway (keys are checked in the database each time).

        Raises:
            NotFound: no such key.
        """
        if not encodable(key_id):  # no stored id is; the query could not even be sent
            raise NotFound("No such API key; see `bastion apikey list`.")
        with self._db.transaction() as db:
            done = db.execute(
                tables.api_keys.update()
                .where(tables.api_keys.c.key_id == key_id)
                .values(revoked=True)
            )
        self._principals.changed()  # for any cache of what a principal may do
        if done.rowcount == 0:
            raise NotFound(f"No API key {key_id!r}; see `bastion apikey list`.")

    def authenticate(self, presented: str) -> tuple[Principal, ApiKey]:
        """The principal and key behind ``presented``.

        Raises:
            AuthError: malformed, unknown, wrong, expired or revoked key, or a disabled
                principal (one opaque error; the reason is in ``detail``).
        """
        match = _KEY.fullmatch(presented)
        if match is None:
            raise AuthError(detail="malformed api key")
        key_id, secret = match.groups()
        with self._db.transaction() as db:
            row = db.execute(
                sa.select(tables.api_keys).where(tables.api_keys.c.key_id == key_id)
            ).first()
        stored = row.secret_hash if row is not None else "0" * 64
        if not hmac.compare_digest(self._hash(secret), stored) or row is None:
            raise AuthError(detail="unknown api key or wrong secret")
        record = _record(row)
        now = self._clock()
        if record.revoked:
            raise AuthError(detail="revoked api key")
        if record.expires_at <= now:
            raise AuthError(detail="expired api key")
        principal = self._principals.enabled(record.client_id)
        if record.last_used_at is None or now - record.last_used_at > _LAST_USED_EVERY:
            with self._db.transaction() as db:
                db.execute(
                    tables.api_keys.update()
                    .where(tables.api_keys.c.key_id == key_id)
                    .values(last_used_at=now)
                )
        return principal, record

    def _hash(self, secret: str) -> str:
        return hmac.new(self._hash_key, b"api-key|" + secret.encode(), hashlib.sha256).hexdigest()


def _record(row: sa.Row[tuple[object, ...]]) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        client_id=row.client_id,
        actions=tuple(row.actions),
        models=tuple(row.models),
        expires_at=row.expires_at,
        revoked=bool(row.revoked),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )
