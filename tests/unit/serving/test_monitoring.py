"""The gateway's monitor writes its alerts through the audit log's one writer, without waiting."""

from __future__ import annotations

import threading
import time

from bastion.monitor import Observation
from bastion.serving.monitoring import build_monitor


def test_an_alert_is_audited_through_the_writer_without_blocking_the_detectors(make_workspace):
    """While the writer is stuck in a commit, processing an alert returns; the entry follows."""
    workspace = make_workspace()
    monitor = build_monitor(workspace)
    writer = workspace.audit._writer
    write, gate, writing = writer._write, threading.Event(), []

    def stuck(events):
        writing.append(threading.current_thread().name)
        gate.wait(30)
        return write(events)

    writer._write = stuck
    failures = [Observation(time=time.time(), principal="-", source="203.0.113.9", status=401,
                            model="") for _ in range(10)]  # fmt: skip
    started = time.monotonic()
    alerts = [alert for seen in failures for alert in monitor.process(seen)]
    returned_after = time.monotonic() - started
    assert [alert.kind for alert in alerts] == ["authn_failure_burst"]
    assert returned_after < 20  # not the 30 s the stuck commit would have held a blocking append
    assert workspace.audit.size() == 0  # not committed yet: the writer is still stuck
    gate.set()
    workspace.audit.close()
    assert writing == ["bastion-audit-writer"]
    [entry] = workspace.audit.tail(1)
    assert (entry.event.event, entry.event.resource) == ("monitor_alert", "authn_failure_burst")
    assert workspace.audit.verify().uncovered == 0
