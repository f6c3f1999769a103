"""DP-SGD: clipping per example, the guarantee reached, and a useful model."""

import pytest
import torch

from bastion.errors import InvalidInput
from bastion.privacy.dp.sgd import DpSgdPlan, _ClippedSums, train_private
from bastion.robustness.data import load_dataset
from bastion.robustness.networks import Architecture


def test_each_example_is_clipped_before_the_sum():
    """The vectorized clipped sum equals clipping each example's own gradient by hand."""
    torch.manual_seed(0)
    model = Architecture(5, (7,), 3).build()
    x, y = torch.randn(6, 5) * 10, torch.randint(0, 3, (6,))
    params = {name: p.detach() for name, p in model.named_parameters()}
    sums = _ClippedSums(model)(params, x, y, clip=0.5)
    expected = {name: torch.zeros_like(p) for name, p in params.items()}
    for i in range(6):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters()))
        for name, p in model.named_parameters():
            expected[name] += p.grad * min(1.0, 0.5 / float(norm))
    for name, value in expected.items():
        assert torch.allclose(sums[name], value, atol=1e-5), name


def test_digits_learn_within_the_budget():
    """ε = 8 on digits: the claim meets the target and the model is far better than chance."""
    data = load_dataset("digits")
    torch.manual_seed(0)
    model = Architecture(data.features, (64,), data.classes).build()
    plan = DpSgdPlan(epsilon=8.0, epochs=8, batch_size=128, learning_rate=1.0)
    claim = train_private(
        model, data.x_train, data.y_train, plan=plan, generator=torch.Generator().manual_seed(0)
    )
    accuracy = float((model(data.x_test).argmax(1) == data.y_test).float().mean())
    assert 7.6 < claim.epsilon <= 8.0  # the noise search uses integer orders: a little slack
    assert claim.delta == pytest.approx(1 / (10 * len(data.x_train)))
    assert claim.steps == 8 * round(len(data.x_train) / 128) and claim.noise_multiplier > 0.5
    assert accuracy > 0.6


def test_plans_are_checked():
    """Bad targets and schedules are refused before any training."""
    for bad in ({"epsilon": 0}, {"epsilon": 1, "delta": 1}, {"epsilon": 1, "epochs": 0}):
        with pytest.raises(InvalidInput):
            DpSgdPlan(**bad)
    model = Architecture(2, (2,), 2).build()
    with pytest.raises(InvalidInput, match="batch size"):
        train_private(
            model,
            torch.zeros(10, 2),
            torch.zeros(10, dtype=torch.long),
            plan=DpSgdPlan(epsilon=1, batch_size=10),
            generator=torch.Generator(),
        )


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"epsilon": 5e-324}, InvalidInput),
        ({"epsilon": float("nan")}, InvalidInput),
        ({"epsilon": float("inf")}, InvalidInput),
        ({"epsilon": 1e308}, InvalidInput),
        ({"epsilon": -1}, InvalidInput),
        ({"epsilon": "1"}, TypeError),
        ({"epsilon": True}, TypeError),
        ({"epsilon": 1, "delta": 0}, InvalidInput),
        ({"epsilon": 1, "delta": float("nan")}, InvalidInput),
        ({"epsilon": 1, "learning_rate": float("nan")}, InvalidInput),
        ({"epsilon": 1, "learning_rate": -0.1}, InvalidInput),
        ({"epsilon": 1, "learning_rate": float("inf")}, InvalidInput),
        ({"epsilon": 1, "max_grad_norm": float("nan")}, InvalidInput),
        ({"epsilon": 1, "max_grad_norm": float("inf")}, InvalidInput),
        ({"epsilon": 1, "max_grad_norm": 0.0}, InvalidInput),
        ({"epsilon": 1, "epochs": 2.5}, TypeError),
        ({"epsilon": 1, "batch_size": True}, TypeError),
    ],
)
def test_every_number_of_a_plan_is_range_checked(bad, error):
    """NaN, infinite, tiny, huge or mistyped ε, δ, rate, clipping norm or schedule: refused."""
    with pytest.raises(error):
        DpSgdPlan(**bad)
