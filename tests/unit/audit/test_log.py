"""The Merkle-tree audit log on each database: group commit, proofs and the tamper suite."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from bastion.audit import AuditEvent, AuditLog
from bastion.audit.merkle import root, verify_consistency, verify_inclusion
from bastion.crypto import SigningKey
from bastion.errors import IntegrityError, NotFound
from bastion.storage import tables


def event(n=0, **changes):
    base = {"event": "model_infer", "time": 1_800_000_000.0 + n, "request_id": f"r{n}",
            "principal": "bcl_a", "auth_method": "bearer", "source": "127.0.0.1",
            "route": "/v2/models/{name}/infer", "action": "infer", "resource": "digits@1",
            "decision": "allow", "policy_ids": ("analyst-use-models",), "status": 200,
            "latency_ms": 1.5, "input_sha256": "ab" * 32, "input_bytes": 10}  # fmt: skip
    return AuditEvent(**(base | changes))


@pytest.fixture
def make_log(database, tmp_path):
    key = SigningKey.generate(tmp_path / "audit.pem")

    def make(signing_key=key, checkpoint_interval=60.0):
        return AuditLog(
            database=database,
            signing_key=signing_key,
            origin="test/audit",
            clock=time.time,
            checkpoint_interval=checkpoint_interval,
        )

    return make


@pytest.fixture
def log(make_log):
    return make_log()


def test_appends_are_numbered_and_round_trip(log):
    """Entries get consecutive numbers and read back as the same events."""
    entries = [log.append(event(n)) for n in range(5)]
    assert [e.seq for e in entries] == [0, 1, 2, 3, 4]
    assert [e.event for e in log.tail(2)] == [event(3), event(4)]
    assert log.size() == 5
    assert log.search(principal="bcl_a", limit=2)[0].seq == 4
    assert log.search(event="authz_fail") == []


def test_concurrent_appends_form_one_gapless_log(log):
    """64 threads appending at once (group commit) leave a contiguous, verifiable log."""
    threads = [
        threading.Thread(target=lambda k=k: [log.append(event(k * 100 + i)) for i in range(20)])
        for k in range(64)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert log.size() == 64 * 20
    assert log.verify().size == 64 * 20


def test_checkpoints_and_proofs_verify(log):
    """A signed checkpoint commits to the root; inclusion and consistency proofs check out."""
    log.append_many([event(n) for n in range(10)])
    early = log.checkpoint()
    log.append_many([event(n) for n in range(10, 23)])
    late = log.checkpoint()
    assert late.note.startswith("test/audit\n23\n") and "\n\n\u2014 test/audit " in late.note
    assert log.latest_checkpoint() == late
    leaves = log.leaf_hashes()
    assert late.root == root(leaves)
    for index in (0, 9, 22):
        verify_inclusion(
            index=index,
            size=23,
            leaf=leaves[index],
            proof=log.prove_inclusion(index, 23),
            root_hash=late.root,
        )
    verify_consistency(
        first=10,
        second=23,
        first_root=early.root,
        second_root=late.root,
        proof=log.prove_consistency(10, 23),
    )
    report = log.verify(witness=early)
    assert (report.size, report.checkpoints, report.witness) == (23, 2, True)
    with pytest.raises(NotFound):
        log.prove_inclusion(5, 99)


def tamper(database, statement):
    with database.transaction() as db:
        db.execute(statement)


@pytest.mark.parametrize(
    ("attack", "message"),
    [
        (lambda t: t.update().where(t.c.seq == 3).values(entry=t.c.entry + " "), "changed"),
        (lambda t: t.delete().where(t.c.seq == 3), "missing"),
        (lambda t: t.delete().where(t.c.seq >= 8), "removed"),
        (lambda t: t.update().where(t.c.seq == 2).values(leaf_hash=b"\0" * 32), "changed"),
    ],
    ids=["edit", "delete", "truncate", "edit-leaf"],
)
def test_edits_deletions_and_truncation_are_detected(log, database, attack, message):
    """Editing, deleting or truncating entries is found by verify."""
    log.append_many([event(n) for n in range(10)])
    log.checkpoint()
    tamper(database, attack(tables.audit_entries))
    with pytest.raises(IntegrityError, match=message):
        log.verify()


def test_rewritten_history_with_fixed_up_hashes_fails_the_checkpoint(log, database):
    """An attacker who edits an entry and recomputes its leaf hash still breaks the root."""
    from bastion.audit.merkle import leaf_hash

    log.append_many([event(n) for n in range(10)])
    log.checkpoint()
    forged = event(4, decision="deny", status=403).to_entry()
    t = tables.audit_entries
    tamper(
        database,
        t.update().where(t.c.seq == 4).values(entry=forged.decode(), leaf_hash=leaf_hash(forged)),
    )
    with pytest.raises(IntegrityError, match="checkpoint"):
        log.verify()


def test_reordering_and_insertion_are_detected(log, database):
    """Swapping two entries, or inserting one in the middle, breaks the checkpointed root."""
    log.append_many([event(n) for n in range(10)])
    log.checkpoint()
    t = tables.audit_entries
    with database.transaction() as db:
        rows = {r.seq: r for r in db.execute(sa.select(t).where(t.c.seq.in_([2, 3])))}
        for a, b in ((2, 3), (3, 2)):
            db.execute(
                t.update()
                .where(t.c.seq == a)
                .values(entry=rows[b].entry, leaf_hash=rows[b].leaf_hash)
            )
    with pytest.raises(IntegrityError, match="checkpoint"):
        log.verify()


def test_a_fork_is_caught_by_a_witness(make_log, database, tmp_path):
    """A log rebuilt with different history (even re-signed) fails against a kept witness."""
    log = make_log()
    log.append_many([event(n) for n in range(8)])
    witness = log.checkpoint()
    with database.transaction() as db:
        db.execute(tables.audit_entries.delete())
        db.execute(tables.audit_checkpoints.delete())
    forked = make_log()  # the attacker's process, which never saw the first history
    forked.append_many([event(n, principal="bcl_x") for n in range(12)])
    forked.checkpoint()  # the forked log signs its own, self-consistent tree
    assert forked.verify().size == 12
    with pytest.raises(IntegrityError, match="checkpoint at size 8"):
        forked.verify(witness=witness)


def test_checkpoints_from_another_key_or_log_are_refused(make_log, tmp_path):
    """A checkpoint signed by another key, edited, or for another origin does not verify."""
    log = make_log()
    log.append_many([event(0)])
    note = log.checkpoint().note
    other = make_log(SigningKey.generate(tmp_path / "other.pem"))
    with pytest.raises(IntegrityError):
        other.read_checkpoint(note)
    for bad in (
        note.replace("\n1\n", "\n2\n", 1),
        note.replace("test/audit", "x/audit"),
        note[: note.index("\u2014")],
        "garbage",
    ):
        with pytest.raises(IntegrityError):
            log.read_checkpoint(bad)


def test_empty_log_verifies(log):
    """An empty log verifies with the empty root."""
    report = log.verify()
    assert report.size == 0 and report.root.hex().startswith("e3b0c442")


def test_the_writer_signs_checkpoints_at_its_interval(make_log):
    """With a zero interval, the writer checkpoints after every batch it commits."""
    log = make_log(checkpoint_interval=0)
    for n in range(3):
        log.append(event(n))
    deadline = time.monotonic() + 5
    while log.latest_checkpoint().size < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert log.latest_checkpoint().size == 3
    assert log.verify().checkpoints >= 1


def test_an_inserted_entry_is_detected(log, database):
    """Renumbering entries to insert a forged one breaks the checkpointed root."""
    from bastion.audit.merkle import leaf_hash

    log.append_many([event(n) for n in range(10)])
    log.checkpoint()
    t = tables.audit_entries
    forged = event(99, principal="bcl_ghost").to_entry()
    with database.transaction() as db:
        rows = db.execute(sa.select(t).where(t.c.seq >= 5).order_by(t.c.seq.desc())).all()
        for row in rows:
            db.execute(t.update().where(t.c.seq == row.seq).values(seq=row.seq + 1))
        db.execute(t.insert().values(seq=5, entry=forged.decode(), leaf_hash=leaf_hash(forged)))
    with pytest.raises(IntegrityError, match="checkpoint"):
        log.verify()


# -- an insider with write access to the database edits one column of one row ----------

# One edit per column of audit_entries: a column added later fails this test until it is
# covered by the leaf hash or derived from the entry, and given an attack here.
ROW_EDITS = {
    "seq": lambda t, row: {"seq": 1_000_000},
    "entry": lambda t, row: {"entry": row.entry.replace('"bcl_a"', '"bcl_z"')},
    "leaf_hash": lambda t, row: {"leaf_hash": b"\1" * 32},
}


def test_every_stored_column_is_under_the_hash():
    """audit_entries holds the hashed entry, its number and its leaf hash, nothing else."""
    assert set(tables.audit_entries.c.keys()) == set(ROW_EDITS)


@pytest.mark.parametrize("column", sorted(ROW_EDITS))
@pytest.mark.parametrize("signed", [True, False], ids=["checkpointed", "unsigned"])
def test_an_edited_column_fails_verify_and_search_and_tail(log, database, column, signed):
    """Editing any column of an entry is named by verify, and search or tail never hide it."""
    log.append_many([event(n, principal="bcl_a" if n == 3 else "bcl_b") for n in range(6)])
    if signed:
        log.checkpoint()
    t = tables.audit_entries
    with database.transaction() as db:
        row = db.execute(sa.select(t).where(t.c.seq == 3)).one()
        db.execute(t.update().where(t.c.seq == 3).values(ROW_EDITS[column](t, row)))
    with pytest.raises(IntegrityError, match=r"[Ee]ntry 3 "):
        log.verify()
    for read in (
        lambda: log.search(principal="bcl_a"),
        lambda: log.search(event="model_infer", since=0),
        lambda: log.tail(10),
    ):
        with pytest.raises(IntegrityError, match="audit verify"):
            read()


def test_search_filters_on_the_hashed_entry_only(log):
    """Search matches the entry's own fields; quoted look-alikes inside other fields do not."""
    log.append_many(
        [
            event(0, principal="bcl_a"),
            event(1, principal="bcl_b", reason='"principal":"bcl_a"'),
            event(2, principal="bcl_a", event="authz_fail", time=10.0),
        ]
    )
    assert [e.seq for e in log.search(principal="bcl_a")] == [2, 0]
    assert [e.seq for e in log.search(principal="bcl_a", event="authz_fail")] == [2]
    assert [e.seq for e in log.search(since=1_800_000_000.5)] == [1]
    assert [e.seq for e in log.search(limit=1)] == [2]
    assert all(e.leaf_hash == leaf_of(e) for e in log.search())


