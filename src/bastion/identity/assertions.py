"""``private_key_jwt`` client authentication (RFC 7523 §2.2, RFC 7521 §4.2).

A client registers a public key (``bastion principal add --public-key``) and proves
itself with a short JWT signed by the private half: ``iss`` and ``sub`` are its client
id, ``aud`` the token endpoint (or the issuer), ``exp`` at most an hour ahead, and a
``jti`` that is accepted once — a replayed assertion is refused, on every gateway, as
the spent ids are kept in the database until they expire.

Only the registered key verifies an assertion, with the one algorithm that key is for;
key headers (``jku``, ``jwk``, ``x5u``, ``x5c``) are never looked at. An assertion with a
string that is not valid Unicode (a lone surrogate such as U+D800) anywhere in its header
or claims is malformed, before its subject is ever looked up.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from bastion.errors import AuthError, Conflict, InvalidInput
from bastion.identity.scalars import all_encodable
from bastion.identity.tokens import check_times
from bastion.storage import Database, tables
from bastion.types import Clock

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_SECONDS = 3600  # as Okta; Authlib signs for an hour by default
MAX_ASSERTION_BYTES = 8192
_MIN_RSA_BITS = 2048
# The one algorithm each kind of key signs with (RFC 8037, RFC 7518 §3.4 and §3.3/3.5).
_ALGORITHMS = {("OKP", "Ed25519"): "EdDSA", ("EC", "P-256"): "ES256", ("RSA", None): "RS256"}
_RSA_ALGORITHMS = frozenset({"RS256", "PS256"})
ASSERTION_ALGORITHMS = (*_ALGORITHMS.values(), "PS256")
# JWK members that only a private (or symmetric) key has.
PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_PUBLIC_MEMBERS = {"OKP": ("crv", "x"), "EC": ("crv", "x", "y"), "RSA": ("n", "e")}


def client_public_jwk(given: Mapping[str, Any]) -> dict[str, str]:
    """The checked public JWK a client registers, with its algorithm.

    Ed25519 (EdDSA), P-256 (ES256) or RSA of 2048 bits or more (RS256, or PS256 when the
    JWK says ``"alg": "PS256"``).

    Raises:
        InvalidInput: not a public key of those kinds, or it holds private parts.
    """
    if PRIVATE_JWK_MEMBERS & given.keys():
        raise InvalidInput("That JWK holds a private key; register the public half only.")
    kty = str(given.get("kty", ""))
    members = _PUBLIC_MEMBERS.get(kty)
    if members is None or not all(isinstance(given.get(m), str) for m in members):
        raise InvalidInput("Register an Ed25519, P-256 or RSA public key (a JWK or PEM file).")
    curve = given.get("crv") if kty != "RSA" else None
    algorithm = _ALGORITHMS.get((kty, curve))
    if algorithm is None:
        raise InvalidInput(f"The curve {curve!r} is not accepted; use Ed25519 or P-256.")
    if kty == "RSA" and given.get("alg") in _RSA_ALGORITHMS:
        algorithm = str(given["alg"])
    public = {name: str(given[name]) for name in ("kty", *members)}
    try:
        key = jwt.PyJWK({**public, "alg": algorithm}).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):  # bad base64 too
        raise InvalidInput("The public key does not parse.") from None
    if kty == "RSA" and key.key_size < _MIN_RSA_BITS:
        raise InvalidInput(f"RSA keys need {_MIN_RSA_BITS} bits or more.")
    return {**public, "alg": algorithm}


def public_jwk_from_file(text: str) -> dict[str, str]:
    """A client public key given as a JWK (JSON) or a PEM public key.

    Raises:
        InvalidInput: neither, or not an accepted kind of key.
    """
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            given = json.loads(stripped)
        except json.JSONDecodeError:
            raise InvalidInput("The key file is not valid JSON.") from None
        if not isinstance(given, dict):
            raise InvalidInput("The key file holds no JWK object.")
        return client_public_jwk(given)
    if "PRIVATE KEY" in stripped:
        raise InvalidInput("That is a private key; register the public half only.")
    try:
        key = load_pem_public_key(stripped.encode())
        given = _to_jwk(key)
    except ValueError:
        raise InvalidInput("The key file is neither a JWK nor a PEM public key.") from None
    return client_public_jwk(given)


def _to_jwk(key: PublicKeyTypes) -> dict[str, Any]:
    if isinstance(key, Ed25519PublicKey):
        return dict(OKPAlgorithm.to_jwk(key, as_dict=True))
    if isinstance(key, EllipticCurvePublicKey):
        return dict(ECAlgorithm.to_jwk(key, as_dict=True))
    if isinstance(key, RSAPublicKey):
        return dict(RSAAlgorithm.to_jwk(key, as_dict=True))
    raise ValueError("unsupported key")


class ClientAssertions:
    """Verifies ``private_key_jwt`` assertions and spends their ids."""

    def __init__(
        self,
        *,
        database: Database,
        audiences: tuple[str, ...],
        leeway_seconds: int,
        clock: Clock,
    ) -> None:
        self._db = database
        self._audiences = audiences
        self._leeway = leeway_seconds
        self._clock = clock

    def verify(
        self, assertion: str, *, client_id: str, public_jwk: Callable[[str], Mapping[str, str]]
    ) -> None:
        """Check ``assertion`` against the key ``public_jwk(client_id)`` and spend its ``jti``.

        Raises:
            AuthError: a bad, expired, replayed or foreign assertion (``detail`` says which).
        """
        if len(assertion) > MAX_ASSERTION_BYTES:
            raise AuthError(detail="client assertion too long")
        jwk = public_jwk(client_id)
        try:
            key = jwt.PyJWK(dict(jwk)).key
            claims = jwt.decode(
                assertion,
                key,
                algorithms=[jwk["alg"]],
                audience=list(self._audiences),
                issuer=client_id,
                leeway=self._leeway,
                options={"require": ["iss", "sub", "aud", "exp", "jti"]},
            )
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError) as exc:
            raise AuthError(detail=f"client assertion: {type(exc).__name__}") from None
        if not all_encodable(claims):  # a lone surrogate in the jti would crash _spend
            raise AuthError(detail="client assertion: not valid Unicode")
        if claims["sub"] != client_id or not isinstance(claims["jti"], str):
            raise AuthError(detail="client assertion: wrong subject or jti")
        # Integers in range before any arithmetic; at most an hour ahead (iat is optional).
        try:
            times = check_times(claims, now=self._clock(), leeway=self._leeway,
                                max_lifetime=MAX_ASSERTION_SECONDS, require_iat=False)  # fmt: skip
        except AuthError as exc:
            raise AuthError(detail=f"client assertion: {exc.detail}") from None
        self._spend(client_id, claims["jti"], float(times.expires_at))

    def _spend(self, client_id: str, jti: str, expires_at: float) -> None:
        table = tables.client_assertions
        spent = hashlib.sha256(f"{client_id}\0{jti}".encode()).hexdigest()
        try:
            with self._db.transaction() as db:
                db.execute(table.delete().where(table.c.expires_at < self._clock()))
                db.execute(table.insert().values(id=spent, expires_at=expires_at))
        except Conflict:
            raise AuthError(detail="client assertion replayed") from None


def assertion_subject(assertion: str) -> str:
    """The client id an assertion names (``sub``), before it is verified.

    Raises:
        AuthError: the assertion does not parse or names no subject.
    """
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except (jwt.PyJWTError, RecursionError):  # a deeply nested header or payload
        raise AuthError(detail="malformed client assertion") from None
    if not all_encodable((header, claims)):  # "\ud800" must not reach the principal look-up
        raise AuthError(detail="malformed client assertion (not valid Unicode)")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthError(detail="client assertion names no subject")
    return subject
