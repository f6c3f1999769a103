"""What an attack can aim at: a differentiable model (white box) or a predict function (black box).

White-box attacks take a ``torch.nn.Module`` that returns logits. A scikit-learn linear model
becomes one with :func:`linear_module` (its gradients are exact: the model *is* linear).
Black-box attacks take a :class:`Predictor`: any function from a batch of inputs to a batch of
class scores, such as a local model (:func:`scores_of`), an ONNX session, or a deployed
gateway (``bastion redteam``). :class:`QueryCounter` counts what a black-box attack asked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn


class Predictor(Protocol):
    """A black box: a batch of inputs in, a batch of class scores (rows of K values) out."""

    def __call__(self, x: Tensor, /) -> Tensor:
        """Scores for each row of ``x``; higher means more likely."""
        ...


def scores_of(model: nn.Module) -> Predictor:
    """A model's softmax probabilities as a black box (no gradients leave it)."""

    def predict(x: Tensor) -> Tensor:
        with torch.no_grad():
            scores: Tensor = model(x).softmax(dim=1)
        return scores

    return predict


def numpy_predictor(fn: Callable[[NDArray[np.float32]], NDArray[Any]]) -> Predictor:
    """Wrap a NumPy predict function (an ONNX session, a remote endpoint) as a predictor."""

    def predict(x: Tensor) -> Tensor:
        scores = np.asarray(fn(x.detach().numpy().astype(np.float32)), dtype=np.float32)
        return torch.from_numpy(scores.reshape(x.shape[0], -1))

    return predict


class QueryCounter:
    """A predictor that counts the rows it was asked about."""

    def __init__(self, predictor: Predictor) -> None:
        self._predictor = predictor
        self.queries = 0

    def __call__(self, x: Tensor, /) -> Tensor:
        """Forward ``x`` and count its rows."""
        self.queries += x.shape[0]
        return self._predictor(x)


def linear_module(estimator: Any) -> nn.Module:
    """A fitted scikit-learn linear classifier (``coef_``, ``intercept_``) as a logits module.

    Raises:
        ValueError: the estimator has no fitted linear coefficients.
    """
    coef = getattr(estimator, "coef_", None)
    intercept = getattr(estimator, "intercept_", None)
    if coef is None or intercept is None:
        raise ValueError("expected a fitted linear classifier with coef_ and intercept_")
    weight = torch.as_tensor(np.asarray(coef), dtype=torch.float32)
    bias = torch.as_tensor(np.atleast_1d(np.asarray(intercept)), dtype=torch.float32)
    if weight.shape[0] == 1:  # binary: the score of class 1 against a fixed 0 for class 0
        weight = torch.cat([torch.zeros_like(weight), weight])
        bias = torch.cat([torch.zeros_like(bias), bias])
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return layer.eval()


def predict_labels(predictor: Predictor, x: Tensor) -> Tensor:
    """The predicted class of each row."""
    return predictor(x).argmax(dim=1)
