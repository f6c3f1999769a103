"""The ABAC examples in docs/examples work as the docs say."""

from pathlib import Path

from bastion.policy import CedarAuthorizer
from bastion.policy.cases import load_cases, run_cases

EXAMPLES = Path(__file__).parents[3] / "docs" / "examples"


def test_every_documented_abac_case_holds():
    """Role + attribute, address range, office hours, forbid-over-permit, risk tier, clearance."""
    results = run_cases(
        CedarAuthorizer.from_folder(EXAMPLES), load_cases(EXAMPLES / "abac-cases.toml")
    )
    failed = [(r.case.name, r.decision) for r in results if not r.passed]
    assert len(results) == 16 and failed == []
