"""The real `bastion` CLI leaves what it audited signed; `audit verify --strict` and tampering."""

from __future__ import annotations

import sqlite3

import pytest

from bastion.settings import Settings
from bastion.workspace import Workspace
from tests.integration.test_cli import PASSPHRASE, bastion
from tests.unit.audit.test_log import event


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "ws"
    bastion(home, "init")
    return home


def open_workspace(home):
    return Workspace(settings=Settings(home=home, passphrase=PASSPHRASE))


def test_a_cli_command_that_appends_leaves_the_log_covered(home, digits_file):
    """A refused and an allowed audited command each end with every entry signed."""
    ws = open_workspace(home)
    guest = ws.principals.add("gus", role="guest", attributes={}).principal.client_id
    admin = ws.principals.add("adm", role="admin", attributes={}).principal.client_id
    ws.close()
    register = ("model", "register", str(digits_file), "--name", "digits", "--allow-unsigned")
    refused = bastion(home, *register, "--principal", guest, check=False)
    assert refused.returncode != 0  # Forbidden, and audited
    strict = bastion(home, "audit", "verify", "--strict")
    assert "1 audit entries verified" in strict.stdout
    assert "every entry is covered" in strict.stdout
    bastion(home, *register, "--principal", admin)
    assert "every entry is covered" in bastion(home, "audit", "verify", "--strict").stdout
    ws = open_workspace(home)
    assert ws.audit.latest_checkpoint().size == ws.audit.size() == 2
    ws.close()


def test_strict_verify_fails_while_entries_are_unsigned(home):
    """Entries of a process that never closed are reported, and --strict exits non-zero."""
    ws = open_workspace(home)
    ws.audit.append_many([event(n) for n in range(4)])  # then "crashes": no close
    plain = bastion(home, "audit", "verify")
    assert "4 entries (from 0) are not yet covered" in plain.stdout
    strict = bastion(home, "audit", "verify", "--strict", check=False)
    assert strict.returncode != 0
    assert "4 audit entries are not covered by a signed checkpoint" in strict.stderr
    bastion(home, "audit", "checkpoint")
    assert "every entry is covered" in bastion(home, "audit", "verify", "--strict").stdout


@pytest.mark.parametrize(
    "statement",
    [
        "update audit_entries set entry = replace(entry, 'bcl_a', 'bcl_z') where seq = 3",
        "update audit_entries set leaf_hash = x'00' where seq = 3",
        "update audit_entries set seq = 99 where seq = 3",
        "delete from audit_entries where seq = 1",
        "delete from audit_entries where seq >= 2",
    ],
    ids=["entry", "leaf", "seq", "delete", "truncate"],
)
def test_an_insider_edit_of_the_tail_fails_verify_and_search(home, statement):
    """After a CLI-closed log, any edit of its last entries fails verify; search refuses too."""
    ws = open_workspace(home)
    ws.audit.append_many([event(n) for n in range(4)])
    ws.close()
    with sqlite3.connect(home / "bastion.db") as db:
        db.execute(statement)
    broken = bastion(home, "audit", "verify", check=False)
    assert broken.returncode != 0 and "error:" in broken.stderr
    if ">=" not in statement:  # a truncated log reads as a shorter one; verify names it
        searched = bastion(home, "audit", "search", "--principal", "bcl_a", check=False)
        assert searched.returncode != 0 and "audit verify" in searched.stderr


INSIDER_SQL = {
    "entry": ("UPDATE audit_entries SET entry = REPLACE(entry, 'bcl_a', 'bcl_') WHERE seq = 3", {}),
    "leaf": ("UPDATE audit_entries SET leaf_hash = :leaf WHERE seq = 3", {"leaf": b"\0" * 32}),
    "seq": ("UPDATE audit_entries SET seq = 99 WHERE seq = 3", {}),
    "forged-leaf": ("UPDATE audit_entries SET entry = :entry, leaf_hash = :leaf WHERE seq = 3", {}),
}


