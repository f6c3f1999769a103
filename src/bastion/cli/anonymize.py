"""`bastion anonymize` and `bastion verify-anonymity`: release a table k-anonymous, check one."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from bastion.errors import IntegrityError, InvalidInput
from bastion.privacy.anonymity import (
    Columns,
    Hierarchy,
    Mondrian,
    Requirements,
    check_anonymity,
)
from bastion.privacy.anonymity.mondrian import Diversity
from bastion.privacy.tabular import read_table, write_table

console = Console()

QiOption = Annotated[
    str, typer.Option("--qi", help="Quasi-identifier columns, comma-separated: age,zip,sex.")
]
SensitiveOption = Annotated[
    str | None, typer.Option(help="The sensitive column (needed for --l and --t).")
]
KOption = Annotated[int, typer.Option("--k", min=1, help="Every class has at least k rows.")]
LOption = Annotated[
    int, typer.Option("--l", min=1, help="At least l well-represented sensitive values per class.")
]
DiversityOption = Annotated[
    str, typer.Option(help="l-diversity kind: distinct, entropy or recursive.")
]
COption = Annotated[float, typer.Option("--c", help="c of recursive (c, l)-diversity.")]
TOption = Annotated[
    float | None,
    typer.Option("--t", help="t-closeness: earth mover's distance to the whole table <= t."),
]


def anonymize(
    source: Annotated[Path, typer.Argument(help="A .csv, .parquet or .jsonl table.", exists=True)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The release; same formats.")],
    qi: QiOption,
    k: KOption,
    sensitive: SensitiveOption = None,
    l: LOption = 1,  # noqa: E741
    diversity: DiversityOption = "distinct",
    c: COption = 3.0,
    t: TOption = None,
    mode: Annotated[str, typer.Option(help="strict (median value) or relaxed (median row).")] = (
        "strict"
    ),
    suppression: Annotated[
        float, typer.Option(help="Share of rows that may be dropped as outliers (0 to 0.1).")
    ] = 0.0,
    hierarchy: Annotated[
        list[str] | None,
        typer.Option(help="COLUMN=FILE: an ARX-style hierarchy (value;parent;…;*); repeat."),
    ] = None,
    keep: Annotated[
        list[str] | None, typer.Option(help="Another column to release unchanged (repeat).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the output shuffle.")] = None,
) -> None:
    """Release a table k-anonymous (and l-diverse, t-close) with Mondrian partitioning.

    Quasi-identifiers are generalized (numbers to ranges, categories up their hierarchy or
    to sets of values), the sensitive column is kept, every other column is dropped unless
    --keep names it, and rows are shuffled. Check the result with `bastion verify-anonymity`.
    The release is a new owner-only file, whole or absent; an existing -o is refused (exit 5).
    Example: `bastion anonymize people.csv -o release.csv --qi age,zip,sex --sensitive
    diagnosis --k 10 --l 3`
    """
    if output.resolve() == source.resolve():
        raise InvalidInput("Write the release to a new file, not over its source.")
    table = read_table(source)
    trees = {name: Hierarchy.from_csv(Path(path)) for name, path in map(_pair, hierarchy or [])}
    model = Mondrian(
        requirements=_requirements(k, l, diversity, c, t),
        columns=Columns(_names(qi), sensitive, tuple(keep or ()), trees),
        mode=_mode(mode),
        suppression=suppression,
        random_state=seed,
    )
    started = time.perf_counter()
    with console.status(f"Partitioning {table.num_rows:,} rows…"):
        released = model.fit_transform(table)
    seconds = time.perf_counter() - started
    write_table(released, output)
    report = model.report_
    summary = Table(
        "rows", "classes", "class size (min / mean / max)", "suppressed", "NCP", "discernibility"
    )
    summary.add_row(
        f"{report.rows:,}",
        f"{report.classes:,}",
        f"{report.min_class} / {report.mean_class:.1f} / {report.max_class}",
        f"{report.suppressed:,}",
        f"{report.ncp:.4f}",
        f"{report.discernibility:,}",
    )
    console.print(summary)
    console.print(
        f"[green]✓[/] {released.num_rows:,} rows released to {output} in {seconds:.2f} s."
    )


def verify_anonymity(
    release: Annotated[Path, typer.Argument(help="The released table.", exists=True)],
    qi: QiOption,
    k: KOption,
    sensitive: SensitiveOption = None,
    l: LOption = 1,  # noqa: E741
    diversity: DiversityOption = "distinct",
    c: COption = 3.0,
    t: TOption = None,
    reference: Annotated[
        Path | None,
        typer.Option(help="The original table, for t-closeness against it (default: the release)."),
    ] = None,
) -> None:
    """Check a released table's guarantees independently (any tool may have made it).

    Exits with status 7 when a class misses k, l or t.
    """
    _requirements(k, l, diversity, c, t)
    report = check_anonymity(
        read_table(release),
        quasi_identifiers=_names(qi),
        sensitive=sensitive,
        k=k,
        l=l,
        diversity=diversity,
        c=c,
        t=t,
        reference=read_table(reference) if reference else None,
    )
    console.print(
        f"{report.rows:,} rows in {report.classes:,} classes; smallest {report.smallest_class}"
        + (
            f"; lowest diversity {report.lowest_diversity:.3g}; largest distance "
            f"{report.largest_distance:.3g}"
            if sensitive
            else ""
        )
    )
    if not report.holds:
        kinds = sorted({v.guarantee for v in report.violations})
        raise IntegrityError(
            f"{len(report.violations)} class(es) miss {', '.join(kinds)}: not a safe release."
        )
    console.print("[green]✓[/] Every class meets the guarantees checked.")


def _requirements(k: int, l: int, diversity: str, c: float, t: float | None) -> Requirements:  # noqa: E741
    kinds: dict[str, Diversity] = {
        "distinct": "distinct",
        "entropy": "entropy",
        "recursive": "recursive",
    }
    if diversity not in kinds:
        raise InvalidInput("--diversity is distinct, entropy or recursive.")
    return Requirements(k=k, l=l, diversity=kinds[diversity], c=c, t=t)


def _mode(mode: str) -> Literal["strict", "relaxed"]:
    if mode == "strict":
        return "strict"
    if mode == "relaxed":
        return "relaxed"
    raise InvalidInput("--mode is strict or relaxed.")


def _names(qi: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in qi.split(",") if name.strip())
    if not names:
        raise InvalidInput("Name the quasi-identifier columns with --qi a,b,c.")
    return names


def _pair(item: str) -> tuple[str, str]:
    name, sep, path = item.partition("=")
    if not sep or not name or not path:
        raise InvalidInput(f"--hierarchy takes COLUMN=FILE, not {item!r}.")
    return name, path


def register(root: typer.Typer) -> None:
    """Add this module's commands to the root command."""
    root.command("anonymize")(anonymize)
    root.command("verify-anonymity")(verify_anonymity)
