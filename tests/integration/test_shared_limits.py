"""Two gateway processes on one PostgreSQL (and Redis) share limits, revocations and budgets."""

from __future__ import annotations

import secrets
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis
import sqlalchemy as sa

from bastion.serving import ServerProcess, free_port
from bastion.settings import Settings
from bastion.workspace import Workspace

PASSPHRASE = "shared limits passphrase"
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_url(request):
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError:
        if request.config.getoption("--require-services"):
            pytest.fail("Redis at 127.0.0.1:6379 is required")
        pytest.skip("Redis at 127.0.0.1:6379 is not running")
    return REDIS_URL


@pytest.fixture
def postgres_schema(postgres_url):
    """A database URL on a fresh PostgreSQL schema, dropped afterwards."""
    schema = f"bastion_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as connection:
        connection.execute(sa.text(f"create schema {schema}"))
    yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(sa.text(f"drop schema {schema} cascade"))
    admin.dispose()


@pytest.mark.postgres
def test_two_gateways_enforce_one_global_rate_limit(tmp_path, postgres_schema, redis_url):
    """With Redis, a burst of 4 is shared: alternating between two gateways, 4 pass in all."""
    database_url = postgres_schema
    settings = Settings(
        home=tmp_path / "ws",
        passphrase=PASSPHRASE,
        database_url=database_url,
        public_url="https://gateway.test",
    )
    ws = Workspace.create(settings, force=False)
    ana = ws.principals.add("ana", role="analyst", attributes={})
    env = {
        "BASTION_PASSPHRASE": PASSPHRASE,
        "BASTION_DATABASE_URL": database_url,
        "BASTION_REDIS_URL": redis_url,
        "BASTION_RATE_PER_SECOND": "0.05",
        "BASTION_RATE_BURST": "4",
        # Behind one address, gateways share one issuer and accept each other's tokens.
        "BASTION_PUBLIC_URL": "https://gateway.test",
    }
    ports = [free_port(), free_port()]
    with (
        ServerProcess(home=ws.paths.home, port=ports[0], log=tmp_path / "a.log", env=env) as first,
        ServerProcess(home=ws.paths.home, port=ports[1], log=tmp_path / "b.log", env=env) as second,
    ):
        context = ssl.create_default_context(cafile=str(first.ca))
        statuses = []
        with httpx.Client(verify=context, timeout=30) as http:
            # Tokens are issued by each gateway; they verify on both (one workspace key).
            token = http.post(
                f"{first.url}/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(ana.principal.client_id, ana.secret.get_secret_value()),
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            for n in range(8):
                server = (first, second)[n % 2]
                statuses.append(
                    http.get(f"{server.url}/v2/models/none", headers=headers).status_code
                )
            http.post(
                f"{second.url}/oauth2/revoke",
                data={"token": token},
                auth=(ana.principal.client_id, ana.secret.get_secret_value()),
            )
            # The other gateway may reuse the verified token for auth_cache_seconds (2 s).
            deadline = time.monotonic() + 5
            while True:
                after_revoke = http.get(f"{first.url}/v2/models/none", headers=headers)
                if after_revoke.status_code == 401 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
    reasons = [e.event.reason for e in ws.audit.tail(12)]
    assert statuses.count(404) == 4 and statuses.count(429) == 4, (statuses, reasons)
    assert after_revoke.status_code == 401  # revoked at one gateway, refused by the other
    assert ws.audit.verify().size >= 10  # one linear log written by both processes
    ws.close()


@pytest.mark.postgres
def test_two_gateways_never_overspend_a_privacy_budget(tmp_path, postgres_schema):
    """24 concurrent ε = 0.1 queries through two gateways against ε = 1.05: exactly 10 answered."""
    settings = Settings(
        home=tmp_path / "ws",
        passphrase=PASSPHRASE,
        database_url=postgres_schema,
        public_url="https://gateway.test",
    )
    ws = Workspace.create(settings, force=False)
    (ws.paths.policies / "census.cedar").write_text(
        '@id("census")\npermit (principal, action == Bastion::Action::"query_data", '
        'resource == Bastion::Dataset::"census");\n'
    )
    table = tmp_path / "census.csv"
    table.write_text("age\n" + "".join(f"{20 + i % 50}\n" for i in range(500)))
    ws.datasets.register("census", table)
    ws.privacy_budgets.set_budget("census", epsilon=1.05)
    ana = ws.principals.add("ana", role="analyst", attributes={})
    env = {
        "BASTION_PASSPHRASE": PASSPHRASE,
        "BASTION_DATABASE_URL": postgres_schema,
        "BASTION_PUBLIC_URL": "https://gateway.test",
    }
    with (
        ServerProcess(home=ws.paths.home, port=free_port(), log=tmp_path / "a.log", env=env) as a,
        ServerProcess(home=ws.paths.home, port=free_port(), log=tmp_path / "b.log", env=env) as b,
        httpx.Client(verify=ssl.create_default_context(cafile=str(a.ca)), timeout=30) as http,
    ):
        token = http.post(
            f"{a.url}/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(ana.principal.client_id, ana.secret.get_secret_value()),
        ).json()["access_token"]

        def ask(n):
            server = (a, b)[n % 2]
            return http.post(
                f"{server.url}/v1/datasets/census/query",
                json={"query": "count", "epsilon": 0.1},
                headers={"Authorization": f"Bearer {token}"},
            ).status_code

        with ThreadPoolExecutor(max_workers=12) as pool:
            statuses = list(pool.map(ask, range(24)))
    assert statuses.count(200) == 10 and statuses.count(403) == 14, statuses
    [budget] = ws.privacy_budgets.budgets("census")
    assert budget.epsilon_spent == pytest.approx(1.0)
    answered = [e.event for e in ws.audit.tail(30) if e.event.event == "dp_query"]
    assert len(answered) == 10
    ws.close()


@pytest.mark.postgres
def test_two_gateways_share_daily_quotas_model_limits_and_lockouts(
    tmp_path, postgres_schema, redis_url
):
    """Through Redis, limits are global: model and principal quotas, and the lockout.

    A model's quota is spent by all principals on both gateways together, a principal's
    likewise, and failed logins at both gateways add up to one lockout.
    """
    ws = Workspace.create(
        Settings(home=tmp_path / "ws", passphrase=PASSPHRASE, database_url=postgres_schema,
                 public_url="https://gateway.test"),
        force=False,
    )  # fmt: skip
    ana = ws.principals.add("ana", role="analyst", attributes={})
    bob = ws.principals.add("bob", role="analyst", attributes={})
    env = {
        "BASTION_PASSPHRASE": PASSPHRASE,
        "BASTION_DATABASE_URL": postgres_schema,
        "BASTION_REDIS_URL": redis_url,
        "BASTION_PUBLIC_URL": "https://gateway.test",
        "BASTION_DAILY_QUOTA": "5",
        "BASTION_MODEL_LIMITS": '{"scarce": {"daily_quota": 3}}',
        "BASTION_LOCKOUT_FAILURES": "3",
    }
    home = ws.paths.home
    with (
        ServerProcess(home=home, port=free_port(), log=tmp_path / "a.log", env=env) as a,
        ServerProcess(home=home, port=free_port(), log=tmp_path / "b.log", env=env) as b,
        httpx.Client(verify=ssl.create_default_context(cafile=str(a.ca)), timeout=30) as http,
    ):

        def token(who, server):
            credentials = (who.principal.client_id, who.secret.get_secret_value())
            return http.post(f"{server.url}/oauth2/token", auth=credentials,
                             data={"grant_type": "client_credentials"})  # fmt: skip

        headers = {
            who.principal.name: {"Authorization": f"Bearer {token(who, a).json()['access_token']}"}
            for who in (ana, bob)
        }

        def get(n, who, model):
            server = (a, b)[n % 2]
            return http.get(
                f"{server.url}/v2/models/{model}", headers=headers[who.principal.name]
            ).status_code

        scarce = [get(n, ana, "scarce") for n in range(2)] + [get(n, bob, "scarce") for n in (0, 1)]
        ana_after = [get(n, ana, "plenty") for n in range(4)]
        credentials = (bob.principal.client_id, "wrong secret")
        failures = [
            http.post(f"{(a, b)[n % 2].url}/oauth2/token", auth=credentials,
                      data={"grant_type": "client_credentials"}).status_code
            for n in range(3)
        ]  # fmt: skip
        locked = token(bob, b)
    assert scarce == [404, 404, 404, 429], scarce  # 3 a day for the model, whoever asks
    # ana: 2 scarce + 3 plenty = her 5 a day; the model quota refused none of hers
    assert ana_after == [404, 404, 404, 429], ana_after
    assert failures == [401, 401, 401]
    assert locked.status_code == 429 and locked.json()["error"] == "temporarily_unavailable"
    assert int(locked.headers["Retry-After"]) > 0
    reasons = [e.event.reason for e in ws.audit.tail(40) if e.event.status == 429]
    assert any("daily quota of model:scarce" in r for r in reasons)
    assert any(f"daily quota of principal:{ana.principal.client_id}" in r for r in reasons)
    events = [e.event.event for e in ws.audit.tail(10)]
    assert "authn_login_lock" in events
    ws.close()
