import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.robustness import Domain, Threat

norms = st.sampled_from(["linf", "l2"])
epsilons = st.floats(0.0, 3.0)
seeds = st.integers(0, 2**31 - 1)


def _points(seed, rows=16, features=12, spread=3.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((rows, features), generator=g)
    far = x + spread * torch.randn((rows, features), generator=g)
    return x, far, g


@settings(max_examples=60, deadline=None)
@given(norm=norms, epsilon=epsilons, seed=seeds)
def test_projection_lands_in_the_ball_and_the_domain(norm, epsilon, seed):
    """Whatever point comes in, the projection is within ε of x and inside the domain."""
    threat = Threat(norm, epsilon, Domain(0.0, 1.0))
    x, far, _ = _points(seed)
    projected = threat.project(far, x)
    assert threat.contains(projected, x).all()
    assert (threat.distance(projected, x) <= epsilon + 1e-5).all()


@settings(max_examples=40, deadline=None)
@given(norm=norms, epsilon=st.floats(0.01, 2.0), seed=seeds)
def test_random_starts_are_inside_the_ball(norm, epsilon, seed):
    """Random starts stay in the threat set and actually move."""
    threat = Threat(norm, epsilon, Domain(-1.0, 2.0))
    x, _, g = _points(seed)
    start = threat.random_start(x, g)
    assert threat.contains(start, x).all()
    assert (start != x).any()


def test_projection_keeps_points_already_inside():
    """A point inside the ball and domain is left where it is."""
    threat = Threat("l2", 1.0)
    x = torch.full((2, 4), 0.5)
    inside = x + 0.1
    assert torch.equal(threat.project(inside, x), inside)


def test_ascent_directions_have_unit_length():
    """L∞ ascent is the sign; L2 ascent has norm 1 per row (and zero stays zero)."""
    grad = torch.tensor([[3.0, -4.0], [0.0, 0.0]])
    assert torch.equal(Threat("linf", 1).ascent(grad), torch.tensor([[1.0, -1.0], [0.0, 0.0]]))
    l2 = Threat("l2", 1).ascent(grad)
    assert math.isclose(float(l2[0].norm()), 1.0, rel_tol=1e-6)
    assert torch.equal(l2[1], torch.zeros(2))


@pytest.mark.parametrize(
    "make",
    [
        lambda: Domain(1.0, 0.0),
        lambda: Threat("l3", 0.1),  # type: ignore[arg-type]
        lambda: Threat("linf", -0.1),
        lambda: Threat("linf", math.nan),
    ],
)
def test_bad_threats_are_refused(make):
    """An empty domain, an unknown norm, a negative or NaN ε raise ValueError."""
    with pytest.raises(ValueError, match=r"low < high|norm|epsilon"):
        make()
