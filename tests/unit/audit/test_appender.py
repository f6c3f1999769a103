"""The one audit writer: group commit for threads and coroutines, failures, backlog, close."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from bastion.audit import AuditLog
from bastion.audit import appender as appender_module
from bastion.crypto import SigningKey
from bastion.errors import BackendError
from bastion.storage import Database
from tests.unit.audit.test_log import event

pytestmark = pytest.mark.anyio


def audit_log(database: Database, tmp_path, **triggers) -> AuditLog:
    return AuditLog(
        database=database,
        signing_key=SigningKey.generate(tmp_path / "audit.pem"),
        origin="test/audit",
        clock=time.time,
        **triggers,
    )


def counting(log: AuditLog) -> list[int]:
    """Record the size of every batch the writer commits."""
    batches: list[int] = []
    write = log._write

    def counted(events):
        batches.append(len(events))
        return write(events)

    log._writer._write = counted
    return batches


async def test_concurrent_requests_share_transactions_and_leave_a_gapless_log(database, tmp_path):
    """200 coroutines appending at once: every event is committed, in fewer transactions."""
    log = audit_log(database, tmp_path, checkpoint_interval=1)
    batches = counting(log)
    entries = await asyncio.gather(*(log.append_async(event(n)) for n in range(200)))
    log.close()
    assert sum(batches) == 200
    assert len(batches) < 200  # the first commit's wait gathered the others
    assert sorted(entry.seq for entry in entries) == list(range(200))
    assert {entry.event.request_id for entry in log.tail(200)} == {f"r{n}" for n in range(200)}
    assert log.verify().size == 200
    assert log.latest_checkpoint().size == 200  # close signed every entry it wrote


async def test_threads_and_coroutines_share_one_writer_and_one_batch(database, tmp_path):
    """Entries from a thread, a coroutine and a fire-and-forget submit go through one writer."""
    log = audit_log(database, tmp_path)
    batches = counting(log)
    seen_threads: set[str] = set()
    write = log._writer._write

    def tracked(events):
        seen_threads.add(threading.current_thread().name)
        return write(events)

    log._writer._write = tracked
    from_thread = threading.Thread(target=lambda: [log.append(event(n)) for n in range(20)])
    from_thread.start()
    submitted = [log.submit(event(100 + n)) for n in range(20)]
    await asyncio.gather(*(log.append_async(event(200 + n)) for n in range(20)))
    from_thread.join()
    for future in submitted:
        future.result()
    log.close()
    assert seen_threads == {"bastion-audit-writer"}
    assert sum(batches) == 60
    assert log.verify().size == 60


async def test_a_failed_commit_fails_its_requests_and_the_next_batch_is_tried_afresh(
    database_url, tmp_path
):
    """Until the table exists every append raises BackendError; then appends succeed."""
    database = Database.open(database_url)  # not migrated: the insert fails
    try:
        log = audit_log(database, tmp_path)
        results = await asyncio.gather(
            *(log.append_async(event(n)) for n in range(5)), return_exceptions=True
        )
        assert all(isinstance(result, BackendError) for result in results)
        with pytest.raises(BackendError):
            log.append(event(9))
        database.migrate()
        await log.append_async(event(5))
        log.close()
        assert [entry.event.request_id for entry in log.tail(5)] == ["r5"]
    finally:
        database.close()


async def test_a_full_backlog_refuses_rather_than_answers_unaudited(
    database, tmp_path, monkeypatch
):
    """Past the backlog limit an append raises at once; those already waiting commit."""
    monkeypatch.setattr(appender_module, "MAX_BACKLOG", 2)
    log = audit_log(database, tmp_path)
    gate = threading.Event()
    write = log._writer._write
    log._writer._write = lambda events: (gate.wait(10), write(events))[1]
    first = log.submit(event(0))  # taken by the writer, which then waits at the gate
    deadline = time.monotonic() + 10
    while log.backlog and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    waiting = [asyncio.ensure_future(log.append_async(event(n))) for n in (1, 2)]
    await asyncio.sleep(0)
    with pytest.raises(BackendError, match="overloaded") as refused:
        await log.append_async(event(3))
    assert refused.value.detail == "audit backlog full"
    gate.set()
    first.result()
    await asyncio.gather(*waiting)
    log.close()
    assert log.size() == 3


async def test_a_cancelled_request_does_not_break_the_batch(database, tmp_path):
    """A coroutine cancelled while waiting leaves its entry written and the others answered."""
    log = audit_log(database, tmp_path)
    tasks = [asyncio.ensure_future(log.append_async(event(n))) for n in range(10)]
    await asyncio.sleep(0)
    tasks[3].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    log.close()
    assert isinstance(results[3], asyncio.CancelledError)
    assert all(not isinstance(r, BaseException) for i, r in enumerate(results) if i != 3)
    assert log.verify().size == 10


async def test_appends_after_close_start_the_writer_again(database, tmp_path):
    """close() commits and signs; a later append is written (not lost, not left waiting)."""
    log = audit_log(database, tmp_path)
    await log.append_async(event(0))
    log.close()
    entry = await asyncio.wait_for(log.append_async(event(1)), timeout=10)
    assert entry.seq == 1
    log.close()
    assert log.verify().uncovered == 0
