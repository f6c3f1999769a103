"""Exact samplers: their output follows the analytic distribution (fixed seeds)."""

import math
import random
from fractions import Fraction

import pytest
from scipy import stats

from bastion.privacy.dp import discrete_gaussian, discrete_laplace, laplace_scale
from bastion.privacy.dp.mechanisms import _bernoulli_exp

N = 12_000


def chi_square(samples, weight, support):
    """p-value of the samples against pmf ∝ weight(z) on |z| <= support (tails lumped)."""
    norm = sum(weight(z) for z in range(-10 * support, 10 * support + 1))
    cells = list(range(-support, support + 1))
    expected = [N * weight(z) / norm for z in cells]
    expected.append(N - sum(expected))
    observed = [sum(1 for s in samples if s == z) for z in cells]
    observed.append(N - sum(observed))
    return stats.chisquare(observed, expected).pvalue


def test_discrete_laplace_has_the_stated_distribution():
    """Scale 2: frequencies match exp(-|z|/2) (chi-square) and the variance 2a/(1-a)²."""
    rng = random.Random(20261128)
    samples = [discrete_laplace(Fraction(2), rng=rng) for _ in range(N)]
    assert chi_square(samples, lambda z: math.exp(-abs(z) / 2), 8) > 0.001
    a = math.exp(-1 / 2)
    variance = sum(s * s for s in samples) / N
    assert variance == pytest.approx(2 * a / (1 - a) ** 2, rel=0.05)
    assert abs(sum(samples) / N) < 0.1  # symmetric


def test_discrete_gaussian_has_the_stated_distribution():
    """σ = 1.5: frequencies match exp(-z²/(2σ²))."""
    rng = random.Random(7)
    sigma = Fraction(3, 2)
    samples = [discrete_gaussian(sigma, rng=rng) for _ in range(N)]
    assert chi_square(samples, lambda z: math.exp(-(z * z) / (2 * 2.25)), 5) > 0.001


def test_bernoulli_exp_is_exact_in_mean():
    """Bern(exp(-gamma)) for gamma below and above 1."""
    rng = random.Random(3)
    for gamma in (Fraction(1, 3), Fraction(5, 2)):
        mean = sum(_bernoulli_exp(gamma, rng) for _ in range(N)) / N
        assert mean == pytest.approx(math.exp(-gamma), abs=0.012)


def test_scales_round_up_and_bad_arguments_are_refused():
    """The rational scale is never below Δ/ε; zero or negative parameters are refused."""
    for epsilon in (0.1, 1 / 3, 0.7, 2.0):
        assert laplace_scale(Fraction(1), epsilon) >= Fraction(1) / Fraction(epsilon)
        assert laplace_scale(Fraction(1), epsilon) - Fraction(1) / Fraction(epsilon) < 1e-8
    with pytest.raises(ValueError, match="epsilon"):
        laplace_scale(Fraction(1), 0.0)
    with pytest.raises(ValueError, match="epsilon"):
        laplace_scale(Fraction(1), math.inf)
    with pytest.raises(ValueError, match="scale"):
        discrete_laplace(Fraction(0))
    with pytest.raises(ValueError, match="sigma"):
        discrete_gaussian(Fraction(-1))


def test_sensitivities_must_be_positive():
    """A zero or negative sensitivity would give a zero or negative scale: refused."""
    for sensitivity in (Fraction(0), Fraction(-1)):
        with pytest.raises(ValueError, match="sensitivity"):
            laplace_scale(sensitivity, 1.0)
