"""`bastion principal`: service clients that may call models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from bastion.cli.state import state
from bastion.errors import InvalidInput
from bastion.identity.assertions import public_jwk_from_file

app = typer.Typer(
    help="Create, list and disable service clients (principals).", no_args_is_help=True
)
console = Console()


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A unique name, e.g. fraud-scorer.")],
    role: Annotated[str, typer.Option(help="Role used by Cedar policies, e.g. analyst.")],
    attr: Annotated[
        list[str] | None,
        typer.Option(help="Attribute KEY=VALUE for policies (principal.getTag(KEY)); repeat."),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            help="The client signs its token requests with the private half of this key "
            "(private_key_jwt, RFC 7523) and gets no secret. A PEM public key or a JWK: "
            "Ed25519, P-256 or RSA (2048 bits or more).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Create a client and print its id and secret. The secret is shown only this once."""
    attributes = dict(_pair(item) for item in attr or [])
    jwk = public_jwk_from_file(public_key.read_text()) if public_key else None
    created = (
        state(ctx)
        .workspace()
        .principals.add(name, role=role, attributes=attributes, public_jwk=jwk)
    )
    client_id, secret = created.principal.client_id, created.secret.get_secret_value()
    if as_json:
        print(json.dumps({"client_id": client_id} | ({"client_secret": secret} if secret else {})))
        return
    how = (
        f"client_secret: [bold]{secret}[/]\n\n"
        "Store the secret now: Bastion keeps only a keyed hash of it and cannot show it again."
        if secret
        else f"authenticates with private_key_jwt ({jwk['alg'] if jwk else ''}); no secret"
    )
    title = f"principal {name} (role {role})"
    console.print(Panel(f"client_id:     [bold]{client_id}[/]\n{how}", title=title))


@app.command("set-key")
def set_key(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The principal's name.")],
    public_key: Annotated[
        Path,
        typer.Argument(help="PEM public key or JWK file (Ed25519, P-256, RSA).", exists=True),
    ],
) -> None:
    """Register or replace the public key a client signs its token requests with."""
    jwk = public_jwk_from_file(public_key.read_text())
    principal = state(ctx).workspace().principals.set_public_jwk(name, jwk)
    console.print(
        f"[green]✓[/] {principal.name} may now authenticate with private_key_jwt ({jwk['alg']})."
    )


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Show every principal (never their secrets)."""
    table = Table("name", "client id", "role", "attributes", "status")
    for p in state(ctx).workspace().principals.list():
        attributes = ", ".join(f"{k}={v}" for k, v in sorted(p.attributes.items()))
        table.add_row(
            p.name, p.client_id, p.role, attributes, "[red]disabled[/]" if p.disabled else "enabled"
        )
    console.print(table)


@app.command("disable")
def disable(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The principal's name.")]
) -> None:
    """Disable a principal: new tokens are refused and existing tokens stop working."""
    principal = state(ctx).workspace().principals.disable(name)
    console.print(f"[green]✓[/] {principal.name} ({principal.client_id}) is disabled.")


def _pair(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise InvalidInput(f"--attr takes KEY=VALUE, not {item!r}.")
    return key, value
