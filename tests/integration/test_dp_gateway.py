"""POST /v1/datasets/{dataset}/query in the real app: bad numbers are 400s that cost nothing."""

from __future__ import annotations

import httpx
import pytest

from bastion.serving import build_app

POLICY = """
@id("analysts-query-census")
permit (
  principal in Bastion::Role::"analyst",
  action == Bastion::Action::"query_data",
  resource == Bastion::Dataset::"census"
);
"""

# Raw JSON text for epsilon, as an attacker would write it: json reads NaN and Infinity,
# 1e999 as inf, and a 400-digit integer as an int too large for a float.
BAD_EPSILONS = [
    "5e-324",
    "1e-300",
    "0",
    "-0.0",
    "-1",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "1e308",
    "10.5",
    "9" * 400,
    '"0.5"',
    "true",
    "false",
    "null",
    "[0.5]",
    '{"e": 0.5}',
]
BAD_QUERIES = [
    "sum(age, -1e308, 1e308)",
    "mean(age, 0, 1e16)",
    "histogram(age, -1e300, 1e300, 4)",
    "quantile(age, NaN, 0, 100)",
    "sum(age, 0, inf)",
    "histogram(age, 0, 100, 100000)",
    f"histogram(age, 0, 100, {'9' * 5000})",
]
MALFORMED_BODIES = [
    b"[" * 2000 + b"]" * 2000,  # nesting deep enough for a RecursionError
    b'{"query": "count", "epsilon": ' + b"1" * 4100 + b"}",  # past int's digit limit
    b'{"query": "count", "epsilon": 0.5, "epsilon": NaN}',  # a repeated key: the last wins
    b'{"query": 1, "epsilon": 0.5}',
    b'{"query": "count", "epsilon": 0.5, "extra": 1}',
    b"\xff\xfe",
]


@pytest.fixture
async def gateway(make_workspace, tmp_path):
    """The app over a workspace with the census dataset, a 1.0 budget and an analyst."""
    ws = make_workspace()
    (ws.paths.policies / "census.cedar").write_text(POLICY)
    table = tmp_path / "census.csv"
    table.write_text("age\n" + "".join(f"{20 + i % 50}\n" for i in range(500)))
    ws.datasets.register("census", table)
    ws.privacy_budgets.set_budget("census", epsilon=1.0)
    analyst = ws.principals.add("ana", role="analyst", attributes={})
    ws.privacy_budgets.set_budget("census", epsilon=0.9, principal=analyst.principal.client_id)
    app = build_app(ws)
    transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 5000))
    async with httpx.AsyncClient(transport=transport, base_url=ws.settings.issuer) as client:
        response = await client.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(analyst.principal.client_id, analyst.secret.get_secret_value()),
        )
        client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        yield ws, client
    app.state.runner.close()


def ledger_of(ws):
    """Every budget row and every charge, to compare before and after."""
    return ws.privacy_budgets.budgets("census")


async def post(client, content: bytes) -> httpx.Response:
    return await client.post(
        "/v1/datasets/census/query",
        content=content,
        headers={"Content-Type": "application/json"},
    )


@pytest.mark.anyio
@pytest.mark.parametrize("epsilon", BAD_EPSILONS)
async def test_bad_epsilons_are_400_and_charge_nothing(gateway, epsilon):
    """5e-324 (once charged, then a 500), 0, negative, NaN, inf, huge, strings, bools: 400."""
    ws, client = gateway
    before = ledger_of(ws)
    for spec in ("count", "mean(age, 0, 100)"):
        body = b'{"query": "%s", "epsilon": %s}' % (spec.encode(), epsilon.encode())
        response = await post(client, body)
        assert response.status_code == 400, (epsilon, response.text)
        assert "error" in response.json()
    assert ledger_of(ws) == before
    good = await post(client, b'{"query": "count", "epsilon": 0.25}')
    assert good.status_code == 200 and good.json()["epsilon_left"] == pytest.approx(0.65)


@pytest.mark.anyio
@pytest.mark.parametrize("spec", BAD_QUERIES)
async def test_bad_bounds_are_400_and_charge_nothing(gateway, spec):
    """Bounds that overflow, NaN quantiles and absurd bins: 400, the ledger unchanged."""
    ws, client = gateway
    before = ledger_of(ws)
    response = await post(client, b'{"query": "%s", "epsilon": 0.5}' % spec.encode())
    assert response.status_code == 400, response.text
    assert ledger_of(ws) == before


@pytest.mark.anyio
@pytest.mark.parametrize("body", MALFORMED_BODIES, ids=range(len(MALFORMED_BODIES)))
async def test_malformed_bodies_are_400_never_500(gateway, body):
    """Deep nesting, over-long integers, repeated keys, wrong shapes, bad UTF-8: all 400."""
    ws, client = gateway
    before = ledger_of(ws)
    response = await post(client, body)
    assert response.status_code in (400, 413), response.text
    assert ledger_of(ws) == before


@pytest.mark.anyio
async def test_the_extremes_that_are_allowed_answer_finite_numbers(gateway):
    """ε = 1e-6 with bounds ±1e15 answers 200 with finite JSON numbers, and is charged."""
    ws, client = gateway
    response = await post(client, b'{"query": "mean(age, -1e15, 1e15)", "epsilon": 1e-6}')
    assert response.status_code == 200, response.text
    assert "Infinity" not in response.text and "NaN" not in response.text
    spent = {b.principal: b.epsilon_spent for b in ledger_of(ws)}
    assert all(value == pytest.approx(1e-6) for value in spent.values())


@pytest.mark.anyio
@pytest.mark.parametrize(
    "spec",
    [
        "sum(age, 0, 4.8245e-319)",
        "sum(age, 0, 5e-324)",
        "sum(age, 0, 1e-320)",
        "mean(age, 0, 1e-310)",
        "sum(age, 0, 1e-7)",
        "mean(age, 3, 3)",
    ],
)
async def test_subnormal_and_tiny_bounds_are_400_and_charge_nothing(gateway, spec):
    """Subnormal, tiny or equal bounds (privacy loss above the ε charged, or 0/0): 400."""
    ws, client = gateway
    before = ledger_of(ws)
    response = await post(client, b'{"query": "%s", "epsilon": 1}' % spec.encode())
    assert response.status_code == 400, response.text
    assert ledger_of(ws) == before


@pytest.mark.anyio
async def test_a_query_whose_audit_entry_a_trigger_drops_is_503_not_answered(gateway):
    """An insider's RAISE(IGNORE) trigger on audit_entries: 503, never an unaudited answer."""
    ws, client = gateway
    with ws.database.transaction() as db:
        db.exec_driver_sql(
            "CREATE TRIGGER drop_audit BEFORE INSERT ON audit_entries "
            "BEGIN SELECT RAISE(IGNORE); END"
        )
    response = await post(client, b'{"query": "count", "epsilon": 0.25}')
    assert response.status_code == 503, response.text
    assert "value" not in response.json()
