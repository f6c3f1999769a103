"""The root command: global options, the command groups, and the one error handler."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from bastion.cli import (
    anonymize,
    apikey,
    audit,
    certs,
    demo,
    dp,
    gateway,
    keys,
    model,
    monitor,
    pii,
    policy,
    principal,
    redteam,
    robustness,
    scan,
)
from bastion.cli.state import CliState
from bastion.errors import BastionError

app = typer.Typer(
    name="bastion",
    help="Bastion: a secure gateway for ML models, and a toolkit to protect models and data.\n\n"
    "Start with `bastion demo` for a guided tour, or `bastion init` to create a workspace.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Workspace folder. Default: $BASTION_HOME, else ./.bastion.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Bastion's commands; every one works on the workspace given by --home."""
    ctx.obj = CliState(home=home)
    # Runs when the command ends, even by an error: a command that appended to the audit
    # log leaves it covered by a signed checkpoint, not waiting for the next gateway.
    ctx.call_on_close(ctx.obj.close)


gateway.register(app)
keys.register(app)
pii.register(app)
dp.register(app)
anonymize.register(app)
app.add_typer(principal.app, name="principal")
app.add_typer(apikey.app, name="apikey")
app.add_typer(model.app, name="model")
app.add_typer(audit.app, name="audit")
app.add_typer(certs.app, name="certs")
app.add_typer(policy.app, name="policy")
app.add_typer(robustness.app, name="robustness")
app.command("demo")(demo.demo)
app.command("monitor")(monitor.monitor)
app.command("redteam")(redteam.redteam)
app.command("scan")(scan.scan)


def main() -> None:
    """Entry point of the ``bastion`` console script."""
    try:
        app()
    except BastionError as exc:
        message = escape(exc.public_message)  # messages may hold [brackets], never markup
        Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
        sys.exit(exc.exit_code)
