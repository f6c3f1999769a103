"""Robustness speed and strength: Bastion beside torchattacks and IBM ART, in one run.

Run: .venv/bin/python benchmarks/robustness.py [--repeats 30] [--epochs 20]

1. PGD, L∞ ε = 0.1, 10 steps of 0.025 with a random start, on 500 digits (a seeded draw
   from all 1,797), against the same undefended MLP (64-256-256-10): seconds (median of
   ``--repeats`` runs, the tools taking turns) and attack success (the share of the 500 the
   model gets wrong after the attack, averaged over the runs: each draws its own start).
   ART runs with the whole batch at once, as the others do, and at its default batch size
   of 32.
2. Adversarial training, same MLP, same ε, PGD-10 inner attack, batch 64, Adam 1e-3: seconds
   per epoch for Bastion's PGD-AT and ART's AdversarialTrainer (ratio 1.0: every batch
   adversarial, the same work), then PGD-20 robust accuracy on the 450 test digits of
   Bastion's PGD-AT and TRADES, and ART's trainer at ratio 1.0 and at its default ratio 0.5.

All on the CPU with torch's default threads; torchattacks 3.5.1, ART 1.20.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torchattacks
from art.attacks.evasion import ProjectedGradientDescent
from art.defences.trainer import AdversarialTrainer
from art.estimators.classification import PyTorchClassifier
from sklearn.datasets import load_digits

from bastion.robustness import PGD, Domain, Threat, TrainingPlan, load_dataset, train
from bastion.robustness.networks import Architecture

EPS, STEP, STEPS = 0.1, 0.025, 10


def interleaved(
    runs: dict[str, Callable[[], float]], repeats: int
) -> dict[str, tuple[float, float, float]]:
    """Median seconds, mean value and its standard error per run; the runs take turns."""
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    values: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            values[name].append(run())
            seconds[name].append(time.perf_counter() - start)
    return {
        name: (
            statistics.median(seconds[name]),
            statistics.mean(values[name]),
            statistics.stdev(values[name]) / len(values[name]) ** 0.5,
        )
        for name in runs
    }


def art_classifier(model: torch.nn.Module, learning_rate: float = 1e-3) -> PyTorchClassifier:
    return PyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=learning_rate),
        input_shape=(64,),
        nb_classes=10,
        clip_values=(0.0, 1.0),
    )


def fooled(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=1) != y).float().mean())


def attacks(model: torch.nn.Module, repeats: int) -> None:
    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.data))[:500]
    x = torch.tensor(digits.data[order] / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target[order])
    threat = Threat("linf", EPS, Domain(0.0, 1.0))
    ours = PGD(threat, steps=STEPS, step_size=STEP)
    theirs = torchattacks.PGD(model, eps=EPS, alpha=STEP, steps=STEPS, random_start=True)
    arts = {
        batch: ProjectedGradientDescent(
            art_classifier(model),
            norm=np.inf,
            eps=EPS,
            eps_step=STEP,
            max_iter=STEPS,
            num_random_init=1,
            batch_size=batch,
            verbose=False,
        )
        for batch in (500, 32)
    }
    x_np, y_np = x.numpy(), y.numpy()
    seeds = iter(range(10**6))  # a fresh random start each time, as the peers draw theirs
    runs = {
        "Bastion": lambda: (
            ours.run(model, x, y, generator=torch.Generator().manual_seed(next(seeds))).success_rate
        ),
        "torchattacks": lambda: fooled(model, theirs(x, y), y),
        "ART": lambda: fooled(model, torch.from_numpy(arts[500].generate(x_np, y=y_np)), y),
        "ART, batch 32": lambda: fooled(
            model, torch.from_numpy(arts[32].generate(x_np, y=y_np)), y
        ),
    }
    results = interleaved(runs, repeats)
    print(f"PGD L∞ ε={EPS}, {STEPS} steps, 500 digits (median of {repeats})")
    print(f"{'':16}{'seconds':>10}{'success (± s.e.)':>20}{'Bastion is':>16}")
    for name, (seconds, success, error) in results.items():
        ratio = seconds / results["Bastion"][0]
        print(f"{name:16}{seconds:10.4f}{success:12.2%} ± {error:.2%}{ratio:12.2f}x faster")


def training(epochs: int) -> None:
    data = load_dataset("digits")
    threat = Threat("linf", EPS, data.domain)
    plan = TrainingPlan(defense="pgd", epsilon=EPS, epochs=epochs)
    ours = train(data, plan)
    trades = train(data, TrainingPlan(defense="trades", epsilon=EPS, epochs=epochs))
    art_models, art_seconds = {}, {}
    for ratio in (1.0, 0.5):
        torch.manual_seed(0)
        model = Architecture(64, (256, 256), 10).build()
        classifier = art_classifier(model)
        attack = ProjectedGradientDescent(
            classifier,
            norm=np.inf,
            eps=EPS,
            eps_step=2.5 * EPS / STEPS,
            max_iter=STEPS,
            num_random_init=1,
            verbose=False,
        )
        trainer = AdversarialTrainer(classifier, attacks=attack, ratio=ratio)
        start = time.perf_counter()
        trainer.fit(data.x_train.numpy(), data.y_train.numpy(), nb_epochs=epochs, batch_size=64)
        art_seconds[ratio] = (time.perf_counter() - start) / epochs
        art_models[ratio] = model.eval()
    ours_epoch = statistics.median(ours.epoch_seconds)
    print(f"\nAdversarial training, PGD-{STEPS} inner attack, ε={EPS}, {epochs} epochs")
    print(
        f"  seconds per epoch: Bastion {ours_epoch:.3f}, ART (ratio 1.0) {art_seconds[1.0]:.3f}"
        f"  → Bastion is {art_seconds[1.0] / ours_epoch:.1f}x faster"
        f"  (ART at ratio 0.5: {art_seconds[0.5]:.3f})"
    )
    pgd20 = PGD(threat, steps=20)
    print("  PGD-20 robust accuracy on the 450 test digits:")
    for name, model in (
        ("Bastion PGD-AT", ours.model),
        ("Bastion TRADES", trades.model),
        ("ART AdversarialTrainer, ratio 1.0", art_models[1.0]),
        ("ART AdversarialTrainer, ratio 0.5 (default)", art_models[0.5]),
    ):
        success = pgd20.run(
            model, data.x_test, data.y_test, generator=torch.Generator().manual_seed(0)
        )
        print(f"    {name:46}{1 - success.success_rate:8.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    data = load_dataset("digits")
    model = train(data, TrainingPlan(epochs=30)).model
    attacks(model, args.repeats)
    training(args.epochs)


if __name__ == "__main__":
    main()
