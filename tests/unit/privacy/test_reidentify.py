"""Re-identification is a Cedar action, and every attempt is audited without its values."""

import pytest

from bastion.errors import Forbidden, NotFound
from bastion.privacy import FormatPreserving

PERMIT = """
@id("officer-reidentify-customers")
permit (
  principal in Bastion::Role::"privacy-officer",
  action == Bastion::Action::"reidentify",
  resource == Bastion::Dataset::"customers"
);
"""


def reveal(ws, values, who, **options):
    options = {"dataset": "customers", "field": "name", "method": "token"} | options
    return ws.reidentifier().reveal(values, principal=who, context={"ip": "127.0.0.1"}, **options)


def test_denied_by_default_then_allowed_by_a_policy(make_workspace):
    """The baseline permits nobody; a policy for one role and dataset lets exactly that through."""
    ws = make_workspace()
    officer = ws.principals.add("officer", role="privacy-officer", attributes={}).principal
    analyst = ws.principals.add("analyst", role="analyst", attributes={}).principal
    tokens = ws.token_vault().tokenize(["Ann Lee", "Bob Roy"], field="name")
    with pytest.raises(Forbidden):
        reveal(ws, tokens, officer)
    (ws.paths.policies / "privacy.cedar").write_text(PERMIT)
    assert reveal(ws, tokens, officer) == ["Ann Lee", "Bob Roy"]
    with pytest.raises(Forbidden):
        reveal(ws, tokens, analyst)
    with pytest.raises(Forbidden):
        reveal(ws, tokens, officer, dataset="patients")
    with pytest.raises(NotFound):
        reveal(ws, tokens, officer, field="contact")
    events = [(e.event, e.principal, e.resource, e.decision) for e in _events(ws)]
    assert events == [
        ("authz_fail", officer.client_id, "customers/name", "deny"),
        ("privacy_reidentify", officer.client_id, "customers/name", "allow"),
        ("authz_fail", analyst.client_id, "customers/name", "deny"),
        ("authz_fail", officer.client_id, "patients/name", "deny"),
        ("privacy_reidentify", officer.client_id, "customers/contact", "allow"),
    ]
    allowed = _events(ws)[1]
    assert allowed.policy_ids == ("officer-reidentify-customers",)
    assert allowed.reason == "2 value(s) by token"
    entries = " ".join(e.to_entry().decode() for e in _events(ws))
    assert "Ann Lee" not in entries and tokens[0] not in entries


def test_fpe_values_reveal_with_the_workspace_key(make_workspace):
    """Values masked with the workspace's FPE key come back for an allowed principal."""
    ws = make_workspace()
    (ws.paths.policies / "privacy.cedar").write_text(PERMIT)
    officer = ws.principals.add("officer", role="privacy-officer", attributes={}).principal
    fpe = ws.mask_keys().fpe_key
    masked = FormatPreserving(fpe()).apply("536-22-1234", field="ssn")
    assert reveal(ws, [masked], officer, field="ssn", method="fpe") == ["536-22-1234"]


def _events(ws):
    return [entry.event for entry in ws.audit.tail(10)]
