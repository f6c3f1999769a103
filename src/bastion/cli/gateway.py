"""`bastion init` and `bastion serve`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bastion.cli.state import state
from bastion.workspace import Workspace

console = Console()


def init(
    ctx: typer.Context,
    folder: Annotated[
        Path | None,
        typer.Argument(help="Where to create it. Default: --home, $BASTION_HOME or ./.bastion."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing workspace (its keys are lost).")
    ] = False,
) -> None:
    """Create a workspace.

    It holds the config, a passphrase-sealed keyring, a token-signing key, a local CA with a server
    certificate, the database and the baseline Cedar policies.
    """
    settings = state(ctx).settings(home=folder or state(ctx).home, confirm_passphrase=True)
    ws = Workspace.create(settings, force=force)
    paths = ws.paths
    console.print(f"[green]✓[/] Workspace created at [bold]{paths.home}[/]")
    console.print(f"  config       {paths.config}")
    console.print(f"  keystore     {paths.keystore} (mode 600, sealed by your passphrase)")
    console.print(f"  signing key  {paths.signing_key} (mode 600)")
    console.print(f"  local CA     {paths.tls.ca_cert}  ← clients verify the server with this")
    console.print(f"  policies     {paths.policies}")
    console.print(
        "\nNext: [bold]bastion principal add NAME --role analyst[/], "
        "[bold]bastion model register FILE.onnx --name NAME[/], [bold]bastion serve[/]."
    )


def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: 127.0.0.1].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default: 8443].")] = None,
) -> None:
    """Run the gateway over HTTPS: OAuth 2.0 token endpoint and V2 inference API."""
    from bastion.serving import serve as run  # noqa: PLC0415 - keeps other commands light

    ws = state(ctx).workspace(host=host, port=port)
    console.print(f"Bastion gateway on [bold]{ws.settings.issuer}[/] (CA: {ws.paths.tls.ca_cert})")
    run(ws)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root command."""
    app.command("init")(init)
    app.command("serve")(serve)
