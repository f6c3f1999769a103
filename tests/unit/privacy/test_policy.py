"""Masking policies: parsing, defaults, and refusals that say what to fix."""

import pytest

from bastion.errors import ConfigError, InvalidInput
from bastion.privacy import MaskKeys, MaskPolicy, PartialMask, Pseudonym, Tag

KEYS = MaskKeys(pseudonym_key=lambda: bytes(32), fpe_key=lambda: bytes(32))


def test_a_full_policy_parses(tmp_path):
    """Each operator and option becomes its plan; unlisted columns are scanned by default."""
    path = tmp_path / "p.toml"
    path.write_text(
        'dataset = "customers"\n[columns]\nid = "keep"\nemail = "pseudonym"\n'
        'card = { operator = "partial", keep_last = 2 }\nssn = { operator = "fpe" }\n'
        'dob = { operator = "generalize", to = "year" }\nphone = "drop"\n'
    )
    policy = MaskPolicy.load(path, keys=KEYS)
    assert policy.dataset == "customers"
    assert policy.plan_for("id").action == "keep"
    assert policy.plan_for("phone").action == "drop"
    assert isinstance(policy.plan_for("email").operator, Pseudonym)
    assert policy.plan_for("card").operator == PartialMask(keep_last=2)
    assert policy.plan_for("ssn").description == "fpe (digits)"
    unlisted = policy.plan_for("anything")
    assert unlisted.action == "scan" and isinstance(unlisted.operator, Tag)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"columns": {"a": "shred"}}, "unknown operator 'shred'"),
        ({"columns": {"a": {"operator": "partial", "keep": 2}}}, "unknown options keep"),
        ({"columns": {"a": {"operator": "generalize", "to": "decade"}}}, "Unknown generalization"),
        ({"columns": {"a": 3}}, "operator name or a table"),
        ({"colums": {}}, "Unknown masking policy keys: colums"),
        ({"unlisted": "ignore"}, "unlisted is one of"),
        ({"scan_operator": "fpe"}, "scan_operator is one of"),
    ],
)
def test_mistakes_are_named(document, message):
    """Unknown operators, options and keys fail at load time with what was wrong."""
    with pytest.raises(ConfigError, match=message):
        MaskPolicy.from_document(document, keys=KEYS)


def test_keyed_operators_need_keys_and_unlisted_can_fail(tmp_path):
    """Without a workspace, keyed operators say how to get one; unlisted = "fail" refuses."""
    with pytest.raises(ConfigError, match="bastion init"):
        MaskPolicy.from_document({"columns": {"a": "tokenize"}}, keys=MaskKeys())
    strict = MaskPolicy.from_document({"unlisted": "fail", "columns": {"a": "keep"}}, keys=KEYS)
    with pytest.raises(InvalidInput, match="'b' is not in the masking policy"):
        strict.plan_for("b")
    broken = tmp_path / "broken.toml"
    broken.write_text("columns = [")
    with pytest.raises(ConfigError, match="Cannot read the masking policy"):
        MaskPolicy.load(broken, keys=KEYS)
