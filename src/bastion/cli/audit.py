"""`bastion audit`: read, search, prove, checkpoint, export and verify the audit log."""

from __future__ import annotations

import base64
import datetime as dt
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from bastion.audit import AuditEntry, AuditEvent
from bastion.audit.export import to_cef, to_syslog
from bastion.audit.merkle import verify_inclusion
from bastion.cli.state import state
from bastion.errors import IntegrityError

app = typer.Typer(help="Read, prove and verify the tamper-evident audit log.", no_args_is_help=True)
console = Console()


class ExportFormat(StrEnum):
    """Formats of `bastion audit export`."""

    jsonl = "jsonl"
    syslog = "syslog"
    cef = "cef"


@app.command("tail")
def tail(
    ctx: typer.Context,
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many entries.", min=1)] = 20,
) -> None:
    """Show the newest audit entries."""
    console.print(entries_table(state(ctx).workspace().audit.tail(lines)))


@app.command("search")
def search(
    ctx: typer.Context,
    event: Annotated[str | None, typer.Option(help="e.g. authz_fail, model_infer.")] = None,
    principal: Annotated[str | None, typer.Option(help="A client id.")] = None,
    since: Annotated[
        dt.datetime | None, typer.Option(help="UTC time, e.g. 2026-11-28T09:00:00.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
) -> None:
    """Find entries by event name, principal and time (newest first)."""
    start = since.replace(tzinfo=dt.UTC).timestamp() if since else None
    found = (
        state(ctx)
        .workspace()
        .audit.search(event=event, principal=principal, since=start, limit=limit)
    )
    console.print(entries_table(found))


@app.command("verify")
def verify(
    ctx: typer.Context,
    witness: Annotated[
        Path | None,
        typer.Option(help="A checkpoint exported earlier: the log must extend that tree."),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Also fail when entries are not yet covered by a signed checkpoint "
            "(an insider could still rewrite those without verify noticing).",
        ),
    ] = False,
) -> None:
    """Recompute every leaf and checkpointed root; exit non-zero at the first mismatch."""
    audit = state(ctx).workspace().audit
    kept = audit.read_checkpoint(witness.read_text()) if witness else None
    report = audit.verify(witness=kept)
    console.print(
        f"[green]✓[/] {report.size} audit entries verified against {report.checkpoints} "
        f"signed checkpoints{' and the witness' if report.witness else ''}; "
        f"root {report.root.hex()[:16]}…"
    )
    if report.uncovered:
        console.print(
            f"[yellow]![/] {report.uncovered} entries (from {report.size - report.uncovered}) "
            "are not yet covered by a signed checkpoint; `bastion audit checkpoint` signs them."
        )
    else:
        console.print("[green]✓[/] every entry is covered by a signed checkpoint")
    if strict and report.uncovered:
        raise IntegrityError(
            f"{report.uncovered} audit entries are not covered by a signed checkpoint."
        )


@app.command("checkpoint")
def checkpoint(
    ctx: typer.Context,
    export: Annotated[Path | None, typer.Option(help="Also write the signed note here.")] = None,
) -> None:
    """Sign a checkpoint of the log now (C2SP signed note); keep it as a witness."""
    note = state(ctx).workspace().audit.checkpoint()
    if export is not None:
        export.write_text(note.note)
    sys.stdout.write(note.note)


@app.command("prove")
def prove(
    ctx: typer.Context,
    index: Annotated[int, typer.Argument(help="Entry number (from 0).", min=0)],
) -> None:
    """Prove that an entry is in the latest signed checkpoint, and check the proof."""
    audit = state(ctx).workspace().audit
    latest = audit.latest_checkpoint()
    leaf = audit.leaf_hashes(latest.size)[index] if index < latest.size else b""
    proof = audit.prove_inclusion(index, latest.size)
    verify_inclusion(index=index, size=latest.size, leaf=leaf, proof=proof, root_hash=latest.root)
    print(
        json.dumps(
            {
                "index": index,
                "tree_size": latest.size,
                "leaf_hash": leaf.hex(),
                "inclusion_path": [base64.b64encode(node).decode() for node in proof],
                "checkpoint": latest.note,
            },
            indent=2,
        )
    )


@app.command("export")
def export(
    ctx: typer.Context,
    output_format: Annotated[ExportFormat, typer.Option("--format")] = ExportFormat.jsonl,
    output: Annotated[Path | None, typer.Option("-o", "--output")] = None,
    lines: Annotated[int, typer.Option("-n", "--lines", min=1)] = 1_000_000,
) -> None:
    """Export entries as JSON lines, RFC 5424 syslog or CEF, for a SIEM."""
    entries = state(ctx).workspace().audit.tail(lines)
    render = {
        ExportFormat.jsonl: lambda e: json.dumps({"seq": e.seq, **json.loads(e.event.to_entry())}),
        ExportFormat.syslog: to_syslog,
        ExportFormat.cef: to_cef,
    }[output_format]
    text = "".join(render(entry) + "\n" for entry in entries)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        console.print(f"[green]✓[/] {len(entries)} entries written to {output}")


def entries_table(entries: list[AuditEntry]) -> Table:
    """Audit entries as a Rich table."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
    for column, width in (("seq", 3), ("UTC", 8), ("event", 12), ("status", 6)):
        table.add_column(column, no_wrap=True, min_width=width)
    for column in ("resource", "policies", "principal"):
        table.add_column(column, no_wrap=True, overflow="ellipsis", min_width=8)
    for entry in entries:
        event: AuditEvent = entry.event
        table.add_row(
            str(entry.seq),
            dt.datetime.fromtimestamp(event.time, dt.UTC).strftime("%H:%M:%S"),
            event.event,
            str(event.status),
            event.resource,
            ", ".join(event.policy_ids),
            event.principal,
        )
    return table