def leaf_of(entry):
    from bastion.audit.merkle import leaf_hash

    return leaf_hash(entry.event.to_entry())


@pytest.mark.parametrize(("column", "value"), [("event", "x"), ("principal", "x"), ("time", 0.0)])
def test_the_fields_search_uses_cannot_be_edited_outside_the_hash(log, database, column, value):
    """The issue's attack: an edited event/principal/time column must not pass or hide."""
    from bastion.errors import BackendError

    log.append_many([event(n) for n in range(6)])
    log.checkpoint()
    try:
        with database.transaction() as db:
            db.exec_driver_sql(f"UPDATE audit_entries SET {column} = '{value}' WHERE seq = 3")  # noqa: S608
    except BackendError:
        return  # no such column: nothing a reader filters on lies outside the hashed entry
    with pytest.raises(IntegrityError, match="ntry 3 "):
        log.verify()
    assert 3 in [e.seq for e in log.search(principal="bcl_a", event="model_infer", since=0)]


# SQLite keeps any type in any column (type affinity): an insider with write access can
# store a number as 100.5, a leaf hash as text or an entry as a blob. /tmp/attack cases
# c_leaf_as_text, c_entry_as_blob, c_seq_as_real_frac, and more of the same family.
AFFINITY_TRICKS = {
    "leaf_as_text": "UPDATE audit_entries SET leaf_hash = hex(leaf_hash) WHERE seq = 3",
    "leaf_as_int": "UPDATE audit_entries SET leaf_hash = 7 WHERE seq = 3",
    "leaf_short": "UPDATE audit_entries SET leaf_hash = substr(leaf_hash, 1, 31) WHERE seq = 3",
    "entry_as_blob": "UPDATE audit_entries SET entry = cast(entry AS blob) WHERE seq = 3",
    "entry_as_int": "UPDATE audit_entries SET entry = 5 WHERE seq = 3",
    "seq_as_real_frac": "UPDATE audit_entries SET seq = 3.5 WHERE seq = 3",
    "seq_as_text_word": "UPDATE audit_entries SET seq = 'three' WHERE seq = 3",
    "seq_as_blob": "UPDATE audit_entries SET seq = x'03' WHERE seq = 3",
}


