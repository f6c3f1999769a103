"""The monitor: runs the detectors off the request path and routes their alerts."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from bastion.errors import BastionError
from bastion.monitor.alerts import Alert, AlertSink
from bastion.monitor.detectors import Observation

logger = logging.getLogger("bastion.monitor")
_QUEUE = 10_000


class Detector(Protocol):
    """Turns observations into alerts."""

    def observe(self, seen: Observation) -> list[Alert]:
        """Take one observation; return the alerts it triggers."""
        ...


class Monitor:
    """Feeds observations to the detectors in a background thread.

    ``observe`` never blocks a request: when the queue is full the observation is
    dropped and counted. Each alert is recorded (``record``, the audit log in the
    gateway) and sent to every sink.
    """

    def __init__(
        self,
        *,
        detectors: Sequence[Detector],
        sinks: Sequence[AlertSink],
        record: Callable[[Alert], None],
    ) -> None:
        self._detectors = tuple(detectors)
        self._sinks = tuple(sinks)
        self._record = record
        self._queue: queue.Queue[Observation | None] = queue.Queue(maxsize=_QUEUE)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.dropped = 0
        self.alerts: list[Alert] = []

    def observe(self, seen: Observation) -> None:
        """Queue an observation for the detectors."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="bastion-monitor", daemon=True
                )
                self._thread.start()
        try:
            self._queue.put_nowait(seen)
        except queue.Full:
            self.dropped += 1

    def drain(self) -> None:
        """Wait until every queued observation has been processed (tests, shutdown)."""
        self._queue.join()

    def process(self, seen: Observation) -> list[Alert]:
        """Run the detectors on one observation now and route the alerts."""
        alerts = [alert for detector in self._detectors for alert in detector.observe(seen)]
        for alert in alerts:
            self.alerts.append(alert)
            try:
                self._record(alert)
            except BastionError as exc:
                logger.error("could not audit alert %s: %s", alert.kind, exc.code)
            for sink in self._sinks:
                sink.send(alert)
        return alerts

    def _run(self) -> None:
        while True:
            seen = self._queue.get()
            try:
                if seen is not None:
                    self.process(seen)
            except Exception:  # a detector bug must not stop monitoring
                logger.exception("monitor detector failed")
            finally:
                self._queue.task_done()
