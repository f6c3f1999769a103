"""Input drift against a reference sample, with Evidently's default tests and thresholds.

Per feature: the two-sample Kolmogorov-Smirnov test (drift when p < 0.05) when the
reference has at most 1 000 rows, otherwise the Wasserstein distance normalised by the
reference's standard deviation (drift when > 0.1). The dataset drifts when at least half
of the features drift. The population stability index (PSI) of each feature is reported
too (above 0.2 is the usual "significant shift").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

SMALL_REFERENCE = 1000
KS_P_VALUE = 0.05
WASSERSTEIN_THRESHOLD = 0.1
DRIFT_SHARE = 0.5
_EPSILON = 1e-6


@dataclass(frozen=True)
class DriftReport:
    """The result of comparing a window of inputs with the reference."""

    drifted: bool
    drifted_features: int
    features: int
    method: str
    max_psi: float


class DriftDetector:
    """Compares windows of model inputs with a reference sample (rows x features)."""

    def __init__(self, reference: NDArray[Any]) -> None:
        reference = np.asarray(reference, dtype=np.float64)
        if reference.ndim != 2 or len(reference) < 2:  # noqa: PLR2004
            raise ValueError("the reference is a 2-D sample of at least two rows")
        self.reference_ = reference
        self.method = "ks" if len(reference) <= SMALL_REFERENCE else "wasserstein"
        self._scale = np.where(reference.std(axis=0) > 0, reference.std(axis=0), 1.0)

    def check(self, window: NDArray[Any]) -> DriftReport:
        """Drift of ``window`` (rows x features) against the reference."""
        current = np.asarray(window, dtype=np.float64).reshape(len(window), -1)
        if current.shape[1] != self.reference_.shape[1]:
            raise ValueError("the window and the reference have different features")
        flags, psis = [], []
        for j in range(current.shape[1]):
            ref, cur = self.reference_[:, j], current[:, j]
            if np.ptp(ref) == 0 and np.ptp(cur) == 0:
                flags.append(bool(ref[0] != cur[0]))
            elif self.method == "ks":
                flags.append(bool(stats.ks_2samp(ref, cur).pvalue < KS_P_VALUE))
            else:
                distance = stats.wasserstein_distance(ref, cur) / self._scale[j]
                flags.append(bool(distance > WASSERSTEIN_THRESHOLD))
            psis.append(_psi(ref, cur))
        drifted = sum(flags)
        return DriftReport(
            drifted=drifted >= DRIFT_SHARE * len(flags),
            drifted_features=drifted,
            features=len(flags),
            method=self.method,
            max_psi=float(max(psis)),
        )


def _psi(reference: NDArray[Any], current: NDArray[Any], bins: int = 10) -> float:
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:  # noqa: PLR2004 - a constant feature
        return 0.0
    edges[0], edges[-1] = -np.inf, np.inf
    expected = np.histogram(reference, edges)[0] / len(reference) + _EPSILON
    actual = np.histogram(current, edges)[0] / len(current) + _EPSILON
    return float(np.sum((actual - expected) * np.log(actual / expected)))
