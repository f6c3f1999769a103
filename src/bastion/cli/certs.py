"""`bastion certs`: client certificates for mutual TLS, and the server certificate."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bastion.cli.state import state
from bastion.crypto.keys import write_private_file
from bastion.crypto.tls import issue_client_certificate, issue_server_certificate
from bastion.errors import Conflict, NotFound

app = typer.Typer(
    help="Certificates from the workspace CA: client certificates for mutual TLS, "
    "and the gateway's server certificate.",
    no_args_is_help=True,
)
console = Console()


@app.command("client")
def client(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The principal the certificate stands for.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for NAME.pem and NAME.key.")
    ] = Path(),
) -> None:
    """Issue a client certificate for a principal (valid 90 days).

    With `mtls = "optional"` or `"required"`, the principal can then get tokens with
    no secret (tls_client_auth), and those tokens only work with this certificate.
    """
    ws = state(ctx).workspace()
    principal = next((p for p in ws.principals.list() if p.name == name), None)
    if principal is None:
        raise NotFound(f"No principal named {name!r}; see `bastion principal list`.")
    cert_path, key_path = output / f"{name}.pem", output / f"{name}.key"
    if cert_path.exists() or key_path.exists():
        raise Conflict(f"{cert_path} or {key_path} exists; choose another --output.")
    cert, key = issue_client_certificate(
        ws.paths.tls, client_id=principal.client_id, name=name, now=dt.datetime.now(dt.UTC)
    )
    output.mkdir(parents=True, exist_ok=True)
    write_private_file(key_path, key)
    cert_path.write_bytes(cert)
    console.print(f"[green]✓[/] {cert_path} and {key_path} (mode 600) for {principal.client_id}")


@app.command("server")
def server(
    ctx: typer.Context,
    host: Annotated[
        list[str], typer.Option(help="A DNS name or IP address clients use; repeat for more.")
    ],
) -> None:
    """Reissue the gateway's server certificate for these hosts (restart `bastion serve`)."""
    ws = state(ctx).workspace()
    issue_server_certificate(ws.paths.tls, hosts=tuple(host), now=dt.datetime.now(dt.UTC))
    console.print(f"[green]✓[/] {ws.paths.tls.server_cert} now names {', '.join(host)}")
