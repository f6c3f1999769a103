"""Bounded DP queries: parsing, clamping, accuracy and the noise scale they claim."""

import math
import random
import statistics

import numpy as np
import pytest

from bastion.errors import InvalidInput
from bastion.privacy.dp import Query

AGES = np.array([23.0, 35.0, 41.0, 58.0, 62.0, 71.0] * 500)


@pytest.mark.parametrize(
    ("spec", "described"),
    [
        ("count", "count"),
        ("sum(age, 0, 100)", "sum(age, 0, 100)"),
        (" mean( age ,0,100 ) ", "mean(age, 0, 100)"),
        ("quantile(age, 0.5, 0, 100)", "quantile(age, 0.5, 0, 100, 64)"),
        ("quantile(age, 0.9, 0, 100, 200)", "quantile(age, 0.9, 0, 100, 200)"),
        ("histogram(age, 0, 100, 10)", "histogram(age, 0, 100, 10)"),
    ],
)
def test_parse_and_describe(spec, described):
    """Each text form parses and is written back canonically (for the ledger and audit)."""
    assert Query.parse(spec, epsilon=0.5).describe() == described


@pytest.mark.parametrize(
    ("spec", "epsilon", "message"),
    [
        ("median(age)", 1.0, "Unknown query"),
        ("sum(age)", 1.0, "Cannot read"),
        ("sum(age, 10, 0)", 1.0, "lower bound"),
        ("sum(age, 0, inf)", 1.0, "finite"),
        ("quantile(age, 2, 0, 1)", 1.0, "quantile"),
        ("histogram(age, 0, 1, 0)", 1.0, "bins"),
        ("count", 0.0, "epsilon"),
        ("count", float("nan"), "epsilon"),
        ("count", 50.0, "epsilon"),
    ],
)
def test_bad_queries_are_refused(spec, epsilon, message):
    """Unknown forms, missing or reversed bounds and bad ε are refused before any noise."""
    with pytest.raises(InvalidInput, match=message):
        Query.parse(spec, epsilon=epsilon)


def test_answers_are_close_at_a_generous_epsilon():
    """With ε = 2 on 3000 rows every statistic lands near the truth."""
    rng = random.Random(5)
    ask = lambda spec: Query.parse(spec, epsilon=2.0).run(AGES, rng=rng).value  # noqa: E731
    assert ask("count") == pytest.approx(3000, abs=10)
    assert ask("sum(age, 0, 100)") == pytest.approx(AGES.sum(), abs=400)
    assert ask("mean(age, 0, 100)") == pytest.approx(AGES.mean(), abs=1)
    assert ask("quantile(age, 0.5, 0, 100, 100)") == pytest.approx(49.5, abs=9)
    histogram = ask("histogram(age, 0, 100, 10)")
    assert len(histogram) == 10 and histogram[2] == pytest.approx(500, abs=10)
    assert min(histogram) >= 0


def test_values_are_clamped_to_the_bounds():
    """An outlier cannot move a sum by more than the bound (its sensitivity)."""
    rng = random.Random(1)
    with_outlier = np.append(AGES, 1e12)
    answer = Query.parse("sum(age, 0, 100)", epsilon=5.0).run(with_outlier, rng=rng)
    assert answer.value == pytest.approx(AGES.sum() + 100, abs=100)
    with pytest.raises(InvalidInput, match="not numbers"):
        Query.parse("sum(age, 0, 100)", epsilon=1.0).run(np.array([1.0, np.nan]))


def test_the_noise_has_the_claimed_scale():
    """Repeated sums have the standard deviation √2·(bound/ε) of a Laplace of that scale."""
    rng = random.Random(9)
    query = Query.parse("sum(age, -50, 100)", epsilon=0.5)
    answers = [query.run(AGES, rng=rng).value for _ in range(1500)]
    assert query.run(AGES, rng=rng).noise_scale == 200
    assert statistics.pstdev(answers) == pytest.approx(2**0.5 * 200, rel=0.08)
    assert statistics.fmean(answers) == pytest.approx(AGES.sum(), abs=25)


# Numbers an attacker can send for ε: tiny, zero, negative, NaN, infinite, huge, a huge
# int, and values of the wrong type (a bool is not a number here).
TINY_EPSILON = 5e-324
BAD_EPSILONS = [
    TINY_EPSILON,
    1e-300,
    9.99e-7,
    0.0,
    -0.0,
    -1.0,
    float("nan"),
    float("inf"),
    float("-inf"),
    1e308,
    10.000001,
    10**400,
]
WRONG_TYPES = ["1", True, False, None, [1.0], {"e": 1}, b"1"]


@pytest.mark.parametrize("epsilon", BAD_EPSILONS)
@pytest.mark.parametrize("spec", ["count", "sum(age, 0, 100)", "mean(age, 0, 100)"])
def test_out_of_range_epsilons_are_refused_before_any_query_exists(spec, epsilon):
    """ε outside [1e-6, 10] (5e-324 overflowed into a 500 after charging) is InvalidInput."""
    with pytest.raises(InvalidInput, match="epsilon"):
        Query.parse(spec, epsilon=epsilon)
    with pytest.raises(InvalidInput, match="epsilon"):
        Query("count", epsilon)


