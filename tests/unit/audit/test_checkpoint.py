"""Checkpoint triggers (size, time, close) and the tail an insider edits before or after one."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from bastion.audit import AuditLog
from bastion.audit.merkle import leaf_hash, root
from bastion.crypto import SigningKey
from bastion.errors import IntegrityError, NotFound
from bastion.storage import tables
from tests.unit.audit.test_log import event


@pytest.fixture
def key(tmp_path):
    return SigningKey.generate(tmp_path / "audit.pem")


@pytest.fixture
def make_log(database, key):
    made: list[AuditLog] = []

    def make(**triggers):
        log = AuditLog(
            database=database, signing_key=key, origin="test/audit", clock=time.time, **triggers
        )
        made.append(log)
        return log

    return make


def wait_for_checkpoint(log, size, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if log.latest_checkpoint().size >= size:
                return log.latest_checkpoint()
        except NotFound:
            pass
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint of size {size} within {seconds} s")


def test_the_size_trigger_signs_once_enough_entries_are_unsigned(make_log):
    """With a size trigger of 5 and a long interval, 12 appends are signed up to 10 at least."""
    log = make_log(checkpoint_interval=3600, checkpoint_entries=5)
    for n in range(12):
        log.append(event(n))
    assert wait_for_checkpoint(log, 10).size >= 10
    assert log.verify().uncovered <= 2


def test_the_time_trigger_signs_an_idle_log(make_log):
    """Entries followed by no traffic are signed once the interval passes (no next append)."""
    log = make_log(checkpoint_interval=0.2, checkpoint_entries=1_000_000)
    log.append_many([event(n) for n in range(3)])
    assert wait_for_checkpoint(log, 3).size == 3
    assert log.verify().uncovered == 0


def test_close_signs_everything_this_process_wrote(make_log):
    """Without any trigger due, close() leaves no entry uncovered."""
    log = make_log(checkpoint_interval=3600, checkpoint_entries=1_000_000)
    log.append_many([event(n) for n in range(7)])
    assert make_log().verify().uncovered == 7  # what verify reports before the close
    log.close()
    report = make_log().verify()
    assert (report.size, report.uncovered, report.checkpoints) == (7, 0, 1)


def test_close_without_appends_signs_nothing(make_log):
    """A process that only read the log adds no checkpoint."""
    make_log().close()
    with pytest.raises(NotFound):
        make_log().latest_checkpoint()


def insider(database, attack):
    """Run ``attack(connection, table, rows)`` as someone with write access to the database."""
    t = tables.audit_entries
    with database.transaction() as db:
        rows = {r.seq: r for r in db.execute(sa.select(t))}
        attack(db, t, rows)


def forge(db, t, rows, seq):
    """Rewrite entry ``seq`` with a leaf hash that matches (hides its row-level trace)."""
    forged = event(seq, principal="bcl_ghost", decision="deny").to_entry()
    db.execute(
        t.update().where(t.c.seq == seq).values(entry=forged.decode(), leaf_hash=leaf_hash(forged))
    )


def swap(db, t, rows, a, b):
    for x, y in ((a, b), (b, a)):
        db.execute(
            t.update().where(t.c.seq == x).values(entry=rows[y].entry, leaf_hash=rows[y].leaf_hash)
        )


TAIL_ATTACKS = {
    "edit": lambda db, t, rows: forge(db, t, rows, 9),
    "delete-last": lambda db, t, rows: db.execute(t.delete().where(t.c.seq == 9)),
    "truncate": lambda db, t, rows: db.execute(t.delete().where(t.c.seq >= 6)),
    "reorder": lambda db, t, rows: swap(db, t, rows, 8, 9),
    "delete-and-renumber": lambda db, t, rows: (
        db.execute(t.delete().where(t.c.seq == 7)),
        db.execute(t.update().where(t.c.seq > 7).values(seq=t.c.seq - 1)),
    ),
}


@pytest.mark.parametrize("attack", sorted(TAIL_ATTACKS))
def test_the_tail_edited_after_the_closing_checkpoint_fails_verify(make_log, database, attack):
    """Entries signed at close can no longer be edited, removed, reordered or truncated."""
    log = make_log(checkpoint_interval=3600, checkpoint_entries=1_000_000)
    log.append_many([event(n) for n in range(10)])
    log.close()
    insider(database, TAIL_ATTACKS[attack])
    with pytest.raises(IntegrityError):
        make_log().verify()


@pytest.mark.parametrize("attack", sorted(TAIL_ATTACKS))
def test_the_tail_edited_before_its_checkpoint_is_still_caught(make_log, database, attack):
    """The writer signs what it committed, not what the table holds now: verify fails."""
    log = make_log(checkpoint_interval=3600, checkpoint_entries=1_000_000)
    log.append_many([event(n) for n in range(10)])
    insider(database, TAIL_ATTACKS[attack])  # inside the window, leaf hashes fixed up
    log.close()
    with pytest.raises(IntegrityError):
        make_log().verify()


def test_a_new_process_extends_the_tree_from_the_stored_frontier(make_log, database):
    """The second process reads only new entries, and its checkpoint is the whole tree's."""
    first = make_log(checkpoint_interval=3600, checkpoint_entries=1_000_000)
    first.append_many([event(n) for n in range(13)])
    first.close()
    t = tables.audit_entries
    with database.transaction() as db:  # an old entry's leaf, which the frontier makes unread
        db.execute(t.update().where(t.c.seq == 2).values(leaf_hash=b"\0" * 32))
    second = make_log(checkpoint_interval=3600, checkpoint_entries=1_000_000)
    second.append_many([event(n) for n in range(13, 20)])
    second.close()
    with database.transaction() as db:
        entries = db.execute(sa.select(t.c.entry).order_by(t.c.seq)).scalars().all()
    assert second.latest_checkpoint().root == root([leaf_hash(e.encode()) for e in entries])
    with pytest.raises(IntegrityError, match="Audit entry 2 was changed"):
        second.verify()


