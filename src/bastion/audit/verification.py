"""Checking a whole log: every leaf, every stored checkpoint, a witness; what is unsigned.

>>> from bastion.storage import Database
>>> db = Database.open("sqlite://"); db.migrate()
>>> verify_log(db, checkpoints={}, witness=None).uncovered
0
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from bastion.audit.checkpoint import Checkpoint
from bastion.audit.merkle import Frontier, leaf_hash
from bastion.errors import IntegrityError
from bastion.storage import Database, tables

_FETCH = 20_000
_HASH_BYTES = 32


def checked_entry_row(seq: object, entry: object, leaf: object) -> tuple[int, bytes, bytes]:
    """One ``audit_entries`` row as (number, entry bytes, stored leaf), each of its type.

    SQLite stores any type in any column (type affinity), so an insider can keep a number
    as ``100.5`` or ``'100'``, a leaf hash as text or an entry as a blob; a conversion
    (``int(100.5)``) would hide the change, and a method of the wrong type would crash the
    reader. Every value is checked exactly, so either is an :class:`IntegrityError` naming
    the entry.

    Raises:
        IntegrityError: a column holds a value of the wrong type.
    """
    if type(seq) is not int:
        raise IntegrityError(f"Audit entry {seq!r}: its number is not an integer.")
    if not isinstance(entry, str):
        raise IntegrityError(f"Audit entry {seq}: the entry is not text.")
    if isinstance(leaf, memoryview):  # some PostgreSQL drivers return bytea so
        leaf = leaf.tobytes()
    if type(leaf) is not bytes or len(leaf) != _HASH_BYTES:
        raise IntegrityError(f"Audit entry {seq}: the leaf hash is not 32 bytes.")
    try:
        raw = entry.encode()
    except UnicodeEncodeError:  # a lone surrogate: not bytes that were ever hashed
        raise IntegrityError(f"Audit entry {seq}: the entry is not valid text.") from None
    return seq, raw, leaf


def checked_checkpoint_row(
    size: object, root: object, note: object, frontier: object
) -> tuple[int, bytes, str, bytes | None]:
    """One ``audit_checkpoints`` row with each value of its type (see :func:`checked_entry_row`).

    Raises:
        IntegrityError: a column holds a value of the wrong type.
    """
    values = [root, frontier]
    for i, value in enumerate(values):
        if isinstance(value, memoryview):
            values[i] = value.tobytes()
    root, frontier = values
    if (
        type(size) is not int
        or type(root) is not bytes
        or not isinstance(note, str)
        or not (frontier is None or type(frontier) is bytes)
    ):
        raise IntegrityError(
            f"The checkpoint row of size {size!r} holds a value of the wrong type."
        )
    return size, root, note, frontier


@dataclass(frozen=True)
class VerifyReport:
    """What a successful verification checked."""

    size: int
    root: bytes
    checkpoints: int
    witness: bool
    uncovered: int  # entries after the newest signed checkpoint


def stored_checkpoints(
    database: Database, *, read_checkpoint: Callable[[str], Checkpoint]
) -> dict[int, Checkpoint]:
    """Every stored checkpoint by size, each row's columns checked against its signed note.

    Raises:
        IntegrityError: a note is not signed by the log, or its row says something else.
    """
    t = tables.audit_checkpoints
    with database.transaction() as db:
        rows = db.execute(sa.select(t.c.size, t.c.root, t.c.note, t.c.frontier)).all()
    checkpoints = {}
    for row in rows:
        size, root, note, stored_frontier = checked_checkpoint_row(*row)
        signed = read_checkpoint(note)
        if (signed.size, signed.root) != (size, root) or (
            stored_frontier is not None
            and frontier_root(signed.size, stored_frontier) != signed.root
        ):
            raise IntegrityError(f"The checkpoint row of size {size} was changed.")
        checkpoints[signed.size] = signed
    return checkpoints


def verify_log(
    database: Database, *, checkpoints: dict[int, Checkpoint], witness: Checkpoint | None
) -> VerifyReport:
    """Recompute every leaf and the root at every checkpoint's (and the witness's) size.

    Raises:
        IntegrityError: an entry was changed, removed, inserted or reordered; a checkpoint
            does not match; or the log is not an extension of the witness's tree.
    """
    targets = dict(checkpoints)
    if witness is not None:
        targets[witness.size] = witness
    frontier = Frontier()
    for seq, entry, leaf in _oldest_first(database):
        if seq != frontier.size:
            raise IntegrityError(f"Audit entry {frontier.size} is missing or out of order.")
        if leaf_hash(entry) != leaf:
            raise IntegrityError(f"Audit entry {seq} was changed.")
        frontier.append(leaf)
        expected = targets.get(frontier.size)
        if expected is not None and expected.root != frontier.root():
            raise IntegrityError(
                f"The log differs from the checkpoint at size {frontier.size}: an entry "
                "before it was changed, removed, inserted or moved."
            )
    beyond = [size for size in targets if size > frontier.size]
    if beyond:
        raise IntegrityError(
            f"The log has {frontier.size} entries; a checkpoint says "
            f"{max(beyond)}: entries were removed."
        )
    if 0 in targets and targets[0].root != Frontier().root():
        raise IntegrityError("The checkpoint of the empty log is wrong.")
    return VerifyReport(
        size=frontier.size,
        root=frontier.root(),
        checkpoints=len(checkpoints),
        witness=witness is not None,
        uncovered=frontier.size - max(checkpoints, default=0),
    )


def frontier_root(size: int, nodes: bytes) -> bytes | None:
    """The root of a stored frontier, or None when it does not fit the size."""
    try:
        return Frontier.restore(size, nodes).root()
    except ValueError:
        return None


def _oldest_first(database: Database) -> Iterator[tuple[int, bytes, bytes]]:
    with database.engine.connect() as connection:
        cursor = connection.exec_driver_sql(
            "SELECT seq, entry, leaf_hash FROM audit_entries ORDER BY seq"
        )
        while rows := cursor.fetchmany(_FETCH):
            for row in rows:
                yield checked_entry_row(*row)