@pytest.mark.parametrize("column", sorted(INSIDER_SQL))
def test_an_insider_edit_fails_the_cli_on_sqlite_and_postgresql(database_url, tmp_path, column):
    """A workspace on either database: any SQL edit of a signed entry fails verify and search."""
    import os
    import subprocess
    import sys

    import sqlalchemy as sa

    from bastion.audit.merkle import leaf_hash

    env = os.environ | {"BASTION_PASSPHRASE": PASSPHRASE, "BASTION_DATABASE_URL": database_url}

    def cli(*args):
        command = [sys.executable, "-m", "bastion", "--home", str(tmp_path / "ws"), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env,
                              check=False)  # fmt: skip

    assert cli("init").returncode == 0
    settings = Settings(home=tmp_path / "ws", passphrase=PASSPHRASE, database_url=database_url)
    ws = Workspace(settings=settings)
    ws.audit.append_many([event(n) for n in range(5)])
    ws.close()  # signs
    assert cli("audit", "verify", "--strict").returncode == 0
    sql, params = INSIDER_SQL[column]
    if column == "forged-leaf":
        forged = event(3, principal="bcl_z").to_entry()
        params = {"entry": forged.decode(), "leaf": leaf_hash(forged)}
    engine = sa.create_engine(database_url)
    with engine.begin() as db:
        db.execute(sa.text(sql), params)
    engine.dispose()
    broken = cli("audit", "verify")
    assert broken.returncode != 0 and "error:" in broken.stderr
    if column != "forged-leaf":  # a consistent forgery reads fine row by row; verify names it
        searched = cli("audit", "search", "--principal", "bcl_a")
        assert searched.returncode != 0 and "audit verify" in searched.stderr


@pytest.mark.parametrize(
    "statement",
    [
        "update audit_entries set leaf_hash = hex(leaf_hash) where seq = 2",
        "update audit_entries set entry = cast(entry as blob) where seq = 2",
        "update audit_entries set seq = 2.5 where seq = 2",
    ],
    ids=["leaf_as_text", "entry_as_blob", "seq_as_real_frac"],
)
def test_wrongly_typed_columns_are_exit_7_not_a_traceback(home, statement):
    """SQLite affinity tricks make `audit verify` and `search` exit 7 (integrity), no traceback."""
    ws = open_workspace(home)
    ws.audit.append_many([event(n) for n in range(4)])
    ws.close()
    with sqlite3.connect(home / "bastion.db") as db:
        db.execute(statement)
    for args in (("verify",), ("verify", "--strict"), ("search", "--principal", "bcl_a")):
        result = bastion(home, "audit", *args, check=False)
        assert result.returncode == 7, (args, result)
        assert "Traceback" not in result.stderr and "ntry 2" in result.stderr, (args, result)


def test_triggers_that_drop_audit_inserts_make_the_cli_command_fail(home, digits_file):
    """RAISE(IGNORE) triggers on both audit tables: the audited command fails, never exits 0."""
    ws = open_workspace(home)
    guest = ws.principals.add("gus", role="guest", attributes={}).principal.client_id
    admin = ws.principals.add("adm", role="admin", attributes={}).principal.client_id
    ws.close()
    with sqlite3.connect(home / "bastion.db") as db:
        for table in ("audit_entries", "audit_checkpoints"):
            db.execute(
                f"CREATE TRIGGER drop_{table} BEFORE INSERT ON {table} "
                "BEGIN SELECT RAISE(IGNORE); END"
            )
    register = ("model", "register", str(digits_file), "--name", "digits", "--allow-unsigned")
    refused = bastion(home, *register, "--principal", guest, check=False)
    assert refused.returncode == 8, refused  # BackendError: the audit store lost the write
    assert "Traceback" not in refused.stderr
    allowed = bastion(home, *register, "--principal", admin, check=False)
    assert allowed.returncode == 8 and "Traceback" not in allowed.stderr, allowed
    checkpoint = bastion(home, "audit", "checkpoint", check=False)
    assert checkpoint.returncode == 8 and "Traceback" not in checkpoint.stderr, checkpoint
