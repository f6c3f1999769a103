"""The outermost layer of every answer: security headers, a safe access log, a JSON 500.

:class:`Edge` wraps the whole ASGI app (``serving/server.py`` puts it outermost), so no
answer can leave without ``Strict-Transport-Security``, ``X-Content-Type-Options: nosniff``
and ``Cache-Control: no-store``: not a 404 of the router, not a 405, not a 500 of an
exception that escaped every handler. The answers the HTTP protocol writes itself (a
malformed request) come from :func:`protocol_error`, with the same headers.

The access log never holds a query string, and path segments that could be credentials
(long, or shaped like a token or an API key) are replaced by ``{redacted}``: a client that
puts a token in the URL (``?access_token=``) is refused, and its token is not written down
either. Fail closed: no parameter list to keep up to date, nothing from the query is logged.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
_RAW_HEADERS = [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]
_REPLACED = {name for name, _ in _RAW_HEADERS}
_LONGEST_SEGMENT = 64  # model names, versions and ids are shorter; tokens are longer
_SECRET_PREFIXES = ("eyJ", "bak_")  # a JWT's header, an API key
REDACTED = "{redacted}"
INTERNAL_ERROR = "Internal server error."
access_logger = logging.getLogger("uvicorn.access")  # uvicorn's access-log handler and format
logger = logging.getLogger("bastion.serving")


class Edge:
    """ASGI middleware: the security headers on every response, and the access-log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve ``scope`` through the app; answer a JSON 500 if it fails before answering."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() not in _REPLACED
                ]
                message = {**message, "headers": [*headers, *_RAW_HEADERS]}
                log_access(scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_secured)
        except Exception as exc:
            if started:  # too late for another answer; the server closes the connection
                raise
            logger.error("unhandled %s", type(exc).__name__)
            body = json.dumps({"error": INTERNAL_ERROR}).encode()
            await send_secured(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send_secured({"type": "http.response.body", "body": body})


def log_access(scope: Scope, status: int) -> None:
    """One access-log line in uvicorn's format: the path without its query, secrets redacted."""
    client = scope.get("client")
    address = f"{client[0]}:{client[1]}" if client else ""
    path = loggable_path(scope.get("raw_path") or scope["path"].encode())
    access_logger.info(
        '%s - "%s %s HTTP/%s" %d', address, scope["method"], path, scope["http_version"], status
    )


def loggable_path(raw_path: bytes) -> str:
    """``raw_path`` as the access log may show it: no query, no credential-like segment.

    >>> loggable_path(b"/v2/models/digits/infer?access_token=eyJhbGciOi")
    '/v2/models/digits/infer'
    >>> loggable_path(b"/v2/models/bak_1234_secret")
    '/v2/models/{redacted}'
    """
    path = raw_path.split(b"?", 1)[0].decode("latin-1")
    return "/".join(redacted(part) for part in path.split("/")).replace('"', "%22")


def redacted(segment: str) -> str:
    """``segment`` of a URL, or :data:`REDACTED` when it could be a credential.

    Longer than 64 characters (model names, versions and ids are shorter; tokens are longer),
    or starting like a JWT (``eyJ``) or an API key (``bak_``).
    """
    if len(segment) > _LONGEST_SEGMENT or segment.startswith(_SECRET_PREFIXES):
        return REDACTED
    return segment


def protocol_error(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 response for the protocol layer: JSON, security headers, then close."""
    body = json.dumps({"error": message}).encode()
    phrase = HTTPStatus(status).phrase
    lines = [
        f"HTTP/1.1 {status} {phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{name.lower()}: {value}" for name, value in SECURITY_HEADERS.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
