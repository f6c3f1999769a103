"""Conformance checks every pipeline stage passes (STYLE X4)."""

import pytest

from bastion.errors import BastionError
from bastion.monitor import GatewayMetrics, Monitor
from bastion.serving.call import Call, Target
from bastion.serving.pipeline import build_pipelines
from bastion.serving.runner import build_runner


async def no_body():
    raise AssertionError("a stage read the body of a call that had not been authenticated")


def bare_call():
    return Call(
        route="/v2/models/{name}/infer",
        target=Target("infer", "digits"),
        client_ip="127.0.0.1",
        authorization=None,
        content_type="application/json",
        read_body=no_body,
    )


@pytest.fixture
def stages(make_workspace):
    monitor = Monitor(detectors=[], sinks=[], record=lambda alert: None)
    metrics = GatewayMetrics(audit_backlog=lambda: 0)
    workspace = make_workspace()
    runner = build_runner(workspace)
    pipelines = build_pipelines(
        workspace,
        audit=workspace.audit,
        metrics=metrics,
        monitor=monitor,
        runner=runner,
    )
    return {type(stage).__name__: stage for stage in pipelines.infer.stages}


def test_the_infer_pipeline_has_the_designed_order(stages):
    """authenticate, authorize, throttle, validate, infer, harden (then record)."""
    assert list(stages) == ["Authenticate", "Authorize", "Throttle", "Validate", "Infer", "Harden"]


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["Authenticate", "Authorize", "Throttle", "Infer"])
async def test_stages_fail_closed_on_an_empty_call(stages, name):
    """Given a call that earlier stages did not fill in, a stage refuses; it never passes."""
    call = bare_call()
    with pytest.raises(BastionError):
        await stages[name](call)
    assert call.outputs == {}


@pytest.mark.anyio
async def test_harden_passes_nothing_without_a_model(stages):
    """Harden with no model in the call leaves no outputs."""
    call = bare_call()
    await stages["Harden"](call)
    assert call.outputs == {}
