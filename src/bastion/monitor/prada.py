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
statistic W of D (its last 5000 distances, tested every ``TEST_EVERY`` queries) drops
below ``delta``. The default delta = 0.92 was tuned on the digits
model: 60 benign clients each replaying the 450 held-out digits in their own order never
went below it (the lowest W seen over 20 clients was 0.931), while 29 of 30 Papernot
Jacobian-augmentation attacks (10 seeds, step 0.1) were flagged within 112 queries and
the last after 560. See docs/monitoring.md; retune for other models.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

DEFAULT_DELTA = 0.92
MIN_QUERIES = 100
TEST_EVERY = 10  # queries between two Shapiro-Wilk tests: a verdict is at most 9 queries late
_MAX_RECORD = 5000  # Shapiro-Wilk is defined up to 5000 samples
_MAX_POINTS = 5000  # per class: a client's state stays bounded however long it queries


class _ClassSet:
    """The growing set of one class: points in a preallocated array, and their distances."""

    def __init__(self, dimensions: int) -> None:
        self._points = np.empty((16, dimensions))
        self.count = 0
        self._added_sum = 0.0
        self._added_squares = 0.0

    def nearest(self, point: NDArray[Any]) -> float:
        """Distance from ``point`` to the closest point of the set."""
        differences = self._points[: self.count] - point
        return float(np.sqrt(np.min(np.einsum("ij,ij->i", differences, differences))))

    def threshold(self) -> float:
        """Mean minus standard deviation of the distances of the points that joined."""
        joined = self.count - 1  # the first point joined with no distance
        if joined < 1:
            return 0.0
        mean = self._added_sum / joined
        return mean - float(np.sqrt(max(self._added_squares / joined - mean * mean, 0.0)))

    def add(self, point: NDArray[Any], distance: float | None) -> None:
        if self.count == _MAX_POINTS:
            return
        if self.count == len(self._points):
            self._points = np.concatenate([self._points, np.empty_like(self._points)])
        self._points[self.count] = point
        self.count += 1
        if distance is not None:
            self._added_sum += distance
            self._added_squares += distance * distance


class Prada:
    """The PRADA state of one client of one model (bounded: see ``_MAX_POINTS``)."""

    def __init__(self, *, delta: float = DEFAULT_DELTA, min_queries: int = MIN_QUERIES) -> None:
        self.delta = delta
        self.min_queries = min_queries
        self._sets: dict[int, _ClassSet] = {}
        self.distances_: deque[float] = deque(maxlen=_MAX_RECORD)
        self.queries_ = 0  # distances recorded so far
        self.statistic_: float = 1.0

    def observe(self, query: NDArray[Any], predicted: int) -> bool:
        """Record one query; True when the distance record looks like an attack.

        The record is tested every ``TEST_EVERY`` queries once it holds ``min_queries``
        distances; in between, the last verdict stands.
        """
        point = np.asarray(query, dtype=np.float64).ravel()
        growing = self._sets.get(int(predicted))
        if growing is None:
            self._sets[int(predicted)] = growing = _ClassSet(point.size)
        if growing.count == 0:
            growing.add(point, None)
            return False
        distance = growing.nearest(point)
        self.distances_.append(distance)
        self.queries_ += 1
        if distance > growing.threshold():
            growing.add(point, distance)
        if self.queries_ < self.min_queries:
            return False
        if (self.queries_ - self.min_queries) % TEST_EVERY == 0:
            record = np.fromiter(self.distances_, dtype=np.float64)
            if np.ptp(record) == 0:
                self.statistic_ = 0.0  # identical distances: nothing natural looks like this
            else:
                self.statistic_ = float(stats.shapiro(record).statistic)
        return self.statistic_ < self.delta
