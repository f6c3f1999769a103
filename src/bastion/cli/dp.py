"""`bastion dp`: register datasets, set privacy budgets, and ask differentially private queries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bastion.cli.state import state
from bastion.privacy.dp import EVERYONE, Query

app = typer.Typer(
    help="Differential privacy: register a dataset (stored encrypted), give it a budget, "
    "then ask count/sum/mean/quantile/histogram queries that spend it.",
    no_args_is_help=True,
)
console = Console()
_NOISED = {
    "count": "the count",
    "sum": "the sum",
    "mean": "the sum, which is divided by a noisy count",
    "histogram": "each bin",
    "quantile": "each bin of the histogram it reads",
}


@app.command("register")
def register_dataset(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name, e.g. census.")],
    source: Annotated[Path, typer.Argument(help="A .csv, .parquet or .jsonl file.", exists=True)],
) -> None:
    """Store a table encrypted in the workspace for DP queries (names are immutable)."""
    info = state(ctx).workspace().datasets.register(name, source)
    columns = ", ".join(f"{column} ({kind})" for column, kind in info.columns)
    console.print(f"[green]✓[/] {info.name}: {info.rows:,} rows; columns {columns}.")
    console.print(f"Give it a budget next: `bastion dp budget {info.name} --epsilon 3`.")


@app.command("datasets")
def datasets(ctx: typer.Context) -> None:
    """List the registered datasets with their budgets."""
    ws = state(ctx).workspace()
    table = Table("dataset", "rows", "budget ε (everyone)", "spent")
    for name in ws.datasets.names():
        budgets = {b.principal: b for b in ws.privacy_budgets.budgets(name)}
        everyone = budgets.get(EVERYONE)
        total = f"{everyone.epsilon_total:g}" if everyone else "none (queries refused)"
        spent = f"{everyone.epsilon_spent:g}" if everyone else ""
        table.add_row(name, f"{ws.datasets.describe(name).rows:,}", total, spent)
    console.print(table)


@app.command("budget")
def budget(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="The dataset.")],
    epsilon: Annotated[
        float | None, typer.Option(help="Set the total ε (what was spent stays spent).")
    ] = None,
    delta: Annotated[float, typer.Option(help="Set the total δ.")] = 0.0,
    principal: Annotated[
        str, typer.Option(help="A client id for a per-principal budget; '*' is everyone.")
    ] = EVERYONE,
) -> None:
    """Show a dataset's budgets, or set one with --epsilon.

    Every query spends from the dataset's budget and, when it has one, from the asking
    principal's; a dataset without a budget answers nothing.
    """
    ws = state(ctx).workspace()
    ws.datasets.describe(dataset)  # a budget for a dataset that does not exist is a typo
    if epsilon is not None:
        ws.privacy_budgets.set_budget(dataset, epsilon=epsilon, delta=delta, principal=principal)
    table = Table("principal", "ε total", "ε spent", "ε left", "δ total", "δ spent")
    for entry in ws.privacy_budgets.budgets(dataset):
        table.add_row(
            "everyone" if entry.principal == EVERYONE else entry.principal,
            f"{entry.epsilon_total:g}",
            f"{entry.epsilon_spent:g}",
            f"{entry.epsilon_left:g}",
            f"{entry.delta_total:g}",
            f"{entry.delta_spent:g}",
        )
    console.print(table)


@app.command("query")
def query(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="The dataset.")],
    spec: Annotated[
        str,
        typer.Argument(
            help="count | sum(col, lo, hi) | mean(col, lo, hi) | "
            "quantile(col, q, lo, hi[, bins]) | histogram(col, lo, hi, bins)"
        ),
    ],
    epsilon: Annotated[float, typer.Option(help="Privacy cost of this query (0 < ε ≤ 10).")],
    principal: Annotated[str, typer.Option(help="Client id of who is asking.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Ask one differentially private question; Cedar must allow `query_data` on the dataset.

    Values are clamped to the bounds you give (bounds are never learned from the data).
    Example: `bastion dp query census "mean(age, 0, 100)" --epsilon 0.5 --principal bcl_…`
    """
    ws = state(ctx).workspace()
    parsed = Query.parse(spec, epsilon=epsilon)
    who = ws.principals.get(principal)
    reply = ws.guard().run(
        lambda: ws.dp_engine().ask(dataset, parsed, principal=who.client_id),
        principal=who,
        action="query_data",
        dataset=dataset,
        audited_as=dataset,
        reason=f"{parsed.describe()} at epsilon {parsed.epsilon:g}",
        context={"ip": "127.0.0.1"},
    )
    result = {
        "dataset": dataset,
        "query": parsed.describe(),
        "value": reply.answer.value,
        "epsilon": parsed.epsilon,
        "noise_scale": reply.answer.noise_scale,
        "epsilon_left": reply.budget.epsilon_left,
    }
    if as_json:
        print(json.dumps(result))
        return
    console.print(f"{parsed.describe()} = [bold]{_shown(reply.answer.value)}[/]")
    console.print(
        f"ε {parsed.epsilon:g} spent; {reply.budget.epsilon_left:g} left "
        f"(noise of scale {reply.answer.noise_scale:g} on {_NOISED[parsed.kind]})."
    )


def _shown(value: float | tuple[float, ...]) -> str:
    if isinstance(value, tuple):
        return ", ".join(f"{v:g}" for v in value)
    return f"{value:.6g}"


def register(root: typer.Typer) -> None:
    """Add this module's commands to the root command."""
    root.add_typer(app, name="dp")
