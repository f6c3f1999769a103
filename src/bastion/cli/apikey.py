"""`bastion apikey`: API keys for principals, scoped to actions and models."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from bastion.cli.state import state
from bastion.identity.apikeys import ANY_MODEL

app = typer.Typer(
    help="API keys: an alternative to OAuth tokens for simple clients.", no_args_is_help=True
)
console = Console()


@app.command("create")
def create(
    ctx: typer.Context,
    principal: Annotated[str, typer.Argument(help="The principal the key acts for.")],
    action: Annotated[list[str], typer.Option(help="Allowed action (infer, describe…); repeat.")],
    model: Annotated[
        list[str] | None, typer.Option(help="Allowed model name; repeat. Default: any model.")
    ] = None,
    days: Annotated[int, typer.Option(help="Lifetime in days (1-365).", min=1, max=365)] = 90,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Create a key; it is shown only this once. Use it as `Authorization: Bearer <key>`."""
    record, key = (
        state(ctx)
        .workspace()
        .api_keys.create(
            principal, actions=tuple(action), models=tuple(model or [ANY_MODEL]), days=days
        )
    )
    if as_json:
        print(json.dumps({"key_id": record.key_id, "api_key": key.get_secret_value()}))
        return
    console.print(
        Panel(
            f"api key: [bold]{key.get_secret_value()}[/]\n\nStore it now: Bastion keeps only a "
            "keyed hash of it and cannot show it again.",
            title=f"key {record.key_id} for {principal}: {', '.join(record.actions)} on "
            f"{', '.join(record.models)}, {days} days",
        )
    )


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Show every key (never the secrets)."""
    table = Table("key id", "principal", "actions", "models", "expires", "last used", "state")
    for key in state(ctx).workspace().api_keys.list():
        table.add_row(
            key.key_id,
            key.client_id,
            ", ".join(key.actions),
            ", ".join(key.models),
            _day(key.expires_at),
            _day(key.last_used_at) if key.last_used_at else "-",
            "[red]revoked[/]" if key.revoked else "active",
        )
    console.print(table)


@app.command("revoke")
def revoke(ctx: typer.Context, key_id: Annotated[str, typer.Argument(help="From `list`.")]) -> None:
    """Revoke a key; it stops working at once."""
    state(ctx).workspace().api_keys.revoke(key_id)
    console.print(f"[green]✓[/] API key {key_id} is revoked.")


def _day(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M")
