"""`bastion redteam URL MODEL`: black-box attacks on a deployed model, through its V2 API.

It authenticates like any client (OAuth 2.0 client credentials), so every query is
authorized, rate-limited and audited by the gateway, and its monitors see the attack as
they would see a real one. When the model reveals probabilities it runs the Square attack
(score-based, L∞) and HopSkipJump (decision-based, L2); with labels only, HopSkipJump alone.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from numpy.typing import NDArray
from rich.console import Console

from bastion.cli.robustness import dataset_from, floats, progress, require_toolkit, show
from bastion.client import Client
from bastion.errors import RateLimited

console = Console()
_SCORES = "probabilities"


def redteam(
    url: Annotated[str, typer.Argument(help="The gateway, e.g. https://127.0.0.1:8443.")],
    model: Annotated[str, typer.Argument(help="The model's name (NAME or NAME@VERSION).")],
    client_id: Annotated[str, typer.Option(help="Client id of the principal that attacks.")],
    client_secret: Annotated[
        str,
        typer.Option(
            envvar="BASTION_CLIENT_SECRET",
            prompt=True,
            hide_input=True,
            help="Its secret (or set BASTION_CLIENT_SECRET).",
            show_default=False,
        ),
    ],
    ca: Annotated[
        Path | None,
        typer.Option(help="CA certificate of the gateway, e.g. .bastion/tls/ca.pem.", exists=True),
    ] = None,
    data: Annotated[
        str, typer.Option(help="digits, mnist1d, or an .npz with x_test and y_test.")
    ] = "digits",
    samples: Annotated[int, typer.Option(help="Test inputs to attack.", min=1)] = 20,
    linf: Annotated[
        str, typer.Option(help="L∞ budgets for the Square attack ('' for none).")
    ] = "0.1",
    l2: Annotated[str, typer.Option(help="L2 budgets for HopSkipJump ('' for none).")] = "1.0",
    queries: Annotated[int, typer.Option(help="Square attack queries per input.", min=1)] = 300,
    iterations: Annotated[int, typer.Option(help="HopSkipJump iterations per input.", min=1)] = 10,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for the JSON and HTML report.")
    ] = Path("redteam-report"),
    seed: Annotated[int, typer.Option(help="Seed of the attacks' randomness.")] = 0,
) -> None:
    """Red-team a deployed model: black-box attacks through the gateway, then a report.

    Every query is a real, audited inference call by CLIENT_ID; the gateway's rate limits
    apply (the attack waits as told by Retry-After).
    """
    require_toolkit()
    from bastion.robustness import EvaluationPlan, evaluate, numpy_predictor  # noqa: PLC0415 - torch

    name, _, version = model.partition("@")
    dataset = dataset_from(data, seed)
    with Client(url, client_id, client_secret, ca=ca) as client:
        metadata = client.model_metadata(name, version=version or None)
        input_name = metadata["inputs"][0]["name"]
        scores = _SCORES in {o["name"] for o in metadata["outputs"]}
        remote = _Remote(
            client, name, version or None, input_name, scores=scores, classes=dataset.classes
        )
        plan = EvaluationPlan(
            linf=floats(linf) if scores else (),
            l2=floats(l2),
            samples=samples,
            square_queries=queries,
            boundary_iterations=iterations,
            seed=seed,
        )
        if not scores:
            console.print("The model reveals labels only: HopSkipJump (decision-based) alone.")
        with progress() as bar:
            task = bar.add_task("attacking", total=len(plan.linf) + len(plan.l2))
            found = evaluate(
                numpy_predictor(remote),
                dataset.x_test,
                dataset.y_test,
                domain=dataset.domain,
                plan=plan,
                names=(f"{model} at {url}", dataset.name),
                shape=dataset.shape,
                on_attack=lambda attack: bar.update(
                    task, advance=1, description=f"attacking ({attack})"
                ),
            )
    console.print(
        f"{remote.calls} inference calls, {remote.rows} rows, "
        f"{remote.waited:.1f} s waiting on rate limits"
    )
    show(found, output)


class _Remote:
    """The deployed model as a NumPy predict function: scores, or one-hot labels."""

    _CHUNK = 256  # rows per call, to stay well under the gateway's body limit

    def __init__(
        self,
        client: Client,
        model: str,
        version: str | None,
        input_name: str,
        *,
        scores: bool,
        classes: int,
    ) -> None:
        self._client, self._model, self._version = client, model, version
        self._input, self._scores, self._classes = input_name, scores, classes
        self.calls, self.rows, self.waited = 0, 0, 0.0

    def __call__(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        parts = [self._infer(x[i : i + self._CHUNK]) for i in range(0, len(x), self._CHUNK)]
        return np.concatenate(parts)

    def _infer(self, rows: NDArray[np.float32]) -> NDArray[np.float32]:
        wanted = (_SCORES,) if self._scores else ("label",)
        while True:
            try:
                out = self._client.infer(
                    self._model, {self._input: rows}, version=self._version, outputs=wanted
                )
                break
            except RateLimited as exc:
                self.waited += exc.retry_after
                time.sleep(exc.retry_after)
        self.calls, self.rows = self.calls + 1, self.rows + len(rows)
        if self._scores:
            return np.asarray(out[_SCORES], dtype=np.float32).reshape(len(rows), -1)
        labels = np.asarray(out["label"]).reshape(-1).astype(np.int64)
        return np.eye(self._classes, dtype=np.float32)[labels]
