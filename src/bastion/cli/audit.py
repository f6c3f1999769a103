"""`bastion audit`: read and verify the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from bastion.audit import AuditRecord
from bastion.cli.state import state

app = typer.Typer(help="Read and verify the tamper-evident audit log.", no_args_is_help=True)
console = Console()


@app.command("tail")
def tail(
    ctx: typer.Context,
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many records.", min=1)] = 20,
) -> None:
    """Show the newest audit records."""
    console.print(records_table(state(ctx).workspace().audit.tail(lines)))


@app.command("verify")
def verify(ctx: typer.Context) -> None:
    """Recompute the hash chain; exit non-zero at the first record that does not match."""
    report = state(ctx).workspace().audit.verify()
    console.print(f"[green]✓[/] {report.records} audit records verified; head {report.head[:16]}…")


def records_table(records: list[AuditRecord]) -> Table:
    """Audit records as a Rich table."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
    for column, width in (("seq", 3), ("UTC", 8), ("action", 8), ("decision", 8), ("status", 6)):
        table.add_column(column, no_wrap=True, min_width=width)
    for column in ("resource", "policies", "principal"):
        table.add_column(column, no_wrap=True, overflow="ellipsis", min_width=8)
    for record in records:
        event = record.event
        table.add_row(
            str(record.seq),
            dt.datetime.fromtimestamp(event.time, dt.UTC).strftime("%H:%M:%S"),
            event.action,
            event.decision,
            str(event.status),
            event.resource,
            ", ".join(event.policy_ids),
            event.principal,
        )
    return table