@pytest.mark.parametrize("epsilon", WRONG_TYPES)
def test_epsilons_that_are_not_numbers_are_type_errors(epsilon):
    """A string, a bool, None or a list is a TypeError, never a cost of 1 (True)."""
    with pytest.raises(TypeError):
        Query.parse("count", epsilon=epsilon)
    with pytest.raises(TypeError):
        Query("count", epsilon)


@pytest.mark.parametrize(
    "spec",
    [
        "sum(age, -1e308, 1e308)",
        "mean(age, 0, 1e16)",
        "histogram(age, -1e300, 0, 4)",
        "quantile(age, 0.5, 0, 1e200)",
        "sum(age, nan, 1)",
        "sum(age, 0, -inf)",
        "quantile(age, nan, 0, 1)",
        "quantile(age, -0.1, 0, 1)",
        "histogram(age, 0, 1, 5000)",
        "histogram(age, 0, 1, -1)",
        f"histogram(age, 0, 1, {'9' * 5000})",
        f"sum(age, 0, {'9' * 400})",
    ],
)
def test_bounds_and_other_numbers_are_range_checked(spec):
    """Bounds beyond ±1e15, NaN quantiles and absurd bin counts are refused, not computed."""
    with pytest.raises(InvalidInput):
        Query.parse(spec, epsilon=1.0)


def test_every_accepted_query_gives_a_finite_answer_at_the_extremes():
    """At ε = 1e-6 and bounds ±1e15 every kind still answers finite numbers (no overflow)."""
    rng = random.Random(3)
    for spec in (
        "count",
        "sum(age, -1e15, 1e15)",
        "mean(age, -1e15, 1e15)",
        "quantile(age, 0.5, -1e15, 1e15, 4096)",
        "histogram(age, -1e15, 1e15, 16)",
    ):
        for epsilon in (1e-6, 10, 10.0):
            answer = Query.parse(spec, epsilon=epsilon).run(AGES, rng=rng)
            values = answer.value if isinstance(answer.value, tuple) else (answer.value,)
            assert all(math.isfinite(v) for v in (*values, answer.noise_scale)), spec


def test_wrong_types_for_the_other_fields_are_refused():
    """A bool or float bin count, a non-string column or kind: refused at construction."""
    with pytest.raises(TypeError):
        Query("histogram", 1.0, "age", 0.0, 1.0, bins=True)
    with pytest.raises(TypeError):
        Query("histogram", 1.0, "age", 0.0, 1.0, bins=4.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Query("sum", 1.0, "age", "0", 1.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        Query("median", 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Query.parse(b"count", epsilon=1.0)  # type: ignore[arg-type]


TINY_BOUNDS = [
    "sum(age, 0, 4.8245e-319)",
    "sum(age, 0, 5e-324)",
    "sum(age, 0, 1e-320)",
    "mean(age, -1e-310, 1e-310)",
    "sum(age, 0, 1e-7)",
    "mean(age, 0, 1e-7)",
    "sum(age, -1e-320, 1)",
    "histogram(age, 0, 1e-7, 4)",
    "quantile(age, 0.5, 0, 4.8245e-319)",
    "sum(age, 1, 1)",
    "mean(age, 5e-324, 5e-324)",
    "histogram(age, 1e15, 1e15, 4)",
    "sum(age, 1, 1.0000000001)",
    "histogram(age, 1e15, 1000000000000000.1, 4096)",
]


@pytest.mark.parametrize("spec", TINY_BOUNDS)
def test_subnormal_tiny_and_equal_bounds_are_refused(spec):
    """Subnormal or tiny bounds (the grid rounds: more privacy loss than charged) are refused."""
    with pytest.raises(InvalidInput):
        Query.parse(spec, epsilon=1.0)


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        (0.0, 1e-6),
        (-1e-6, 0.0),
        (-1e-6, 1e-6),
        (0.0, 1.0),
        (-3.7, 1e-6),
        (0.0, 100.0),
        (-1e15, 1e15),
        (1e-6, 2e-6),
        (0.0, 1e15),
        (-123.456, -0.001),
    ],
)
def test_accepted_bounds_scale_the_noise_for_the_real_per_row_move(lower, upper):
    """For accepted bounds one row moves the grid sum by at most the noise's sensitivity."""
    from fractions import Fraction

    from bastion.privacy.dp.queries import _GRID, _grid

    query = Query("sum", 1.0, "age", lower, upper)
    step, sensitivity = _grid(query.lower, query.upper)
    bound = max(abs(lower), abs(upper))
    step_again = bound / _GRID  # what the mechanism computes, independently here
    assert step == step_again and math.isfinite(step) and step >= 2.2250738585072014e-308
    move = max(abs(int(np.rint(end / step))) for end in (lower, upper))
    # Exact: the per-row move in steps, times the step, is the bound (no rounding).
    assert Fraction(move) * Fraction(step) == Fraction(bound)
    assert move <= sensitivity == _GRID
    # The noise scale is sensitivity / ε in steps = bound / ε in value: loss ≤ ε charged.
    answer = query.run(np.array([lower, upper, (lower + upper) / 2]), rng=random.Random(1))
    assert answer.noise_scale == pytest.approx(float(Fraction(move) * Fraction(step)) / 1.0)
