"""The HTTP edge of a real gateway process.

Slow clients, connection limits, security headers on every answer, an access log without
credentials, and metric labels no client can grow.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import ssl
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from bastion.samples import DIGITS_INPUT

HEADER_SECONDS = 8
PER_ADDRESS = 10
TOTAL = 15
GATEWAY_CONFIG = f"""
header_timeout_seconds = {HEADER_SECONDS}
body_timeout_seconds = {HEADER_SECONDS}
keep_alive_seconds = 2
max_connections_per_address = {PER_ADDRESS}
max_connections = {TOTAL}
rate_per_second = 100000
rate_burst = 100000
"""
SECURITY_HEADERS = {
    "strict-transport-security": "max-age=31536000",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}
GIVE_UP = 60.0  # generous: the server drops them after HEADER_SECONDS


def tls_socket(gateway, source: str = "127.0.0.1") -> ssl.SSLSocket:
    """A TLS connection to the gateway from ``source`` (any 127.x address is this host)."""
    context = ssl.create_default_context(cafile=str(gateway.server.ca))
    raw = socket.create_connection(
        ("127.0.0.1", gateway.server.port), timeout=10, source_address=(source, 0)
    )
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def is_closed(sock: ssl.SSLSocket, wait: float = 0.0) -> bool:
    """Whether the server has closed ``sock`` (within ``wait`` seconds)."""
    sock.settimeout(wait if wait > 0 else 0.001)
    try:
        while sock.recv(65536):  # the rest of an answer, if any
            pass
    except (TimeoutError, ssl.SSLWantReadError, BlockingIOError):
        return False
    except OSError:  # reset or aborted
        return True
    return True


def dribble_until_closed(socks: list[ssl.SSLSocket], first: bytes) -> float:
    """Send ``first``, then (unless it is empty: a silent client) one byte every 0.5 s."""
    started = time.monotonic()
    for sock in socks:
        sock.sendall(first)
    open_ = list(socks)
    while open_ and time.monotonic() - started < GIVE_UP:
        time.sleep(0.5)
        for sock in list(open_):
            try:
                sock.sendall(b"X" if first else b"")
            except OSError:
                open_.remove(sock)
                continue
            if is_closed(sock):
                open_.remove(sock)
    assert not open_, f"{len(open_)} slow connections still open after {GIVE_UP} s"
    return time.monotonic() - started


def client_from(gateway, source: str) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(gateway.server.ca))
    transport = httpx.HTTPTransport(verify=context, local_address=source)
    return httpx.Client(base_url=gateway.url, transport=transport, timeout=30)


def test_slowloris_connections_are_dropped_while_others_are_served(gateway):
    """50 slowloris connections from one address: 10 held to the deadline, 40 refused at once."""
    socks, refused = [], 0
    for _ in range(50):
        try:
            socks.append(tls_socket(gateway))
        except OSError:  # refused during the handshake
            refused += 1
    try:
        held = [sock for sock in socks if not is_closed(sock, wait=0.2)]
        assert len(held) == PER_ADDRESS
        assert refused + len(socks) - len(held) == 50 - PER_ADDRESS
        with client_from(gateway, "127.0.0.2") as other:
            assert other.get("/v2/health/live").status_code == 200
            dribble_until_closed(held, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-")
            assert other.get("/v2/health/live").status_code == 200
    finally:
        for sock in socks:
            sock.close()
    with client_from(gateway, "127.0.0.1") as freed:  # their places are free again
        assert freed.get("/v2/health/live").status_code == 200


def test_connections_past_the_total_are_refused(gateway):
    """With max_connections held by several addresses, a new connection from any is dropped."""
    socks = []
    try:
        for i in range(TOTAL):  # three addresses, each under its own limit
            socks.append(tls_socket(gateway, f"127.0.1.{i % 3 + 1}"))
        assert not [sock for sock in socks if is_closed(sock)]
        extra = tls_socket(gateway, "127.0.1.9")
        socks.append(extra)
        assert is_closed(extra, wait=5)
        assert not is_closed(socks[0])  # the held ones are still open: the total refused it
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize(
    ("first", "source"),
    [
        (b"", "127.0.0.3"),  # connects and sends nothing
        (b"GET /v2/health/live?", "127.0.0.4"),  # a request line that never ends
        (
            b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\ng",
            "127.0.0.5",
        ),
    ],
    ids=["silent", "request-line", "slow-body"],
)
def test_slow_clients_of_every_kind_are_dropped(gateway, first, source):
    """Silent connections, a dribbled request line and a dribbled body all meet a deadline."""
    socks = [tls_socket(gateway, source) for _ in range(3)]
    try:
        dribble_until_closed(socks, first)
    finally:
        for sock in socks:
            sock.close()


def test_a_dribbled_second_request_on_a_kept_alive_connection_is_dropped(gateway):
    """After one answered request, the next request's headers have the deadline too."""
    with tls_socket(gateway, "127.0.0.6") as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        dribble_until_closed([sock], b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-")


def test_idle_kept_alive_connections_are_closed(gateway):
    """A connection idle after its answer is closed after keep_alive_seconds."""
    with tls_socket(gateway, "127.0.0.7") as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        assert is_closed(sock, wait=GIVE_UP)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_every_answer_carries_the_security_headers(gateway):
    """Answers of every status (200 to 415) carry HSTS, nosniff and no-store."""
    analyst, guest = gateway.token(gateway.analyst), gateway.token(gateway.guest)
    body = {"inputs": [{"name": DIGITS_INPUT, "shape": [1, 64], "datatype": "FP32",
                        "data": np.zeros(64).tolist()}]}  # fmt: skip
    with gateway.http() as http:
        answers = [
            http.get("/v2/health/live"),
            http.get("/openapi.json"),
            http.get("/v2/models/digits"),  # 401
            http.get("/v2/models/digits", headers=auth("not a token")),  # 401
            http.get("/metrics", headers=auth(guest)),  # 403
            http.get("/v2/models/nope", headers=auth(analyst)),  # 404
            http.get("/no/such/route"),  # 404 of the router
            http.request("TRACE", "/v2/models/digits"),  # 405
            http.request("OPTIONS", "/oauth2/token"),  # 405
            http.post("/v2/models/digits/infer", headers=auth(analyst), content=b"{"),  # 400
            http.post(
                "/v2/models/digits/infer",
                headers=auth(analyst) | {"Content-Type": "text/plain"},
                content=json.dumps(body),
            ),  # 415
            http.post(
                "/v2/models/digits/infer", headers=auth(analyst), content=b"x" * (8 * 2**20 + 1)
            ),  # 413
            http.post("/oauth2/token", data={"grant_type": "client_credentials"}),  # 401
            http.post("/oauth2/token", data={"grant_type": "password"}, auth=("a", "b")),
            http.post("/v2/models/digits/infer", headers=auth(analyst), json=body),  # 200
        ]
    statuses = {answer.status_code for answer in answers}
    assert {200, 400, 401, 403, 404, 405, 413, 415} <= statuses
    for answer in answers:
        missing = {
            name: value
            for name, value in SECURITY_HEADERS.items()
            if answer.headers.get(name) != value
        }
        assert not missing, f"{answer.request.method} {answer.request.url.path}: {missing}"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n",  # NUL in a header
        b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",  # space in a name
        b"GET /v2/health/live HTTP/9.9\r\nHost: x\r\n\r\n",  # no such version
        b"G\x00T / HTTP/1.1\r\nHost: x\r\n\r\n",  # NUL in the method
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["nul-header", "header-name", "version", "nul-method", "two-lengths", "bad-chunk"],
)
def test_malformed_http_gets_a_json_400_with_the_security_headers(gateway, request_bytes):
    """What the HTTP parser refuses is a JSON 400 with the same headers as any answer."""
    with tls_socket(gateway, "127.0.0.8") as sock:
        sock.sendall(request_bytes)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    assert lines[0] == "HTTP/1.1 400 Bad Request"
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"error": "The request is not valid HTTP/1.1."}
    assert {name: headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS


def test_undeclared_methods_are_405_with_allow(gateway):
    """TRACE, OPTIONS, PATCH and made-up methods get 405 naming the route's methods in Allow."""
    with gateway.http() as http:
        for method in ("TRACE", "OPTIONS", "PATCH", "PUT", "DELETE", "BREW"):
            for path, allowed in [
                ("/v2/models/digits", "GET, HEAD"),
                ("/v2/models/digits/infer", "POST"),
                ("/oauth2/token", "POST"),
            ]:
                answer = http.request(method, path)
                if answer.status_code == 400:  # a method the parser does not know
                    assert method == "BREW" and answer.json()["error"]
                    continue
                assert answer.status_code == 405, (method, path)
                given = {value.strip() for value in answer.headers["allow"].split(",")}
                assert given == set(allowed.split(", ")), (method, path)


def test_missing_authorization_is_401_with_www_authenticate(gateway):
    """No Authorization header on a guarded route is 401 with a Bearer challenge, not 400."""
    body = {"inputs": []}
    with gateway.http() as http:
        answers = [
            http.get("/v2/models/digits"),
            http.get("/v2/models/nope/versions/1"),
            http.post("/v2/models/digits/infer", json=body),
            http.post("/v2/models/digits/infer", content=b"not json"),
            http.get("/metrics"),
            http.get("/audit/checkpoint"),
            http.get("/admin/principals"),
            http.post("/v1/datasets/x/query", json={}),
        ]
    for answer in answers:
        assert answer.status_code == 401, answer.request.url.path
        assert answer.headers["www-authenticate"].startswith("Bearer ")


CREDENTIAL_QUERIES = [
    "access_token={token}",
    "token={token}",
    "client_secret={secret}",
    "api_key=bak_{nonce}",
    "x={token}&y=1",
    "password={nonce}",
]


def test_the_access_log_holds_no_query_string_and_no_credential(gateway):
    """Tokens and secrets sent in query strings or paths are refused, never logged or audited."""
    token = gateway.token(gateway.analyst)
    secret = gateway.analyst.secret.get_secret_value()
    nonce = secrets.token_hex(16)
    sent = []
    with gateway.http() as http:
        for query in CREDENTIAL_QUERIES:
            text = query.format(token=token, secret=secret, nonce=nonce)
            for path in ("/v2/models/digits", "/oauth2/token", "/oauth2/introspect", "/nowhere"):
                sent.append(http.get(f"{path}?{text}"))
        sent.append(http.get(f"/v2/models/{token}"))  # a token pasted into the path
        sent.append(http.get(f"/v2/models/{token}", headers=auth(token)))  # 404: audited
        sent.append(http.get(f"/v2/models/bak_{nonce}_{nonce}"))
    assert all(answer.status_code in (401, 404, 405) for answer in sent)
    time.sleep(0.5)  # the log is written by the server process
    log = gateway.server.log.read_text()
    access = [line for line in log.splitlines() if '"GET ' in line]
    assert len(access) >= len(sent)
    assert not [line for line in access if "?" in line]
    for needle in (token, secret, nonce, token.split(".")[-1]):
        assert needle not in log
    assert '"GET /v2/models/{redacted} HTTP/1.1" 401' in log
    database = gateway.workspace.paths.database
    stored = b"".join(f.read_bytes() for f in database.parent.glob(f"{database.name}*"))
    assert token.encode() not in stored  # the audit entry's resource is redacted too
    assert token.split(".")[-1].encode() not in stored


def test_unknown_names_never_become_metric_labels(gateway):
    """1000 random model names and versions, with and without a token, add no label value."""
    analyst = gateway.token(gateway.analyst)
    operator = gateway.token(gateway.operator)

    def label_values(text: str) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for name, value in re.findall(r'(\w+)="([^"]*)"', text):
            found.setdefault(name, set()).add(value)
        return found

    with gateway.http() as http:
        before = label_values(http.get("/metrics", headers=auth(operator)).text)
        for i in range(1000):
            name = secrets.token_hex(8)
            if i % 4 == 0:
                http.get(f"/v2/models/{name}")
            elif i % 4 == 1:
                http.get(f"/v2/models/{name}", headers=auth(analyst))
            elif i % 4 == 2:
                http.get(f"/v2/models/digits/versions/{name}/ready", headers=auth(analyst))
            else:
                http.post(f"/v2/models/{name}/infer", headers=auth(analyst), json={})
        text = http.get("/metrics", headers=auth(operator)).text
    after = label_values(text)
    assert after["model"] <= before.get("model", set()) | {"-", "digits"}
    assert len(after["route"]) <= 20
    assert not [value for values in after.values() for value in values if len(value) == 16]


def test_the_suite_leak_scan_reads_server_access_logs(gateway, tmp_path):
    """The suite-wide scan covers this server's log and fails on a query string or a secret."""
    from tests.conftest import SERVER_LOGS, scan_server_logs

    assert gateway.server.log in SERVER_LOGS
    scan_server_logs([gateway.server.log], set(gateway.secrets()))  # clean so far
    planted = tmp_path / "server.log"
    line = 'INFO:     127.0.0.1:5000 - "GET /v2/models/digits?access_token=abc HTTP/1.1" 401\n'
    planted.write_text(line)
    with pytest.raises(AssertionError, match="query strings"):
        scan_server_logs([planted], set())
    planted.write_text('INFO:     127.0.0.1:5000 - "GET /v2/models/digits HTTP/1.1" 401 s3cr3t\n')
    with pytest.raises(AssertionError, match="secrets"):
        scan_server_logs([planted], {"s3cr3t"})


WRONG_TYPES = [
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json; charset=latin-1",
    "application/xml",
]


@pytest.mark.parametrize("content_type", WRONG_TYPES)
def test_json_bodies_of_every_route_refuse_other_types_with_415(gateway, content_type):
    """Inference, DP queries and admin JSON take JSON (or no Content-Type), never another type."""
    root = gateway.workspace.principals.add(
        f"root-{secrets.token_hex(3)}", role="admin", attributes={}
    )
    with gateway.http() as http:
        admin = http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", "scope": "manage_principals"},
            auth=(root.principal.client_id, root.secret.get_secret_value()),
        ).json()["access_token"]
        gateway.tokens.append(admin)
        analyst = gateway.token(gateway.analyst)
        body = json.dumps({"name": f"p{secrets.token_hex(3)}", "role": "guest"})
        answers = [
            http.post(
                "/v2/models/digits/infer",
                content=json.dumps({"inputs": []}),
                headers=auth(analyst) | {"Content-Type": content_type},
            ),
            http.post(
                "/admin/principals",
                content=body,
                headers=auth(admin) | {"Content-Type": content_type},
            ),
        ]
        untyped = http.post("/admin/principals", content=body, headers=auth(admin))
    assert [answer.status_code for answer in answers] == [415, 415]
    assert untyped.status_code == 201  # no Content-Type: read as the route's own type


