"""`bastion robustness`: train with a defense, evaluate under attack, rebuild the reference table.

The robustness toolkit needs PyTorch (the ``robustness`` extra); it is imported when a
command runs, so the rest of the CLI works without it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from bastion.cli import sanitizer
from bastion.errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    from bastion.registry import InputPolicy
    from bastion.robustness import Dataset, Evaluation
    from bastion.robustness.data import DatasetName
    from bastion.robustness.training import Defense

app = typer.Typer(
    help="Attack models, train them with defenses, and report their robustness honestly.\n\n"
    "Start with `bastion robustness train digits -o mlp.safetensors --defense pgd`, then "
    "`bastion robustness eval mlp.safetensors --data digits`.",
    no_args_is_help=True,
)
console = Console()
T = TypeVar("T")


@app.callback()
def require_toolkit() -> None:
    """Stop with the install line when PyTorch (the ``robustness`` extra) is missing.

    Raises:
        ConfigError: torch is not installed.
    """
    if importlib.util.find_spec("torch") is None:
        raise ConfigError(
            "The robustness commands need PyTorch: run `pip install torch==2.13.0`, then "
            "`pip install -e '.[robustness]'` (`make test` does both)."
        )


def progress() -> Progress:
    """The progress bar every long robustness command shows."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


@app.command("train")
def train(
    dataset: Annotated[
        str, typer.Argument(help="digits or mnist1d (made locally, never downloaded).")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the .safetensors model.")
    ],
    defense: Annotated[
        str, typer.Option(help="none, pgd, fgsm-rs, trades, distillation or noise (for smoothing).")
    ] = "pgd",
    epsilon: Annotated[
        float, typer.Option(help="L∞ budget of the adversarial defenses.", min=0)
    ] = 0.1,
    epochs: Annotated[int, typer.Option(help="Passes over the training data.", min=1)] = 30,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    onnx: Annotated[
        Path | None, typer.Option(help="Also export ONNX here, ready for `bastion model register`.")
    ] = None,
) -> None:
    """Train an MLP with a defense; save it as safetensors (weights only: nothing runs on load)."""
    from bastion.robustness import TrainingPlan, save_model, to_onnx  # noqa: PLC0415 - torch on use
    from bastion.robustness import train as fit  # noqa: PLC0415

    data = dataset_from(dataset, seed)
    plan = _checked(
        lambda: TrainingPlan(
            defense=cast("Defense", defense), epsilon=epsilon, epochs=epochs, seed=seed
        )
    )
    with progress() as bar:
        task = bar.add_task(
            f"training ({defense})", total=epochs * (2 if defense == "distillation" else 1)
        )
        trained = fit(data, plan, on_epoch=lambda: bar.advance(task))
    accuracy = float((trained.model(data.x_test).argmax(dim=1) == data.y_test).float().mean())
    notes = {
        "dataset": data.name,
        "defense": defense,
        "epsilon": str(epsilon),
        "epochs": str(epochs),
    }
    save_model(output, trained.model, trained.architecture, domain=data.domain, notes=notes)
    console.print(f"[green]✓[/] {output}: clean test accuracy {accuracy:.1%}", highlight=False)
    if trained.stopped_early:
        console.print(
            "[yellow]![/] stopped early: PGD accuracy collapsed (catastrophic overfitting)"
        )
    if onnx is not None:
        onnx.write_bytes(to_onnx(trained.model))
        console.print(f"[green]✓[/] {onnx}: ONNX with outputs label and probabilities")


@app.command("eval")
def evaluate(
    model: Annotated[
        Path,
        typer.Argument(
            help="A .safetensors model from `robustness train` (white box) or any .onnx classifier "
            "(black box).",
            exists=True,
            dir_okay=False,
        ),
    ],
    data: Annotated[
        str, typer.Option(help="digits, mnist1d, or an .npz with x_test and y_test.")
    ] = "digits",
    linf: Annotated[
        str, typer.Option(help="L∞ budgets, comma-separated ('' for none).")
    ] = "0.05,0.1,0.2",
    l2: Annotated[
        str, typer.Option(help="L2 budgets, comma-separated ('' for none).")
    ] = "0.5,1,1.5",
    samples: Annotated[int, typer.Option(help="Test inputs to attack.", min=1)] = 500,
    steps: Annotated[int, typer.Option(help="Steps of the gradient attacks.", min=1)] = 20,
    restarts: Annotated[int, typer.Option(help="Random restarts of PGD.", min=1)] = 1,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for the JSON and HTML report.")
    ] = Path("robustness-report"),
    seed: Annotated[int, typer.Option(help="Seed of the attacks' randomness.")] = 0,
    clip: sanitizer.Clip = None,
    levels: sanitizer.Levels = None,
    median: sanitizer.Median = None,
    image: sanitizer.Image = None,
) -> None:
    """Attack a model with every suitable attack and write a JSON + HTML report with a verdict.

    With sanitizer options, the model is attacked behind the same sanitizer the gateway
    would apply (`model register --clip … --levels …`), through it by BPDA.
    """
    from bastion.robustness import EvaluationPlan  # noqa: PLC0415 - torch on use
    from bastion.robustness import evaluate as run  # noqa: PLC0415
    from bastion.robustness.evaluation import suite_size  # noqa: PLC0415

    dataset = dataset_from(data, seed)
    target = _target(model)
    squeeze = sanitizer.input_policy(clip, levels, median, image)
    if not squeeze.is_identity:
        target = _sanitized(target, squeeze)
    plan = _checked(
        lambda: EvaluationPlan(
            linf=floats(linf),
            l2=floats(l2),
            samples=samples,
            steps=steps,
            restarts=restarts,
            seed=seed,
        )
    )
    with progress() as bar:
        task = bar.add_task("attacking", total=suite_size(target, plan))
        found = run(
            target,
            dataset.x_test,
            dataset.y_test,
            domain=dataset.domain,
            plan=plan,
            names=(model.name, dataset.name),
            shape=dataset.shape,
            on_attack=lambda name: bar.update(task, advance=1, description=f"attacking ({name})"),
        )
    show(found, output)


