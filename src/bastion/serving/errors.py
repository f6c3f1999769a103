"""The one place where errors become HTTP responses (STYLE E2)."""

from __future__ import annotations

import math

from starlette.responses import JSONResponse

from bastion.errors import AuthError, BackendUnavailable, BastionError, InvalidInput, RateLimited
from bastion.identity import InvalidScope, InvalidTarget, LockedOut, UnsupportedGrantType

INTERNAL_ERROR = "Internal server error."
# RFC 6749 §5.2 error codes of the token endpoint.
_OAUTH_CODES: tuple[tuple[type[BastionError], str], ...] = (
    (AuthError, "invalid_client"),
    (LockedOut, "temporarily_unavailable"),
    (UnsupportedGrantType, "unsupported_grant_type"),
    (InvalidScope, "invalid_scope"),
    (InvalidTarget, "invalid_target"),
    (InvalidInput, "invalid_request"),
)


def error_response(error: BastionError, *, request_id: str) -> JSONResponse:
    """``{"error": message}`` with the error's status and the headers it calls for."""
    # A 500 means a bug or a broken invariant: its message is not for clients.
    message = INTERNAL_ERROR if error.http_status == 500 else error.public_message  # noqa: PLR2004
    return JSONResponse(
        {"error": message}, status_code=error.http_status, headers=_headers(error, request_id)
    )


def oauth_error_response(error: BastionError, *, request_id: str) -> JSONResponse:
    """An RFC 6749 error: ``{"error": code, "error_description": message}``."""
    code = next((c for kind, c in _OAUTH_CODES if isinstance(error, kind)), None)
    if code is None:
        return error_response(error, request_id=request_id)
    headers = _headers(error, request_id) | {"Cache-Control": "no-store"}
    if isinstance(error, AuthError):
        headers["WWW-Authenticate"] = 'Basic realm="bastion"'
    return JSONResponse(
        {"error": code, "error_description": error.public_message},
        status_code=error.http_status,
        headers=headers,
    )


def _headers(error: BastionError, request_id: str) -> dict[str, str]:
    headers = {"X-Request-ID": request_id}
    if isinstance(error, AuthError):
        headers["WWW-Authenticate"] = 'Bearer realm="bastion", error="invalid_token"'
    if isinstance(error, RateLimited | BackendUnavailable):
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return headers
