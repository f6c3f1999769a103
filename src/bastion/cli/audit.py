"""`bastion audit`: read and verify the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
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
    table = Table(
        "seq",
        "time (UTC)",
        "principal",
        "action",
        "resource",
        "decision",
        "policies",
        "status",
        "ms",
        "hash",
    )
    for record in records:
        event = record.event
        table.add_row(
            str(record.seq),
            dt.datetime.fromtimestamp(event.time, dt.UTC).strftime("%H:%M:%S.%f")[:-3],
            event.principal,
            event.action,
            event.resource,
            event.decision,
            ", ".join(event.policy_ids),
            str(event.status),
            f"{event.latency_ms:.1f}",
            record.hash[:10] + "…",
        )
    return table