@app.command("reference")
def reference(
    datasets: Annotated[
        list[str] | None, typer.Argument(help="digits, mnist1d, or both (the default).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the Markdown here.")
    ] = None,
) -> None:
    """Rebuild the reference tables of docs/robustness.md: every defense, every attack, seeded."""
    from bastion.robustness.reference import SETUPS, STEPS, build_reference  # noqa: PLC0415

    chosen = datasets or list(SETUPS)
    unknown = [name for name in chosen if name not in SETUPS]
    if unknown:
        raise InvalidInput(f"Unknown dataset {unknown[0]!r}; use {', '.join(SETUPS)}.")
    tables = []
    with progress() as bar:
        for name in chosen:
            task = bar.add_task(name, total=STEPS)
            setup = SETUPS[cast("DatasetName", name)]
            built = build_reference(setup, on_step=partial(_advance, bar, task))
            tables.append(built.to_markdown())
    markdown = "\n".join(tables)
    console.print(markdown, highlight=False, markup=False)
    if output is not None:
        output.write_text(markdown)


def _advance(bar: Progress, task: TaskID, step: str) -> None:
    bar.update(task, advance=1, description=step)


def show(found: Evaluation, output: Path) -> None:
    """Print the verdict and the worst cases, and write the report files."""
    from bastion.robustness.report import write_report  # noqa: PLC0415
    from bastion.robustness.threat import NORMS  # noqa: PLC0415

    table = Table("norm", "ε", "robust accuracy (worst attack)")
    table.add_row("none", "0", f"{found.clean_accuracy:.1%}")
    for norm in NORMS:
        for e in found.budgets(norm):
            table.add_row(norm, f"{e:g}", f"{found.worst(norm, e):.1%}")
    console.print(table)
    for line in found.verdict:
        console.print(f"• {line}", highlight=False, markup=False)
    json_path, html_path = write_report(found, output)
    console.print(f"[green]✓[/] {json_path} and {html_path}")


def dataset_from(name: str, seed: int) -> Dataset:
    """A named dataset, or one read from an .npz file."""
    from bastion.robustness import DATASETS, Dataset, load_dataset  # noqa: PLC0415

    if name in DATASETS:
        return load_dataset(name, seed=seed)
    path = Path(name)
    if path.suffix == ".npz" and path.is_file():
        return _checked(lambda: Dataset.from_npz(path))
    raise InvalidInput(
        f"Unknown data {name!r}; use {', '.join(DATASETS)} or an existing .npz file."
    )


def _target(path: Path) -> Any:
    from bastion.robustness import load_model, numpy_predictor  # noqa: PLC0415

    if path.suffix == ".onnx":
        import onnxruntime as ort  # noqa: PLC0415

        try:
            session = ort.InferenceSession(path.read_bytes(), providers=["CPUExecutionProvider"])
        except Exception:  # onnxruntime raises its own untyped errors
            raise InvalidInput(f"onnxruntime cannot load {path.name}.") from None
        name = session.get_inputs()[0].name
        outputs = [o.name for o in session.get_outputs()]
        scores = "probabilities" if "probabilities" in outputs else outputs[-1]
        return numpy_predictor(lambda x: session.run([scores], {name: x})[0])
    return _checked(lambda: load_model(path)).model


def _sanitized(target: Any, policy: InputPolicy) -> Any:
    """The target behind the sanitizer: BPDA for a model, plain for a black box."""
    import torch  # noqa: PLC0415

    from bastion.robustness import numpy_predictor  # noqa: PLC0415
    from bastion.robustness.sanitizer import Sanitized  # noqa: PLC0415

    if isinstance(target, torch.nn.Module):
        return Sanitized(target, policy)
    return numpy_predictor(lambda x: target(torch.from_numpy(policy.apply(x))).numpy())


def floats(text: str) -> tuple[float, ...]:
    """Comma-separated numbers, as an option gives them."""
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InvalidInput(f"Expected comma-separated numbers, got {text!r}.") from None


def _checked(make: Callable[[], T]) -> T:
    """Run ``make``; a ValueError (a bad option) becomes a clear error for the user."""
    try:
        return make()
    except ValueError as exc:
        raise InvalidInput(f"{exc}.") from None
