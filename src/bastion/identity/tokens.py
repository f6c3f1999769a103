"""RFC 9068 JWT access tokens signed with Ed25519, and their verification (RFC 8725).

The verifier accepts exactly one algorithm (EdDSA) and one type (``at+jwt``), keys
only from its own key set (``jku``, ``x5u``, ``jwk`` and ``x5c`` headers are refused),
and checks issuer, audience and times with a bounded leeway. Every failure is the
same :class:`~bastion.errors.AuthError`; the precise reason is in its ``detail``.

Time claims are checked before any arithmetic is done with them (:func:`check_times`,
also used for external tokens and client assertions): each is a JSON integer between 0
and the end of year 9999, never a float, a boolean, a string, ``NaN`` or a 400-digit
number, so a token can only ever be refused with a 401, never crash a request. Likewise
every string in the header and claims must be valid Unicode (no lone surrogate such as
U+D800, which JSON can escape but no database look-up or encode accepts): otherwise the
token is malformed.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import SecretStr

from bastion.crypto import SigningKey, b64url, b64url_decode, verify_ed25519
from bastion.errors import AuthError
from bastion.identity.principals import Principal
from bastion.identity.scalars import all_encodable
from bastion.identity.signing import SigningKeyring
from bastion.settings import MAX_TOKEN_TTL_SECONDS
from bastion.types import Clock

ALGORITHM = "EdDSA"
TOKEN_TYPE = "at+jwt"  # noqa: S105 - the RFC 9068 media type
MAX_TOKEN_BYTES = 8192
# RFC 8725 §3.10: headers that would let a token name its own key are never followed.
UNTRUSTED_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})
_REQUIRED_CLAIMS = ("iss", "aud", "sub", "client_id", "iat", "exp", "jti")
_MINT = object()  # proof that a VerifiedToken came from TokenVerifier.verify
# RFC 7519 NumericDate, bounded: 9999-12-31T23:59:59Z fits a float, an int64 and a datetime.
MAX_NUMERIC_DATE = 253_402_300_799


@dataclass(frozen=True)
class IssuedToken:
    """An access token as handed to a client."""

    value: SecretStr
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - the RFC 6750 scheme
    scope: str | None = None


class TokenIssuer:
    """Signs short-lived access tokens for authenticated principals."""

    def __init__(
        self,
        *,
        key: SigningKey | SigningKeyring,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        clock: Clock,
    ) -> None:
        self._key = key
        self.issuer = issuer
        self.audience = audience
        self._ttl = ttl_seconds
        self._clock = clock

    def issue(
        self,
        principal: Principal,
        *,
        certificate_thumbprint: str | None,
        audience: str | None = None,
        scopes: frozenset[str] | None = None,
    ) -> IssuedToken:
        """A signed token for ``principal``, bound to a client certificate when one is given.

        A bound token (RFC 8705 ``cnf.x5t#S256``) is accepted only over a connection that
        presents the same certificate. ``audience`` defaults to the issuer's own; the
        ``scope`` claim lists ``scopes`` (absent: the token is not narrowed).
        """
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience or self.audience,
            "sub": principal.client_id,
            "client_id": principal.client_id,
            "iat": now,
            "exp": now + self._ttl,
            "jti": secrets.token_urlsafe(16),
        }
        if scopes is not None:
            claims["scope"] = " ".join(sorted(scopes))
        if certificate_thumbprint is not None:
            claims["cnf"] = {"x5t#S256": certificate_thumbprint}
        key = self._key.current() if isinstance(self._key, SigningKeyring) else self._key
        header = _encode({"alg": ALGORITHM, "typ": TOKEN_TYPE, "kid": key.kid})
        signing_input = f"{header}.{_encode(claims)}"
        signature = b64url(key.sign(signing_input.encode("ascii")))
        value = SecretStr(f"{signing_input}.{signature}")
        return IssuedToken(value=value, expires_in=self._ttl, scope=claims.get("scope"))


@dataclass(frozen=True)
class VerifiedToken:
    """Claims of a token whose signature, type, issuer, audience and times all checked out.

    Only :class:`TokenVerifier` creates these.
    """

    client_id: str
    subject: str
    jti: str
    issued_at: int
    expires_at: int
    audience: str
    scopes: frozenset[str] | None = None  # None: not narrowed by a scope claim
    certificate_bound: bool = False
    _mint: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._mint is not _MINT:
            raise TypeError("only TokenVerifier.verify creates a VerifiedToken")

    def __getstate__(self) -> object:
        raise TypeError("verified tokens cannot be pickled")


class TokenVerifier:
    """Checks access tokens against the gateway's own keys."""

    def __init__(
        self,
        *,
        keys: Mapping[str, Ed25519PublicKey] | SigningKeyring,
        issuer: str,
        audience: str | Collection[str],
        leeway_seconds: int,
        clock: Clock,
        max_lifetime_seconds: int = MAX_TOKEN_TTL_SECONDS,
    ) -> None:
        """``audience``: the one this verifier's tokens must name (or any of several).

        ``max_lifetime_seconds``: the longest ``exp - iat`` accepted, and how far ahead
        ``exp`` may be (plus the leeway): the longest lifetime any gateway of the workspace
        may be configured to issue, so a token signed with a stolen or misused key for years
        ahead is refused.
        """
        if not isinstance(keys, SigningKeyring) and not keys:
            raise ValueError("a token verifier needs at least one key")  # fail closed (E5)
        self._keys = keys
        self._issuer = issuer
        self._audiences = frozenset([audience] if isinstance(audience, str) else audience)
        self._leeway = leeway_seconds
        self._clock = clock
        self._max_lifetime = max_lifetime_seconds

    def verify(
        self, token: str, *, certificate_thumbprint: str | None, ignore_binding: bool = False
    ) -> VerifiedToken:
        """The verified claims of ``token``.

        ``certificate_thumbprint`` is that of the connection's client certificate (None
        without one); a certificate-bound token needs the same one.

        ``ignore_binding`` skips that last check. Only the token's own client may use it,
        to introspect or revoke its token from a connection without the certificate;
        never to authorize a request.

        Raises:
            AuthError: for every problem; ``detail`` names it for the audit log.
        """
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthError(detail="token too long")
        header, claims, signing_input, signature = _parse_unverified(token)
        if header.get("alg") != ALGORITHM:
            raise AuthError(detail="algorithm not allowed")
        if str(header.get("typ", "")).lower() not in {TOKEN_TYPE, f"application/{TOKEN_TYPE}"}:
            raise AuthError(detail="wrong token type")
        if UNTRUSTED_HEADERS & header.keys():
            raise AuthError(detail="untrusted key header")
        kid, keys = str(header.get("kid")), self._keys
        key = keys.verification_key(kid) if isinstance(keys, SigningKeyring) else keys.get(kid)
        if key is None:
            raise AuthError(detail="unknown key id")
        if not verify_ed25519(key, signature, signing_input):
            raise AuthError(detail="bad signature")
        audiences, times = self._check_claims(claims)
        if not ignore_binding:
            _check_binding(claims.get("cnf"), certificate_thumbprint)
        return VerifiedToken(
            client_id=claims["client_id"],
            subject=claims["sub"],
            jti=claims["jti"],
            issued_at=claims["iat"],  # required, and checked by check_times
            expires_at=times.expires_at,
            audience=next(a for a in audiences if a in self._audiences),
            scopes=_scopes(claims.get("scope")),
            certificate_bound="cnf" in claims,
            _mint=_MINT,
        )

    def _check_claims(self, claims: dict[str, Any]) -> tuple[list[str], TokenTimes]:
        """The token's audiences and times, once every claim checked out."""
        missing = [name for name in _REQUIRED_CLAIMS if name not in claims]
        if missing:
            raise AuthError(detail=f"missing claims {missing}")
        if any(not isinstance(claims[n], str) for n in ("iss", "sub", "client_id", "jti")):
            raise AuthError(detail="malformed claims")
        times = check_times(
            claims,
            now=self._clock(),
            leeway=self._leeway,
            max_lifetime=self._max_lifetime,
            require_iat=True,
        )
        if claims["iss"] != self._issuer:
            raise AuthError(detail="wrong issuer")
        audience = claims["aud"]
        audiences = audience if isinstance(audience, list) else [audience]
        if not all(isinstance(a, str) for a in audiences):
            raise AuthError(detail="malformed audience")
        if not self._audiences.intersection(audiences):
            raise AuthError(detail="wrong audience")
        return audiences, times


@dataclass(frozen=True)
class TokenTimes:
    """A token's checked time claims (RFC 7519 NumericDates, in range)."""

    expires_at: int
    issued_at: int | None
    not_before: int | None


def numeric_date(claims: Mapping[str, Any], name: str) -> int | None:
    """Claim ``name`` as a NumericDate in 0..MAX_NUMERIC_DATE, or None when it is absent.

    Only a JSON integer is accepted: not a boolean (``True`` is an ``int`` in Python), not
    a float (fractions, ``1e400`` = infinity, ``NaN``), not a string, not a number so large
    that converting it overflows.

    Raises:
        AuthError: the claim is there but is not such a number.
    """
    if name not in claims:
        return None
    value = claims[name]
    if type(value) is not int or not 0 <= value <= MAX_NUMERIC_DATE:
        raise AuthError(detail=f"malformed time claim {name}")
    return value


def check_times(
    claims: Mapping[str, Any],
    *,
    now: float,
    leeway: float,
    max_lifetime: int,
    require_iat: bool,
) -> TokenTimes:
    """Check ``exp``, ``iat`` and ``nbf``: types and ranges first, then against ``now``.

    A token must not be expired (``exp`` after ``now - leeway``), nor issued or valid only
    in the future (``iat``, ``nbf`` before ``now + leeway``); it must not live longer than
    ``max_lifetime`` (``0 < exp - iat <= max_lifetime``) nor expire further ahead than
    ``now + max_lifetime + leeway``, whatever its ``iat`` says.

    Raises:
        AuthError: any of those fails (``detail`` names which).
    """
    expires_at = numeric_date(claims, "exp")
    issued_at = numeric_date(claims, "iat")
    not_before = numeric_date(claims, "nbf")
    if expires_at is None or (require_iat and issued_at is None):
        raise AuthError(detail="missing time claims")
    if expires_at <= now - leeway:
        raise AuthError(detail="expired")
    if (issued_at is not None and issued_at > now + leeway) or (
        not_before is not None and not_before > now + leeway
    ):
        raise AuthError(detail="not yet valid")
    if issued_at is not None and expires_at <= issued_at:
        raise AuthError(detail="exp not after iat")
    if issued_at is not None and expires_at - issued_at > max_lifetime:
        raise AuthError(detail="lives too long (exp - iat)")
    if expires_at > now + max_lifetime + leeway:
        raise AuthError(detail="lives too long (exp too far ahead)")
    return TokenTimes(expires_at=expires_at, issued_at=issued_at, not_before=not_before)


def _scopes(claim: object) -> frozenset[str] | None:
    if claim is None:
        return None
    if not isinstance(claim, str):
        raise AuthError(detail="malformed scope claim")
    return frozenset(claim.split(" ")) - {""}


def _check_binding(confirmation: object, presented: str | None) -> None:
    if confirmation is None:
        return
    if not isinstance(confirmation, dict) or set(confirmation) != {"x5t#S256"}:
        raise AuthError(detail="unknown confirmation method")
    bound = confirmation["x5t#S256"]
    if presented is None or not isinstance(bound, str) or not hmac.compare_digest(bound, presented):
        raise AuthError(detail="certificate-bound token without its certificate")


def unverified_issuer(token: str) -> str | None:
    """The ``iss`` a token claims, before anything about it is checked (None if unreadable)."""
    try:
        issuer = _parse_unverified(token)[1].get("iss")
    except AuthError:
        return None
    return issuer if isinstance(issuer, str) else None


def _parse_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    parts = token.split(".")
    if len(parts) != 3:  # noqa: PLR2004 - a JWS in compact form has three parts
        raise AuthError(detail="malformed token")
    try:
        header = _strict_json(b64url_decode(parts[0]))
        claims = _strict_json(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise AuthError(detail="malformed token") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AuthError(detail="malformed token")
    if not all_encodable((header, claims)):  # a lone surrogate would crash a later look-up
        raise AuthError(detail="malformed token (not valid Unicode)")
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


def _strict_json(data: bytes) -> Any:
    """JSON as RFC 8259 has it: no ``NaN``/``Infinity``, and no member named twice.

    Python's parser takes both by default; a claim given twice could mean one thing to
    this verifier and another to a log reader or a second parser, so it is refused.
    """
    return json.loads(data, parse_constant=_no_constant, object_pairs_hook=_unique_members)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("a member is named twice")
    return members


def _encode(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())