def test_policy_files_refuse_a_json_content_type(gateway):
    """The Cedar route takes text (or no Content-Type), not JSON or a form."""
    root = gateway.workspace.principals.add(
        f"root-{secrets.token_hex(3)}", role="admin", attributes={}
    )
    with gateway.http() as http:
        admin = http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", "scope": "manage_policies"},
            auth=(root.principal.client_id, root.secret.get_secret_value()),
        ).json()["access_token"]
        gateway.tokens.append(admin)
        for content_type in ("application/json", "application/x-www-form-urlencoded"):
            answer = http.put(
                "/admin/policies/edge.cedar",
                content="// nothing\n",
                headers=auth(admin) | {"Content-Type": content_type},
            )
            assert answer.status_code == 415, content_type


def answer_or_reset(sock: ssl.SSLSocket) -> bytes:
    """Everything the server sends before it closes; what came before a reset, if it resets."""
    answer = b""
    sock.settimeout(30)
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except OSError:  # reset: the server closed with our unread bytes in its buffer
        pass
    return answer


def send_until_refused(sock: ssl.SSLSocket, first: bytes, total: int) -> int:
    """Send ``first`` then filler header bytes up to ``total``; the bytes sent before an error."""
    sent = 0
    try:
        sock.sendall(first)
        sent = len(first)
        while sent < total:
            sock.sendall(b"a" * 16384)
            sent += 16384
    except OSError:
        pass
    return sent


