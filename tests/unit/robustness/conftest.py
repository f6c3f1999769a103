"""Shared, seeded robustness fixtures: the digits data and an undefended MLP, made once."""

from __future__ import annotations

import pytest
import torch

from bastion.robustness import Dataset, TrainingPlan, load_dataset, train


@pytest.fixture(scope="session")
def digit_set() -> Dataset:
    """scikit-learn's digits in [0, 1], split 1347 / 450."""
    return load_dataset("digits")


@pytest.fixture(scope="session")
def mlp(digit_set: Dataset) -> torch.nn.Module:
    """An undefended 64-256-256-10 MLP, 20 epochs (about 98 % clean accuracy)."""
    return train(digit_set, TrainingPlan(epochs=20)).model


@pytest.fixture
def generator() -> torch.Generator:
    """A fresh seeded generator per test."""
    return torch.Generator().manual_seed(0)
