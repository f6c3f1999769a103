import pytest

from bastion.errors import InvalidInput
from bastion.policy import BASELINE_POLICY, CedarAuthorizer
from bastion.policy.cases import load_cases, run_cases


def test_cases_run_and_compare_deciding_policies(tmp_path):
    """A case passes only when the decision and, if listed, its policies match."""
    path = tmp_path / "c.toml"
    path.write_text(
        '[[case]]\nprincipal = {role = "analyst"}\naction = "describe"\n'
        'resource = "m"\nexpect = "allow"\npolicies = ["someone-else"]\n'
    )
    [result] = run_cases(CedarAuthorizer(policies=BASELINE_POLICY.read_text()), load_cases(path))
    assert result.decision.allowed and not result.passed


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[[case]]\naction = 'infer'\n",
        "[[case]]\nprincipal = {role='a'}\naction = 'fly'\nresource = 'm'\nexpect = 'allow'\n",
        "not toml = [",
    ],
)
def test_malformed_case_files_say_what_is_missing(tmp_path, text):
    """Empty files, missing fields, unknown actions and bad TOML are clear errors."""
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(InvalidInput):
        load_cases(path)