CHECKPOINT_EDITS = {
    "size": lambda t: {"size": t.c.size + 1},
    "root": lambda t: {"root": b"\0" * 32},
    "note": lambda t: {"note": t.c.note + " "},
    "frontier": lambda t: {"frontier": b"\0" * 32},
}


def test_every_checkpoint_column_but_its_time_is_checked():
    """audit_checkpoints: the signed note, columns that must repeat it, and an unsigned time."""
    assert set(tables.audit_checkpoints.c.keys()) == {*CHECKPOINT_EDITS, "time"}


@pytest.mark.parametrize("column", sorted(CHECKPOINT_EDITS))
def test_an_edited_checkpoint_row_fails_verify(make_log, database, column):
    """A checkpoint row whose columns no longer match its signed note is refused."""
    log = make_log()
    log.append_many([event(n) for n in range(5)])
    log.close()
    t = tables.audit_checkpoints
    with database.transaction() as db:
        db.execute(t.update().values(CHECKPOINT_EDITS[column](t)))
    with pytest.raises(IntegrityError):
        make_log().verify()


def test_a_checkpoint_row_with_a_forged_frontier_is_not_extended(make_log, database):
    """A new process that finds a frontier not matching its signed root rebuilds the tree."""
    first = make_log()
    first.append_many([event(n) for n in range(6)])
    first.close()
    t = tables.audit_checkpoints
    with database.transaction() as db:
        db.execute(t.update().values(frontier=b"\1" * 64))  # 6 = 0b110: two nodes
    second = make_log()
    second.append_many([event(6)])
    second.close()
    with database.transaction() as db:
        leaves = db.execute(
            sa.select(tables.audit_entries.c.leaf_hash).order_by(tables.audit_entries.c.seq)
        ).scalars()
        assert second.latest_checkpoint().root == root([bytes(leaf) for leaf in leaves])


def test_checkpoints_from_before_the_frontier_column_are_extended_by_rereading(make_log, database):
    """A checkpoint stored without a frontier (before migration 0011): the tree is rebuilt."""
    first = make_log()
    first.append_many([event(n) for n in range(9)])
    first.close()
    with database.transaction() as db:
        db.execute(tables.audit_checkpoints.update().values(frontier=None))
    second = make_log()
    second.append_many([event(n) for n in range(9, 12)])
    second.close()
    report = make_log().verify()
    assert (report.size, report.checkpoints, report.uncovered) == (12, 2, 0)
