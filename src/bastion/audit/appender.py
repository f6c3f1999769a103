"""The one audit writer: group commit for every producer, threads and coroutines alike.

Producers hand an event to :class:`GroupCommit` and wait for it: a thread on a
``concurrent.futures.Future``, a coroutine on an ``asyncio`` future. One writer thread per
log takes everything that is waiting (up to ``MAX_BATCH``), writes it in one transaction,
and only after the commit settles the waiters, so nothing is answered before its entry is
durable. A coroutine's future is settled on its own event loop with one
``call_soon_threadsafe`` per loop and batch, never one per entry. While a batch commits the
next one gathers, so the batch grows with the load and a lone entry waits for one commit.
Between batches, and when a timer it was given runs out while idle, the writer runs the
log's housekeeping (the checkpoint triggers); closing it writes what is waiting, then runs
the housekeeping one last time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bastion.errors import BackendError, BastionError

if TYPE_CHECKING:
    from bastion.audit.entry import AuditEntry, AuditEvent

MAX_BATCH = 2048  # entries in one transaction
MAX_BACKLOG = 20_000  # entries waiting; past it appends are refused (503), never unaudited
logger = logging.getLogger("bastion.audit")

Write = Callable[[Sequence["AuditEvent"]], list["AuditEntry"]]
# Called between batches with ``final`` set at close; returns the seconds until it is
# due again while no entry arrives (None: not until one does).
Housekeeping = Callable[[bool], float | None]


def overloaded() -> BackendError:
    """The error of an append refused because the backlog is full."""
    return BackendError("The audit log is overloaded.", detail="audit backlog full")


_Settled = tuple["_Pending", "AuditEntry | BastionError"]


@dataclass(frozen=True)
class _Pending:
    event: AuditEvent
    future: Future[AuditEntry] | asyncio.Future[AuditEntry]
    loop: asyncio.AbstractEventLoop | None  # the coroutine's loop; None for a thread


class GroupCommit:
    """Writes the events of every producer in batches, one transaction each, on one thread."""

    def __init__(self, *, write: Write, housekeeping: Housekeeping) -> None:
        self._write = write
        self._housekeeping = housekeeping
        self._pending: list[_Pending] = []
        self._wake = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._closing = False
        self._due: float | None = None  # seconds until the housekeeping wants to run

    @property
    def backlog(self) -> int:
        """Events waiting for their batch."""
        return len(self._pending)

    def submit(self, event: AuditEvent) -> Future[AuditEntry]:
        """Queue ``event`` from any thread; the future resolves once it is committed.

        Raises:
            BackendError: the backlog is full: the caller must refuse its request rather
                than answer it unaudited.
        """
        future: Future[AuditEntry] = Future()
        self._queue(_Pending(event, future, None))
        return future

    async def append(self, event: AuditEvent) -> AuditEntry:
        """Queue ``event`` from a coroutine; return once it is committed (durable).

        Raises:
            BackendError: the database failed or the backlog is full; not recorded.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AuditEntry] = loop.create_future()
        self._queue(_Pending(event, future, loop))
        return await future

    def close(self) -> None:
        """Write every waiting event, run the housekeeping a last time, stop the thread.

        A later submit starts the writer again.
        """
        with self._wake:
            thread = self._thread
            if thread is None:
                return
            self._closing = True
            self._wake.notify()
        thread.join()
        with self._wake:
            if self._thread is None:
                self._closing = False

    def _queue(self, pending: _Pending) -> None:
        with self._wake:
            if len(self._pending) >= MAX_BACKLOG:
                raise overloaded()
            self._pending.append(pending)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="bastion-audit-writer", daemon=True
                )
                self._thread.start()
            else:
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                if not self._pending and not self._closing:
                    self._wake.wait(self._due)
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                final = self._closing and not self._pending
            if batch:
                self._commit(batch)
            self._due = self._keep_house(final=final)
            if final:
                with self._wake:
                    if not self._pending:  # else a late submit: go round again
                        self._thread = None
                        return

    def _commit(self, batch: list[_Pending]) -> None:
        outcomes: Sequence[AuditEntry | BastionError]
        try:
            outcomes = self._write([pending.event for pending in batch])
        except BastionError as exc:
            outcomes = [exc] * len(batch)
        except Exception:  # a bug: refuse these requests, never leave them waiting
            logger.exception("audit batch of %d entries failed", len(batch))
            outcomes = [BackendError(detail="audit writer failed")] * len(batch)
        by_loop: defaultdict[asyncio.AbstractEventLoop, list[_Settled]] = defaultdict(list)
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.loop is None:
                _settle(pending.future, outcome)
            else:
                by_loop[pending.loop].append((pending, outcome))
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_all, settled)
            except RuntimeError:  # the loop is closed: nobody waits for these any more
                continue

    def _keep_house(self, *, final: bool) -> float | None:
        try:
            return self._housekeeping(final)
        except Exception:  # the writer must outlive a housekeeping bug
            logger.exception("audit housekeeping failed")
            return None


def _settle_all(settled: list[_Settled]) -> None:
    for pending, outcome in settled:
        _settle(pending.future, outcome)


def _settle(
    future: Future[AuditEntry] | asyncio.Future[AuditEntry], outcome: AuditEntry | BastionError
) -> None:
    if future.done():  # a coroutine cancelled while its request waited
        return
    if isinstance(outcome, BastionError):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
