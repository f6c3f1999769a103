"""The audit log: an append-only RFC 6962 Merkle tree in the database.

Appends are grouped (group commit): a batch is written in one transaction, made durable
by the commit, and only then are its callers answered. Threads submit through one writer
thread per log; coroutines through :class:`bastion.audit.AsyncAppender`. Sequence numbers
are taken inside that transaction under a lock (PostgreSQL advisory lock; SQLite's single
writer), so several gateway processes on one database still build one linear log. Signed
checkpoints (C2SP) commit to the tree at a size; ``verify`` recomputes every leaf and every
checkpointed root.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, fields

import sqlalchemy as sa

from bastion.audit.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from bastion.audit.merkle import Frontier, consistency_proof, inclusion_proof
from bastion.crypto import SigningKey
from bastion.errors import BackendError, BastionError, Conflict, IntegrityError, NotFound
from bastion.storage import Database, tables
from bastion.types import Clock

MAX_BATCH = 2048  # entries in one transaction
MAX_BACKLOG = 20_000  # entries waiting; past it appends are refused (503), never unaudited
_ATTEMPTS = 20
_ADVISORY_LOCK = 0x62617374696F6E  # "bastion"
_FETCH = 20_000
_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s)"
_NEXT_SEQ_SQL = "SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_entries"
_COLUMNS = ("seq", "time", "event", "principal", "entry", "leaf_hash")
logger = logging.getLogger("bastion.audit")


@dataclass(frozen=True)
class AuditEvent:
    """What happened, in OWASP logging vocabulary. Digests and sizes, never payloads."""

    event: str  # authn_token_created, authn_login_fail, authz_fail, model_infer, …
    time: float
    request_id: str
    principal: str  # client id, or "-" when authentication failed
    auth_method: str
    source: str  # client address
    route: str  # route template, never the raw path
    action: str
    resource: str
    decision: str
    policy_ids: tuple[str, ...]
    status: int
    latency_ms: float
    input_sha256: str = ""
    input_bytes: int = 0
    output_sha256: str = ""
    output_bytes: int = 0
    reason: str = ""

    def to_entry(self) -> bytes:
        """The canonical JSON bytes that are stored and hashed as the leaf."""
        values = {name: getattr(self, name) for name in _EVENT_FIELDS}
        values["policy_ids"] = list(self.policy_ids)
        return _CANONICAL.encode(values).encode()

    @classmethod
    def internal(
        cls,
        *,
        event: str,
        time: float,
        action: str,
        resource: str,
        reason: str,
        principal: str = "-",
        policy_ids: tuple[str, ...] = (),
    ) -> AuditEvent:
        """An event that no request caused (an alert, a policy change)."""
        return cls(
            event=event,
            time=time,
            request_id="",
            principal=principal,
            auth_method="",
            source="",
            route="",
            action=action,
            resource=resource,
            decision="none",
            policy_ids=policy_ids,
            status=0,
            latency_ms=0.0,
            reason=reason[:200],
        )

    @classmethod
    def from_entry(cls, entry: bytes | str) -> AuditEvent:
        """Inverse of :meth:`to_entry`."""
        values = json.loads(entry)
        return cls(**values | {"policy_ids": tuple(values["policy_ids"])})


_EVENT_FIELDS = tuple(f.name for f in fields(AuditEvent))
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def overloaded() -> BackendError:
    """The error of an append refused because the backlog is full."""
    return BackendError("The audit log is overloaded.", detail="audit backlog full")


@dataclass(frozen=True)
class AuditEntry:
    """An event at its place in the log."""

    seq: int
    event: AuditEvent
    leaf_hash: bytes


@dataclass(frozen=True)
class VerifyReport:
    """What a successful verification checked."""

    size: int
    root: bytes
    checkpoints: int
    witness: bool


@dataclass
class _Pending:
    event: AuditEvent
    result: Future[AuditEntry] = field(default_factory=Future)


class AuditLog:
    """Appends, reads, proves and verifies the Merkle-tree audit log."""

    def __init__(
        self,
        *,
        database: Database,
        signing_key: SigningKey,
        origin: str,
        clock: Clock,
        checkpoint_interval: float = 60.0,
    ) -> None:
        self._db = database
        self._key = signing_key
        self.origin = origin
        self._clock = clock
        self._interval = checkpoint_interval
        self._queue: queue.Queue[_Pending] = queue.Queue(maxsize=MAX_BACKLOG)
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._frontier = Frontier()  # the tree as far as this process has read it
        self._frontier_lock = threading.Lock()
        self._last_checkpoint = clock()
        dialect = database.engine.dialect
        self._postgres = dialect.name == "postgresql"
        self._mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self._insert_statements: dict[int, str] = {}  # by row count

    # -- writing ---------------------------------------------------------------------

    def append(self, event: AuditEvent) -> AuditEntry:
        """Add ``event``; return once its batch is committed (durable).

        Raises:
            BackendError: the database failed or the backlog is full; not recorded.
        """
        return self.submit(event).result()

    def submit(self, event: AuditEvent) -> Future[AuditEntry]:
        """Queue ``event``; the future resolves once its batch is committed (durable).

        Raises:
            BackendError: the backlog is full: the writer cannot keep up, so the caller
                must refuse its request rather than answer it unaudited.
        """
        self._start_writer()
        pending = _Pending(event)
        try:
            self._queue.put_nowait(pending)
        except queue.Full:
            raise overloaded() from None
        return pending.result

    def append_many(self, events: Sequence[AuditEvent]) -> list[AuditEntry]:
        """Add several events in one transaction, in order; return once it is committed.

        A signed checkpoint follows when the interval since the last one has passed.

        Raises:
            BackendError: the database failed; none of the events is recorded.
        """
        entries = self._write(events)
        self._checkpoint_when_due()
        return entries

    @property
    def backlog(self) -> int:
        """Events waiting for the writer (the queue depth)."""
        return self._queue.qsize()

    def checkpoint(self) -> Checkpoint:
        """Sign and store a checkpoint of the log as it is now.

        Only the entries added since the last call are read: the right edge of the tree
        is kept in memory, so a checkpoint of a large log stays cheap.
        """
        with self._frontier_lock:
            t = tables.audit_entries
            query = sa.select(t.c.leaf_hash).where(t.c.seq >= self._frontier.size)
            with self._db.transaction() as db:
                for leaf in db.execute(query.order_by(t.c.seq)).scalars():
                    self._frontier.append(bytes(leaf))
            size, root_hash = self._frontier.size, self._frontier.root()
            self._last_checkpoint = self._clock()
        checkpoint = sign_checkpoint(origin=self.origin, size=size, root=root_hash, key=self._key)
        try:
            with self._db.transaction() as db:
                db.execute(
                    tables.audit_checkpoints.insert().values(
                        size=checkpoint.size,
                        root=checkpoint.root,
                        note=checkpoint.note,
                        time=self._clock(),
                    )
                )
        except Conflict:
            pass  # this size is checkpointed already; the root is the same or verify says so
        return checkpoint

    # -- reading ---------------------------------------------------------------------

    def size(self) -> int:
        """How many entries the log holds."""
        with self._db.transaction() as db:
            return int(
                db.execute(
                    sa.select(sa.func.count()).select_from(tables.audit_entries)
                ).scalar_one()
            )

    def tail(self, count: int) -> list[AuditEntry]:
        """The last ``count`` entries, oldest first."""
        query = sa.select(tables.audit_entries).order_by(tables.audit_entries.c.seq.desc())
        with self._db.transaction() as db:
            rows = db.execute(query.limit(count)).all()
        return [_entry(row) for row in reversed(rows)]

    def search(
        self,
        *,
        event: str | None = None,
        principal: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Entries matching every given filter, newest first."""
        t = tables.audit_entries
        query = sa.select(t).order_by(t.c.seq.desc()).limit(limit)
        if event is not None:
            query = query.where(t.c.event == event)
        if principal is not None:
            query = query.where(t.c.principal == principal)
        if since is not None:
            query = query.where(t.c.time >= since)
        with self._db.transaction() as db:
            return [_entry(row) for row in db.execute(query)]

    def leaf_hashes(self, size: int | None = None) -> list[bytes]:
        """The leaf hashes of the first ``size`` entries (all by default)."""
        t = tables.audit_entries
        query = sa.select(t.c.leaf_hash).order_by(t.c.seq)
        if size is not None:
            query = query.where(t.c.seq < size)
        with self._db.transaction() as db:
            return [bytes(h) for h in db.execute(query).scalars()]

    def latest_checkpoint(self) -> Checkpoint:
        """The newest stored checkpoint.

        Raises:
            NotFound: none was made yet.
        """
        t = tables.audit_checkpoints
        with self._db.transaction() as db:
            row = db.execute(sa.select(t).order_by(t.c.size.desc()).limit(1)).first()
        if row is None:
            raise NotFound("No checkpoint yet; run `bastion audit checkpoint`.")
        return self.read_checkpoint(row.note)

    def read_checkpoint(self, note: str) -> Checkpoint:
        """Parse and check a checkpoint signed by this log's key.

        Raises:
            IntegrityError: it is malformed or not signed by this log.
        """
        return verify_checkpoint(note, origin=self.origin, public_key=self._key.public_key)

    # -- proofs ----------------------------------------------------------------------

    def prove_inclusion(self, index: int, size: int) -> list[bytes]:
        """The inclusion proof of entry ``index`` in the tree of ``size`` entries.

        Raises:
            NotFound: the log has fewer than ``size`` entries, or index is outside.
        """
        leaves = self._prefix(size)
        if not 0 <= index < size:
            raise NotFound(f"Entry {index} is not in a tree of {size}.")
        return inclusion_proof(index, leaves)

    def prove_consistency(self, first: int, second: int) -> list[bytes]:
        """The proof that the tree of ``first`` entries is a prefix of that of ``second``.

        Raises:
            NotFound: the sizes are out of range.
        """
        leaves = self._prefix(second)
        if not 0 < first <= second:
            raise NotFound("Consistency needs 0 < first <= second.")
        return consistency_proof(first, leaves)

    # -- verification ----------------------------------------------------------------

    def verify(self, *, witness: Checkpoint | None = None) -> VerifyReport:
        """Recompute every leaf and every checkpointed root, and check the witness.

        Raises:
            IntegrityError: an entry was changed, removed, inserted or reordered; a
                checkpoint does not match or is not signed by this log; or the log
                is not an extension of the witness's tree (truncated or forked).
        """
        with self._db.transaction() as db:
            stored = db.execute(
                sa.select(tables.audit_checkpoints.c.size, tables.audit_checkpoints.c.note)
            ).all()
        checkpoints = {row.size: self.read_checkpoint(row.note) for row in stored}
        targets = dict(checkpoints)
        if witness is not None:
            if witness.origin != self.origin:
                raise IntegrityError("The witness checkpoint is for another log.")
            targets[witness.size] = witness
        frontier = Frontier()
        for seq, entry, leaf in self._scan():
            if seq != frontier.size:
                raise IntegrityError(f"Audit entry {frontier.size} is missing or out of order.")
            if hashlib.sha256(b"\x00" + entry).digest() != leaf:
                raise IntegrityError(f"Audit entry {seq} was changed.")
            frontier.append(leaf)
            expected = targets.get(frontier.size)
            if expected is not None and expected.root != frontier.root():
                raise IntegrityError(
                    f"The log differs from the checkpoint at size {frontier.size}."
                )
        beyond = [size for size in targets if size > frontier.size]
        if beyond:
            raise IntegrityError(
                f"The log has {frontier.size} entries; a checkpoint says "
                f"{max(beyond)}: entries were removed."
            )
        if 0 in targets and targets[0].root != Frontier().root():
            raise IntegrityError("The checkpoint of the empty log is wrong.")
        return VerifyReport(frontier.size, frontier.root(), len(checkpoints), witness is not None)

    # -- internals -------------------------------------------------------------------

    def _scan(self) -> Iterator[tuple[int, bytes, bytes]]:
        with self._db.engine.connect() as connection:
            cursor = connection.exec_driver_sql(
                "SELECT seq, entry, leaf_hash FROM audit_entries ORDER BY seq"
            )
            while rows := cursor.fetchmany(_FETCH):
                for seq, entry, leaf in rows:
                    yield int(seq), entry.encode(), bytes(leaf)

    def _prefix(self, size: int) -> list[bytes]:
        leaves = self.leaf_hashes(size)
        if len(leaves) != size or size < 1:
            raise NotFound(f"The log has no tree of size {size}.")
        return leaves

    def _start_writer(self) -> None:
        with self._writer_lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(
                    target=self._run_writer, name="bastion-audit-writer", daemon=True
                )
                self._writer.start()

    def _run_writer(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                entries = self._write([pending.event for pending in batch])
            except BastionError as exc:
                for pending in batch:
                    pending.result.set_exception(exc)
                continue
            for pending, entry in zip(batch, entries, strict=True):
                pending.result.set_result(entry)
            self._checkpoint_when_due()

    def _checkpoint_when_due(self) -> None:
        if self._clock() - self._last_checkpoint >= self._interval:
            try:
                self.checkpoint()
            except BastionError as exc:  # the next batch tries again
                logger.error("periodic audit checkpoint failed: %s", exc.code)

    def _write(self, events: Sequence[AuditEvent]) -> list[AuditEntry]:
        encoded = [event.to_entry() for event in events]
        leaves = [hashlib.sha256(b"\x00" + entry).digest() for entry in encoded]
        rows = [
            (e.time, e.event, e.principal, entry.decode(), leaf)
            for e, entry, leaf in zip(events, encoded, leaves, strict=True)
        ]
        for _ in range(_ATTEMPTS):
            try:
                start = self._insert(rows)
            except Conflict:
                continue  # another process took these numbers between our read and write
            return [
                AuditEntry(start + i, event, leaf)
                for i, (event, leaf) in enumerate(zip(events, leaves, strict=True))
            ]
        raise BackendError(detail="audit sequence kept conflicting")

    def _insert(self, rows: Sequence[tuple[object, ...]]) -> int:
        """Number and insert ``rows`` in one transaction; return the first number.

        The writer shares the GIL with the request path, and every statement releases and
        then waits to retake it; so the batch is one multi-row INSERT sent to the driver as
        it is (no per-batch SQL compilation, no per-row round trip).
        """
        with self._db.transaction() as db:
            if self._postgres:  # one sequencer for all gateways
                db.exec_driver_sql(_LOCK_SQL, (_ADVISORY_LOCK,))
            start = int(db.exec_driver_sql(_NEXT_SEQ_SQL).scalar_one())
            values = tuple(v for i, row in enumerate(rows) for v in (start + i, *row))
            db.exec_driver_sql(self._insert_sql(len(rows)), values)
        return start

    def _insert_sql(self, count: int) -> str:
        sql = self._insert_statements.get(count)
        if sql is None:
            row = f"({', '.join([self._mark] * len(_COLUMNS))})"
            columns = ", ".join(_COLUMNS)  # constants and placeholders only, never values
            sql = f"INSERT INTO audit_entries ({columns}) VALUES {', '.join([row] * count)}"  # noqa: S608
            self._insert_statements[count] = sql
        return sql


def _entry(row: sa.Row[tuple[object, ...]]) -> AuditEntry:
    return AuditEntry(
        seq=int(row.seq), event=AuditEvent.from_entry(row.entry), leaf_hash=bytes(row.leaf_hash)
    )
