"""The only stage of the token route: authenticate the client, issue a token."""

from __future__ import annotations

from urllib.parse import parse_qsl

from anyio import to_thread

from bastion.errors import InvalidInput
from bastion.identity import TokenRequest, TokenService
from bastion.serving.call import Call

FORM_TYPE = "application/x-www-form-urlencoded"


class IssueToken:
    """Runs the client credentials grant."""

    def __init__(self, *, service: TokenService) -> None:
        self._service = service

    async def __call__(self, call: Call) -> None:
        """Set ``call.principal`` and ``call.issued``.

        Raises:
            InvalidInput: the body is not a well-formed token request.
            AuthError: client authentication failed.
        """
        if call.content_type.split(";")[0].strip().lower() != FORM_TYPE:
            raise InvalidInput(f"The token request body must be {FORM_TYPE}.")
        form = parse_form(await call.read_body())
        request = TokenRequest.from_http(
            authorization=call.authorization, form=form, certificate=call.certificate
        )
        call.auth_method = request.auth_method
        call.principal, call.issued = await to_thread.run_sync(self._service.grant, request)


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
