import numpy as np
import pytest

from bastion.registry import OutputPolicy
from bastion.serving.stages.harden import harden

SCORES = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]], dtype=np.float32)


def test_pass_through_by_default():
    """The default policy changes nothing."""
    assert np.array_equal(harden(SCORES, OutputPolicy()), SCORES)


def test_top_k_keeps_the_largest_scores_per_row():
    """top_k=1 keeps each row's largest score and zeroes the rest."""
    out = harden(SCORES, OutputPolicy(top_k=1))
    assert out.tolist() == [[0.0, np.float32(0.6), 0.0], [np.float32(0.5), 0.0, 0.0]]
    assert out.dtype == np.float32


def test_top_k_breaks_ties_to_exactly_k():
    """Ties never let more than k scores through."""
    out = harden(np.array([[0.25, 0.25, 0.25, 0.25]]), OutputPolicy(top_k=2))
    assert np.count_nonzero(out) == 2


def test_rounding_and_labels():
    """Scores are rounded; integer labels pass untouched."""
    assert harden(SCORES, OutputPolicy(round_digits=0)).tolist() == [[0, 1, 0], [0, 0, 0]]
    labels = np.array([3, 1], dtype=np.int64)
    assert harden(labels, OutputPolicy(top_k=1, round_digits=0)) is labels


def test_a_role_gets_its_own_limits_instead_of_the_defaults():
    policy = OutputPolicy(
        top_k=1,
        by_role=(("partner", OutputPolicy(outputs=("label",))), ("scientist", OutputPolicy())),
    )
    assert harden(SCORES, policy.for_role("analyst")).tolist() == harden(SCORES, policy).tolist()
    assert policy.for_role("partner").outputs == ("label",)
    assert np.array_equal(harden(SCORES, policy.for_role("scientist")), SCORES)  # looser
    assert OutputPolicy.from_json(policy.to_json()) == policy


@pytest.mark.parametrize(
    ("by_role", "message"),
    [
        ((("Partner", OutputPolicy()),), "not a role name"),
        ((("partner", OutputPolicy()), ("partner", OutputPolicy(top_k=1))), "more than one"),
        ((("partner", OutputPolicy(by_role=(("x", OutputPolicy()),))),), "of its own"),
    ],
)
def test_role_policies_are_checked(by_role, message):
    with pytest.raises(ValueError, match=message):
        OutputPolicy(by_role=by_role)
