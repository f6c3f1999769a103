"""The ASGI app in process (httpx.ASGITransport): limits, logs and failure paths."""

from __future__ import annotations

import json
import logging

import httpx
import numpy as np
import pytest

from bastion.registry import OutputPolicy
from bastion.samples import DIGITS_INPUT
from bastion.serving import build_app


@pytest.fixture
def make_app(make_workspace, digits_file):
    """Factory: an app over a fresh workspace with the digits model and an analyst."""
    apps = []

    def make(extra_policy=None, **settings):
        ws = make_workspace(**settings)
        if extra_policy is not None:
            (ws.paths.policies / "extra.cedar").write_text(extra_policy)
        ws.registry.register(digits_file, name="digits", version=None, output_policy=OutputPolicy())
        analyst = ws.principals.add("ana", role="analyst", attributes={})
        apps.append(build_app(ws))
        transport = httpx.ASGITransport(app=apps[-1], client=("10.0.0.7", 5000))
        client = httpx.AsyncClient(transport=transport, base_url=ws.settings.issuer)
        return ws, analyst, client

    yield make
    for app in apps:  # ASGITransport runs no lifespan: stop the model workers here
        app.state.runner.close()


async def token_for(client, who):
    response = await client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(who.principal.client_id, who.secret.get_secret_value()),
    )
    return response.json()["access_token"]


def body(images):
    return {
        "inputs": [
            {
                "name": DIGITS_INPUT,
                "shape": list(images.shape),
                "datatype": "FP32",
                "data": images.ravel().tolist(),
            }
        ]
    }


@pytest.mark.anyio
async def test_rate_limit_refuses_with_retry_after(make_app, digits):
    """Past its burst a principal gets 429 with Retry-After, and the refusal is audited."""
    ws, analyst, client = make_app(rate_per_second=0.5, rate_burst=2)
    async with client:
        headers = {"Authorization": f"Bearer {await token_for(client, analyst)}"}
        statuses = [
            (
                await client.post(
                    "/v2/models/digits/infer", json=body(digits.images[:1]), headers=headers
                )
            ).status_code
            for _ in range(3)
        ]
        refused = await client.post(
            "/v2/models/digits/infer", json=body(digits.images[:1]), headers=headers
        )
    assert statuses == [200, 200, 429]
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.json() == {"error": "Too many requests."}
    last = ws.audit.tail(1)[0].event
    assert (last.status, last.principal) == (429, analyst.principal.client_id)


@pytest.mark.anyio
async def test_policies_see_the_client_address(make_app, digits):
    """Cedar's context carries the client address; a forbid on it wins and is named."""
    office_only = (
        '@id("office-only")\nforbid(principal, action, resource)'
        ' unless { context.ip.isInRange(ip("127.0.0.1/32")) };\n'
    )
    ws, analyst, client = make_app(extra_policy=office_only)
    async with client:
        headers = {"Authorization": f"Bearer {await token_for(client, analyst)}"}
        response = await client.post(
            "/v2/models/digits/infer", json=body(digits.images[:1]), headers=headers
        )
    assert response.status_code == 403
    assert ws.audit.tail(1)[0].event.policy_ids == ("office-only",)


@pytest.mark.anyio
async def test_failed_audit_write_refuses_the_request(make_app, digits):
    """If the audit record cannot be written, the client gets 503, not the prediction."""
    ws, analyst, client = make_app()
    async with client:
        headers = {"Authorization": f"Bearer {await token_for(client, analyst)}"}
        with ws.database.transaction() as db:
            db.exec_driver_sql("DROP TABLE audit_entries")
        response = await client.post(
            "/v2/models/digits/infer", json=body(digits.images[:1]), headers=headers
        )
    assert response.status_code == 503
    assert "outputs" not in response.json()
    assert "audited" in response.json()["error"]


@pytest.mark.anyio
async def test_no_secret_reaches_the_logs(make_app, digits, caplog):
    """Across successes and failures, no secret or token appears in any log record."""
    ws, analyst, client = make_app()
    secret = analyst.secret.get_secret_value()
    caplog.set_level(logging.DEBUG)
    async with client:
        token = await token_for(client, analyst)
        headers = {"Authorization": f"Bearer {token}"}
        await client.post("/v2/models/digits/infer", json=body(digits.images[:2]), headers=headers)
        await client.post("/v2/models/digits/infer", content=b"{", headers=headers)
        await client.post(
            "/v2/models/digits/infer",
            json=body(digits.images[:1]),
            headers={"Authorization": f"Bearer {token}x"},
        )
        await client.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": analyst.principal.client_id,
                "client_secret": secret + "x",
            },
        )
        with ws.database.transaction() as db:
            db.exec_driver_sql("DROP TABLE audit_entries")
        await client.post("/v2/models/digits/infer", json=body(digits.images[:1]), headers=headers)
    logged = "\n".join(r.getMessage() + str(r.args) + str(r.exc_info) for r in caplog.records)
    assert caplog.records  # the audit failure was logged
    for needle in (secret, token, token.split(".")[-1]):
        assert needle not in logged


