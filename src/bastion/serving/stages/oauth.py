"""The stages of the OAuth routes: issue (RFC 6749), revoke (RFC 7009), introspect (RFC 7662)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import TypeVar
from urllib.parse import parse_qsl

import anyio
from anyio import to_thread

from bastion.errors import AuthError, BackendError, InvalidInput
from bastion.identity import ClientCredentials, LockoutCounter, TokenRequest, TokenService
from bastion.serving.call import Call
from bastion.serving.stages.authenticate import Sessions

FORM_TYPE = "application/x-www-form-urlencoded"
T = TypeVar("T")


class IssueToken:
    """Runs the client credentials grant."""

    def __init__(self, *, service: TokenService, lockout: LockoutCounter) -> None:
        self._service = service
        self._lockout = lockout

    async def __call__(self, call: Call) -> None:
        """Set ``call.principal`` and ``call.issued``.

        Raises:
            InvalidInput: the body is not a well-formed token request.
            AuthError: client authentication failed.
            LockedOut: too many failures (docs/identity.md, "Lockout").
            BackendUnavailable: the shared lockout (Redis) does not answer.
        """
        form = await read_form(call)
        request = TokenRequest.from_http(
            authorization=call.authorization, form=form, certificate=call.certificate
        )
        call.auth_method = request.auth_method
        async with _guarded(self._lockout, request.client_id, call.client_ip):
            call.principal, call.issued = await to_thread.run_sync(self._service.grant, request)


class RevokeToken:
    """Revokes one of the calling client's tokens (RFC 7009)."""

    def __init__(
        self, *, service: TokenService, lockout: LockoutCounter, sessions: Sessions
    ) -> None:
        self._service = service
        self._lockout = lockout
        self._sessions = sessions

    async def __call__(self, call: Call) -> None:
        """Authenticate the client and revoke the token it names.

        Raises:
            InvalidInput: the body is malformed or names no token.
            AuthError: client authentication failed.
            LockedOut: too many failures (docs/identity.md, "Lockout").
            BackendUnavailable: the shared lockout (Redis) does not answer.
        """
        token, call.principal = await _on_own_token(call, self._lockout, self._service.revoke)
        self._sessions.discard(token)  # this gateway refuses it at once; others within seconds


class IntrospectToken:
    """Describes one of the calling client's tokens (RFC 7662); others are inactive."""

    def __init__(self, *, service: TokenService, lockout: LockoutCounter) -> None:
        self._service = service
        self._lockout = lockout

    async def __call__(self, call: Call) -> None:
        """Set ``call.introspection``.

        Raises:
            InvalidInput: the body is malformed or names no token.
            AuthError: client authentication failed.
            LockedOut: too many failures (docs/identity.md, "Lockout").
            BackendUnavailable: the shared lockout (Redis) does not answer.
        """
        _, call.introspection = await _on_own_token(call, self._lockout, self._service.introspect)


async def _on_own_token(
    call: Call, lockout: LockoutCounter, operation: Callable[[ClientCredentials, str], T]
) -> tuple[str, T]:
    """Authenticate the client (under the lockout) and run ``operation`` on its token."""
    credentials, token = await _client_and_token(call)
    async with _guarded(lockout, credentials.client_id, call.client_ip):
        return token, await to_thread.run_sync(operation, credentials, token)


@asynccontextmanager
async def _guarded(lockout: LockoutCounter, client_id: str, source: str) -> AsyncIterator[None]:
    """Count the attempt under the lockout; slow down failures, refund everything else.

    ``source`` is the client's address as the HTTP edge determined it (the only input the
    lockout takes from the connection).
    """
    await lockout.attempt(client_id=client_id, source=source)
    try:
        yield
    except AuthError:
        delay = await lockout.failure(client_id=client_id, source=source)
        if delay:
            await anyio.sleep(delay)
        raise
    except BaseException:
        # Not a judged secret (a malformed scope, a database error, a cancelled request):
        # refunded, so only real failures count and nothing leaks a pending attempt.
        with anyio.CancelScope(shield=True), suppress(BackendError):
            # A refund that cannot be made leaves the attempt counted: the safe side.
            await lockout.release(client_id=client_id, source=source)
        raise
    await lockout.success(client_id=client_id, source=source)


async def read_form(call: Call) -> dict[str, str]:
    """The form body of an OAuth request.

    Raises:
        InvalidInput: it is not form data.
    """
    if call.content_type.split(";")[0].strip().lower() != FORM_TYPE:
        raise InvalidInput(f"The request body must be {FORM_TYPE}.")
    return parse_form(await call.read_body())


async def _client_and_token(call: Call) -> tuple[ClientCredentials, str]:
    form = await read_form(call)
    token = form.get("token")
    if not token:
        raise InvalidInput("The token parameter is required.")
    credentials = ClientCredentials.from_http(
        authorization=call.authorization, form=form, certificate=call.certificate
    )
    call.auth_method = credentials.auth_method
    return credentials, token


def parse_form(body: bytes) -> dict[str, str]:
    """Decode a form body; RFC 6749 §3.2 forbids repeated parameters.

    Raises:
        InvalidInput: the body is not UTF-8 form data or repeats a parameter.
    """
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("The token request body is not valid form data.") from None
    form = dict(pairs)
    if len(form) != len(pairs):
        raise InvalidInput("A token request parameter is repeated.")
    return form
