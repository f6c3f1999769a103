"""Shared fixtures: factories for workspaces and databases, and a trained sample model."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from bastion.crypto import BlobStore, Keyring
from bastion.crypto.kms import LocalKms
from bastion.samples import DigitsSample, train_digits
from bastion.settings import Settings
from bastion.storage import Database
from bastion.workspace import Workspace

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSPHRASE = "correct horse battery staple"


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker computes on one thread (set before torch is imported).

    ``make test`` runs one worker per core; PyTorch's and OpenMP's default of a thread per
    core in every worker would oversubscribe the cores several times over.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-services",
        action="store_true",
        help="Fail, instead of skip, when PostgreSQL at 127.0.0.1:5432 does not answer (CI).",
    )


@pytest.fixture(scope="session")
def postgres_url(request: pytest.FixtureRequest) -> str:
    """The URL of the PostgreSQL test server; skips (or fails in CI) when it is down."""
    engine = sa.create_engine(POSTGRES_URL)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        if request.config.getoption("--require-services"):
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is required: {type(exc).__name__}")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not running")
    finally:
        engine.dispose()
    return POSTGRES_URL


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: SQLite in a temporary folder, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"bastion_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(base)
    with admin.begin() as connection:
        connection.execute(sa.text(f"create schema {schema}"))
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"drop schema {schema} cascade"))
        admin.dispose()


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A migrated database on each backend."""
    db = Database.open(database_url)
    db.migrate()
    yield db
    db.close()


@pytest.fixture
def make_workspace(tmp_path: Path) -> Iterator[Callable[..., Workspace]]:
    """Factory: a new workspace under tmp_path, with settings overrides."""
    made: list[Workspace] = []

    def make(**overrides: Any) -> Workspace:
        home = tmp_path / f"ws{len(made)}"
        settings = Settings(home=home, **({"passphrase": PASSPHRASE} | overrides))
        workspace = Workspace.create(settings, force=False)
        made.append(workspace)
        return workspace

    yield make
    for workspace in made:
        workspace.close()


@pytest.fixture(scope="session")
def digits() -> DigitsSample:
    """The sample digits classifier, trained once per test session."""
    return train_digits()