@pytest.mark.parametrize("kept_alive", [False, True], ids=["first", "second-on-keep-alive"])
def test_oversized_request_headers_get_431_or_are_closed(gateway, kept_alive):
    """A 100 KiB header is a 431 (JSON, security headers) or a closed connection, never served."""
    with tls_socket(gateway, "127.0.0.9") as sock:
        if kept_alive:
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            first = b""
            while b'{"live":true}' not in first:
                first += sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 200")
        big = b"X-Big: " + b"a" * (100 * 1024) + b"\r\n"
        send_until_refused(sock, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n", 0)
        answer = answer_or_reset(sock)
    assert b"200 OK" not in answer
    if answer:  # the 431 arrived before the close
        head, _, body = answer.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        assert lines[0] == "HTTP/1.1 431 Request Header Fields Too Large"
        assert json.loads(body) == {"error": "The request headers are too large."}
        assert {name: headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS


@pytest.mark.parametrize("how", ["one-header", "many-headers", "long-url"])
def test_request_headers_under_the_cap_are_served(gateway, how):
    """32 KiB of headers (one value, many headers or a long URL) is under the 64 KiB cap."""
    with client_from(gateway, "127.0.0.10") as client:
        if how == "one-header":
            response = client.get("/v2/health/live", headers={"X-Big": "a" * 32 * 1024})
        elif how == "many-headers":
            many = {f"X-H{i}": "a" * 300 for i in range(100)}
            response = client.get("/v2/health/live", headers=many)
        else:
            response = client.get("/v2/health/live", params={"q": "a" * 32 * 1024})
    assert response.status_code == 200


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024


def test_unfinished_oversized_headers_are_not_buffered(gateway):
    """8 connections each sending 16 MiB of one unfinished header are cut off near the cap."""
    pid = gateway.server.pid
    before = rss_bytes(pid)
    socks = [tls_socket(gateway, f"127.0.1.{i}") for i in range(1, 9)]
    try:
        first = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: "
        for sock in socks:
            send_until_refused(sock, first, 16 * 1024 * 1024)
        grown = rss_bytes(pid) - before
        answers = [answer_or_reset(sock) for sock in socks]
        # Without the cap the gateway keeps every byte: 128 MiB here. With it, ~64 KiB each.
        assert grown < 48 * 1024 * 1024, grown
        assert all(answer in (b"", *[a for a in answers if b" 431 " in a]) for answer in answers)
    finally:
        for sock in socks:
            sock.close()


def test_headers_dribbled_past_the_cap_in_small_pieces_are_refused(gateway):
    """The cap counts across reads: 1 KiB pieces of one header stop being read near 64 KiB."""
    with tls_socket(gateway, "127.0.0.11") as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
        sent, closed = 0, False
        while not closed and sent < 1024:  # 1 MiB if it never closes
            try:
                sock.sendall(b"X-" + b"a" * 1000 + b": v\r\n")
                sent += 1
                closed = is_closed(sock)
            except OSError:
                closed = True
        assert closed and sent < 200


@pytest.mark.parametrize(
    "first",
    [b"", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"],  # nothing; a cut ClientHello
    ids=["silent", "partial-client-hello"],
)
def test_unfinished_tls_handshakes_are_dropped_at_the_header_deadline(gateway, first):
    """A TCP connection that never finishes its TLS handshake is closed well before 60 s."""
    started = time.monotonic()
    with socket.create_connection(
        ("127.0.0.1", gateway.server.port), timeout=10, source_address=("127.0.0.12", 0)
    ) as raw:
        raw.sendall(first)
        raw.settimeout(GIVE_UP)
        try:
            while raw.recv(65536):  # a TLS alert, if any, then the close
                pass
        except OSError:  # reset
            pass
    # asyncio's default handshake timeout is 60 s; the gateway's is HEADER_SECONDS (8).
    assert time.monotonic() - started < 45
