"""The audit log: an append-only RFC 6962 Merkle tree in the database.

Every producer (request coroutines, the monitor's thread, the CLI) appends through one
group-commit writer (:class:`bastion.audit.appender.GroupCommit`): a batch is written in one
transaction, made durable by the commit, and only then are its callers answered. Sequence
numbers are taken inside that transaction under a lock (PostgreSQL advisory lock; SQLite's
single writer), so several gateway processes on one database still build one linear log.

A row holds only the entry (the exact bytes hashed), its number (its place in the tree) and
its leaf hash (a cache of ``SHA-256(0x00 ‖ entry)``, checked wherever it is read). Nothing a
reader filters on lives outside the hashed bytes: search reads the entries themselves.

Signed checkpoints (C2SP) commit to the tree at a size. The writer signs one when the
entries it wrote since the last reach a count or an age (whichever first), and when the log
is closed (gateway shutdown, the end of a CLI command). A checkpoint signs the leaves this
process wrote as it wrote them, not as the table holds them now, so an entry edited, removed
or reordered in the table before its checkpoint makes ``verify`` fail.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future

import sqlalchemy as sa

from bastion.audit.appender import MAX_BATCH, GroupCommit
from bastion.audit.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from bastion.audit.entry import AuditEntry, AuditEvent, canonical
from bastion.audit.merkle import Frontier, consistency_proof, inclusion_proof, leaf_hash
from bastion.audit.verification import (
    VerifyReport,
    checked_checkpoint_row,
    checked_entry_row,
    stored_checkpoints,
    verify_log,
)
from bastion.crypto import SigningKey
from bastion.errors import BackendError, Conflict, IntegrityError, NotFound
from bastion.storage import Database, tables
from bastion.types import Clock

_ATTEMPTS = 20
_ADVISORY_LOCK = 0x62617374696F6E  # "bastion"
_FETCH = 20_000
_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s)"
_NEXT_SEQ_SQL = "SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_entries"
_COLUMNS = ("seq", "entry", "leaf_hash")
_READ_BACK_SQL = "SELECT seq, entry, leaf_hash FROM audit_entries WHERE seq >= {mark} ORDER BY seq"
_READ_BACK_CHECKPOINT_SQL = "SELECT note FROM audit_checkpoints WHERE size = {mark}"
_MAX_UNSIGNED = 200_000  # leaves remembered for the next checkpoint (about 20 MB)
logger = logging.getLogger("bastion.audit")


class AuditLog:
    """Appends, reads, proves and verifies the Merkle-tree audit log."""

    def __init__(
        self,
        *,
        database: Database,
        signing_key: SigningKey,
        origin: str,
        clock: Clock,
        checkpoint_interval: float = 10.0,
        checkpoint_entries: int = 10_000,
    ) -> None:
        self._db = database
        self._key = signing_key
        self.origin = origin
        self._clock = clock
        self._interval = checkpoint_interval
        self._every = checkpoint_entries
        self._writer = GroupCommit(write=self._write, housekeeping=self._checkpoint_when_due)
        self._frontier: Frontier | None = None  # the signed tree as far as this process knows
        self._frontier_lock = threading.Lock()
        self._unsigned: dict[int, bytes] = {}  # leaves this process wrote, not yet signed
        self._unsigned_since = 0.0  # when the oldest of them was committed
        dialect = database.engine.dialect
        self._postgres = dialect.name == "postgresql"
        self._mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self._insert_statements: dict[int, str] = {}  # by row count

    # -- writing ---------------------------------------------------------------------

    def append(self, event: AuditEvent) -> AuditEntry:
        """Add ``event`` from a thread; return once its batch is committed (durable).

        Raises:
            BackendError: the database failed or the backlog is full; not recorded.
        """
        return self._writer.submit(event).result()

    def submit(self, event: AuditEvent) -> Future[AuditEntry]:
        """Queue ``event`` without waiting; the future resolves once it is committed.

        Raises:
            BackendError: the backlog is full: the writer cannot keep up, so the caller
                must refuse its request rather than answer it unaudited.
        """
        return self._writer.submit(event)

    async def append_async(self, event: AuditEvent) -> AuditEntry:
        """Add ``event`` from a coroutine; return once its batch is committed (durable).

        Raises:
            BackendError: the database failed or the backlog is full; not recorded.
        """
        return await self._writer.append(event)

    def append_many(self, events: Sequence[AuditEvent]) -> list[AuditEntry]:
        """Add several events, in order; return once every one is committed.

        Raises:
            BackendError: the database failed; an event whose batch failed is not recorded.
        """
        entries: list[AuditEntry] = []
        for start in range(0, len(events), MAX_BATCH):  # a long list never fills the backlog
            futures = [self._writer.submit(event) for event in events[start : start + MAX_BATCH]]
            entries.extend(future.result() for future in futures)
        return entries

    @property
    def backlog(self) -> int:
        """Events waiting for the writer (the queue depth)."""
        return self._writer.backlog

    def close(self) -> None:
        """Commit what is waiting and sign a checkpoint of every entry this process wrote."""
        self._writer.close()

    # -- checkpoints -----------------------------------------------------------------

    def checkpoint(self) -> Checkpoint:
        """Sign and store a checkpoint of the log as it is now.

        Only the entries added since this process's last checkpoint are read (the right
        edge of the tree is kept, and stored with each checkpoint), so a checkpoint of a
        large log stays cheap. Entries this process wrote count as written, whatever the
        table says of them now.
        """
        with self._frontier_lock:
            frontier = self._load_frontier().copy()
            self._extend(frontier)
            self._frontier = frontier
            for seq in [seq for seq in self._unsigned if seq < frontier.size]:
                del self._unsigned[seq]
            self._unsigned_since = self._clock()
        checkpoint = sign_checkpoint(
            origin=self.origin, size=frontier.size, root=frontier.root(), key=self._key
        )
        try:
            with self._db.transaction() as db:
                db.execute(
                    tables.audit_checkpoints.insert().values(
                        size=checkpoint.size,
                        root=checkpoint.root,
                        note=checkpoint.note,
                        time=self._clock(),
                        frontier=frontier.nodes,
                    )
                )
                self._confirm_checkpoint(db, checkpoint)
        except Conflict:
            pass  # this size is checkpointed already; the root is the same or verify says so
        return checkpoint

    def _confirm_checkpoint(self, db: sa.Connection, checkpoint: Checkpoint) -> None:
        """Fail closed when the checkpoint row just inserted is not there as written.

        Raises:
            BackendError: a trigger or rule dropped or changed it (rolled back).
        """
        sql = _READ_BACK_CHECKPOINT_SQL.format(mark=self._mark)
        notes = db.exec_driver_sql(sql, (checkpoint.size,)).scalars().all()
        if notes != [checkpoint.note]:
            raise BackendError(
                detail=f"the audit checkpoint of size {checkpoint.size} was not stored "
                "as written (a trigger or rule on audit_checkpoints?)"
            )

    def _checkpoint_when_due(self, final: bool) -> float | None:
        """The writer's housekeeping: sign when the unsigned entries are many or old enough."""
        with self._frontier_lock:
            count, since = len(self._unsigned), self._unsigned_since
        if not count:
            return None
        waited = self._clock() - since
        if final or count >= self._every or waited >= self._interval:
            try:
                self.checkpoint()
            except (BackendError, IntegrityError) as exc:  # the next batch or timer retries
                logger.error("audit checkpoint failed: %s %s", exc.code, exc.detail)
                return self._interval
            return None
        return self._interval - waited

    def _load_frontier(self) -> Frontier:
        """This process's frontier; at first, that of the newest stored checkpoint."""
        if self._frontier is not None:
            return self._frontier
        t = tables.audit_checkpoints
        with self._db.transaction() as db:
            row = db.execute(
                sa.select(t.c.size, t.c.note, t.c.frontier).order_by(t.c.size.desc()).limit(1)
            ).first()
        if row is None or row.frontier is None:
            return Frontier()
        try:
            _, _, note, nodes = checked_checkpoint_row(row.size, b"", row.note, row.frontier)
            signed = self.read_checkpoint(note)
            frontier = Frontier.restore(signed.size, nodes or b"")
        except (IntegrityError, ValueError):
            signed = None
        if signed is None or frontier.root() != signed.root:
            logger.error("the stored frontier of checkpoint %d does not match it", row.size)
            return Frontier()  # rebuilt from the entries; verify judges them
        return frontier

    def _extend(self, frontier: Frontier) -> None:
        """Append the leaves after ``frontier`` to it: this process's own, else the table's.

        The rows are streamed in order (a first checkpoint after an upgrade may read the
        whole log).
        """
        sql = f"SELECT seq, entry FROM audit_entries WHERE seq >= {self._mark} ORDER BY seq"  # noqa: S608
        with self._db.engine.connect() as connection:
            cursor = connection.exec_driver_sql(sql, (frontier.size,))
            while rows := cursor.fetchmany(_FETCH):
                for seq, text in rows:
                    if type(seq) is not int or not isinstance(text, str):
                        # Signing past a row nobody can read would sign a guess.
                        logger.error("audit entry %r has the wrong types; stays unsigned", seq)
                        return
                    self._own_up_to(frontier, seq)
                    if seq != frontier.size:  # a gap nobody here can fill
                        logger.error("audit entry %d is missing; later ones stay unsigned", seq)
                        return
                    leaf = leaf_hash(text.encode(errors="surrogatepass"))
                    mine = self._unsigned.get(seq)
                    if mine is not None and leaf != mine:
                        # Changed or moved since this process committed it: sign what was
                        # committed, so verify names the entry instead of the edit being signed.
                        logger.error("audit entry %d differs from what was written", seq)
                        leaf = mine
                    frontier.append(leaf)
        self._own_up_to(frontier, None)

    def _own_up_to(self, frontier: Frontier, seq: int | None) -> None:
        """Append this process's own leaves that the table no longer holds, before ``seq``."""
        while (seq is None or frontier.size < seq) and frontier.size in self._unsigned:
            logger.error("audit entry %d was removed before its checkpoint", frontier.size)
            frontier.append(self._unsigned[frontier.size])

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
        """The last ``count`` entries, oldest first.

        Raises:
            IntegrityError: a row read does not hash to its leaf, or numbers have a gap.
        """
        found = []
        for entry in self._newest_first():
            found.append(entry)
            if len(found) >= count:
                break
        return found[::-1]

    def search(
        self,
        *,
        event: str | None = None,
        principal: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Entries matching every given filter, newest first.

        The filters are applied to the hashed entries themselves (no column outside them
        can hide one), and every row read on the way is checked.

        Raises:
            IntegrityError: a row read does not hash to its leaf, or numbers have a gap.
        """
        # Canonical JSON escapes every quote inside a value, so these fragments occur only
        # as the fields themselves: a cheap test before parsing.
        needles = [
            f'"{name}":{canonical(value)}'
            for name, value in (("event", event), ("principal", principal))
            if value is not None
        ]
        found: list[AuditEntry] = []
        for entry in self._newest_first(needles):
            e = entry.event
            if (
                (event is None or e.event == event)
                and (principal is None or e.principal == principal)
                and (since is None or e.time >= since)
            ):
                found.append(entry)
                if len(found) >= limit:
                    break
        return found

    def leaf_hashes(self, size: int | None = None) -> list[bytes]:
        """The leaf hashes of the first ``size`` entries (all by default)."""
        t = tables.audit_entries
        query = sa.select(t.c.leaf_hash).order_by(t.c.seq)
        if size is not None:
            query = query.where(t.c.seq < size)
        with self._db.transaction() as db:
            rows = db.execute(query.add_columns(t.c.seq)).all()
        return [checked_entry_row(seq, "", leaf)[2] for leaf, seq in rows]  # types only

    def latest_checkpoint(self) -> Checkpoint:
        """The newest stored checkpoint.

        Raises:
            NotFound: none was made yet.
            IntegrityError: it is not signed by this log.
        """
        t = tables.audit_checkpoints
        with self._db.transaction() as db:
            row = db.execute(sa.select(t.c.note).order_by(t.c.size.desc()).limit(1)).first()
        if row is None:
            raise NotFound("No checkpoint yet; run `bastion audit checkpoint`.")
        if not isinstance(row.note, str):
            raise IntegrityError("The newest checkpoint row's note is not text.")
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
        if witness is not None and witness.origin != self.origin:
            raise IntegrityError("The witness checkpoint is for another log.")
        checkpoints = stored_checkpoints(self._db, read_checkpoint=self.read_checkpoint)
        return verify_log(self._db, checkpoints=checkpoints, witness=witness)

    # -- internals -------------------------------------------------------------------

    def _newest_first(self, needles: Sequence[str] = ()) -> Iterator[AuditEntry]:
        """Every entry, newest first, each row checked; those holding every needle parsed."""
        with self._db.engine.connect() as connection:
            cursor = connection.exec_driver_sql(
                "SELECT seq, entry, leaf_hash FROM audit_entries ORDER BY seq DESC"
            )
            expected: int | None = None
            while rows := cursor.fetchmany(_FETCH):
                for row in rows:
                    try:
                        seq, raw, stored = checked_entry_row(*row)
                    except IntegrityError as exc:
                        raise IntegrityError(f"{exc} Run `bastion audit verify`.") from None
                    text = raw.decode()
                    leaf = leaf_hash(raw)
                    if expected is not None and seq != expected:
                        raise IntegrityError(
                            f"Audit entry {expected} is missing or out of order; "
                            "run `bastion audit verify`."
                        )
                    if leaf != stored:
                        raise IntegrityError(
                            f"Audit entry {seq} was changed; run `bastion audit verify`."
                        )
                    expected = seq - 1
                    if all(needle in text for needle in needles):
                        yield AuditEntry(seq, AuditEvent.from_entry(raw), leaf)

    def _prefix(self, size: int) -> list[bytes]:
        leaves = self.leaf_hashes(size)
        if len(leaves) != size or size < 1:
            raise NotFound(f"The log has no tree of size {size}.")
        return leaves

    def _write(self, events: Sequence[AuditEvent]) -> list[AuditEntry]:
        """Write one batch (the writer thread only); remember its leaves until signed."""
        encoded = [event.to_entry() for event in events]
        leaves = [leaf_hash(entry) for entry in encoded]
        rows = [(entry.decode(), leaf) for entry, leaf in zip(encoded, leaves, strict=True)]
        for _ in range(_ATTEMPTS):
            try:
                start = self._insert(rows)
            except Conflict:
                continue  # another process took these numbers between our read and write
            with self._frontier_lock:
                if not self._unsigned:
                    self._unsigned_since = self._clock()
                if len(self._unsigned) < _MAX_UNSIGNED:  # else checkpoints are failing
                    self._unsigned.update((start + i, leaf) for i, leaf in enumerate(leaves))
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
            # Fail closed: a trigger or rule (BEFORE INSERT … RAISE(IGNORE), DO INSTEAD
            # NOTHING, an AFTER INSERT delete or rewrite) can make an insert "succeed"
            # without the rows. Read them back in the same transaction; anything but
            # exactly what was written rolls the batch back and fails its callers.
            written = [(start + i, *row) for i, row in enumerate(rows)]
            stored = [
                tuple(bytes(v) if isinstance(v, memoryview) else v for v in found)
                for found in db.exec_driver_sql(
                    _READ_BACK_SQL.format(mark=self._mark), (start,)
                ).all()
            ]
            if stored != written:
                raise BackendError(
                    detail=f"audit entries {start}..{start + len(rows) - 1} were not stored "
                    "as written (a trigger or rule on audit_entries?)"
                )
        return start

    def _insert_sql(self, count: int) -> str:
        sql = self._insert_statements.get(count)
        if sql is None:
            row = f"({', '.join([self._mark] * len(_COLUMNS))})"
            columns = ", ".join(_COLUMNS)  # constants and placeholders only, never values
            sql = f"INSERT INTO audit_entries ({columns}) VALUES {', '.join([row] * count)}"  # noqa: S608
            self._insert_statements[count] = sql
        return sql
