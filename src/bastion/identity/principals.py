"""Service clients (principals) and their secrets, stored as keyed hashes."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from threading import Lock

import sqlalchemy as sa
from pydantic import SecretStr

from bastion.errors import AuthError, Conflict, InvalidInput, NotFound
from bastion.identity.scalars import all_encodable, digest_bytes, encodable
from bastion.storage import Database, tables
from bastion.types import Clock

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ROLE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_ATTRIBUTE_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
CLIENT_ID_PREFIX = "bcl_"
SECRET_PREFIX = "bsk_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class Principal:
    """A service client known to Bastion."""

    client_id: str
    name: str
    role: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    disabled: bool = False


@dataclass(frozen=True)
class NewClient:
    """A freshly created client with its secret, which is shown once and never stored."""

    principal: Principal
    secret: SecretStr


class PrincipalStore:
    """Creates, lists, disables and authenticates principals.

    :attr:`generation` counts the changes made to principals through this store (this
    process): a cache of what a principal may do (the gateway's authentication caches)
    keeps the generation it was filled at and drops an entry whose generation is past, so
    a change made here applies at once. Changes made by another process (the CLI, another
    gateway) are not counted: such caches bound them by their own lifetime.
    """

    def __init__(self, *, database: Database, hash_key: bytes, clock: Clock) -> None:
        self._db = database
        self._hash_key = hash_key
        self._clock = clock
        self._generation = 0
        self._generation_lock = Lock()

    @property
    def generation(self) -> int:
        """How many changes to principals (or their API keys) this process has committed."""
        return self._generation

    def changed(self) -> None:
        """Count a change just committed (after the commit, so a reader never misses it)."""
        with self._generation_lock:
            self._generation += 1

    def add(
        self,
        name: str,
        *,
        role: str,
        attributes: Mapping[str, str],
        public_jwk: Mapping[str, str] | None = None,
    ) -> NewClient:
        """Create a principal and return its one-time secret.

        A client registered with a public key (``private_key_jwt``, checked with
        :func:`~bastion.identity.assertions.client_public_jwk`) gets no usable secret:
        its ``secret`` is empty and nothing can authenticate with one.

        Raises:
            InvalidInput: the name, role or an attribute key is malformed, or a value is
                not valid Unicode (a lone surrogate).
            Conflict: a principal with this name exists.
        """
        _check(_NAME, name, "name", "letters, digits, '.', '_' or '-'")
        _check(_ROLE, role, "role", "lower-case letters, digits, '_' or '-'")
        for key in attributes:
            _check(_ATTRIBUTE_KEY, key, "attribute key", "lower-case letters, digits or '_'")
        # Nothing that UTF-8 cannot encode is ever stored: it would crash every listing.
        if not all_encodable((dict(attributes), dict(public_jwk or {}))):
            raise InvalidInput("Attribute values and keys must be valid Unicode text.")
        principal = Principal(
            client_id=CLIENT_ID_PREFIX + secrets.token_hex(12),
            name=name,
            role=role,
            attributes=dict(attributes),
        )
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        try:
            with self._db.transaction() as db:
                db.execute(
                    tables.principals.insert().values(
                        client_id=principal.client_id,
                        name=name,
                        role=role,
                        attributes=dict(attributes),
                        secret_hash=self._hash(secret),
                        disabled=False,
                        created_at=self._clock(),
                        public_jwk=dict(public_jwk) if public_jwk is not None else None,
                    )
                )
        except Conflict:
            raise Conflict(f"A principal named {name!r} exists already.") from None
        shown = secret if public_jwk is None else ""  # a key-only client has no secret
        return NewClient(principal=principal, secret=SecretStr(shown))

    def list(self) -> list[Principal]:
        """Every principal, by name."""
        with self._db.transaction() as db:
            rows = db.execute(sa.select(tables.principals).order_by(tables.principals.c.name))
            return [_principal(row) for row in rows]

    def get(self, client_id: str) -> Principal:
        """The principal with this client id.

        Raises:
            NotFound: there is none.
        """
        row = self._row(client_id)
        if row is None:
            raise NotFound("No such principal.")
        return _principal(row)

    def enabled(self, client_id: str) -> Principal:
        """The principal, if it exists and is enabled.

        Raises:
            AuthError: it does not exist or is disabled (one opaque error).
        """
        try:
            principal = self.get(client_id)
        except NotFound:
            raise AuthError(detail="principal no longer exists") from None
        if principal.disabled:
            raise AuthError(detail="principal disabled")
        return principal

    def disable(self, name: str) -> Principal:
        """Disable a principal by name; its tokens and API keys stop working.

        At once on a gateway of this process; within ``auth_cache_seconds`` on the others.

        Raises:
            NotFound: there is no principal with this name.
        """
        return self._update(name, disabled=True)

    def public_jwk(self, client_id: str) -> dict[str, str]:
        """The registered public key of a ``private_key_jwt`` client.

        Raises:
            AuthError: no such enabled client, or it has no public key (one opaque error).
        """
        row = self._row(client_id)
        if row is None or row.public_jwk is None or row.disabled:
            raise AuthError(detail="no such client with a public key")
        return dict(row.public_jwk)

    def set_public_jwk(self, name: str, public_jwk: Mapping[str, str]) -> Principal:
        """Register (or replace) the public key a client signs its assertions with.

        Raises:
            NotFound: there is no principal with this name.
        """
        return self._update(name, public_jwk=dict(public_jwk))

    def _update(self, name: str, **values: object) -> Principal:
        if not encodable(name):  # no stored name is like that (add checks them)
            raise NotFound("No principal with that name; see `bastion principal list`.")
        with self._db.transaction() as db:
            done = db.execute(
                tables.principals.update().where(tables.principals.c.name == name).values(**values)
            )
        self.changed()
        if done.rowcount == 0:
            raise NotFound(f"No principal named {name!r}; see `bastion principal list`.")
        return next(p for p in self.list() if p.name == name)

    def _row(self, client_id: str) -> sa.Row[tuple[object, ...]] | None:
        if not encodable(client_id):  # no stored id is (a lone surrogate would crash the query)
            return None
        with self._db.transaction() as db:
            return db.execute(
                sa.select(tables.principals).where(tables.principals.c.client_id == client_id)
            ).first()

    def authenticate(self, client_id: str, secret: SecretStr) -> Principal:
        """The enabled principal whose secret this is.

        Raises:
            AuthError: unknown client, wrong secret or disabled client (one opaque error).
        """
        row = self._row(client_id)
        # Hash even for unknown clients so the timing does not reveal which ids exist.
        presented = self._hash(secret.get_secret_value())
        stored = row.secret_hash if row is not None else "0" * 64
        if not hmac.compare_digest(presented, stored) or row is None:
            raise AuthError(detail="unknown client or wrong secret")
        principal = _principal(row)
        if principal.disabled:
            raise AuthError(detail="client disabled")
        return principal

    def _hash(self, secret: str) -> str:
        return hmac.new(self._hash_key, digest_bytes(secret), hashlib.sha256).hexdigest()


def _check(pattern: re.Pattern[str], value: str, what: str, allowed: str) -> None:
    if not pattern.fullmatch(value):
        raise InvalidInput(f"The {what} {value!r} is not allowed; use {allowed}.")


def _principal(row: sa.Row[tuple[object, ...]]) -> Principal:
    return Principal(
        client_id=row.client_id,
        name=_readable(row.name),
        role=_readable(row.role),
        attributes={_readable(k): _readable(v) for k, v in dict(row.attributes).items()},
        disabled=bool(row.disabled),
    )


def _readable(text: str) -> str:
    """``text``, with any lone surrogate shown as a backslash escape (never stored again).

    :meth:`PrincipalStore.add` refuses them; a row stored before it did must not make
    every listing (and so the admin API and `bastion principal list`) crash.
    """
    if encodable(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
