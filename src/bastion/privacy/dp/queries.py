"""Differentially private statistics with explicit bounds: count, sum, mean, quantile, histogram.

Neighbouring datasets differ by one added or removed row. Every value is clamped to the
bounds the analyst states (never bounds learned from the data, which would leak it),
snapped to an integer grid, and the integer answer gets exact discrete Laplace noise;
the result is scaled back. Each query costs exactly its ``epsilon`` (pure ε-DP, δ = 0).

>>> import numpy as np, random
>>> query = Query.parse("mean(age, 0, 100)", epsilon=1.0)
>>> answer = query.run(np.array([30.0, 40.0, 50.0] * 100), rng=random.Random(0))
>>> 35 < answer.value < 45
True
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from bastion.errors import InvalidInput
from bastion.privacy.dp.limits import BOUND_MIN, check_bound, check_epsilon, check_range
from bastion.privacy.dp.mechanisms import (
    SYSTEM_RANDOM,
    RandomSource,
    discrete_laplace,
    laplace_scale,
)

Kind = Literal["count", "sum", "mean", "quantile", "histogram"]
_KINDS = frozenset(("count", "sum", "mean", "quantile", "histogram"))
_GRID = 2**16  # grid steps per bound magnitude: rounding error ≤ |bound| / 2^17 per row
_SPEC = re.compile(r"\s*(count|sum|mean|quantile|histogram)\s*(?:\((.*)\))?\s*")
_MAX_BINS = 4096


@dataclass(frozen=True)
class Query:
    """One statistic over one column, with its bounds and its privacy cost."""

    kind: Kind
    epsilon: float
    column: str = ""
    lower: float = 0.0
    upper: float = 0.0
    quantile: float = 0.5  # quantile only
    bins: int = 64  # histogram and quantile

    def __post_init__(self) -> None:
        # Every number is checked here, so no Query exists that could reach the ledger
        # with a cost or bounds that overflow, refund, or compare false (NaN).
        if self.kind not in _KINDS or not isinstance(self.column, str):
            raise InvalidInput(f"Unknown query: {_FORMS}.")
        object.__setattr__(self, "epsilon", check_epsilon(self.epsilon))
        for name in ("lower", "upper"):
            object.__setattr__(self, name, check_bound(getattr(self, name), name=name))
        if self.kind != "count" and self.lower >= self.upper:
            raise InvalidInput("The lower bound must be below the upper bound.")
        if self.kind != "count" and self.upper - self.lower < BOUND_MIN:
            raise InvalidInput(f"The bounds must be at least {BOUND_MIN:g} apart.")
        quantile = check_range(self.quantile, name="The quantile", low=0.0, high=1.0)
        object.__setattr__(self, "quantile", quantile)
        if isinstance(self.bins, bool) or not isinstance(self.bins, int):
            raise TypeError("bins must be an integer")
        if not 1 <= self.bins <= _MAX_BINS:
            raise InvalidInput(f"Histograms have 1 to {_MAX_BINS} bins.")
        if self.kind in ("sum", "mean"):
            _grid(self.lower, self.upper)  # the arithmetic is exact, or no Query exists
        if self.kind in ("histogram", "quantile"):
            edges = np.linspace(self.lower, self.upper, self.bins + 1)
            if not (np.isfinite(edges).all() and (np.diff(edges) > 0).all()):
                raise InvalidInput("The bounds are too close together for that many bins.")

    @classmethod
    def parse(cls, spec: str, *, epsilon: float) -> Query:
        """A query from its text form.

        The forms: ``count``, ``sum(col, lo, hi)``, ``mean(col, lo, hi)``,
        ``quantile(col, q, lo, hi[, bins])`` and ``histogram(col, lo, hi, bins)``.
        ``epsilon`` is in [1e-6, 10]; bounds are 0 or 1e-6 to 1e15 in magnitude, at
        least 1e-6 apart (:mod:`~.limits`).

        Raises:
            InvalidInput: the spec is not one of these, or a number is out of range.
            TypeError: ``spec`` is not a string or ``epsilon`` not a real number.
        """
        if not isinstance(spec, str):
            raise TypeError("the query is a string")
        check_epsilon(epsilon)  # before the spec: a bad cost is refused whatever is asked
        match = _SPEC.fullmatch(spec)
        if match is None:
            raise InvalidInput(f"Unknown query {spec[:60]!r}: {_FORMS}.")
        kind: Kind = match[1]  # type: ignore[assignment]
        args = [a.strip() for a in match[2].split(",")] if match[2] else []
        try:
            return cls._from_args(kind, args, epsilon)
        except InvalidInput:
            raise
        except (ValueError, IndexError):
            raise InvalidInput(f"Cannot read {spec[:60]!r}: {_FORMS}.") from None

    @classmethod
    def _from_args(cls, kind: Kind, args: list[str], epsilon: float) -> Query:
        expected = {"count": (0, 1), "sum": (3, 3), "mean": (3, 3), "quantile": (4, 5)}
        low, high = expected.get(kind, (4, 4))
        if not low <= len(args) <= high:
            raise ValueError
        if kind == "count":
            return cls(kind, epsilon, column=args[0] if args else "")
        if kind == "quantile":
            bins = int(args[4]) if len(args) == 5 else 64  # noqa: PLR2004
            return cls(kind, epsilon, args[0], float(args[2]), float(args[3]), float(args[1]), bins)
        if kind == "histogram":
            return cls(kind, epsilon, args[0], float(args[1]), float(args[2]), bins=int(args[3]))
        return cls(kind, epsilon, args[0], float(args[1]), float(args[2]))

    def describe(self) -> str:
        """The query as it is written in the ledger and the audit log."""
        if self.kind == "count":
            return f"count({self.column})" if self.column else "count"
        bounds = f"{self.lower:g}, {self.upper:g}"
        if self.kind == "quantile":
            return f"quantile({self.column}, {self.quantile:g}, {bounds}, {self.bins})"
        if self.kind == "histogram":
            return f"histogram({self.column}, {bounds}, {self.bins})"
        return f"{self.kind}({self.column}, {bounds})"

    def run(self, values: NDArray[np.float64], *, rng: RandomSource = SYSTEM_RANDOM) -> Answer:
        """The noisy answer over ``values`` (the column; any array of the row count for count).

        Raises:
            InvalidInput: the column holds values that are not numbers.
        """
        if self.kind == "count":
            return self._answer(float(_noisy(len(values), 1, self.epsilon, rng)), 1 / self.epsilon)
        data = np.clip(np.asarray(values, dtype=np.float64), self.lower, self.upper)
        if np.isnan(data).any():
            raise InvalidInput(f"Column {self.column!r} has values that are not numbers.")
        if self.kind == "sum":
            total, scale = _noisy_sum(data, self.lower, self.upper, self.epsilon, rng)
            return self._answer(total, scale)
        if self.kind == "mean":
            total, _ = _noisy_sum(data, self.lower, self.upper, self.epsilon / 2, rng)
            count = max(1, _noisy(len(data), 1, self.epsilon / 2, rng))
            mean = min(max(total / count, self.lower), self.upper)
            return self._answer(mean, 2 * max(abs(self.lower), abs(self.upper)) / self.epsilon)
        counts = self._histogram(data, rng)
        if self.kind == "histogram":
            return self._answer(tuple(float(c) for c in counts), 1 / self.epsilon)
        return self._answer(self._quantile_of(counts), 1 / self.epsilon)

    def _histogram(self, data: NDArray[np.float64], rng: RandomSource) -> list[int]:
        edges = np.linspace(self.lower, self.upper, self.bins + 1)
        exact, _ = np.histogram(data, bins=edges)
        # One row lands in one bin: the L1 sensitivity of the whole histogram is 1.
        return [max(0, _noisy(int(c), 1, self.epsilon, rng)) for c in exact]

    def _quantile_of(self, counts: list[int]) -> float:
        width = (self.upper - self.lower) / self.bins
        total = sum(counts)
        if total == 0:
            return self.lower + self.quantile * (self.upper - self.lower)
        running = 0
        for index, count in enumerate(counts):
            if running + count >= self.quantile * total and count:
                inside = (self.quantile * total - running) / count
                return self.lower + width * (index + inside)
            running += count
        return self.upper

    def _answer(self, value: float | tuple[float, ...], scale: float) -> Answer:
        return Answer(query=self, value=value, noise_scale=scale)


@dataclass(frozen=True)
class Answer:
    """A noisy answer, with the Laplace scale of the noise added (public, it helps read it)."""

    query: Query
    value: float | tuple[float, ...]
    noise_scale: float


_FORMS = (
    "count, sum(col, lo, hi), mean(col, lo, hi), quantile(col, q, lo, hi[, bins]) or "
    "histogram(col, lo, hi, bins)"
)


def _noisy(value: int, sensitivity: int, epsilon: float, rng: RandomSource) -> int:
    return value + discrete_laplace(laplace_scale(Fraction(sensitivity), epsilon), rng=rng)


def _noisy_sum(
    data: NDArray[np.float64], lower: float, upper: float, epsilon: float, rng: RandomSource
) -> tuple[float, float]:
    step, sensitivity = _grid(lower, upper)
    grid = np.rint(data / step).astype(np.int64)
    # Removing one row changes the grid sum by at most `sensitivity` steps (checked).
    noisy = _noisy(int(grid.sum()), sensitivity, epsilon, rng)
    return noisy * step, max(abs(lower), abs(upper)) / epsilon


def _grid(lower: float, upper: float) -> tuple[float, int]:
    """The grid step of a sum over ``[lower, upper]`` and the most one row moves it, in steps.

    The noise is scaled for the move actually computed (never an assumed 2^16), and the
    step must be a normal float with the bounds exactly ``_GRID`` steps out: a subnormal
    step rounds, so a row would move the sum further than the noise covers.

    Raises:
        InvalidInput: the bounds do not give exact grid arithmetic.
    """
    bound = max(abs(lower), abs(upper))
    step = bound / _GRID
    ends = (np.rint(lower / step), np.rint(upper / step)) if step > 0 else (math.inf,)
    move = max(abs(float(end)) for end in ends)
    if not (
        math.isfinite(step)
        and step >= sys.float_info.min  # normal, not subnormal
        and bound / step == _GRID
        and move == _GRID
    ):
        raise InvalidInput("The bounds are too small for exact arithmetic; use |bound| >= 1e-6.")
    return step, int(move)
