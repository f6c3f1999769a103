"""Robustness evaluation: clean accuracy, robust accuracy per attack and ε, and a plain verdict.

White-box models (a ``torch.nn.Module``) face every attack, including the adaptive ones
(logit-margin PGD and C&W, which see through saturated softmax); black boxes (a
:class:`~bastion.robustness.targets.Predictor`, such as an ONNX model or a deployed gateway)
face the score- and decision-based attacks. The robust accuracy that counts at each ε is the
lowest any attack reached, and the verdict says so when a weaker attack disagrees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from itertools import pairwise
from typing import Any

import torch
from torch import Tensor, nn

from bastion.robustness import attacks
from bastion.robustness.targets import Predictor, scores_of
from bastion.robustness.threat import Domain, Norm, Threat

# A gap this large between the strongest attack and cross-entropy PGD means PGD's gradients
# are misleading (Athalye, Carlini & Wagner 2018).
_MASKING_GAP = 0.05
_ROBUST, _PARTIAL = 0.8, 0.5


@dataclass(frozen=True)
class EvaluationPlan:
    """Which budgets to try, on how many inputs, and how hard."""

    linf: tuple[float, ...] = (0.05, 0.1, 0.2)
    l2: tuple[float, ...] = (0.5, 1.0, 1.5)
    samples: int = 500
    steps: int = 20
    restarts: int = 1
    square_queries: int = 1000
    boundary_iterations: int = 10
    cw_steps: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        counts = (self.samples, self.steps, self.restarts, self.square_queries)
        if min(*counts, self.boundary_iterations, self.cw_steps) < 1:
            raise ValueError("samples, steps, restarts, queries and iterations must be at least 1")
        if any(e <= 0 for e in (*self.linf, *self.l2)):
            raise ValueError("every epsilon must be positive")


@dataclass(frozen=True)
class Point:
    """The accuracy that survived one attack at one budget."""

    attack: str
    norm: Norm
    epsilon: float
    robust_accuracy: float
    queries: int = 0


@dataclass(frozen=True)
class Evaluation:
    """What an evaluation found, JSON-ready (:meth:`to_json`)."""

    model: str
    dataset: str
    samples: int
    clean_accuracy: float
    points: tuple[Point, ...]
    white_box: bool
    verdict: tuple[str, ...] = field(default=())

    def worst(self, norm: Norm, epsilon: float) -> float:
        """The lowest robust accuracy any attack reached at this budget."""
        values = [p.robust_accuracy for p in self.points if p.norm == norm and p.epsilon == epsilon]
        return min(values, default=self.clean_accuracy)

    def budgets(self, norm: Norm) -> list[float]:
        """The budgets evaluated in ``norm``, ascending."""
        return sorted({p.epsilon for p in self.points if p.norm == norm})

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly form; the same fields as the dataclass, plus the worst cases."""
        body = asdict(self)
        body["worst"] = [
            {"norm": norm, "epsilon": e, "robust_accuracy": self.worst(norm, e)}
            for norm in ("linf", "l2")
            for e in self.budgets(norm)
        ]
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Evaluation:
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: a field is missing or has the wrong type.
        """
        try:
            points = tuple(Point(**p) for p in body["points"])
            return cls(
                str(body["model"]),
                str(body["dataset"]),
                int(body["samples"]),
                float(body["clean_accuracy"]),
                points,
                bool(body["white_box"]),
                tuple(str(line) for line in body["verdict"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError("not a Bastion robustness evaluation") from exc


def evaluate(
    target: nn.Module | Predictor,
    x: Tensor,
    y: Tensor,
    *,
    domain: Domain,
    plan: EvaluationPlan,
    names: tuple[str, str] = ("model", "data"),
    shape: tuple[int, int] | None = None,
    on_attack: Callable[[str], None] | None = None,
) -> Evaluation:
    """Attack ``target`` on the first ``plan.samples`` rows of ``x`` and judge the result."""
    x, y = x[: plan.samples], y[: plan.samples]
    white_box = isinstance(target, nn.Module)
    predictor = scores_of(target) if isinstance(target, nn.Module) else target
    clean = float((predictor(x).argmax(dim=1) == y).float().mean())
    points = []
    for name, attack, aimed in _suite(target, plan, domain, shape):
        result = attack.run(aimed, x, y, generator=torch.Generator().manual_seed(plan.seed))
        threat = attack.threat
        points.append(
            Point(name, threat.norm, threat.epsilon, 1.0 - result.success_rate, result.queries)
        )
        if on_attack is not None:
            on_attack(name)
    found = Evaluation(names[0], names[1], len(x), clean, tuple(points), white_box)
    return replace(found, verdict=tuple(_verdict(found)))


def suite_size(target: nn.Module | Predictor, plan: EvaluationPlan) -> int:
    """How many attack runs :func:`evaluate` makes (for progress bars)."""
    return sum(1 for _ in _suite(target, plan, Domain(), None))


def _suite(
    target: nn.Module | Predictor,
    plan: EvaluationPlan,
    domain: Domain,
    shape: tuple[int, int] | None,
) -> Iterator[tuple[str, attacks.Attack, nn.Module | Predictor]]:
    """Each (name, attack, what it attacks) of the evaluation; gradient attacks need a model."""
    model = target if isinstance(target, nn.Module) else None
    predictor = scores_of(target) if isinstance(target, nn.Module) else target
    steps, restarts = plan.steps, plan.restarts
    for eps in plan.linf:
        t = Threat("linf", eps, domain)
        if model is not None:
            yield "fgsm", attacks.FGSM(t), model
            yield "pgd", attacks.PGD(t, steps=steps, restarts=restarts), model
            yield "pgd-margin", attacks.PGD(t, steps=steps, restarts=restarts, loss="margin"), model
            yield "apgd-dlr", attacks.APGD(t, steps=max(steps, 50)), model
        yield "square", attacks.SquareAttack(t, queries=plan.square_queries, shape=shape), predictor
    for eps in plan.l2:
        t = Threat("l2", eps, domain)
        if model is not None:
            yield "pgd", attacks.PGD(t, steps=steps, restarts=restarts), model
            yield "cw", attacks.CarliniWagnerL2(t, steps=plan.cw_steps), model
        yield "hopskipjump", attacks.HopSkipJump(t, iterations=plan.boundary_iterations), predictor


def _verdict(found: Evaluation) -> Iterator[str]:
    """Plain sentences: the headline per norm, then every warning the figures justify."""
    clean = found.clean_accuracy
    yield f"Clean accuracy: {clean:.1%} on {found.samples} inputs."
    for norm in ("linf", "l2"):
        budgets = found.budgets(norm)
        if not budgets:
            continue
        label = "L∞" if norm == "linf" else "L2"
        figures = ", ".join(f"{found.worst(norm, e):.1%} at ε = {e:g}" for e in budgets)
        yield f"{label}: under the strongest attack, accuracy is {figures}."
        top = budgets[-1]
        kept = found.worst(norm, top) / clean if clean else 0.0
        share = f"attacks keep {kept:.0%} of clean accuracy"
        if kept >= _ROBUST:
            yield f"Robust in {label} up to ε = {top:g}: {share}."
        elif kept >= _PARTIAL:
            yield f"Partly robust in {label} at ε = {top:g}: {share}."
        else:
            yield f"Not robust in {label} at ε = {top:g}: {share} only."
        yield from _warnings(found, norm, label)
    if not found.white_box:
        yield "Black box only: gradient attacks were not run, so these figures are upper bounds."


def _warnings(found: Evaluation, norm: Norm, label: str) -> Iterator[str]:
    budgets = found.budgets(norm)
    for e in budgets:
        at = {
            p.attack: p.robust_accuracy for p in found.points if p.norm == norm and p.epsilon == e
        }
        if "pgd" in at and at["pgd"] - found.worst(norm, e) > _MASKING_GAP:
            strongest = min(at, key=at.__getitem__)
            yield (
                f"Gradient masking suspected ({label}, ε = {e:g}): {strongest} leaves "
                f"{at[strongest]:.1%} where cross-entropy PGD reports {at['pgd']:.1%}. "
                "Trust the lower figure."
            )
    worst = [found.worst(norm, e) for e in budgets]
    if any(b > a + _MASKING_GAP for a, b in pairwise(worst)):
        yield (
            f"Accuracy rises with ε in {label}: the attacks are not converging; "
            "add steps or restarts."
        )
