"""The reference table of docs/robustness.md, rebuilt by ``bastion robustness reference``.

For one dataset it trains an undefended MLP and one per defense, attacks each with the full
evaluation suite, measures the squeezing detector (plain and adaptive attack) and certifies
randomized smoothing at several radii. Everything is seeded: the same command on the same
versions prints the same table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from bastion.registry import InputPolicy
from bastion.robustness.attacks import PGD
from bastion.robustness.data import Dataset, DatasetName, load_dataset
from bastion.robustness.evaluation import Evaluation, EvaluationPlan, evaluate
from bastion.robustness.sanitizer import Sanitized
from bastion.robustness.smoothing import SmoothedClassifier
from bastion.robustness.squeezing import SqueezingDetector, adaptive_attack
from bastion.robustness.threat import Threat
from bastion.robustness.training import Defense, TrainingPlan, train

_DEFENSES: tuple[tuple[str, Defense], ...] = (
    ("undefended", "none"),
    ("PGD-AT", "pgd"),
    ("FGSM-RS", "fgsm-rs"),
    ("TRADES", "trades"),
    ("distilled (T=100)", "distillation"),
)
_LINF_COLUMNS = ("fgsm", "pgd", "pgd-margin", "apgd-dlr", "square")
_L2_COLUMNS = ("pgd", "cw", "hopskipjump")
_SIGMAS = (0.25, 0.5)
STEPS = 2 * len(_DEFENSES) + 2 + 2
"""How many times :func:`build_reference` reports progress."""
_RADII = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class ReferenceSetup:
    """The budgets and effort of one dataset's table (``effort`` scales every attack's work)."""

    dataset: DatasetName
    linf: float
    l2: float
    epochs: int = 30
    samples: int = 450
    certified: int = 200
    sanitizer_levels: int = 4
    squeeze_bits: int = 2
    effort: float = 1.0
    seed: int = 0


SETUPS: dict[DatasetName, ReferenceSetup] = {
    "digits": ReferenceSetup("digits", linf=0.1, l2=0.5),
    # MNIST-1D spans about ±5 with fine detail: coarse quantization would erase the signal.
    "mnist1d": ReferenceSetup("mnist1d", linf=0.2, l2=1.0, sanitizer_levels=32, squeeze_bits=5),
}


@dataclass(frozen=True)
class DetectorRow:
    """How the squeezing detector fares against one attack on the undefended model."""

    attack: str
    attack_success: float
    detection_rate: float
    undetected_success: float


@dataclass(frozen=True)
class Reference:
    """Every figure of one dataset's reference table."""

    setup: ReferenceSetup
    models: tuple[tuple[str, Evaluation], ...]
    detector: tuple[DetectorRow, ...]
    smoothing: tuple[tuple[float, float, tuple[float, ...]], ...]  # σ, clean, certified per radius

    def to_markdown(self) -> str:
        """The three tables as Markdown."""
        s = self.setup
        head = ["model", "clean", *(f"{a} L∞" for a in _LINF_COLUMNS), "worst L∞"]
        head += [*(f"{a} L2" for a in _L2_COLUMNS), "worst L2"]
        lines = [
            f"**{s.dataset}**: L∞ ε = {s.linf:g}, L2 ε = {s.l2:g}; {s.samples} test inputs; "
            f"{s.epochs} epochs; seed {s.seed}.",
            "",
            _row(head),
            _row(["---"] * len(head)),
        ]
        for name, ev in self.models:
            cells = [name, _pct(ev.clean_accuracy)]
            cells += [_pct(_at(ev, a, "linf", s.linf)) for a in _LINF_COLUMNS] + [
                _pct(ev.worst("linf", s.linf))
            ]
            cells += [_pct(_at(ev, a, "l2", s.l2)) for a in _L2_COLUMNS] + [
                _pct(ev.worst("l2", s.l2))
            ]
            lines.append(_row(cells))
        lines += [
            "",
            _row(
                [
                    f"squeezing detector ({s.squeeze_bits}-bit, 5 % false positives)",
                    "attack success",
                    "detected",
                    "success undetected",
                ]
            ),
        ]
        lines.append(_row(["---"] * 4))
        lines += [
            _row(
                [
                    d.attack,
                    _pct(d.attack_success),
                    _pct(d.detection_rate),
                    _pct(d.undetected_success),
                ]
            )
            for d in self.detector
        ]
        lines += [
            "",
            _row(["randomized smoothing", "base clean", *(f"certified r={r:g}" for r in _RADII)]),
        ]
        lines.append(_row(["---"] * (2 + len(_RADII))))
        lines += [
            _row([f"σ = {sigma:g}", _pct(clean), *map(_pct, acc)])
            for sigma, clean, acc in self.smoothing
        ]
        return "\n".join(lines) + "\n"


