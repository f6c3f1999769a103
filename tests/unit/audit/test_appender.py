"""Group commit from the event loop: batches, failures and the backlog limit, on each database."""

from __future__ import annotations

import asyncio
import time

import pytest

from bastion.audit import AsyncAppender, AuditLog
from bastion.audit import appender as appender_module
from bastion.crypto import SigningKey
from bastion.errors import BackendError
from bastion.storage import Database
from tests.unit.audit.test_log import event

pytestmark = pytest.mark.anyio


def audit_log(database: Database, tmp_path, *, checkpoint_interval: float = 60.0) -> AuditLog:
    return AuditLog(
        database=database,
        signing_key=SigningKey.generate(tmp_path / "audit.pem"),
        origin="test/audit",
        clock=time.time,
        checkpoint_interval=checkpoint_interval,
    )


async def test_concurrent_requests_share_transactions_and_leave_a_gapless_log(database, tmp_path):
    """200 coroutines appending at once: every event is committed, in fewer transactions."""
    log = audit_log(database, tmp_path, checkpoint_interval=0)
    batches: list[int] = []
    append_many = log.append_many

    def counted(events):
        batches.append(len(events))
        return append_many(events)

    log.append_many = counted
    appender = AsyncAppender(log)
    await asyncio.gather(*(appender.append(event(n)) for n in range(200)))
    appender.close()
    assert sum(batches) == 200
    assert len(batches) < 200  # the first commit's wait gathered the others
    assert log.size() == 200
    assert {entry.event.request_id for entry in log.tail(200)} == {f"r{n}" for n in range(200)}
    assert log.verify().size == 200
    assert log.latest_checkpoint().size > 0  # the batches are checkpointed at the interval


async def test_a_failed_commit_fails_its_requests_and_the_next_batch_is_tried_afresh(
    database_url, tmp_path
):
    """Until the table exists every append raises BackendError; then appends succeed."""
    database = Database.open(database_url)  # not migrated: the insert fails
    try:
        log = audit_log(database, tmp_path)
        appender = AsyncAppender(log)
        results = await asyncio.gather(
            *(appender.append(event(n)) for n in range(5)), return_exceptions=True
        )
        assert all(isinstance(result, BackendError) for result in results)
        database.migrate()
        await appender.append(event(5))
        appender.close()
        assert [entry.event.request_id for entry in log.tail(5)] == ["r5"]
    finally:
        database.close()


async def test_a_full_backlog_refuses_rather_than_answers_unaudited(
    database, tmp_path, monkeypatch
):
    """Past the backlog limit an append raises at once; those already waiting commit."""
    monkeypatch.setattr(appender_module, "MAX_BACKLOG", 2)
    log = audit_log(database, tmp_path)
    appender = AsyncAppender(log)
    results = await asyncio.gather(
        *(appender.append(event(n)) for n in range(3)), return_exceptions=True
    )
    appender.close()
    assert results[:2] == [None, None]
    assert isinstance(results[2], BackendError)
    assert results[2].detail == "audit backlog full"
    assert log.size() == 2


async def test_after_close_an_append_is_refused_not_left_waiting(database, tmp_path):
    """A stopped writing thread fails the request with BackendError (a 503), promptly."""
    log = audit_log(database, tmp_path)
    appender = AsyncAppender(log)
    appender.close()
    with pytest.raises(BackendError):
        await asyncio.wait_for(appender.append(event(0)), timeout=10)
    assert log.size() == 0
