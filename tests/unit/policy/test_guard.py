"""The Guard audits every attempt with its real outcome: 200 only for work that returned."""

import pytest

from bastion.errors import BastionError, Forbidden, NotFound

SECRET_VALUE = "536-22-1234"


def promote(ws, who, work):
    """Run ``work`` through the workspace's Guard as a promotion of digits@1."""
    return ws.guard().run(
        work,
        principal=who,
        action="promote",
        resource="digits",
        audited_as="digits@1",
        reason="promote digits@1",
        context={"ip": "127.0.0.1"},
    )


def last_event(ws):
    return ws.audit.tail(1)[0].event


def fails_with(error):
    def work():
        raise error

    return work


@pytest.mark.parametrize(
    "error",
    [
        ValueError(f"bad value {SECRET_VALUE}"),
        KeyError(SECRET_VALUE),
        ZeroDivisionError("division by zero"),
        OverflowError(f"math range error at {SECRET_VALUE}"),
        RuntimeError(SECRET_VALUE),
        OSError(28, "No space left on device"),
        TypeError(f"cannot handle {SECRET_VALUE!r}"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_an_unexpected_exception_is_audited_as_a_failure_and_raised_as_bastion_error(
    make_workspace, error
):
    """Any non-Bastion exception: a 500 internal_error entry, a BastionError, no value anywhere."""
    ws = make_workspace()
    admin = ws.principals.add("root", role="admin", attributes={}).principal
    with pytest.raises(BastionError) as caught:
        promote(ws, admin, fails_with(error))
    assert type(caught.value) is BastionError and caught.value.http_status == 500
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert SECRET_VALUE not in f"{caught.value} {caught.value.detail}"
    assert type(error).__name__ in caught.value.detail
    event = last_event(ws)
    assert (event.event, event.decision, event.status) == ("model_promote", "allow", 500)
    assert event.reason == f"promote digits@1: internal_error ({type(error).__name__})"
    assert SECRET_VALUE not in ws.audit.tail(1)[0].event.to_entry().decode()


@pytest.mark.parametrize("interruption", [KeyboardInterrupt(), SystemExit(1)], ids=repr)
def test_an_interrupted_attempt_is_audited_as_a_failure_and_not_swallowed(
    make_workspace, interruption
):
    """Ctrl-C or SystemExit inside the work: re-raised as it was, audited 500 `interrupted`."""
    ws = make_workspace()
    admin = ws.principals.add("root", role="admin", attributes={}).principal
    with pytest.raises(type(interruption)):
        promote(ws, admin, fails_with(interruption))
    event = last_event(ws)
    assert (event.status, event.reason) == (500, "promote digits@1: interrupted")


def test_success_bastion_errors_and_denials_keep_their_own_outcome(make_workspace):
    """Returned: 200; a BastionError: its status and code; denied: 403 and the work never runs."""
    ws = make_workspace()
    admin = ws.principals.add("root", role="admin", attributes={}).principal
    analyst = ws.principals.add("ana", role="analyst", attributes={}).principal
    assert promote(ws, admin, lambda: "done") == "done"
    with pytest.raises(NotFound):
        promote(ws, admin, fails_with(NotFound("No such version.")))
    ran = []
    with pytest.raises(Forbidden):
        promote(ws, analyst, lambda: ran.append(1))
    assert ran == []
    outcomes = [(e.event.event, e.event.status, e.event.reason) for e in ws.audit.tail(3)]
    assert outcomes == [
        ("model_promote", 200, "promote digits@1"),
        ("model_promote", 404, "promote digits@1: not_found"),
        ("authz_fail", 403, "promote digits@1: forbidden"),
    ]
