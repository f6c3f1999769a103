"""The peers the robustness tests measure Bastion against, set up once."""

from __future__ import annotations

import numpy as np
import torch
from art.attacks.evasion import ProjectedGradientDescent
from art.estimators.classification import PyTorchClassifier


def art_pgd(
    model: torch.nn.Module, *, eps: float, step: float, steps: int, restarts: int, **classifier
):
    """ART's PGD on an ART PyTorchClassifier of a digits model (64 inputs, 10 classes, [0, 1])."""
    wrapped = PyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(64,),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        **classifier,
    )
    return ProjectedGradientDescent(
        wrapped,
        norm=np.inf,
        eps=eps,
        eps_step=step,
        max_iter=steps,
        num_random_init=restarts,
        verbose=False,
    )
