"""The RDP accountant agrees with Opacus's, and finds the noise a target needs."""

import pytest
from opacus.accountants import RDPAccountant

from bastion.privacy.dp.accountant import epsilon, noise_for


@pytest.mark.parametrize(
    ("rate", "sigma", "steps"),
    [(0.01, 1.1, 1000), (256 / 60000, 1.0, 2000), (0.05, 0.8, 300), (0.1, 2.0, 50), (1.0, 5.0, 10)],
)
def test_epsilon_matches_opacus(rate, sigma, steps):
    """Integer and fractional orders, small and large sampling rates: the same ε as Opacus."""
    peer = RDPAccountant()
    peer.history = [(sigma, rate, steps)]
    ours = epsilon(sample_rate=rate, noise_multiplier=sigma, steps=steps, delta=1e-5)
    assert ours == pytest.approx(peer.get_epsilon(1e-5), rel=1e-9)


def test_noise_for_a_target():
    """The noise found meets the target and is within 0.1 % of the least that does."""
    sigma = noise_for(target_epsilon=3.0, sample_rate=0.05, steps=600, delta=1e-5)
    assert epsilon(sample_rate=0.05, noise_multiplier=sigma, steps=600, delta=1e-5) <= 3.0
    assert epsilon(sample_rate=0.05, noise_multiplier=sigma * 0.99, steps=600, delta=1e-5) > 3.0
    assert epsilon(sample_rate=0.05, noise_multiplier=1.0, steps=0, delta=1e-5) == 0.0
    with pytest.raises(ValueError, match="delta"):
        epsilon(sample_rate=0.05, noise_multiplier=1.0, steps=10, delta=0)
    with pytest.raises(ValueError, match="more noise"):
        noise_for(target_epsilon=1e-6, sample_rate=1.0, steps=10**6, delta=1e-5)


@pytest.mark.parametrize(
    "bad",
    [
        {"sample_rate": float("nan")},
        {"sample_rate": 1.5},
        {"sample_rate": -0.1},
        {"noise_multiplier": float("nan")},
        {"noise_multiplier": -1.0},
        {"noise_multiplier": float("inf")},
        {"steps": -1},
        {"steps": 1.5},
        {"delta": float("nan")},
        {"delta": 0.0},
    ],
)
def test_accountant_arguments_are_range_checked(bad):
    """NaN passes every '<': the accountant refuses it (and other impossible values) by name."""
    arguments = {"sample_rate": 0.01, "noise_multiplier": 1.0, "steps": 10, "delta": 1e-5}
    with pytest.raises(ValueError, match=r"rate|noise|steps|delta"):
        epsilon(**(arguments | bad))


@pytest.mark.parametrize("target", [0.0, -1.0, float("nan"), float("inf")])
def test_noise_targets_are_finite_and_positive(target):
    """A target ε of 0, below, NaN or infinite is refused before the search."""
    with pytest.raises(ValueError, match="target"):
        noise_for(target_epsilon=target, sample_rate=0.01, steps=10, delta=1e-5)