@pytest.mark.anyio
async def test_repeated_failures_lock_the_client_and_the_address(make_app):
    """Failed secrets lock a client id, then even the right secret gets 429 for a while."""
    ws, analyst, client = make_app(lockout_failures=3, lockout_seconds=600)
    form = {"grant_type": "client_credentials"}
    wrong = (analyst.principal.client_id, "bsk_wrong")
    right = (analyst.principal.client_id, analyst.secret.get_secret_value())
    async with client:
        failures = [
            (await client.post("/oauth2/token", data=form, auth=wrong)).status_code
            for _ in range(3)
        ]
        locked = await client.post("/oauth2/token", data=form, auth=right)
    assert failures == [401, 401, 401]
    assert locked.status_code == 429 and locked.json()["error"] == "temporarily_unavailable"
    assert 500 <= int(locked.headers["retry-after"]) <= 600
    assert ws.audit.tail(1)[0].event.event == "authn_login_lock"


@pytest.mark.anyio
async def test_introspection_and_revocation_count_toward_the_lockout(make_app):
    """Guessing secrets at /oauth2/introspect or /oauth2/revoke locks the client out too."""
    _, analyst, client = make_app(lockout_failures=2)
    wrong = (analyst.principal.client_id, "bsk_wrong")
    async with client:
        await client.post("/oauth2/introspect", data={"token": "x"}, auth=wrong)
        await client.post("/oauth2/revoke", data={"token": "x"}, auth=wrong)
        locked = await client.post(
            "/oauth2/introspect",
            data={"token": "x"},
            auth=(analyst.principal.client_id, analyst.secret.get_secret_value()),
        )
    assert locked.status_code == 429


@pytest.mark.anyio
async def test_policy_files_are_followed_and_bad_edits_rejected(make_app, digits):
    """A new policy file takes effect within a second; a broken one leaves the last good set."""
    import asyncio

    ws, _, client = make_app()
    gus = ws.principals.add("gus", role="guest", attributes={})
    async with client:
        headers = {"Authorization": f"Bearer {await token_for(client, gus)}"}

        async def status():
            response = await client.post(
                "/v2/models/digits/infer", json=body(digits.images[:1]), headers=headers
            )
            return response.status_code

        before = await status()
        (ws.paths.policies / "guests.cedar").write_text(
            '@id("guests-may-infer")\npermit (principal in Bastion::Role::"guest", '
            'action == Bastion::Action::"infer", resource);\n'
        )
        await asyncio.sleep(1.1)
        after = await status()
        (ws.paths.policies / "broken.cedar").write_text("permit (principal, action, resource")
        await asyncio.sleep(1.1)
        still = await status()
    assert (before, after, still) == (403, 200, 200)
    await asyncio.sleep(0.2)  # policy changes are audited without waiting on the request
    events = [e.event for e in ws.audit.tail(20) if e.event.action == "policy"]
    assert [e.event for e in events] == ["policy_change", "policy_change_rejected"]
    assert "guests-may-infer" in events[0].policy_ids


@pytest.mark.anyio
async def test_policies_see_model_labels_and_do_not_reveal_unregistered_models(
    make_app, digits, digits_file
):
    """Risk tier and classification reach Cedar; a name that is not registered gets a 403 too."""
    from bastion.policy import ModelLabels

    ws, analyst, client = make_app(
        extra_policy='@id("clearance")\nforbid (principal, action, resource is Bastion::Model)\n'
        "unless { principal.clearance_level >= resource.classification_level };\n"
        '@id("no-high-risk")\nforbid (principal, action == Bastion::Action::"infer", '
        'resource is Bastion::Model) when { resource.risk_tier == "high" };\n'
    )
    policy = OutputPolicy()
    for name, labels in (
        ("patients", ModelLabels(classification="confidential")),
        ("credit", ModelLabels(risk_tier="high")),
        ("churn", ModelLabels(risk_tier="medium", classification="internal")),
    ):
        ws.registry.register(
            digits_file, name=name, version=None, output_policy=policy, labels=labels
        )
    cleared = ws.principals.add("cleo", role="analyst", attributes={"clearance": "confidential"})
    async with client:
        ana = {"Authorization": f"Bearer {await token_for(client, analyst)}"}
        cleo = {"Authorization": f"Bearer {await token_for(client, cleared)}"}

        async def status(model, headers):
            response = await client.post(
                f"/v2/models/{model}/infer", json=body(digits.images[:1]), headers=headers
            )
            return response.status_code

        assert await status("churn", ana) == 200
        assert await status("patients", ana) == 403  # internal clearance, confidential data
        assert await status("patients", cleo) == 200
        assert await status("credit", cleo) == 403  # high risk: forbidden for everyone
        assert await status("no-such-model", ana) == 403  # as for a model ana may not use
        assert await status("no-such-model", cleo) == 403
    entries = ws.audit.search(principal=analyst.principal.client_id, limit=20)
    denials = [e.event for e in entries if e.event.status == 403]
    assert {e.resource for e in denials} == {"patients", "no-such-model"}
    assert any(e.policy_ids == ("clearance",) for e in denials)


