"""Sample models and data, made here (never downloaded), for the demo, docs and tests.

Needs the ``demo`` extra (scikit-learn and skl2onnx).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

DIGITS_INPUT = "pixels"


@dataclass(frozen=True)
class DigitsSample:
    """A digits classifier as ONNX bytes, with held-out images and their labels."""

    onnx: bytes
    images: NDArray[np.float32]
    labels: NDArray[np.int64]
    accuracy: float


def train_digits(*, random_state: int = 0) -> DigitsSample:
    """Train logistic regression on scikit-learn's bundled 8x8 digits and convert to ONNX.

    Inputs are 64 pixel values scaled to [0, 1]; outputs are ``label`` (INT64) and
    ``probabilities`` (FP32, one column per digit).
    """
    from skl2onnx import to_onnx  # noqa: PLC0415 - optional extra, loaded on use
    from skl2onnx.common.data_types import FloatTensorType  # noqa: PLC0415
    from sklearn.datasets import load_digits  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from sklearn.model_selection import train_test_split  # noqa: PLC0415

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.25, random_state=random_state, stratify=digits.target
    )
    model = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    onnx_model: Any = to_onnx(
        model,
        initial_types=[(DIGITS_INPUT, FloatTensorType([None, x.shape[1]]))],
        options={id(model): {"zipmap": False}},
        target_opset=17,
    )
    return DigitsSample(
        onnx=onnx_model.SerializeToString(),
        images=x_test,
        labels=y_test.astype(np.int64),
        accuracy=float(model.score(x_test, y_test)),
    )