def build_reference(
    setup: ReferenceSetup, *, on_step: Callable[[str], None] | None = None
) -> Reference:
    """Train, attack and certify everything in the table."""
    step = on_step or (lambda _: None)
    data = load_dataset(setup.dataset, seed=setup.seed)
    plan = EvaluationPlan(
        linf=(setup.linf,),
        l2=(setup.l2,),
        samples=setup.samples,
        square_queries=max(1, round(1000 * setup.effort)),
        boundary_iterations=max(1, round(10 * setup.effort)),
        cw_steps=max(1, round(100 * setup.effort)),
        seed=setup.seed,
    )
    models: list[tuple[str, torch.nn.Module]] = []
    for name, defense in _DEFENSES:
        training = TrainingPlan(
            defense=defense, epsilon=setup.linf, epochs=setup.epochs, seed=setup.seed
        )
        if defense == "distillation":  # soft labels at T=100 need a larger step to fit in time
            training = replace(training, learning_rate=1e-2)
        models.append((name, train(data, training).model))
        step(name)
    undefended = models[0][1]
    # The gateway's sanitizer in front of the undefended model, attacked naively and by BPDA.
    levels = setup.sanitizer_levels
    sanitizer = InputPolicy(clip=(data.domain.low, data.domain.high), levels=levels)
    models += [
        (
            f"undefended + {levels}-level sanitizer, naive gradients",
            Sanitized(undefended, sanitizer, straight_through=False),
        ),
        (f"undefended + {levels}-level sanitizer, BPDA", Sanitized(undefended, sanitizer)),
    ]
    evaluations = []
    for name, model in models:
        evaluations.append(
            (
                name,
                evaluate(
                    model,
                    data.x_test,
                    data.y_test,
                    domain=data.domain,
                    plan=plan,
                    names=(name, data.name),
                    shape=data.shape,
                ),
            )
        )
        step(f"attacked {name}")
    detector = _detector_rows(undefended, data, setup)
    step("squeezing detector")
    smoothing = tuple(_smoothing_row(data, setup, sigma) for sigma in _SIGMAS)
    step("randomized smoothing")
    return Reference(setup, tuple(evaluations), detector, smoothing)


def _detector_rows(
    model: torch.nn.Module, data: Dataset, setup: ReferenceSetup
) -> tuple[DetectorRow, ...]:
    threat = Threat("linf", setup.linf, data.domain)
    detector = SqueezingDetector(
        model, domain=data.domain, shape=data.shape, bits=setup.squeeze_bits
    ).fit(data.x_train)
    x, y = data.x_test[: setup.samples], data.y_test[: setup.samples]
    generator = torch.Generator().manual_seed(setup.seed)
    plain = PGD(threat, steps=20).run(model, x, y, generator=generator).x_adv
    adaptive = adaptive_attack(detector, threat, x, y, steps=50, generator=generator)
    rows = []
    for name, x_adv in (("PGD-20", plain), ("adaptive (BPDA, 50 steps)", adaptive)):
        with torch.no_grad():
            fooled = model(x_adv).argmax(dim=1) != y
        flagged = detector.predict(x_adv)
        detected = float(flagged[fooled].float().mean()) if fooled.any() else 0.0
        rows.append(
            DetectorRow(
                name,
                float(fooled.float().mean()),
                detected,
                float((fooled & ~flagged).float().mean()),
            )
        )
    return tuple(rows)


def _smoothing_row(
    data: Dataset, setup: ReferenceSetup, sigma: float
) -> tuple[float, float, tuple[float, ...]]:
    plan = TrainingPlan(defense="noise", noise_sigma=sigma, epochs=setup.epochs, seed=setup.seed)
    model = train(data, plan).model
    x, y = data.x_test[: setup.certified], data.y_test[: setup.certified]
    with torch.no_grad():
        clean = float((model(x).argmax(dim=1) == y).float().mean())
    smoothed = SmoothedClassifier(model, sigma, data.classes)
    certificate = smoothed.certify(x, generator=torch.Generator().manual_seed(setup.seed))
    return sigma, clean, tuple(certificate.accuracy_at(r, y) for r in _RADII)


def _at(evaluation: Evaluation, attack: str, norm: str, epsilon: float) -> float:
    return next(
        p.robust_accuracy
        for p in evaluation.points
        if p.attack == attack and p.norm == norm and p.epsilon == epsilon
    )


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _pct(value: float) -> str:
    return f"{value:.1%}"