@pytest.mark.anyio
async def test_a_model_range_refuses_out_of_range_inputs(make_app, digits, digits_file):
    """A version registered with bounds answers in-range inputs and refuses others with a 400."""
    from bastion.registry import InputPolicy

    ws, analyst, client = make_app()
    ws.registry.register(
        digits_file,
        name="bounded",
        version=None,
        output_policy=OutputPolicy(),
        input_policy=InputPolicy(bounds=(0.0, 1.0)),
    )
    async with client:
        headers = {"Authorization": f"Bearer {await token_for(client, analyst)}"}
        ok = await client.post(
            "/v2/models/bounded/infer", json=body(digits.images[:2]), headers=headers
        )
        bad = await client.post(
            "/v2/models/bounded/infer", json=body(digits.images[:2] * 3), headers=headers
        )
    assert ok.status_code == 200
    assert bad.status_code == 400 and "outside the model's range [0, 1]" in bad.json()["error"]


CENSUS_POLICY = """
@id("analysts-query-census")
permit (
  principal in Bastion::Role::"analyst",
  action == Bastion::Action::"query_data",
  resource == Bastion::Dataset::"census"
);
"""


@pytest.mark.anyio
async def test_dp_queries_are_authorized_budgeted_and_audited(make_app, tmp_path):
    """POST /v1/datasets/census/query: Cedar first, then the budget; every answer audited."""
    ws, analyst, client = make_app(extra_policy=CENSUS_POLICY)
    table = tmp_path / "census.csv"
    table.write_text("age,city\n" + "".join(f"{20 + i % 50},c{i % 3}\n" for i in range(2000)))
    ws.datasets.register("census", table)
    ws.datasets.register("secret", table)
    async with client:
        headers = {"Authorization": f"Bearer {await token_for(client, analyst)}"}

        async def ask(query, epsilon, dataset="census"):
            return await client.post(
                f"/v1/datasets/{dataset}/query",
                json={"query": query, "epsilon": epsilon},
                headers=headers,
            )

        no_budget = await ask("count", 0.5)
        ws.privacy_budgets.set_budget("census", epsilon=1.0)
        mean = await ask("mean(age, 0, 100)", 0.6)
        over = await ask("count", 0.5)
        bad = [
            await ask("median(age)", 0.1),
            await ask("mean(city, 0, 1)", 0.1),
            await client.post("/v1/datasets/census/query", content=b"{", headers=headers),
            await ask("count", True),
        ]
        denied = await ask("count", 0.1, dataset="secret")
        anonymous = await client.post("/v1/datasets/census/query", json={})
    assert no_budget.status_code == 404 and "no privacy budget" in no_budget.json()["error"]
    assert mean.status_code == 200
    answer = mean.json()
    assert answer["query"] == "mean(age, 0, 100)" and abs(answer["value"] - 44.5) < 5
    assert answer["epsilon_left"] == pytest.approx(0.4)
    assert over.status_code == 403 and "budget" in over.json()["error"]
    assert [r.status_code for r in bad] == [400, 400, 400, 400]
    assert denied.status_code == 403 and anonymous.status_code == 401
    [budget] = ws.privacy_budgets.budgets("census")
    assert budget.epsilon_spent == pytest.approx(0.6)  # refusals and bad queries cost nothing
    events = [entry.event for entry in ws.audit.tail(9)]
    assert [e.event for e in events][:3] == ["resource_not_found", "dp_query", "authz_fail"]
    assert events[1].reason == "mean(age, 0, 100) at epsilon 0.6"
    assert events[1].resource == "census" and events[1].policy_ids == ("analysts-query-census",)
    assert str(answer["value"])[:6] not in events[1].to_entry().decode()  # never the answer


