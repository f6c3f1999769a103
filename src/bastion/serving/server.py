"""Run the gateway over HTTPS with uvicorn, with the edge's limits on slow and many clients."""

from __future__ import annotations

import asyncio
import gc
import ssl
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import uvicorn
import uvloop
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bastion.crypto import server_context
from bastion.serving.app import build_app
from bastion.serving.edge import Edge, protocol_error
from bastion.settings import Settings
from bastion.workspace import Workspace


def serve(workspace: Workspace) -> None:
    """Serve until interrupted, on the host and port of the workspace settings."""
    settings = workspace.settings
    context = server_context(
        workspace.paths.tls,
        allow_tls12=settings.allow_tls12,
        client_certificates=settings.mtls,
    )

    def tls(_config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        return context

    config = uvicorn.Config(
        Edge(build_app(workspace)),  # outermost: security headers on every answer
        host=settings.host,
        port=settings.port,
        http=edge_protocol(ConnectionLimits.from_settings(settings)),
        loop="uvloop",  # what serve() runs it on: EdgeLoop
        ssl_context_factory=tls,
        log_level=settings.log_level,
        server_header=False,
        proxy_headers=False,  # client addresses come from the socket, not from headers
        lifespan="on",  # stops the model workers on shutdown
        timeout_keep_alive=max(1, round(settings.keep_alive_seconds)),
    )
    # Long-lived startup objects (app, settings, keys, imported modules) leave the garbage
    # collector's view, and young collections run less often: fewer pauses on the request path.
    gc.freeze()
    gc.set_threshold(_GC_YOUNG, 20, 20)
    # uvicorn.Server.run, with a loop whose TLS handshakes have the header deadline.
    handshake = settings.header_timeout_seconds
    with asyncio.Runner(loop_factory=lambda: EdgeLoop(handshake_seconds=handshake)) as runner:
        runner.run(uvicorn.Server(config).serve())


_GC_YOUNG = 20_000  # objects allocated before a young collection (Python's default: 700)


class EdgeLoop(uvloop.Loop):
    """uvloop's loop, with a deadline on the TLS handshake of every server it creates.

    The HTTP protocol only starts once a handshake ends, so until then its deadlines and
    connection limits cannot apply; uvicorn does not pass ``ssl_handshake_timeout``, and
    asyncio's default (60 s) would let a client that never finishes one hold a connection
    six times as long as one that never finishes its headers.
    """

    def __init__(self, *, handshake_seconds: float) -> None:
        super().__init__()
        self._handshake_seconds = handshake_seconds

    async def create_server(  # type: ignore[override]  # passes every overload through
        self, *args: Any, **kwargs: Any
    ) -> asyncio.AbstractServer:
        """Create a server; with TLS, each handshake must end within the header deadline."""
        if kwargs.get("ssl") is not None:
            kwargs.setdefault("ssl_handshake_timeout", self._handshake_seconds)
        return await super().create_server(*args, **kwargs)


@dataclass
class ConnectionLimits:
    """How long a client may take, and how many connections it and everyone may hold.

    ``open_by_address`` counts the admitted connections of each client address.
    """

    header_seconds: float
    body_seconds: float
    total: int
    per_address: int
    header_bytes: int = 64 * 1024  # request line and headers of one request
    open_by_address: Counter[str] = field(default_factory=Counter)

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        """The limits the settings name."""
        return cls(
            header_seconds=settings.header_timeout_seconds,
            body_seconds=settings.body_timeout_seconds,
            header_bytes=settings.max_header_bytes,
            total=settings.max_connections,
            per_address=settings.max_connections_per_address,
        )

    def admit(self, address: str, open_connections: int) -> bool:
        """Count a new connection from ``address`` unless a limit is reached."""
        if open_connections > self.total or self.open_by_address[address] >= self.per_address:
            return False
        self.open_by_address[address] += 1
        return True

    def release(self, address: str) -> None:
        """Forget an admitted connection of ``address``."""
        self.open_by_address[address] -= 1
        if self.open_by_address[address] <= 0:
            del self.open_by_address[address]


def edge_protocol(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """The HTTP protocol class of one server, sharing ``limits`` among its connections."""
    return type("EdgeProtocol", (EdgeProtocol,), {"limits": limits})


_REFUSED_SECONDS = 1.0  # how long a refused client has to read its answer


class EdgeProtocol(HttpToolsProtocol):
    """HTTP/1.1 with deadlines and connection limits, and the client certificate for the app.

    uvicorn bounds only idle keep-alive time: a client that sends its headers (or its
    body) a byte at a time holds a connection for ever (slowloris). Here a timer runs from
    the end of the TLS handshake, and from the first byte of each later request, until the
    headers are complete; another from then until the body is complete; when one fires the
    connection is dropped. The request line and headers of each request may take at most
    ``header_bytes``: uvicorn and httptools keep an unfinished header in memory whatever its
    size, so the bytes are counted here as they arrive, before the parser sees them, and
    past the cap the client gets a 431 and the connection is closed. A connection over
    the total or per-address limit is dropped as soon as it is made. Malformed requests
    get a JSON 400 with the security headers, and uvicorn's own access-log line (which
    holds the query string) is replaced by the edge's (serving/edge.py).

    uvicorn does not implement the ASGI TLS extension; this fills in its
    ``client_cert_chain`` for each connection whose client presented a certificate
    (already verified against the workspace CA by the SSL context).
    """

    limits: ClassVar[ConnectionLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_log = False  # serving/edge.py writes the line, without the query string
        self._deadline: asyncio.TimerHandle | None = None
        self._admitted: str | None = None  # the client address, once counted
        self._in_headers = True  # the next bytes are a request line or headers
        self._header_bytes = 0  # of the request being read, while _in_headers

    def connection_made(self, transport: Any) -> None:
        """Admit the connection within the limits and start the header deadline."""
        super().connection_made(transport)
        address = self.client[0] if self.client else ""
        if not self.limits.admit(address, len(self.connections)):
            transport.abort()
            return
        self._admitted = address
        self._start_deadline(self.limits.header_seconds)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            self.app = _with_certificate(self.app, ssl.DER_cert_to_PEM_cert(der))

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the deadline and uncount the connection."""
        self._stop_deadline()
        if self._admitted is not None:
            self.limits.release(self._admitted)
            self._admitted = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse ``data``, never letting the parser hold more than the header cap."""
        view = memoryview(data)
        cap = self.limits.header_bytes
        while view and not self.transport.is_closing():
            counted = self._in_headers
            room = cap - self._header_bytes if counted else cap
            # In a body, slices of the cap bound what a request pipelined behind it may
            # send before it is counted (from the next slice on): at most one cap more.
            part, view = view[:room], view[room:]
            if counted:
                self._header_bytes += len(part)
            super().data_received(part)  # type: ignore[arg-type]  # httptools takes any buffer
            if self._in_headers and self._header_bytes >= cap and counted:
                self._refuse_headers()
                return

    def on_message_begin(self) -> None:
        """A request starts: its headers have the header deadline."""
        super().on_message_begin()
        if self._deadline is None:  # a later request on a kept-alive connection
            self._start_deadline(self.limits.header_seconds)

    def on_headers_complete(self) -> None:
        """Headers in: the body deadline replaces the header deadline."""
        self._stop_deadline()
        self._in_headers = False
        super().on_headers_complete()
        self._start_deadline(self.limits.body_seconds)

    def on_message_complete(self) -> None:
        """Body in: no deadline until the next request."""
        self._stop_deadline()
        self._in_headers, self._header_bytes = True, 0
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """A malformed request: JSON with the security headers (uvicorn's is plain text)."""
        self.transport.write(protocol_error(400, "The request is not valid HTTP/1.1."))
        self.transport.close()

    def _refuse_headers(self) -> None:
        self._stop_deadline()
        self.transport.write(protocol_error(431, "The request headers are too large."))
        self.transport.close()
        # A TLS close waits for the client's close_notify, reading (and dropping) whatever it
        # still sends: a client that keeps sending is cut off soon after its answer.
        self._deadline = self.loop.call_later(_REFUSED_SECONDS, self.transport.abort)

    def _start_deadline(self, seconds: float) -> None:
        self._stop_deadline()
        self._deadline = self.loop.call_later(seconds, self._drop)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _drop(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.abort()


def _with_certificate(app: ASGIApp, pem: str) -> ASGIApp:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        extensions = dict(scope.get("extensions") or {})
        extensions["tls"] = {"client_cert_chain": [pem]}
        await app({**scope, "extensions": extensions}, receive, send)

    return wrapped
