"""Gateways on one PostgreSQL and Redis share limits, revocations and budgets; outages fail closed.

A Redis or a database that is down, or that accepts connections and never answers, is
played by :class:`Proxy`, a TCP relay in front of the real server that can be told to
stop answering or to close its port.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis
import sqlalchemy as sa

from bastion.serving import ServerProcess, build_app, free_port
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


class Proxy:
    """A TCP relay to a real server on 127.0.0.1 that can stop answering or close its port."""

    def __init__(self, upstream_port: int) -> None:
        self.port = free_port()
        self._upstream = upstream_port
        self._mode = "forward"
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listen()

    @property
    def url_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    def hang(self) -> None:
        """Accept connections and read requests, but never answer (old and new connections)."""
        self._mode = "hang"

    def refuse(self) -> None:
        """Close the port and every connection: a server that is down."""
        self._mode = "refuse"
        _close(self._server)  # shutdown first: a thread blocked in accept keeps it open
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _close(sock)

    def forward(self) -> None:
        """Relay again (reopening the port if it was closed)."""
        if self._mode == "refuse":
            self._listen()
        self._mode = "forward"

    def _listen(self) -> None:
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self._server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            if self._mode == "refuse":
                _close(client)
                return
            with self._lock:
                self._sockets.append(client)
            if self._mode == "hang":
                continue  # accepted, never read, never answered
            upstream = socket.create_connection(("127.0.0.1", self._upstream))
            with self._lock:
                self._sockets.append(upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
                if not data:
                    break
                if self._mode == "forward":  # while hanging, requests go nowhere
                    sink.sendall(data)
            except OSError:
                break
        _close(sink)

    def close(self) -> None:
        """Stop relaying for good."""
        self.refuse()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv on it
    sock.close()


def _timed(send):
    started = time.monotonic()
    response = send()
    return response, time.monotonic() - started


def test_a_redis_that_stops_answering_costs_quick_503s_and_never_the_gateway(tmp_path, redis_url):
    """Redis hangs, then is down: quick 503s, liveness 200, readiness 503; all recover after.

    Token and model calls get 503 with Retry-After within seconds (the old synchronous
    client blocked the event loop, so liveness stopped answering too).
    """
    ws = Workspace.create(Settings(home=tmp_path / "ws", passphrase=PASSPHRASE), force=False)
    ana = ws.principals.add("ana", role="analyst", attributes={})
    credentials = (ana.principal.client_id, ana.secret.get_secret_value())
    proxy = Proxy(6379)
    env = {"BASTION_PASSPHRASE": PASSPHRASE, "BASTION_REDIS_URL": f"redis://{proxy.url_port}/0"}
    form = {"grant_type": "client_credentials"}
    try:
        with (
            ServerProcess(home=ws.paths.home, port=free_port(), log=tmp_path / "g.log", env=env)
            as server,
            httpx.Client(
                base_url=server.url, verify=ssl.create_default_context(cafile=str(server.ca)),
                timeout=15,
            ) as http,
            ThreadPoolExecutor(max_workers=8) as pool,
        ):  # fmt: skip
            first = http.post("/oauth2/token", data=form, auth=credentials)
            headers = {"Authorization": f"Bearer {first.json()['access_token']}"}
            happy = http.get("/v2/models/none", headers=headers).status_code  # through Redis

            def outage():
                tokens = [
                    pool.submit(_timed, lambda: http.post("/oauth2/token", data=form,
                                                          auth=credentials))
                    for _ in range(4)
                ]  # fmt: skip
                model = pool.submit(_timed, lambda: http.get("/v2/models/none", headers=headers))
                # While those wait on Redis, the event loop is free: liveness answers at once.
                live = [http.get("/v2/health/live", timeout=5).status_code for _ in range(5)]
                ready = http.get("/v2/health/ready", timeout=5).status_code
                return [f.result() for f in tokens], model.result(), live, ready

            proxy.hang()
            hung = outage()
            proxy.refuse()
            down = outage()
            proxy.forward()
            deadline = time.monotonic() + 10
            while http.get("/v2/health/ready").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            recovered = http.post("/oauth2/token", data=form, auth=credentials).status_code
            ready_again = http.get("/v2/health/ready").status_code
    finally:
        proxy.close()
    assert first.status_code == 200 and happy == 404
    for tokens, (model, model_seconds), live, ready in (hung, down):
        for response, seconds in tokens:
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "A backend is unavailable; try again shortly."
            assert int(response.headers["retry-after"]) >= 1
            assert seconds < 10  # about 1 s (two 0.5 s timeouts); generous for a loaded host
        assert model.status_code == 503 and model_seconds < 10
        assert live == [200] * 5
        assert ready == 503
    assert recovered == 200 and ready_again == 200
    ws.close()


@pytest.fixture
def make_gateway(make_workspace):
    """Factory: an in-process app over a new workspace, and an HTTP client for it."""
    apps = []

    def make(**settings):
        ws = make_workspace(**settings)
        ana = ws.principals.add("ana", role="analyst", attributes={})
        apps.append(build_app(ws))
        transport = httpx.ASGITransport(app=apps[-1], client=("10.0.0.7", 5000))
        return ws, ana, httpx.AsyncClient(transport=transport, base_url=ws.settings.issuer)

    yield make
    for app in apps:
        app.state.runner.close()


@pytest.mark.anyio
@pytest.mark.parametrize("outage", ["hang", "refuse"])
async def test_without_redis_calls_fail_closed_and_readiness_says_so(
    make_gateway, redis_url, outage
):
    """In process: with Redis hanging or down, tokens and model calls 503, liveness 200."""
    proxy = Proxy(6379)
    try:
        ws, ana, http = make_gateway(redis_url=f"redis://{proxy.url_port}/0")
        credentials = (ana.principal.client_id, ana.secret.get_secret_value())
        form = {"grant_type": "client_credentials"}
        async with http:
            token = (await http.post("/oauth2/token", data=form, auth=credentials)).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            assert (await http.get("/v2/health/ready")).status_code == 200
            getattr(proxy, outage)()
            refused = await http.post("/oauth2/token", data=form, auth=credentials)
            model = await http.get("/v2/models/none", headers=headers)
            live = await http.get("/v2/health/live")
            ready = await http.get("/v2/health/ready")
            proxy.refuse()  # frees the connections a hanging Redis still holds
    finally:
        proxy.close()
    assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
    assert model.status_code == 503
    assert live.status_code == 200 and ready.status_code == 503
    assert ready.json() == {"ready": False}
    events = [e.event for e in ws.audit.tail(5)]
    assert any(e.status == 503 and "redis (lockout)" in e.reason for e in events), events


@pytest.mark.anyio
@pytest.mark.postgres
async def test_readiness_is_503_while_the_database_is_unreachable(make_gateway, postgres_schema):
    """PostgreSQL closes its port, then accepts and never answers: ready 503, live 200."""
    proxy = Proxy(5432)
    try:
        url = postgres_schema.replace("127.0.0.1:5432", proxy.url_port)
        _, _, http = make_gateway(database_url=url)
        async with http:
            before = (await http.get("/v2/health/ready")).status_code
            proxy.refuse()
            down = (await http.get("/v2/health/ready")).status_code
            live = (await http.get("/v2/health/live")).status_code
            proxy.forward()
            back = (await http.get("/v2/health/ready")).status_code
            proxy.hang()
            started = time.monotonic()
            hung = (await http.get("/v2/health/ready")).status_code
            seconds = time.monotonic() - started
            hung_live = (await http.get("/v2/health/live")).status_code
            proxy.refuse()  # lets the probe thread stuck on the hanging database return
    finally:
        proxy.close()
    assert (before, down, live, back) == (200, 503, 200, 200)
    assert (hung, hung_live) == (503, 200)
    assert seconds < 10  # the probe gives up after 1 s
