import torch

from bastion.registry import InputPolicy
from bastion.robustness.sanitizer import Sanitized

POLICY = InputPolicy(clip=(0.0, 1.0), levels=4)


def test_the_wrapper_sees_exactly_what_the_gateway_passes(mlp, digit_set):
    """Sanitized(model)(x) is model(policy.apply(x)), as in the validate stage."""
    x = digit_set.x_test[:10] + 0.05
    expected = mlp(torch.from_numpy(POLICY.apply(x.numpy())))
    assert torch.allclose(Sanitized(mlp, POLICY)(x), expected)


def test_bpda_passes_gradients_and_the_naive_form_does_not(mlp, digit_set):
    """Straight-through gradients are non-zero; the true gradient of rounding is zero."""
    for straight_through, nonzero in ((True, True), (False, False)):
        x = digit_set.x_test[:10].clone().requires_grad_(True)
        Sanitized(mlp, POLICY, straight_through=straight_through)(x).sum().backward()
        assert bool(x.grad.abs().sum() > 0) is nonzero
