"""Bastion's one exception tree.

Every failure Bastion reports is a :class:`BastionError`. Each carries a safe
``public_message`` (shown to clients and users), a stable ``code``, an HTTP status
and a CLI exit code. Internal detail travels in ``detail``, which goes to the audit
log and never to a client::

    BastionError
    ├── AuthError            401  authentication failed (always opaque to the client)
    ├── Forbidden            403  policy denied the action
    │   └── BudgetExhausted  403  the query would spend more privacy budget than is left
    ├── InvalidInput         400  the request or argument is malformed
    │   ├── PayloadTooLarge  413  the request body is over the limit
    │   └── UnsupportedMediaType  415  the body's Content-Type is not one the route takes
    ├── NotFound             404  no such principal, model or version
    ├── Conflict             409  the thing exists already (versions are immutable)
    ├── RateLimited          429  the principal is over its rate limit
    ├── IntegrityError       a digest, signature or audit chain does not match
    ├── CryptoError          decryption or key handling failed (opaque, no detail)
    ├── ConfigError          settings or workspace are unusable
    ├── NotFittedError       an estimator (detector, anonymizer) was used before ``fit``
    └── BackendError         503  a database or other backend failed
        └── BackendUnavailable  503  it did not answer in time (Retry-After)

This module imports nothing from Bastion, so every package can import it.
"""

from __future__ import annotations


class BastionError(Exception):
    """Base of every error Bastion raises on purpose."""

    code = "internal_error"
    http_status = 500
    exit_code = 1
    public_message = "Internal error."

    def __init__(self, public_message: str | None = None, *, detail: str = "") -> None:
        message = public_message or type(self).public_message
        super().__init__(message)
        self.public_message = message
        # ``detail`` is for the audit record and operator logs; it must never hold secrets.
        self.detail = detail


class AuthError(BastionError):
    """Authentication failed. Clients always see the same message (STYLE E3)."""

    code = "unauthenticated"
    http_status = 401
    exit_code = 3
    public_message = "Authentication failed."


class Forbidden(BastionError):
    """The policy engine denied the action."""

    code = "forbidden"
    http_status = 403
    exit_code = 3
    public_message = "The request was denied by policy."


class BudgetExhausted(Forbidden):
    """A differentially private query would overspend its dataset's or principal's budget."""

    code = "budget_exhausted"
    exit_code = 9
    public_message = "The privacy budget left is too small for this query."


class InvalidInput(BastionError, ValueError):
    """A request, file or argument is malformed or does not match what is expected."""

    code = "invalid_input"
    http_status = 400
    exit_code = 2
    public_message = "The input is invalid."


class PayloadTooLarge(InvalidInput):
    """A request body is larger than the configured limit."""

    code = "payload_too_large"
    http_status = 413
    public_message = "The request body is too large."


class UnsupportedMediaType(InvalidInput):
    """A request body's Content-Type is not one the route accepts."""

    code = "unsupported_media_type"
    http_status = 415
    public_message = "The request body's Content-Type is not supported here."


class NotFound(BastionError):
    """The named principal, model or version does not exist."""

    code = "not_found"
    http_status = 404
    exit_code = 4
    public_message = "Not found."


class Conflict(BastionError):
    """The thing exists already; Bastion never overwrites it silently."""

    code = "conflict"
    http_status = 409
    exit_code = 5
    public_message = "It exists already."


class RateLimited(BastionError):
    """The principal sent more requests than its rate limit allows."""

    code = "rate_limited"
    http_status = 429
    exit_code = 6
    public_message = "Too many requests."

    def __init__(
        self, public_message: str | None = None, *, retry_after: float, limit: str = "rate"
    ) -> None:
        super().__init__(public_message, detail=f"{limit}: retry after {retry_after:.3f}s")
        self.retry_after = retry_after


class IntegrityError(BastionError):
    """A digest, signature or hash chain does not match what was recorded."""

    code = "integrity_error"
    http_status = 500
    exit_code = 7
    public_message = "Integrity check failed."


class CryptoError(BastionError):
    """Decryption or key handling failed. Deliberately says nothing more."""

    code = "crypto_error"
    http_status = 500
    exit_code = 7
    public_message = "Decryption failed."


class ConfigError(BastionError, ValueError):
    """The settings or the workspace cannot be used as they are."""

    code = "config_error"
    http_status = 500
    exit_code = 2
    public_message = "The configuration is invalid."


class NotFittedError(BastionError, ValueError):
    """An estimator was used before ``fit`` learned its state."""

    code = "not_fitted"
    public_message = "Call fit() before using this estimator."


class BackendError(BastionError):
    """A database or another backend did not answer as expected."""

    code = "backend_error"
    http_status = 503
    exit_code = 8
    public_message = "A backend is unavailable."


class BackendUnavailable(BackendError):
    """A backend (Redis, the database) did not answer in time or refused the connection."""

    code = "backend_unavailable"
    public_message = "A backend is unavailable; try again shortly."

    def __init__(
        self, public_message: str | None = None, *, detail: str = "", retry_after: float = 1.0
    ) -> None:
        super().__init__(public_message, detail=detail)
        self.retry_after = retry_after
