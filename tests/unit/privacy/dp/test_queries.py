"""Bounded DP queries: parsing, clamping, accuracy and the noise scale they claim."""

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