@pytest.mark.anyio
async def test_each_role_gets_the_outputs_its_output_policy_allows(make_app, digits, digits_file):
    """Defaults for analysts; partners get the label only, and asking for more is refused."""
    partners = '@id("partners-infer")\npermit (principal in Bastion::Role::"partner", '
    partners += 'action in [Bastion::Action::"infer", Bastion::Action::"describe"], '
    partners += "resource is Bastion::Model);\n"
    ws, analyst, client = make_app(extra_policy=partners)
    label_only = OutputPolicy(outputs=("label",))
    policy = OutputPolicy(round_digits=1, by_role=(("partner", label_only),))
    ws.registry.register(digits_file, name="graded", version=None, output_policy=policy)
    partner = ws.principals.add("pat", role="partner", attributes={})
    async with client:
        answers = {}
        for who in (analyst, partner):
            headers = {"Authorization": f"Bearer {await token_for(client, who)}"}
            answers[who.principal.role] = await client.post(
                "/v2/models/graded/infer", json=body(digits.images[:2]), headers=headers
            )
        more = body(digits.images[:1]) | {"outputs": [{"name": "probabilities"}]}
        refused = await client.post("/v2/models/graded/infer", json=more, headers=headers)
        metadata = (await client.get("/v2/models/graded", headers=headers)).json()
    assert [o["name"] for o in metadata["outputs"]] == ["label"]  # nor does it see the rest
    scores = {o["name"]: o for o in answers["analyst"].json()["outputs"]}["probabilities"]
    assert all(abs(value * 10 - round(value * 10)) < 1e-5 for value in scores["data"])  # FP32
    assert [o["name"] for o in answers["partner"].json()["outputs"]] == ["label"]
    assert refused.status_code == 400 and "not available" in refused.json()["error"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
async def test_dp_queries_take_json_only(make_app, tmp_path, content_type):
    """A DP query sent as another type than JSON is 415, and costs no budget."""
    ws, analyst, client = make_app(extra_policy=CENSUS_POLICY)
    table = tmp_path / "census.csv"
    table.write_text("age\n" + "".join(f"{20 + i % 50}\n" for i in range(100)))
    ws.datasets.register("census", table)
    ws.privacy_budgets.set_budget("census", epsilon=1.0)
    body = json.dumps({"query": "count", "epsilon": 0.5})
    async with client:
        headers = {"Authorization": f"Bearer {await token_for(client, analyst)}"}
        wrong = await client.post(
            "/v1/datasets/census/query",
            content=body,
            headers=headers | {"Content-Type": content_type},
        )
        right = await client.post(
            "/v1/datasets/census/query",
            content=body,
            headers=headers | {"Content-Type": "application/json"},
        )
    assert wrong.status_code == 415
    assert right.status_code == 200 and right.json()["epsilon_left"] == pytest.approx(0.5)


@pytest.mark.anyio
@pytest.mark.parametrize("shape", [[0, 64], [0, 3], [3, 0], [0], [1, 0, 64]])
async def test_empty_tensors_are_a_400_audited_as_such(make_app, shape):
    """An empty batch is a 400 (not a 500), audited with that status, and the next call works."""
    ws, analyst, client = make_app()
    tensor = {"name": DIGITS_INPUT, "shape": shape, "datatype": "FP32", "data": []}
    async with client:
        headers = {"Authorization": f"Bearer {await token_for(client, analyst)}"}
        refused = await client.post(
            "/v2/models/digits/infer", json={"inputs": [tensor]}, headers=headers
        )
        entry = ws.audit.tail(1)[0].event
        after = await client.post(
            "/v2/models/digits/infer", json=body(np.zeros((1, 64), np.float32)), headers=headers
        )
    assert refused.status_code == 400 and "shape" in refused.json()["error"]
    assert (entry.event, entry.status) == ("input_validation_fail", 400)
    assert after.status_code == 200


def test_the_monitors_see_any_shape_of_input():
    """observation() never fails on an empty, scalar or wide input, nor on empty outputs."""
    from bastion.serving.call import Call, Target
    from bastion.serving.stages.record import observation

    async def no_body():
        return b""

    for shape in [(0, 3), (3, 0), (0,), (1, 0, 64), (), (2, 3)]:
        call = Call(
            route="/v2/models/m/infer",
            target=Target(action="infer", model="m"),
            client_ip="10.0.0.7",
            authorization=None,
            content_type="",
            read_body=no_body,
        )
        call.inputs = {"x": np.zeros(shape, np.float32)}
        call.outputs = {"scores": np.zeros((shape[0] if shape else 1, 0), np.float32)}
        seen = observation(call, now=0.0)
        assert seen.queries is None or seen.queries.size > 0
