"""A real gateway process over real TLS, shared by the tests of a module."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bastion.identity import NewClient
from bastion.registry import OutputPolicy
from bastion.serving import ServerProcess, free_port
from bastion.settings import Settings
from bastion.workspace import Workspace

PASSPHRASE = "gateway test passphrase"


def access_token(http: httpx.Client, who: NewClient) -> str:
    """A client_credentials token for ``who`` from the gateway ``http`` points at."""
    response = http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(who.principal.client_id, who.secret.get_secret_value()),
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


@dataclass
class Gateway:
    """A running ``bastion serve`` with a registered model and three principals."""

    server: ServerProcess
    workspace: Workspace
    analyst: NewClient
    guest: NewClient
    operator: NewClient
    auditor: NewClient
    tokens: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def http(self) -> httpx.Client:
        """An HTTPS client that verifies the server against the workspace CA."""
        context = ssl.create_default_context(cafile=self.server.ca)
        return httpx.Client(base_url=self.url, verify=context, timeout=30)

    def token(self, who: NewClient) -> str:
        """A fresh access token for ``who`` (remembered for the secret-leak scan)."""
        with self.http() as http:
            token = access_token(http, who)
        self.tokens.append(token)
        return token

    def secrets(self) -> list[str]:
        """Every client secret and token this gateway has handed out in the tests."""
        clients = (self.analyst, self.guest, self.operator, self.auditor)
        return [c.secret.get_secret_value() for c in clients] + self.tokens


@pytest.fixture(scope="module")
def gateway(request, tmp_path_factory, digits_file: Path, no_leaks: set[str]):
    """Start a gateway with the digits model for the whole module.

    A test module's ``GATEWAY_CONFIG`` (TOML text), if it has one, is added to the
    workspace's bastion.toml before the server starts.
    """
    home = tmp_path_factory.mktemp("gateway") / "ws"
    port = free_port()
    workspace = Workspace.create(Settings(home=home, port=port, passphrase=PASSPHRASE), force=False)
    config = home / "bastion.toml"
    config.write_text(config.read_text() + getattr(request.module, "GATEWAY_CONFIG", ""))
    workspace.registry.register(
        digits_file,
        name="digits",
        version="guarded",
        output_policy=OutputPolicy(top_k=2, round_digits=2, outputs=("probabilities",)),
    )
    # Registered last, so it is the default version.
    workspace.registry.register(
        digits_file, name="digits", version=None, output_policy=OutputPolicy()
    )
    analyst = workspace.principals.add("ana", role="analyst", attributes={"team": "research"})
    guest = workspace.principals.add("gus", role="guest", attributes={})
    operator = workspace.principals.add("ops", role="operator", attributes={})
    auditor = workspace.principals.add("aud", role="auditor", attributes={})
    log = home.parent / "server.log"
    env = {"BASTION_PASSPHRASE": PASSPHRASE}
    with ServerProcess(home=home, port=port, log=log, env=env) as server:
        gateway = Gateway(server, workspace, analyst, guest, operator, auditor)
        yield gateway
        no_leaks.update(gateway.tokens)  # tokens the server issued, for the suite-wide scan
    workspace.close()
