"""`bastion model`: register and list models."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from bastion.cli.state import state
from bastion.errors import InvalidInput
from bastion.registry import OutputPolicy, TensorSpec

app = typer.Typer(help="Register models (encrypted at rest) and list them.", no_args_is_help=True)
console = Console()


@app.command("register")
def register(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="An ONNX model file.", exists=True, dir_okay=False)],
    name: Annotated[str, typer.Option(help="Model name used in /v2/models/{name}.")],
    version: Annotated[
        str | None, typer.Option(help="Version label; default: the next whole number.")
    ] = None,
    top_k: Annotated[
        int | None, typer.Option(help="Reveal only the k highest scores per row.", min=1)
    ] = None,
    round_digits: Annotated[
        int | None,
        typer.Option("--round", help="Round scores to this many decimals.", min=0, max=8),
    ] = None,
    output: Annotated[
        list[str] | None,
        typer.Option(help="Only this output is returned to clients (repeat for more)."),
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(
            help="A .npy sample of typical inputs (rows x features) to detect drift.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Check an ONNX model, encrypt it and record a new immutable version."""
    policy = OutputPolicy(
        top_k=top_k, round_digits=round_digits, outputs=tuple(output) if output else None
    )
    sample = None
    if reference is not None:
        try:
            sample = np.load(reference, allow_pickle=False)  # never unpickle a user's file
        except ValueError:
            raise InvalidInput(f"{reference} is not a plain .npy array.") from None
    registry = state(ctx).workspace().registry
    registered = registry.register(
        file, name=name, version=version, output_policy=policy, reference=sample
    )
    console.print(
        f"[green]✓[/] Registered [bold]{registered.ref}[/] "
        f"(sha256 {registered.sha256[:16]}…, encrypted at rest)"
    )
    _signature_table(registered.signature.inputs + registered.signature.outputs)


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Show every registered model version."""
    table = Table("model", "version", "inputs", "outputs", "sha256", "registered")
    for m in state(ctx).workspace().registry.list():
        table.add_row(
            m.name,
            m.version,
            ", ".join(f"{t.name} {t.datatype}{list(t.shape)}" for t in m.signature.inputs),
            ", ".join(f"{t.name} {t.datatype}{list(t.shape)}" for t in m.signature.outputs),
            m.sha256[:12] + "…",
            dt.datetime.fromtimestamp(m.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)


def _signature_table(specs: tuple[TensorSpec, ...]) -> None:
    table = Table("tensor", "datatype", "shape")
    for spec in specs:
        table.add_row(spec.name, spec.datatype, str(list(spec.shape)))
    console.print(table)
