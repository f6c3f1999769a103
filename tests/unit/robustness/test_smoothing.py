import pytest
import torch
from scipy import stats

from bastion.robustness import SmoothedClassifier, TrainingPlan, train
from bastion.robustness.smoothing import ABSTAIN


class Constant(torch.nn.Module):
    def __init__(self, label):
        super().__init__()
        self.label = label

    def forward(self, x):
        return torch.nn.functional.one_hot(torch.full((len(x),), self.label), 10).float()


def test_a_constant_model_gets_the_clopper_pearson_radius():
    """All n votes for one class: radius = σ·Φ⁻¹(α^(1/n)), the exact one-sided bound."""
    smoothed = SmoothedClassifier(Constant(3), sigma=0.5, classes=10)
    certificate = smoothed.certify(
        torch.zeros(4, 8), n0=10, n=200, alpha=0.01, generator=torch.Generator()
    )
    expected = 0.5 * stats.norm.ppf(0.01 ** (1 / 200))
    assert certificate.labels.tolist() == [3] * 4
    assert torch.allclose(
        certificate.radii, torch.full((4,), expected, dtype=certificate.radii.dtype)
    )


def test_a_coin_flip_model_abstains():
    """When no class has a majority under noise, the smoothed classifier abstains."""

    class Coin(torch.nn.Module):
        def forward(self, x):
            return torch.stack([x[:, 0], -x[:, 0]], dim=1)

    smoothed = SmoothedClassifier(Coin(), sigma=1.0, classes=2)
    certificate = smoothed.certify(
        torch.zeros(3, 2), n=500, generator=torch.Generator().manual_seed(0)
    )
    assert certificate.labels.tolist() == [ABSTAIN] * 3 and float(certificate.radii.sum()) == 0


def test_certificates_hold_against_pgd_within_the_radius(digit_set):
    """An L2 attack inside a certified radius does not change the smoothed prediction."""
    from bastion.robustness import PGD, Threat

    sigma = 0.25
    model = train(digit_set, TrainingPlan(defense="noise", noise_sigma=sigma, epochs=10)).model
    smoothed = SmoothedClassifier(model, sigma, 10)
    x, y = digit_set.x_test[:20], digit_set.y_test[:20]
    certificate = smoothed.certify(x, n=500, generator=torch.Generator().manual_seed(0))
    assert certificate.accuracy_at(0.0, y) > 0.8
    chosen = (certificate.labels == y) & (certificate.radii > 0.1)
    attack = PGD(Threat("l2", 0.1, digit_set.domain), steps=10)
    moved = attack.run(
        model, x[chosen], y[chosen], generator=torch.Generator().manual_seed(1)
    ).x_adv
    again = smoothed.certify(moved, n=500, generator=torch.Generator().manual_seed(2))
    assert (again.labels == y[chosen]).float().mean() > 0.9


def test_bad_parameters_are_refused():
    """σ must be positive; α in (0, 1)."""
    with pytest.raises(ValueError, match="sigma"):
        SmoothedClassifier(Constant(0), sigma=0, classes=10)
    with pytest.raises(ValueError, match="alpha"):
        SmoothedClassifier(Constant(0), sigma=1, classes=10).certify(
            torch.zeros(1, 2), alpha=1.5, generator=torch.Generator()
        )
