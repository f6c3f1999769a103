import pytest

from bastion.errors import ConfigError
from bastion.identity import Principal
from bastion.policy import BASELINE_POLICY, AccessRequest, CedarAuthorizer

CONTEXT = {"ip": "127.0.0.1", "time": 0}
ANALYST = Principal(client_id="bcl_a", name="ana", role="analyst", attributes={"team": "fraud"})
GUEST = Principal(client_id="bcl_g", name="gus", role="guest")
OPERATOR = Principal(client_id="bcl_o", name="ops", role="operator")


def decide(policies, principal, action="infer", resource="digits"):
    authorizer = CedarAuthorizer(policies=policies)
    return authorizer.decide(AccessRequest(principal, action, resource, CONTEXT))


def test_baseline_lets_analysts_use_models():
    """The baseline permits analysts to infer and describe, and names the policy."""
    for action in ("infer", "describe"):
        decision = decide(BASELINE_POLICY.read_text(), ANALYST, action)
        assert decision.allowed
        assert decision.policy_ids == ("analyst-use-models",)


@pytest.mark.parametrize(
    ("principal", "action", "resource"),
    [
        (GUEST, "infer", "digits"),
        (GUEST, "describe", "digits"),
        (ANALYST, "read_metrics", "gateway"),
        (OPERATOR, "infer", "digits"),
    ],
)
def test_everything_else_is_denied(principal, action, resource):
    """Deny by default: no matching permit means deny, with no policy ids."""
    decision = decide(BASELINE_POLICY.read_text(), principal, action, resource)
    assert not decision.allowed
    assert decision.policy_ids == ()


def test_operators_read_metrics():
    """The baseline lets operators read the gateway's metrics."""
    assert decide(BASELINE_POLICY.read_text(), OPERATOR, "read_metrics", "gateway").allowed


def test_attribute_based_policy_uses_principal_tags():
    """ABAC: a policy can use a principal's attributes."""
    policy = """@id("fraud-team")
    permit(principal, action == Bastion::Action::"infer", resource == Bastion::Model::"digits")
    when { principal.hasTag("team") && principal.getTag("team") == "fraud" };"""
    assert decide(policy, ANALYST).allowed
    assert not decide(policy, GUEST).allowed


def test_forbid_overrides_permit():
    """A matching forbid wins over any permit, and is the named reason."""
    policy = (
        BASELINE_POLICY.read_text()
        + """
    @id("no-digits-from-fraud")
    forbid(principal, action, resource == Bastion::Model::"digits")
    when { principal.hasTag("team") && principal.getTag("team") == "fraud" };"""
    )
    decision = decide(policy, ANALYST)
    assert not decision.allowed
    assert decision.policy_ids == ("no-digits-from-fraud",)


@pytest.mark.parametrize(
    "policy",
    [
        "",
        "// only a comment",
        'permit(principal, action == Bastion::Action::"fly", resource);',
        "permit(principal, action, resource) when { principal.salary > 3 };",
        "this is not cedar",
    ],
)
def test_empty_or_invalid_policies_fail_closed(policy):
    """No policies, unknown actions, unknown attributes or syntax errors refuse to load."""
    with pytest.raises(ConfigError):
        CedarAuthorizer(policies=policy)


def test_from_folder_needs_policy_files(tmp_path):
    """A folder without *.cedar files is a configuration error."""
    with pytest.raises(ConfigError, match="bastion init"):
        CedarAuthorizer.from_folder(tmp_path)
    (tmp_path / "a.cedar").write_text(BASELINE_POLICY.read_text())
    assert (
        CedarAuthorizer.from_folder(tmp_path)
        .decide(AccessRequest(ANALYST, "infer", "digits", CONTEXT))
        .allowed
    )


def test_policies_see_the_stage_of_a_version():
    """A forbid on staging keeps analysts on production versions; admins may promote."""
    from bastion.policy import ModelLabels

    policy = BASELINE_POLICY.read_text() + (
        '@id("production-only")\nforbid (principal in Bastion::Role::"analyst", '
        'action == Bastion::Action::"infer", resource) when { resource.stage != "production" };'
    )
    authorizer = CedarAuthorizer(policies=policy)

    def infer(stage):
        labels = ModelLabels(stage=stage)
        return authorizer.decide(AccessRequest(ANALYST, "infer", "digits", CONTEXT, labels))

    assert infer("production").allowed
    assert not infer("staging").allowed and infer("staging").policy_ids == ("production-only",)
    admin = Principal(client_id="bcl_r", name="root", role="admin")
    promote = AccessRequest(admin, "promote", "digits", CONTEXT)
    assert authorizer.decide(promote).policy_ids == ("admin-promote-models",)
    assert not authorizer.decide(AccessRequest(ANALYST, "promote", "digits", CONTEXT)).allowed
