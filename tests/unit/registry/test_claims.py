import pytest

from bastion.errors import InvalidInput
from bastion.registry import Budget, RobustnessClaim


def test_an_evaluation_report_becomes_a_claim_and_round_trips():
    """The robustness.json of `robustness eval` reads as a claim; to_json/from_json agree."""
    report = {
        "model": "mlp.safetensors",
        "dataset": "digits",
        "samples": 450,
        "clean_accuracy": 0.98,
        "points": [],
        "white_box": True,
        "verdict": ["Clean accuracy: 98.0% on 450 inputs."],
        "worst": [{"norm": "linf", "epsilon": 0.1, "robust_accuracy": 0.8}],
    }
    claim = RobustnessClaim.from_json(report)
    assert claim.worst == (Budget("linf", 0.1, 0.8),) and claim.samples == 450
    assert RobustnessClaim.from_json(claim.to_json()) == claim


@pytest.mark.parametrize(
    "body", [{}, {"clean_accuracy": "x", "worst": [], "verdict": [], "samples": 1, "dataset": "d"}]
)
def test_anything_else_is_refused_clearly(body):
    """Other JSON raises InvalidInput that names the command that makes reports."""
    with pytest.raises(InvalidInput, match="robustness eval"):
        RobustnessClaim.from_json(body)
