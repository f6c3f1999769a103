"""An append-only audit log whose records are chained by SHA-256.

Each record's hash covers the previous record's hash and the record's own canonical
JSON, so editing, deleting or reordering any record breaks every hash after it, and
``verify`` finds the first break. (A Merkle tree with signed checkpoints replaces
this chain in a later version; see docs/pipeline.md.)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from threading import Lock

import sqlalchemy as sa

from bastion.errors import Conflict, IntegrityError
from bastion.storage import Database, tables

GENESIS = "0" * 64
_APPEND_ATTEMPTS = 5


@dataclass(frozen=True)
class AuditEvent:
    """What happened. Digests only: never raw inputs, secrets or tokens."""

    time: float
    request_id: str
    principal: str
    action: str
    resource: str
    decision: str
    policy_ids: tuple[str, ...]
    status: int
    latency_ms: float
    input_sha256: str
    reason: str


@dataclass(frozen=True)
class AuditRecord:
    """An event at its place in the chain."""

    seq: int
    event: AuditEvent
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class ChainReport:
    """The outcome of a successful verification."""

    records: int
    head: str


class AuditLog:
    """Appends, reads and verifies the hash-chained audit log."""

    def __init__(self, *, database: Database) -> None:
        self._db = database
        self._lock = Lock()  # one writer per process; the primary key orders processes

    def append(self, event: AuditEvent) -> AuditRecord:
        """Add ``event`` after the current head and return its record.

        Raises:
            BackendError: the database failed; the event was not recorded.
        """
        for _ in range(_APPEND_ATTEMPTS):
            try:
                with self._lock, self._db.transaction() as db:
                    head = db.execute(
                        sa.select(tables.audit_records.c.seq, tables.audit_records.c.hash)
                        .order_by(tables.audit_records.c.seq.desc())
                        .limit(1)
                    ).first()
                    seq, prev = (head.seq + 1, head.hash) if head else (1, GENESIS)
                    record = AuditRecord(seq, event, prev, chain_hash(seq, event, prev))
                    db.execute(tables.audit_records.insert().values(**_row(record)))
                    return record
            except Conflict:
                continue  # another process took this sequence number; chain after it
        raise IntegrityError(detail="could not append after repeated sequence conflicts")

    def tail(self, count: int) -> list[AuditRecord]:
        """The last ``count`` records, oldest first."""
        with self._db.transaction() as db:
            rows = db.execute(
                sa.select(tables.audit_records)
                .order_by(tables.audit_records.c.seq.desc())
                .limit(count)
            ).all()
        return [_record(row) for row in reversed(rows)]

    def verify(self) -> ChainReport:
        """Recompute the whole chain.

        Raises:
            IntegrityError: a record was changed, removed or reordered; the message
                names the first bad sequence number.
        """
        prev, expected_seq = GENESIS, 1
        with self._db.transaction() as db:
            rows = db.execute(sa.select(tables.audit_records).order_by(tables.audit_records.c.seq))
            for row in rows:
                record = _record(row)
                if record.seq != expected_seq:
                    raise IntegrityError(f"Audit record {expected_seq} is missing.")
                if record.prev_hash != prev or record.hash != chain_hash(
                    record.seq, record.event, prev
                ):
                    raise IntegrityError(f"Audit record {record.seq} does not match the chain.")
                prev, expected_seq = record.hash, expected_seq + 1
        return ChainReport(records=expected_seq - 1, head=prev)


def chain_hash(seq: int, event: AuditEvent, prev_hash: str) -> str:
    """SHA-256 over the previous hash and the canonical JSON of this record."""
    body = json.dumps(
        {"seq": seq, **asdict(event)}, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(bytes.fromhex(prev_hash) + body.encode()).hexdigest()


def _row(record: AuditRecord) -> dict[str, object]:
    values = asdict(record.event)
    values["policy_ids"] = list(record.event.policy_ids)
    return {"seq": record.seq, "prev_hash": record.prev_hash, "hash": record.hash, **values}


def _record(row: sa.Row[tuple[object, ...]]) -> AuditRecord:
    event = AuditEvent(
        time=row.time,
        request_id=row.request_id,
        principal=row.principal,
        action=row.action,
        resource=row.resource,
        decision=row.decision,
        policy_ids=tuple(row.policy_ids),
        status=row.status,
        latency_ms=row.latency_ms,
        input_sha256=row.input_sha256,
        reason=row.reason,
    )
    return AuditRecord(seq=row.seq, event=event, prev_hash=row.prev_hash, hash=row.hash)
