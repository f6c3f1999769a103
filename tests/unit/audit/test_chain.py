import hashlib
import itertools

import pytest

from bastion.audit import AuditEvent, AuditLog, chain_hash
from bastion.audit.chain import GENESIS
from bastion.errors import IntegrityError
from bastion.storage import tables


def event(n=0, **changes):
    base = {
        "time": 1_800_000_000.0 + n,
        "request_id": f"r{n}",
        "principal": "bcl_a",
        "action": "infer",
        "resource": "digits@1",
        "decision": "allow",
        "policy_ids": ("analyst-use-models",),
        "status": 200,
        "latency_ms": 1.5,
        "input_sha256": "ab" * 32,
        "reason": "",
    }
    return AuditEvent(**(base | changes))


@pytest.fixture
def log(database):
    return AuditLog(database=database)


def test_known_answer_chain_hash():
    """The first hash is SHA-256(32 zero bytes || canonical JSON), as docs/pipeline.md says."""
    canonical = (
        '{"action":"infer","decision":"allow","input_sha256":"' + "ab" * 32 + '",'
        '"latency_ms":1.5,"policy_ids":["analyst-use-models"],"principal":"bcl_a",'
        '"reason":"","request_id":"r0","resource":"digits@1","seq":1,"status":200,'
        '"time":1800000000.0}'
    )
    expected = hashlib.sha256(bytes(32) + canonical.encode()).hexdigest()
    assert chain_hash(1, event(), GENESIS) == expected


def test_append_links_records_and_verify_accepts(log):
    """Each record points at the previous hash, and verify recomputes the head."""
    records = [log.append(event(n)) for n in range(5)]
    assert records[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))
    report = log.verify()
    assert report.records == 5 and report.head == records[-1].hash
    assert [r.seq for r in log.tail(2)] == [4, 5]
    assert log.tail(2)[0].event == event(3)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t.update().where(t.c.seq == 2).values(status=403),
        lambda t: t.update().where(t.c.seq == 2).values(principal="bcl_b"),
        lambda t: t.update().where(t.c.seq == 3).values(policy_ids=[]),
        lambda t: t.delete().where(t.c.seq == 2),
        lambda t: t.delete().where(t.c.seq == 1),
        lambda t: t.update().where(t.c.seq == 4).values(hash="0" * 64),
    ],
)
def test_any_edit_or_deletion_is_found(log, database, tamper):
    """Changing or removing any record makes verify fail and name where."""
    for n in range(4):
        log.append(event(n))
    with database.transaction() as db:
        db.execute(tamper(tables.audit_records))
    with pytest.raises(IntegrityError, match=r"Audit record \d"):
        log.verify()


def test_empty_log_verifies(log):
    """An empty log has no records and the genesis head."""
    report = log.verify()
    assert (report.records, report.head) == (0, GENESIS)