@pytest.fixture(scope="session")
def digits_file(digits: DigitsSample, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample classifier as an ONNX file."""
    path = tmp_path_factory.mktemp("models") / "digits.onnx"
    path.write_bytes(digits.onnx)
    return path


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, as uvicorn does."""
    return "asyncio"


@pytest.fixture
def keyring(database: Database, tmp_path: Path) -> Keyring:
    """A real keyring (local KMS under a passphrase) with version 1, on each database."""
    kms = LocalKms.create(tmp_path / "kms.json", passphrase=SecretStr(PASSPHRASE))
    ring = Keyring(key_id="root", backend=kms, database=database, clock=time.time)
    ring.create()
    return ring


@pytest.fixture
def blobs(database: Database, keyring: Keyring) -> BlobStore:
    """An encrypted object store over the keyring."""
    return BlobStore(database=database, keyring=keyring, clock=time.time)


SOFTHSM = Path("/usr/lib/softhsm/libsofthsm2.so")


@pytest.fixture(scope="session")
def softhsm(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A fresh SoftHSM2 token for this test session: library path, label and PIN."""
    util = shutil.which("softhsm2-util")
    if not SOFTHSM.exists() or util is None:
        if request.config.getoption("--require-services"):
            pytest.fail("SoftHSM2 is required: run `bash .ci/system-deps`")
        pytest.skip("SoftHSM2 is not installed (bash .ci/system-deps installs it)")
    folder = tmp_path_factory.mktemp("softhsm")
    (folder / "tokens").mkdir()
    config = folder / "softhsm2.conf"
    config.write_text(
        f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\n"
        "log.level = ERROR\n"
    )
    # SoftHSM reads its configuration from the environment when the library loads.
    os.environ["SOFTHSM2_CONF"] = str(config)
    label = f"bastion-{secrets.token_hex(4)}"
    subprocess.run(
        [
            util,
            "--init-token",
            "--free",
            "--label",
            label,
            "--pin",
            "4321",
            "--so-pin",
            "8765",
        ],
        check=True,
        capture_output=True,
    )
    return {"library": SOFTHSM, "token_label": label, "pin": SecretStr("4321")}


@pytest.fixture(scope="session")
def promtool(request: pytest.FixtureRequest) -> str:
    """Path of Prometheus's promtool (Debian package prometheus)."""
    path = shutil.which("promtool")
    if path is None:
        if request.config.getoption("--require-services"):
            pytest.fail("promtool is required: run `bash .ci/system-deps`")
        pytest.skip("promtool is not installed (bash .ci/system-deps installs it)")
    return path


@pytest.fixture(scope="session", autouse=True)
def no_leaks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    """After the whole suite: no secret or token it made appears in any file it wrote.

    Every client secret created (PrincipalStore.add) and every token issued in this
    process (TokenIssuer.issue), plus the tokens tests fetched from servers (added to the
    yielded set), are searched for in every file under the session's temporary folder:
    databases with their audit entries, server logs, exports. Audit entries are also
    checked to hold no tensors. The log of every real server process the suite started
    (ServerProcess), wherever it lies, is scanned too, and its access log must hold no query
    string at all: that catches credentials the suite never saw, such as an external IdP's.
    """
    from bastion.identity import PrincipalStore, TokenIssuer
    from bastion.serving import ServerProcess

    secrets_seen: set[str] = set()
    add, issue = PrincipalStore.add, TokenIssuer.issue
    enter = ServerProcess.__enter__

    def recording_enter(self):
        SERVER_LOGS.append(self.log)
        return enter(self)

    def recording_add(self, *args, **kwargs):
        created = add(self, *args, **kwargs)
        if created.secret.get_secret_value():  # clients with a public key have none
            secrets_seen.add(created.secret.get_secret_value())
        return created

    def recording_issue(self, *args, **kwargs):
        issued = issue(self, *args, **kwargs)
        secrets_seen.add(issued.value.get_secret_value())
        return issued

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PrincipalStore, "add", recording_add)
        patch.setattr(TokenIssuer, "issue", recording_issue)
        patch.setattr(ServerProcess, "__enter__", recording_enter)
        yield secrets_seen
    _scan_for_leaks(tmp_path_factory.getbasetemp(), secrets_seen)
    scan_server_logs(SERVER_LOGS, secrets_seen)


SERVER_LOGS: list[Path] = []  # the log of every ServerProcess started in this session
# An access-log line (uvicorn's format) whose target has a query string.
_QUERY_IN_ACCESS_LOG = re.compile(r'"[A-Z]+ [^" ]*\?[^" ]* HTTP/[0-9.]+"')


def scan_server_logs(logs: list[Path], secrets_seen: set[str]) -> None:
    """Fail if a server log holds a secret, or an access-log line holds a query string."""
    needles = [s.encode() for s in secrets_seen]
    for log in logs:
        if not log.is_file():
            continue
        data = log.read_bytes()
        leaked = [n[:12] for n in needles if n in data]
        assert not leaked, f"{log} holds secrets or tokens starting {leaked}"
        queries = _QUERY_IN_ACCESS_LOG.findall(data.decode("utf-8", "replace"))
        assert not queries, f"{log}: the access log holds query strings: {queries[:3]}"


def _scan_for_leaks(root: Path, secrets_seen: set[str]) -> None:
    import json
    import sqlite3

    needles = [s.encode() for s in secrets_seen]
    for path in root.rglob("*"):
        if not path.is_file() or path.stat().st_size > 64 * 1024 * 1024:
            continue
        data = path.read_bytes()
        leaked = [n[:12] for n in needles if n in data]
        assert not leaked, f"{path} holds secrets or tokens starting {leaked}"
        if path.suffix == ".db":
            with sqlite3.connect(path) as db:
                found = db.execute("select name from sqlite_master where name='audit_entries'")
                if found.fetchone() is None:
                    continue
                for (entry,) in db.execute("select entry from audit_entries"):
                    try:
                        values = json.loads(entry)
                    except (TypeError, ValueError):
                        continue  # a row a tampering test wrote: no entry Bastion made
                    if not isinstance(values, dict):
                        continue
                    lists = {k for k, v in values.items() if isinstance(v, list)}
                    assert lists <= {"policy_ids"}, f"{path}: an audit entry holds {lists}"
                    assert all(len(str(v)) <= 200 for v in values.values()), path
