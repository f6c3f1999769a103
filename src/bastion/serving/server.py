"""Run the gateway over HTTPS with uvicorn."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import uvicorn

from bastion.crypto import server_context
from bastion.serving.app import build_app
from bastion.workspace import Workspace


def serve(workspace: Workspace) -> None:
    """Serve until interrupted, on the host and port of the workspace settings."""
    settings = workspace.settings
    context = server_context(workspace.paths.tls)

    def tls(_config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        return context

    config = uvicorn.Config(
        build_app(workspace),
        host=settings.host,
        port=settings.port,
        ssl_context_factory=tls,
        log_level=settings.log_level,
        server_header=False,
        proxy_headers=False,  # client addresses come from the socket, not from headers
        lifespan="off",
    )
    uvicorn.Server(config).run()