@pytest.mark.parametrize("trick", sorted(AFFINITY_TRICKS))
@pytest.mark.parametrize("signed", [True, False], ids=["checkpointed", "unsigned"])
def test_wrongly_typed_columns_are_integrity_errors_naming_the_entry(log, database, trick, signed):
    """A leaf as text, an entry as a blob, a number as 3.5: IntegrityError, never a crash."""
    if database.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL columns are strictly typed")
    log.append_many([event(n) for n in range(6)])
    if signed:
        log.checkpoint()
    with database.transaction() as db:
        db.exec_driver_sql(AFFINITY_TRICKS[trick])
    with pytest.raises(IntegrityError, match=r"[Ee]ntry 3"):
        log.verify()
    for read in (
        lambda: log.search(principal="bcl_a"),
        lambda: log.search(event="model_infer", since=0),
        lambda: log.tail(10),
    ):
        with pytest.raises(IntegrityError, match=r"[Ee]ntry (3|b'\\x03'|'three')"):
            read()
    if trick.startswith("leaf"):  # a proof reads the leaf hashes only
        with pytest.raises(IntegrityError, match=r"[Ee]ntry 3"):
            log.prove_inclusion(1, 6)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entries SET seq = '3' WHERE seq = 3",
        "UPDATE audit_entries SET seq = 3.0 WHERE seq = 3",
    ],
    ids=["seq_as_text", "seq_as_real"],
)
def test_numbers_sqlite_converts_back_to_integers_still_verify(log, database, statement):
    """'3' and 3.0 are stored as the integer 3 (affinity): the log is unchanged and verifies."""
    if database.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL columns are strictly typed")
    log.append_many([event(n) for n in range(6)])
    log.checkpoint()
    with database.transaction() as db:
        db.exec_driver_sql(statement)
    assert log.verify().size == 6
    assert [e.seq for e in log.search(limit=10)] == [5, 4, 3, 2, 1, 0]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_checkpoints SET root = hex(root)",
        "UPDATE audit_checkpoints SET frontier = 'x'",
        "UPDATE audit_checkpoints SET note = cast(note AS blob)",
        "UPDATE audit_checkpoints SET size = size + 0.5",
    ],
    ids=["root_as_text", "frontier_as_text", "note_as_blob", "size_as_real"],
)
def test_wrongly_typed_checkpoint_columns_are_integrity_errors(log, database, statement):
    """A checkpoint row with a value of the wrong type is an IntegrityError, not a crash."""
    if database.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL columns are strictly typed")
    log.append_many([event(n) for n in range(6)])
    log.checkpoint()
    with database.transaction() as db:
        db.exec_driver_sql(statement)
    with pytest.raises(IntegrityError):
        log.verify()


