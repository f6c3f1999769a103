"""Mondrian multidimensional partitioning for k-anonymity, l-diversity and t-closeness.

LeFevre, DeWitt and Ramakrishnan's Mondrian (ICDE 2006) splits the table top-down on the
quasi-identifier with the widest normalized range until no split leaves every part
k-anonymous (and l-diverse, and t-close). Strict mode cuts at the median value (equal
values stay together, classes never overlap); relaxed mode cuts at the median row (ties
may be split, classes are tighter). Categorical columns split along their hierarchy.
A suppression budget lets a split drop a part smaller than k (outliers) instead of
giving up, up to that share of the rows. Output rows are shuffled, so row order says
nothing about the partitioning.

Every column is encoded once as integers; each partition is then a NumPy index array,
so the work per partition is a few vectorized passes over its rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from bastion.errors import InvalidInput, NotFittedError
from bastion.privacy.anonymity.hierarchy import Hierarchy

Ints = NDArray[np.int64]
Diversity = Literal["distinct", "entropy", "recursive"]


@dataclass(frozen=True)
class Requirements:
    """The guarantees every equivalence class must meet."""

    k: int
    l: int = 1  # noqa: E741 - the name of the guarantee
    diversity: Diversity = "distinct"
    c: float = 3.0  # recursive (c, l)-diversity only
    t: float | None = None  # t-closeness (earth mover's distance) when set

    def __post_init__(self) -> None:
        if self.k < 1 or self.l < 1:
            raise InvalidInput("k and l are at least 1.")
        if self.t is not None and not 0 < self.t <= 1:
            raise InvalidInput("t is in (0, 1].")
        if self.c <= 0:
            raise InvalidInput("c is positive.")


@dataclass(frozen=True)
class Columns:
    """What each column is: quasi-identifiers, the sensitive attribute, others to keep."""

    quasi_identifiers: tuple[str, ...]
    sensitive: str | None = None
    keep: tuple[str, ...] = ()  # released unchanged; every other column is dropped
    hierarchies: Mapping[str, Hierarchy] = field(default_factory=dict)


@dataclass(frozen=True)
class AnonymityReport:
    """Utility and shape of a result."""

    rows: int
    classes: int
    suppressed: int
    min_class: int
    mean_class: float
    max_class: int
    ncp: float  # normalized certainty penalty: 0 = exact values, 1 = everything generalized
    discernibility: int  # sum of squared class sizes, plus rows x suppressed rows


class Mondrian:
    """k-anonymity (with l-diversity and t-closeness) by Mondrian partitioning.

    Args:
        requirements: k, l and t.
        columns: the roles of the columns.
        mode: ``strict`` (median value) or ``relaxed`` (median row).
        suppression: the share of rows that may be dropped as outliers (0 to 0.1).
        random_state: seeds the output shuffle (the default draws a fresh seed).
    """

    def __init__(
        self,
        *,
        requirements: Requirements,
        columns: Columns,
        mode: Literal["strict", "relaxed"] = "strict",
        suppression: float = 0.0,
        random_state: int | None = None,
    ) -> None:
        if mode not in ("strict", "relaxed"):
            raise InvalidInput("mode is strict or relaxed.")
        if not 0 <= suppression <= 0.1:  # noqa: PLR2004
            raise InvalidInput("The suppression budget is a share of rows in [0, 0.1].")
        if (requirements.l > 1 or requirements.t is not None) and columns.sensitive is None:
            raise InvalidInput("l-diversity and t-closeness need a sensitive column.")
        self.requirements = requirements
        self.columns = columns
        self.mode = mode
        self.suppression = suppression
        self.random_state = random_state

    def fit(self, table: pa.Table) -> Mondrian:
        """Partition ``table``; sets ``classes_``, ``suppressed_`` and ``report_``.

        Raises:
            InvalidInput: a missing column, nulls in a quasi-identifier, or a table that
                cannot meet the requirements even as one class.
        """
        self._encode(table)
        if not self._meets(np.arange(table.num_rows)):
            raise InvalidInput(
                "The whole table does not meet the requirements (too few rows, or too "
                "little diversity in the sensitive column): no release is possible."
            )
        budget = math.floor(self.suppression * table.num_rows)
        classes: list[Ints] = []
        suppressed: list[Ints] = []
        stack = [np.arange(table.num_rows)]
        while stack:
            rows = stack.pop()
            cut = self._split(rows, budget)
            if cut is None:
                classes.append(rows)
                continue
            parts, dropped = cut
            budget -= len(dropped)
            if len(dropped):
                suppressed.append(dropped)
            stack.extend(parts)
        self.classes_ = classes
        self._order = (np.concatenate(classes), [len(rows) for rows in classes])
        self._released: dict[int, tuple[list[str], NDArray[np.float64]]] = {}
        self.suppressed_ = np.concatenate(suppressed) if suppressed else np.zeros(0, np.int64)
        self.report_ = self._report(table.num_rows)
        return self

    def transform(self, table: pa.Table) -> pa.Table:
        """The released table: generalized quasi-identifiers, shuffled rows.

        Raises:
            NotFittedError: ``fit`` has not run.
            InvalidInput: ``table`` is not the table ``fit`` saw.
        """
        if not hasattr(self, "classes_"):
            raise NotFittedError()
        if table.num_rows != self._rows:
            raise InvalidInput("transform() takes the table fit() partitioned.")
        order = np.concatenate(self.classes_)
        sizes = np.array([len(rows) for rows in self.classes_])
        shuffle = np.random.default_rng(self.random_state).permutation(len(order))
        out: dict[str, pa.Array] = {}
        for name in table.column_names:
            if name in self.columns.quasi_identifiers:
                per_class, _ = self._generalized(self.columns.quasi_identifiers.index(name))
                labels = np.repeat(np.array(per_class, dtype=object), sizes)
                out[name] = pa.array(labels[shuffle], pa.string())
            elif name == self.columns.sensitive or name in self.columns.keep:
                out[name] = table[name].take(pa.array(order[shuffle]))
        return pa.table(out)

    def fit_transform(self, table: pa.Table) -> pa.Table:
        """``fit`` then ``transform``."""
        return self.fit(table).transform(table)

    # -- encoding ---------------------------------------------------------------------

    def _encode(self, table: pa.Table) -> None:
        names = self.columns.quasi_identifiers
        wanted = [*names, *([self.columns.sensitive] if self.columns.sensitive else [])]
        missing = [name for name in wanted if name not in table.column_names]
        if missing or not names:
            raise InvalidInput(f"Columns not in the table: {', '.join(missing) or '(no QIs)'}.")
        self._rows = table.num_rows
        codes = []
        self._dims: list[_Numeric | _Categorical] = []
        for name in names:
            column = table[name]
            if column.null_count:
                raise InvalidInput(f"Quasi-identifier {name!r} has empty values.")
            if _is_number(column.type):
                values, code = np.unique(column.to_numpy(), return_inverse=True)
                self._dims.append(_Numeric(values.astype(np.float64)))
            else:
                encoded = pc.dictionary_encode(pc.cast(column, pa.string())).combine_chunks()
                distinct = [str(v) for v in encoded.dictionary.to_pylist()]
                tree = self.columns.hierarchies.get(name) or Hierarchy.flat(
                    _by_frequency(distinct, encoded.indices)
                )
                code = tree.codes(distinct)[encoded.indices.to_numpy()]
                self._dims.append(_Categorical(tree, flat=name not in self.columns.hierarchies))
            codes.append(code.astype(np.int64))
        self._x = np.column_stack(codes)
        self._sensitive: Ints | None = None
        if self.columns.sensitive is not None:
            column = table[self.columns.sensitive]
            values = column.to_numpy(zero_copy_only=False)
            self._ordered = _is_number(column.type)
            kinds, code = np.unique(
                values if self._ordered else values.astype(str), return_inverse=True
            )
            self._sensitive = code.astype(np.int64)
            self._levels = len(kinds)
            self._global = np.bincount(code, minlength=self._levels) / len(code)

    # -- partitioning ------------------------------------------------------------------

    def _split(self, rows: Ints, budget: int) -> tuple[list[Ints], Ints] | None:
        if len(rows) < 2 * self.requirements.k and (
            budget == 0 or len(rows) <= self.requirements.k
        ):
            return None  # no two parts of k rows fit, and nothing may be dropped
        part = self._x[rows]
        low, high = part.min(axis=0), part.max(axis=0)
        spans = [d.span(int(low[i]), int(high[i])) for i, d in enumerate(self._dims)]
        for dim in sorted(range(len(spans)), key=lambda d: -spans[d]):
            if spans[dim] == 0:
                return None
            parts = self._cut(dim, rows, part[:, dim], int(low[dim]), int(high[dim]))
            verdicts = [self._meets(p) for p in parts]
            good = [p for p, ok in zip(parts, verdicts, strict=True) if ok]
            bad = [p for p, ok in zip(parts, verdicts, strict=True) if not ok]
            dropped = sum(len(p) for p in bad)
            if not good or (len(good) == 1 and not bad):
                continue
            if bad and (dropped > budget or any(len(p) >= self.requirements.k for p in bad)):
                continue  # only parts too small to stand alone may be suppressed
            return good, (np.concatenate(bad) if bad else np.zeros(0, np.int64))
        return None

    def _cut(self, dim: int, rows: Ints, values: Ints, low: int, high: int) -> list[Ints]:
        axis = self._dims[dim]
        if isinstance(axis, _Categorical) and not axis.flat:
            tree = axis.tree
            node = tree.nodes[tree.common(low, high)]
            bounds = np.array([tree.nodes[child].low for child in node.children])
            which = np.searchsorted(bounds, values, side="right") - 1
            present = np.flatnonzero(np.bincount(which, minlength=len(bounds)))
            return [rows[which == j] for j in present]
        # Numbers, and categories without a hierarchy (released as the set of values a
        # class holds, so any cut is allowed), split at the median. Relaxed mode may put
        # equal numbers on both sides; equal categories stay together (split, both sides
        # would hold the value and reveal more, not less).
        if self.mode == "relaxed" and isinstance(axis, _Numeric):
            order = np.argsort(values, kind="stable")
            half = len(rows) // 2
            return [rows[order[:half]], rows[order[half:]]]
        median = int(np.partition(values, len(values) // 2)[len(values) // 2])
        left = values <= median
        if left.all():
            left = values < median
        return [rows[left], rows[~left]]

    def _meets(self, rows: Ints) -> bool:
        need = self.requirements
        if len(rows) < need.k:
            return False
        if self._sensitive is None or (need.l == 1 and need.t is None):
            return True
        counts = np.bincount(self._sensitive[rows], minlength=self._levels)
        if need.l > 1 and not _diverse(counts, need):
            return False
        return need.t is None or self._distance(counts / len(rows)) <= need.t + 1e-12

    def _distance(self, shares: NDArray[np.float64]) -> float:
        gap = shares - self._global
        if self._ordered and self._levels > 1:
            return float(np.abs(np.cumsum(gap)).sum() / (self._levels - 1))
        return float(np.abs(gap).sum() / 2)

    # -- measuring and labelling --------------------------------------------------------

    def _generalized(self, dim: int) -> tuple[list[str], NDArray[np.float64]]:
        """Each class's released value on ``dim`` and its normalized width (for NCP).

        Without a user hierarchy a category is released as the set of values the class
        holds (``a|c``), the tightest truthful answer; otherwise as a hierarchy node.
        """
        if dim not in self._released:
            self._released[dim] = self._generalize(dim)
        return self._released[dim]

    def _generalize(self, dim: int) -> tuple[list[str], NDArray[np.float64]]:
        order, sizes = self._order
        starts = np.cumsum([0, *sizes[:-1]])
        codes = self._x[order, dim]
        axis = self._dims[dim]
        if isinstance(axis, _Categorical) and axis.flat:
            width = len(axis.tree.leaves)
            owner = np.repeat(np.arange(len(sizes)), sizes)
            held_by, held = np.divmod(np.unique(owner * width + codes), width)
            counts = np.bincount(held_by, minlength=len(sizes))
            names: dict[bytes, str] = {}  # many classes hold the same set of values
            labels = []
            for values in np.split(held, np.cumsum(counts)[:-1]):
                key = values.tobytes()
                if key not in names:
                    names[key] = "|".join(axis.tree.leaves[c] for c in values.tolist())
                labels.append(names[key])
            return labels, (counts - 1) / max(1, width - 1)
        low = np.minimum.reduceat(codes, starts).tolist()
        high = np.maximum.reduceat(codes, starts).tolist()
        bounds = list(zip(low, high, strict=True))
        return [axis.label(a, b) for a, b in bounds], np.array([axis.span(a, b) for a, b in bounds])

    def _report(self, rows: int) -> AnonymityReport:
        sizes = np.array([len(c) for c in self.classes_])
        spans = np.array([self._generalized(dim)[1] for dim in range(len(self._dims))])
        penalty = float((spans.mean(axis=0) * sizes).sum())
        suppressed = len(self.suppressed_)
        return AnonymityReport(
            rows=rows,
            classes=len(sizes),
            suppressed=suppressed,
            min_class=int(sizes.min()),
            mean_class=float(sizes.mean()),
            max_class=int(sizes.max()),
            ncp=(penalty + suppressed) / rows,
            discernibility=int((sizes.astype(np.int64) ** 2).sum()) + suppressed * rows,
        )


def _diverse(counts: Ints, need: Requirements) -> bool:
    present = counts[counts > 0]
    if need.diversity == "distinct":
        return len(present) >= need.l
    if need.diversity == "entropy":
        shares = present / present.sum()
        return float(-(shares * np.log(shares)).sum()) >= math.log(need.l) - 1e-12
    ordered = np.sort(present)[::-1]
    return len(ordered) >= need.l and ordered[0] < need.c * ordered[need.l - 1 :].sum()


def _by_frequency(distinct: list[str], indices: pa.Array) -> list[str]:
    """Values from the most to the least frequent.

    A median cut over this order splits common values from rare ones, so rare values
    share classes with each other instead of widening the classes of common ones (NCP
    0.078 against 0.091 for alphabetical order on the synthetic Adult table).
    """
    counts = np.bincount(indices.to_numpy(), minlength=len(distinct))
    return [distinct[i] for i in np.argsort(-counts, kind="stable")]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _is_number(kind: pa.DataType) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind))


@dataclass(frozen=True)
class _Numeric:
    """A numeric quasi-identifier: codes index its sorted distinct values."""

    values: NDArray[np.float64]

    def span(self, low: int, high: int) -> float:
        whole = self.values[-1] - self.values[0]
        return float((self.values[high] - self.values[low]) / whole) if whole else 0.0

    def label(self, low: int, high: int) -> str:
        if low == high:
            return _number(self.values[low])
        return f"[{_number(self.values[low])}, {_number(self.values[high])}]"


@dataclass(frozen=True)
class _Categorical:
    """A categorical quasi-identifier: codes are leaves of its hierarchy."""

    tree: Hierarchy
    flat: bool  # made by Bastion from the values, not given by the user

    def span(self, low: int, high: int) -> float:
        total = len(self.tree.leaves) - 1
        if not total:
            return 0.0
        if self.flat:  # values in sorted order: the range of codes bounds the values held
            return (high - low) / total
        return (self.tree.width(self.tree.common(low, high)) - 1) / total

    def label(self, low: int, high: int) -> str:
        return self.tree.label(self.tree.common(low, high))
