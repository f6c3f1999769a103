"""Detectors that turn a stream of requests into alerts.

Each detector is small and keeps its own state; the :class:`~bastion.monitor.Monitor`
feeds them every observation and collects their alerts.
"""

from __future__ import annotations

import ipaddress
import math
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bastion.monitor.alerts import Alert
from bastion.monitor.drift import DriftDetector
from bastion.monitor.prada import DEFAULT_DELTA, MIN_QUERIES, Prada


@dataclass(frozen=True)
class Observation:
    """One answered request, as the monitors see it (no secrets, no raw payload kept)."""

    time: float
    principal: str  # "-" when authentication failed
    source: str
    status: int
    model: str  # model@version, or "" when none
    queries: NDArray[Any] | None = None  # rows of the first floating-point input
    predicted: tuple[int, ...] = ()  # predicted class per row, when the model gives one


class AuthFailureBurst:
    """Too many authentication failures from one address in a window."""

    def __init__(self, *, limit: int = 10, window: float = 60.0) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def observe(self, seen: Observation) -> list[Alert]:
        """Count a 401; alert once when an address reaches the limit within the window."""
        if seen.status != 401:  # noqa: PLR2004
            return []
        times = self._failures[seen.source]
        times.append(seen.time)
        while times and times[0] < seen.time - self.window:
            times.popleft()
        if len(times) == self.limit:
            return [
                Alert(
                    "authn_failure_burst",
                    seen.source,
                    f"{self.limit} failed authentications in {self.window:.0f} s",
                    seen.time,
                )
            ]
        return []


@dataclass
class _Rate:
    bucket: int = -1
    count: int = 0
    mean: float = 0.0
    variance: float = 0.0
    buckets: int = 0


class RateSpike:
    """A principal's requests per bucket far above its own moving average (EWMA z-score)."""

    def __init__(
        self,
        *,
        bucket: float = 10.0,
        alpha: float = 0.3,
        z: float = 4.0,
        minimum: int = 20,
        warmup: int = 6,
    ) -> None:
        self.bucket, self.alpha, self.z, self.minimum, self.warmup = (
            bucket,
            alpha,
            z,
            minimum,
            warmup,
        )
        self._rates: dict[str, _Rate] = defaultdict(_Rate)

    def observe(self, seen: Observation) -> list[Alert]:
        """Count the request; when a bucket closes, compare it with the moving average."""
        if seen.principal == "-":
            return []
        rate = self._rates[seen.principal]
        bucket = int(seen.time // self.bucket)
        alerts = []
        if bucket != rate.bucket and rate.bucket >= 0:
            alerts = self._close(seen, rate, rate.count)
            for _ in range(min(bucket - rate.bucket - 1, 60)):  # quiet buckets count as zero
                self._update(rate, 0)
            rate.count = 0
        rate.bucket = bucket
        rate.count += 1
        return alerts

    def _close(self, seen: Observation, rate: _Rate, count: int) -> list[Alert]:
        spread = math.sqrt(rate.variance) or 1.0
        spike = (
            rate.buckets >= self.warmup
            and count >= self.minimum
            and (count - rate.mean) / spread > self.z
        )
        self._update(rate, count)
        if not spike:
            return []
        return [
            Alert(
                "rate_spike",
                seen.principal,
                f"{count} requests in {self.bucket:.0f} s against a usual {rate.mean:.1f}",
                seen.time,
            )
        ]

    def _update(self, rate: _Rate, count: int) -> None:
        delta = count - rate.mean
        rate.mean += self.alpha * delta
        rate.variance = (1 - self.alpha) * (rate.variance + self.alpha * delta * delta)
        rate.buckets += 1


class NewNetwork:
    """A principal with a history shows up from a network (/24 or /64) it never used."""

    def __init__(self, *, history: int = 20) -> None:
        self.history = history
        self._networks: dict[str, set[str]] = defaultdict(set)
        self._seen: dict[str, int] = defaultdict(int)

    def observe(self, seen: Observation) -> list[Alert]:
        """Alert on the first request from a new network once the principal has history."""
        if seen.principal == "-" or not seen.source:
            return []
        try:
            address = ipaddress.ip_address(seen.source)
        except ValueError:
            return []
        prefix = 24 if address.version == 4 else 64  # noqa: PLR2004
        network = str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
        known = self._networks[seen.principal]
        established = self._seen[seen.principal] >= self.history
        self._seen[seen.principal] += 1
        if network in known:
            return []
        known.add(network)
        if not established:
            return []
        return [Alert("new_network", seen.principal, f"first request from {network}", seen.time)]


class ExtractionWatch:
    """PRADA per principal and model; alerts once per principal and model."""

    def __init__(self, *, delta: float = DEFAULT_DELTA, min_queries: int = MIN_QUERIES) -> None:
        self.delta, self.min_queries = delta, min_queries
        self._states: dict[tuple[str, str], Prada] = {}
        self._alerted: set[tuple[str, str]] = set()

    def observe(self, seen: Observation) -> list[Alert]:
        """Feed each query row with its predicted class to the principal's PRADA state."""
        if seen.queries is None or not seen.predicted or seen.principal == "-":
            return []
        key = (seen.principal, seen.model)
        if key in self._alerted:
            return []  # alerted once; the state is not needed any more
        state = self._states.setdefault(key, Prada(delta=self.delta, min_queries=self.min_queries))
        flagged = False
        for row, label in zip(seen.queries, seen.predicted, strict=False):
            flagged = state.observe(row, label) or flagged
        if flagged:
            self._alerted.add(key)
            del self._states[key]
            return [
                Alert(
                    "model_extraction",
                    seen.principal,
                    f"{seen.model}: Shapiro-Wilk W={state.statistic_:.3f} < {self.delta} "
                    f"after {state.queries_} queries",
                    seen.time,
                )
            ]
        return []


class InputDrift:
    """Windows of a model's inputs compared with the reference stored with the model."""

    def __init__(
        self, *, references: Callable[[str], NDArray[Any] | None], window: int = 200
    ) -> None:
        self._references = references
        self.window = window
        self._detectors: dict[str, DriftDetector | None] = {}
        self._rows: dict[str, list[NDArray[Any]]] = defaultdict(list)

    def observe(self, seen: Observation) -> list[Alert]:
        """Collect rows; when a window is full, test it and alert if it drifted."""
        if seen.queries is None or not seen.model:
            return []
        if seen.model not in self._detectors:
            reference = self._references(seen.model)
            self._detectors[seen.model] = None if reference is None else DriftDetector(reference)
        detector = self._detectors[seen.model]
        if detector is None:
            return []
        rows = self._rows[seen.model]
        rows.extend(seen.queries)
        if len(rows) < self.window:
            return []
        report = detector.check(np.stack(rows[: self.window]))
        del rows[: self.window]
        if not report.drifted:
            return []
        return [
            Alert(
                "input_drift",
                seen.model,
                f"{report.drifted_features}/{report.features} features drifted "
                f"({report.method}), max PSI {report.max_psi:.2f}",
                seen.time,
            )
        ]
