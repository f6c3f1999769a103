"""`bastion scan PATH…`: refuse model files that would import or run code on load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bastion.errors import IntegrityError
from bastion.registry.scan import AllowList, ScanReport, scan_path

console = Console()


def scan(
    paths: Annotated[
        list[Path], typer.Argument(help="Files or folders (searched recursively).", exists=True)
    ],
    allow: Annotated[
        list[str] | None,
        typer.Option(
            help="Also allow this exact import, e.g. mypkg.layers.Dense (repeat for more)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
) -> None:
    """Check model files by content: pickle, joblib, PyTorch, NumPy, skops, safetensors, ONNX.

    Exits non-zero when any file would import something outside the allow-list, hides
    something the scanner cannot parse, or is in an unknown format (fail closed).
    Example: `bastion scan models/ --allow mypkg.layers.Dense`
    """
    allowed = AllowList(frozenset(allow or ()))
    files = sorted(f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())
    reports = [scan_path(f, allow=allowed) for f in files]
    if as_json:
        console.print_json(json.dumps([_as_dict(r) for r in reports]))
    else:
        _show(reports)
    unsafe = [r for r in reports if not r.is_safe]
    if unsafe:
        raise IntegrityError(
            f"{len(unsafe)} of {len(reports)} files failed the scan; do not load them "
            "(or allow an exact import with --allow if you trust it)."
        )


def _show(reports: list[ScanReport]) -> None:
    table = Table("file", "format", "verdict", "finding", "where")
    for report in reports:
        if report.is_safe:
            table.add_row(
                report.path,
                report.format,
                "[green]safe[/]",
                f"{len(report.imports)} allowed imports",
                "",
            )
        for finding in report.findings:
            table.add_row(
                report.path,
                report.format,
                "[red]refused[/]",
                f"{finding.kind}: {finding.detail}",
                finding.location,
            )
    console.print(table)


def _as_dict(report: ScanReport) -> dict[str, object]:
    return {
        "path": report.path,
        "format": report.format,
        "safe": report.is_safe,
        "imports": list(report.imports),
        "findings": [vars(f) for f in report.findings],
    }