def drop_inserts(database, table):
    """An insider's trigger (SQLite) or rule (PostgreSQL) that silently drops every insert."""
    with database.transaction() as db:
        if database.engine.dialect.name == "sqlite":
            db.exec_driver_sql(
                f"CREATE TRIGGER drop_{table} BEFORE INSERT ON {table} "
                "BEGIN SELECT RAISE(IGNORE); END"
            )
        else:
            db.exec_driver_sql(
                f"CREATE RULE drop_{table} AS ON INSERT TO {table} DO INSTEAD NOTHING"
            )


def test_an_insert_a_trigger_drops_fails_the_append(log, database):
    """BEFORE INSERT … RAISE(IGNORE) / DO INSTEAD NOTHING: the append fails, never vanishes."""
    from bastion.errors import BackendError

    log.append_many([event(n) for n in range(3)])
    drop_inserts(database, "audit_entries")
    with pytest.raises(BackendError):
        log.append(event(3))
    with pytest.raises(BackendError):
        log.append_many([event(n) for n in range(4, 8)])
    assert log.size() == 3


def test_an_entry_an_after_insert_trigger_rewrites_fails_the_append(log, database):
    """A trigger that deletes or rewrites the new row after the insert fails the append too."""
    from bastion.errors import BackendError

    if database.engine.dialect.name != "sqlite":
        pytest.skip("the SQLite trigger form; the rule above covers PostgreSQL")
    log.append(event(0))
    with database.transaction() as db:
        db.exec_driver_sql(
            "CREATE TRIGGER rewrite AFTER INSERT ON audit_entries BEGIN "
            "UPDATE audit_entries SET entry = replace(entry, 'bcl_a', 'bcl_z') "
            "WHERE seq = new.seq; END"
        )
    with pytest.raises(BackendError):
        log.append(event(1))
    with database.transaction() as db:
        db.exec_driver_sql("DROP TRIGGER rewrite")
        db.exec_driver_sql(
            "CREATE TRIGGER remove AFTER INSERT ON audit_entries BEGIN "
            "DELETE FROM audit_entries WHERE seq = new.seq; END"
        )
    with pytest.raises(BackendError):
        log.append(event(2))
    assert log.size() == 1 and log.verify().size == 1


def test_a_checkpoint_a_trigger_drops_fails(log, database):
    """A checkpoint insert that a trigger or rule drops is an error, not a silent success."""
    from bastion.errors import BackendError

    log.append_many([event(n) for n in range(3)])
    drop_inserts(database, "audit_checkpoints")
    with pytest.raises(BackendError):
        log.checkpoint()
    with pytest.raises(NotFound):
        log.latest_checkpoint()
