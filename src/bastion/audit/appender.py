"""Group commit for the event loop: the audit entries of concurrent requests, one batch each time.

The gateway answers a request only once its audit entry is durable. Handing each entry to
the log's writer thread would cost a thread wake-up and a loop wake-up per request; here
the entries wait on the loop, and one transaction at a time takes everything that is
waiting. While a batch commits, the next one gathers, so the batch size follows the load
and a lone request still waits for only one commit.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from bastion.audit.log import MAX_BACKLOG, MAX_BATCH, AuditEvent, AuditLog, overloaded
from bastion.errors import BackendError, BastionError

logger = logging.getLogger("bastion.audit")


class AsyncAppender:
    """Appends events to ``audit`` from coroutines, in batches, one transaction each."""

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit
        self._waiting: list[tuple[AuditEvent, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None  # the batch loop, while it runs
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bastion-audit")

    @property
    def backlog(self) -> int:
        """Events waiting for their batch."""
        return len(self._waiting)

    async def append(self, event: AuditEvent) -> None:
        """Return once ``event`` is committed (durable).

        Raises:
            BackendError: the database failed or the backlog is full; not recorded.
        """
        if len(self._waiting) >= MAX_BACKLOG:
            raise overloaded()
        loop = asyncio.get_running_loop()
        committed: asyncio.Future[None] = loop.create_future()
        self._waiting.append((event, committed))
        if self._writer is None:
            self._writer = loop.create_task(self._write_while_waiting())
        await committed

    def close(self) -> None:
        """Stop the writing thread once the batch under way is committed."""
        self._thread.shutdown(wait=True)

    async def _write_while_waiting(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                events = [event for event, _ in batch]
                try:
                    await loop.run_in_executor(self._thread, self._audit.append_many, events)
                except BastionError as exc:
                    _settle(batch, exc)
                except Exception:  # a stopped thread or a bug: refuse, never leave them waiting
                    logger.exception("audit batch of %d entries failed", len(batch))
                    _settle(batch, BackendError(detail="audit writer failed"))
                else:
                    _settle(batch, None)
        finally:
            self._writer = None


def _settle(
    batch: list[tuple[AuditEvent, asyncio.Future[None]]], error: BastionError | None
) -> None:
    for _, committed in batch:
        if committed.done():  # its request was cancelled
            continue
        if error is None:
            committed.set_result(None)
        else:
            committed.set_exception(error)
