"""An independent check of k-anonymity, l-diversity and t-closeness on a released table.

It shares no code with the anonymizer: it groups the released rows by their
quasi-identifier values as written, counts, and measures each group's sensitive
distribution against the whole released table's (or a reference table's, when given).
So it verifies what an attacker would see, whatever produced the file.

>>> import pyarrow as pa
>>> released = pa.table({"age": ["[20, 29]"] * 3, "disease": ["flu", "cold", "flu"]})
>>> check_anonymity(released, quasi_identifiers=("age",), sensitive="disease", k=3, l=2).holds
True
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from bastion.errors import InvalidInput


@dataclass(frozen=True)
class Violation:
    """One equivalence class that misses a guarantee (identified by its size and rank)."""

    guarantee: str  # "k", "l" or "t"
    size: int
    measured: float


@dataclass(frozen=True)
class CheckReport:
    """What the released table guarantees, measured."""

    rows: int
    classes: int
    smallest_class: int
    lowest_diversity: float  # distinct values, exp(entropy) or the recursive margin, by kind
    largest_distance: float  # earth mover's distance to the reference distribution
    violations: tuple[Violation, ...]

    @property
    def holds(self) -> bool:
        """Whether every class meets every guarantee checked."""
        return not self.violations


def check_anonymity(
    table: pa.Table,
    *,
    quasi_identifiers: Sequence[str],
    k: int,
    sensitive: str | None = None,
    l: int = 1,  # noqa: E741
    diversity: str = "distinct",
    c: float = 3.0,
    t: float | None = None,
    reference: pa.Table | None = None,
) -> CheckReport:
    """Measure ``table`` against k, l and t.

    Raises:
        InvalidInput: a named column is missing.
    """
    names = [*quasi_identifiers, *([sensitive] if sensitive else [])]
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise InvalidInput(f"Columns not in the released table: {', '.join(missing)}.")
    keys = zip(*(table[name].to_pylist() for name in quasi_identifiers), strict=True)
    secrets = table[sensitive].to_pylist() if sensitive else [None] * table.num_rows
    groups: dict[tuple[object, ...], Counter[object]] = defaultdict(Counter)
    for key, secret in zip(keys, secrets, strict=True):
        groups[key][secret] += 1
    base = reference if reference is not None and sensitive else table
    overall = Counter(base[sensitive].to_pylist()) if sensitive else Counter()
    ordered = sensitive is not None and _numeric(table.schema.field(sensitive).type)
    violations: list[Violation] = []
    lowest, farthest = math.inf, 0.0
    for counts in groups.values():
        size = sum(counts.values())
        if size < k:
            violations.append(Violation("k", size, size))
        if sensitive is None:
            continue
        diverse = _diversity(counts, diversity, l, c)
        lowest = min(lowest, diverse)
        if l > 1 and not _meets_l(counts, diversity, l, c):
            violations.append(Violation("l", size, diverse))
        distance = _emd(counts, overall, ordered=ordered)
        farthest = max(farthest, distance)
        if t is not None and distance > t + 1e-9:
            violations.append(Violation("t", size, distance))
    return CheckReport(
        rows=table.num_rows,
        classes=len(groups),
        smallest_class=min((sum(c.values()) for c in groups.values()), default=0),
        lowest_diversity=0.0 if math.isinf(lowest) else lowest,
        largest_distance=farthest,
        violations=tuple(violations),
    )


def _diversity(counts: Counter[object], kind: str, l: int, c: float) -> float:  # noqa: E741
    if kind == "entropy":
        total = sum(counts.values())
        return math.exp(-sum(n / total * math.log(n / total) for n in counts.values()))
    if kind == "recursive":
        ranked = sorted(counts.values(), reverse=True)
        tail = sum(ranked[l - 1 :]) if len(ranked) >= l else 0
        return c * tail - ranked[0]  # positive when (c, l)-diverse
    return float(len(counts))


def _meets_l(counts: Counter[object], kind: str, l: int, c: float) -> bool:  # noqa: E741
    value = _diversity(counts, kind, l, c)
    if kind == "recursive":
        return len(counts) >= l and value > 0
    return value >= l - 1e-9


def _emd(counts: Counter[object], overall: Counter[object], *, ordered: bool) -> float:
    size, whole = sum(counts.values()), sum(overall.values())
    levels = sorted(overall, key=lambda v: (v is None, v)) if ordered else list(overall)
    gaps = [counts.get(v, 0) / size - overall[v] / whole for v in levels]
    if ordered and len(levels) > 1:
        running, total = 0.0, 0.0
        for gap in gaps:
            running += gap
            total += abs(running)
        return total / (len(levels) - 1)
    return sum(abs(g) for g in gaps) / 2


def _numeric(kind: pa.DataType) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind))
