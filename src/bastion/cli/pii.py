"""`bastion pii scan|evaluate|reveal` and `bastion mask`: find, measure, mask and reveal PII."""

from __future__ import annotations

import enum
import functools
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn
from rich.table import Table

from bastion.cli.state import acting_as, state
from bastion.errors import InvalidInput
from bastion.privacy import Entity, MaskPolicy, PartialMask, PiiScanner, mask_file
from bastion.privacy.corpus import evaluate as evaluate_scanner
from bastion.privacy.corpus import generate
from bastion.privacy.reidentify import Method
from bastion.workspace import lazy_mask_keys

app = typer.Typer(
    help="Personal data: find it in text files (scan), measure the scanner (evaluate), and "
    "reveal tokenized or FPE-encrypted values to an authorized principal (reveal).",
    no_args_is_help=True,
)
console = Console()
_PREVIEW = PartialMask(keep_last=2)


class RevealMethod(enum.StrEnum):
    """How the values were masked: vault tokens or format-preserving encryption."""

    token = "token"  # noqa: S105 - a method name, not a password
    fpe = "fpe"


class FpeAlphabet(enum.StrEnum):
    """The FPE alphabet the masking policy used."""

    digits = "digits"
    alphanumeric = "alphanumeric"


@app.command("scan")
def scan(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Text files to scan; '-' reads standard input.")
    ] = None,
    text: Annotated[str | None, typer.Option(help="Scan this text instead of files.")] = None,
    entity: Annotated[
        list[Entity] | None, typer.Option(help="Report only this kind (repeat for more).")
    ] = None,
    threshold: Annotated[float, typer.Option(min=0.01, max=1.0, help="Lowest score.")] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per finding.")] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit with status 1 when anything is found (for CI).")
    ] = False,
) -> None:
    """Find e-mails, phones, cards, IBANs, SSNs, addresses, URLs, birth dates and names.

    Offline and linear-time; values are shown partly masked, never whole.
    Example: `bastion pii scan notes.txt --entity EMAIL --entity PHONE`
    """
    scanner = PiiScanner(entities=entity or None, threshold=threshold)
    sources: list[tuple[str, Iterable[str]]] = (
        [("--text", [text])] if text is not None else [_lines(p) for p in paths or []]
    )
    if not sources:
        raise InvalidInput("Give files to scan, '-' for standard input, or --text.")
    counts: Counter[str] = Counter()
    table = Table("where", "entity", "score", "value (masked)")
    for name, lines in sources:
        for line, value, finding in scanner.scan_lines(lines):
            counts[finding.entity] += 1
            where = f"{name}:{line}:{finding.start + 1}"
            preview = _PREVIEW.apply(value, field=finding.entity) or ""
            if as_json:
                print(
                    json.dumps({"where": where, "entity": finding.entity, "score": finding.score})
                )
            else:
                table.add_row(where, finding.entity, f"{finding.score:.2f}", preview)
    if not as_json:
        console.print(table if counts else "[green]No personal data found.[/]")
        if counts:
            console.print(", ".join(f"{n} {e}" for e, n in counts.most_common()))
    if check and counts:
        raise typer.Exit(1)


@app.command("evaluate")
def evaluate(
    sentences: Annotated[int, typer.Option(min=100, help="Sentences in the corpus.")] = 4000,
    seed: Annotated[int, typer.Option(help="Corpus seed (same seed, same corpus).")] = 7,
    threshold: Annotated[float, typer.Option(min=0.01, max=1.0, help="Lowest score.")] = 0.5,
) -> None:
    """Precision, recall and F1 per entity on a generated, labelled corpus (needs Faker)."""
    corpus = generate(sentences, seed=seed)
    scanner = PiiScanner(threshold=threshold)
    started = time.perf_counter()
    scores = evaluate_scanner(scanner.scan, corpus)
    elapsed = time.perf_counter() - started
    table = Table("entity", "precision", "recall", "F1", "gold")
    for score in scores.values():
        gold = score.true_positives + score.false_negatives
        table.add_row(
            score.entity,
            f"{score.precision:.3f}",
            f"{score.recall:.3f}",
            f"{score.f1:.3f}",
            str(gold),
        )
    console.print(table)
    size = sum(len(item.text.encode()) for item in corpus)
    console.print(f"{len(corpus)} sentences, {size / 1e6:.2f} MB scanned in {elapsed:.2f} s.")


