"""The monitor: runs the detectors off the request path and routes their alerts."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from bastion.errors import BastionError
from bastion.monitor.alerts import Alert, AlertSink
from bastion.monitor.detectors import Observation

logger = logging.getLogger("bastion.monitor")
_QUEUE = 10_000
_GATHER_SECONDS = 0.02


class Detector(Protocol):
    """Turns observations into alerts."""

    def observe(self, seen: Observation) -> list[Alert]:
        """Take one observation; return the alerts it triggers."""
        ...


class Monitor:
    """Feeds observations to the detectors in a background thread.

    ``observe`` never blocks a request: it appends to a buffer, and when the buffer is
    full the observation is dropped and counted. The thread wakes at most every
    ``_GATHER_SECONDS`` and runs the detectors on everything gathered since, so a busy
    gateway pays one thread wake-up per batch of requests rather than one per request.
    Each alert is recorded (``record``, the audit log in the gateway) and sent to every
    sink.
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
        self._pending: deque[Observation] = deque()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.dropped = 0
        self.alerts: list[Alert] = []

    def observe(self, seen: Observation) -> None:
        """Queue an observation for the detectors."""
        if self._thread is None:
            self._start()
        if len(self._pending) >= _QUEUE:
            self.dropped += 1
            return
        if self._idle.is_set():  # clearing takes a lock: only when it changes
            self._idle.clear()
        self._pending.append(seen)
        if not self._wake.is_set():
            self._wake.set()

    def drain(self) -> None:
        """Wait until every queued observation has been processed (tests, shutdown)."""
        while self._pending or not self._idle.is_set():
            self._idle.wait(_GATHER_SECONDS)

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

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="bastion-monitor", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(_GATHER_SECONDS)  # let a batch gather
            self._wake.clear()  # before draining: what arrives from now on wakes us again
            while self._pending:
                seen = self._pending.popleft()
                try:
                    self.process(seen)
                except Exception:  # a detector bug must not stop monitoring
                    logger.exception("monitor detector failed")
            if not self._pending:
                self._idle.set()
