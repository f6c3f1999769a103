"""Start and stop a real ``bastion serve`` process (used by the demo and the tests)."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from bastion.errors import BackendError

_STARTUP_SECONDS = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """``bastion serve`` in a child process, ready when the context is entered."""

    def __init__(self, *, home: Path, port: int, log: Path, env: dict[str, str]) -> None:
        self.home = home
        self.port = port
        self.log = log
        self._env = env
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The base URL of the server."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def ca(self) -> Path:
        """The workspace CA, for clients to verify the server."""
        return self.home / "tls" / "ca.pem"

    def __enter__(self) -> ServerProcess:
        command = [
            sys.executable,
            "-m",
            "bastion",
            "--home",
            str(self.home),
            "serve",
            "--port",
            str(self.port),
        ]
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
                command, stdout=log, stderr=subprocess.STDOUT, env=os.environ | self._env
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (for crash tests)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _STARTUP_SECONDS
        context = ssl.create_default_context(cafile=self.ca)
        with httpx.Client(verify=context, timeout=2) as client:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    break
                try:
                    if client.get(f"{self.url}/v2/health/ready").status_code == 200:  # noqa: PLR2004
                        return
                except httpx.TransportError:
                    time.sleep(0.1)
        raise BackendError(f"The server did not start; see {self.log}.")