@app.command("reveal")
def reveal(
    ctx: typer.Context,
    values: Annotated[list[str], typer.Argument(help="Tokens or FPE values to turn back.")],
    dataset: Annotated[str, typer.Option(help="The dataset (the Cedar resource).")],
    field: Annotated[str, typer.Option(help="The column (or entity) the values came from.")],
    method: Annotated[RevealMethod, typer.Option(help="token (vault) or fpe.")],
    principal: Annotated[str, typer.Option(help="Client id of who is asking.")],
    alphabet: Annotated[
        FpeAlphabet, typer.Option(help="The policy's FPE alphabet.")
    ] = FpeAlphabet.digits,
) -> None:
    """Re-identify values for a principal the Cedar policies allow (action `reidentify`).

    Every attempt is written to the audit log, allowed or denied (an unknown or disabled
    principal, no permission, an unknown token), without the values.
    Example: `bastion pii reveal tok_… --dataset customers --field name --method token
    --principal bcl_…`
    """
    ws = state(ctx).workspace()
    kind: Method = "token" if method is RevealMethod.token else "fpe"
    with acting_as(ws, principal) as asker:
        revealed = ws.reidentifier().reveal(
            values,
            principal=asker,
            dataset=dataset,
            field=field,
            method=kind,
            context={"ip": "127.0.0.1"},
            alphabet=alphabet.value,
        )
    for value in revealed:
        print(value)


def mask(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(help="A .csv, .jsonl or .parquet file.", exists=True)],
    policy: Annotated[Path, typer.Option(help="The dataset's masking policy (TOML).", exists=True)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write; same format.")],
    threshold: Annotated[
        float, typer.Option(min=0.01, max=1.0, help="Lowest score for scanned text.")
    ] = 0.5,
) -> None:
    """Mask a table column by column as its policy says, streaming in constant memory.

    Keyed operators (pseudonym, fpe, tokenize) take their keys from the workspace. The
    output is a new owner-only file that appears only when complete (a failure or a kill
    leaves none); an existing one is refused (exit 5), never overwritten.
    Example: `bastion mask customers.csv --policy customers.mask.toml -o customers.masked.csv`
    """
    if output.resolve() == source.resolve():
        raise InvalidInput("Write the masked table to a new file, not over its source.")
    keys = lazy_mask_keys(functools.cache(state(ctx).workspace))
    parsed = MaskPolicy.load(policy, keys=keys)
    columns = (BarColumn(), TaskProgressColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("masking", total=None)
        summary = mask_file(
            source,
            output,
            policy=parsed,
            scanner=PiiScanner(threshold=threshold),
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    table = Table("column", "plan", "values", "changed", "suppressed", "PII found")
    for column in summary.columns:
        found = ", ".join(f"{n} {e}" for e, n in column.findings.most_common())
        table.add_row(
            column.name,
            column.plan,
            f"{column.values:,}",
            f"{column.changed:,}",
            f"{column.suppressed:,}",
            found,
        )
    console.print(table)
    console.print(f"[green]✓[/] {summary.rows:,} rows masked into {output}.")


def _lines(path: Path) -> tuple[str, Iterable[str]]:
    if str(path) == "-":
        return "<stdin>", sys.stdin
    if not path.is_file():
        raise InvalidInput(f"{path} is not a file.")
    return str(path), _read_lines(path)


def _read_lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", errors="replace") as lines:
        yield from lines


def register(root: typer.Typer) -> None:
    """Add this module's commands to the root command."""
    root.add_typer(app, name="pii")
    root.command("mask")(mask)
