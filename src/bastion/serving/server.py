"""Run the gateway over HTTPS with uvicorn."""

from __future__ import annotations

import gc
import ssl
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bastion.crypto import server_context
from bastion.serving.app import build_app
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
        build_app(workspace),
        host=settings.host,
        port=settings.port,
        http=_TlsAwareProtocol,
        loop="uvloop",
        ssl_context_factory=tls,
        log_level=settings.log_level,
        server_header=False,
        proxy_headers=False,  # client addresses come from the socket, not from headers
        lifespan="on",  # stops the model workers on shutdown
    )
    # Long-lived startup objects (app, settings, keys, imported modules) leave the garbage
    # collector's view, and young collections run less often: fewer pauses on the request path.
    gc.freeze()
    gc.set_threshold(_GC_YOUNG, 20, 20)
    uvicorn.Server(config).run()


_GC_YOUNG = 20_000  # objects allocated before a young collection (Python's default: 700)


class _TlsAwareProtocol(HttpToolsProtocol):
    """HTTP/1.1 that hands the verified client certificate to the app.

    uvicorn does not implement the ASGI TLS extension; this fills in its
    ``client_cert_chain`` for each connection whose client presented a certificate
    (already verified against the workspace CA by the SSL context).
    """

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            self.app = _with_certificate(self.app, ssl.DER_cert_to_PEM_cert(der))


def _with_certificate(app: ASGIApp, pem: str) -> ASGIApp:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        extensions = dict(scope.get("extensions") or {})
        extensions["tls"] = {"client_cert_chain": [pem]}
        await app({**scope, "extensions": extensions}, receive, send)

    return wrapped
