"""`bastion dp`: register datasets, set privacy budgets, and ask differentially private queries."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from bastion.cli.robustness import require_toolkit
from bastion.cli.state import acting_as, state
from bastion.crypto.outputs import write_new_file
from bastion.errors import Conflict, InvalidInput
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
    delta: Annotated[
        float | None, typer.Option(help="Set the total δ (only with --epsilon; default 0).")
    ] = None,
    principal: Annotated[
        str, typer.Option(help="A client id for a per-principal budget; '*' is everyone.")
    ] = EVERYONE,
) -> None:
    """Show a dataset's budgets, or set one with --epsilon (and --delta).

    Every query spends from the dataset's budget and, when it has one, from the asking
    principal's; a dataset without a budget answers nothing.
    """
    if delta is not None and epsilon is None:
        # A budget is set whole: --delta alone was once ignored without a word.
        raise InvalidInput("--delta sets a budget together with --epsilon; give both.")
    ws = state(ctx).workspace()
    ws.datasets.describe(dataset)  # a budget for a dataset that does not exist is a typo
    if epsilon is not None:
        ws.privacy_budgets.set_budget(
            dataset, epsilon=epsilon, delta=0.0 if delta is None else delta, principal=principal
        )
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
    epsilon: Annotated[float, typer.Option(help="Privacy cost of this query (1e-6 ≤ ε ≤ 10).")],
    principal: Annotated[str, typer.Option(help="Client id of who is asking.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Ask one differentially private question; Cedar must allow `query_data` on the dataset.

    Values are clamped to the bounds you give (bounds are never learned from the data).
    Example: `bastion dp query census "mean(age, 0, 100)" --epsilon 0.5 --principal bcl_…`
    """
    # Every number is range-checked (ε in [1e-6, 10], bounds 0 or 1e-6 to 1e15 in size and
    # 1e-6 apart, grid arithmetic exact) before anything is
    # looked up or charged: a refused query costs nothing.
    parsed = Query.parse(spec, epsilon=epsilon)
    ws = state(ctx).workspace()
    # An unknown id is refused by the guard too, and audited.
    with acting_as(ws, principal) as who:
        reply = ws.guard().run(
            lambda: ws.dp_engine().ask(dataset, parsed, principal=who.client_id),
            principal=who,
            action="query_data",
            resource=dataset,
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


@app.command("train")
def train(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the model.")],
    epsilon: Annotated[float, typer.Option(help="The privacy target ε (0 < ε ≤ 100).")],
    data: Annotated[
        str, typer.Option(help="digits, mnist1d, or an .npz with x_/y_train, x_/y_test.")
    ] = "digits",
    delta: Annotated[float | None, typer.Option(help="δ (default 1 / (10 n)).")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 20,
    batch_size: Annotated[int, typer.Option(min=1, help="Expected Poisson batch size.")] = 128,
    learning_rate: Annotated[float, typer.Option(help="SGD learning rate (momentum 0.9).")] = 1.0,
    clip: Annotated[float, typer.Option(help="Per-example gradient norm bound C.")] = 1.0,
    hidden: Annotated[str, typer.Option(help="Hidden layer widths, comma-separated.")] = "64",
    seed: Annotated[int, typer.Option(help="Seed of initialization, sampling and noise.")] = 0,
) -> None:
    """Train an MLP with DP-SGD to a target (ε, δ); write the model and privacy.json beside it.

    Both are new files (mode 0600), each whole or absent if the command fails or is killed;
    an existing model or privacy.json there is refused before training (exit 5).

    The privacy claim (ε, δ, noise multiplier, sampling rate, steps, clipping norm and the
    accountant) goes into the signed manifest with `bastion model sign --privacy`.
    Example: `bastion dp train --data digits --epsilon 3 -o dp/model.safetensors`
    """
    require_toolkit()
    claim_file = output.with_name("privacy.json")
    # Both files are new, whole or absent (never over an earlier model or claim): checked
    # before training, so a taken name costs nothing, and again as each is written.
    output.parent.mkdir(parents=True, exist_ok=True)
    for target in (output, claim_file):
        if target.exists() or target.is_symlink():
            raise Conflict(f"{target} exists; choose another output folder.")
    import torch  # noqa: PLC0415 - the robustness extra

    from bastion.privacy.dp.sgd import DpSgdPlan, train_private  # noqa: PLC0415
    from bastion.robustness.data import Dataset, load_dataset  # noqa: PLC0415
    from bastion.robustness.networks import Architecture, save_model  # noqa: PLC0415

    dataset = (
        Dataset.from_npz(Path(data))
        if data.endswith(".npz")
        else load_dataset(_dataset_name(data), seed=seed)
    )
    widths = tuple(int(w) for w in hidden.split(",") if w.strip())
    architecture = Architecture(dataset.features, widths, dataset.classes)
    torch.manual_seed(seed)
    model = architecture.build()
    plan = DpSgdPlan(
        epsilon=epsilon,
        delta=delta,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_grad_norm=clip,
    )
    with console.status(f"DP-SGD, {epochs} epochs…"):
        claim = train_private(
            model,
            dataset.x_train,
            dataset.y_train,
            plan=plan,
            generator=torch.Generator().manual_seed(seed),
        )
    accuracy = float((model(dataset.x_test).argmax(1) == dataset.y_test).float().mean())
    notes = {"training": "dp-sgd", "epsilon": f"{claim.epsilon:.4f}", "delta": f"{claim.delta:.3g}"}
    with tempfile.TemporaryDirectory() as private:  # 0700; safetensors writes only to paths
        saved = Path(private) / output.name
        save_model(saved, model, architecture, domain=dataset.domain, notes=notes)
        write_new_file(output, lambda sink: sink.write(saved.read_bytes()))
    text = json.dumps(claim.to_json(), indent=2) + "\n"
    write_new_file(claim_file, lambda sink: sink.write(text.encode()))
    console.print(
        f"[green]✓[/] {output}: test accuracy {accuracy:.1%} at ε = {claim.epsilon:.3f}, "
        f"δ = {claim.delta:.2g} (σ = {claim.noise_multiplier:.2f}, {claim.steps} steps); "
        f"claim in {claim_file}."
    )


def _dataset_name(name: str) -> Literal["digits", "mnist1d"]:
    if name == "digits":
        return "digits"
    if name == "mnist1d":
        return "mnist1d"
    raise InvalidInput("--data is digits, mnist1d or an .npz file.")


def _shown(value: float | tuple[float, ...]) -> str:
    if isinstance(value, tuple):
        return ", ".join(f"{v:g}" for v in value)
    return f"{value:.6g}"


def register(root: typer.Typer) -> None:
    """Add this module's commands to the root command."""
    root.add_typer(app, name="dp")
