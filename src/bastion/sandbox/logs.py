r"""What jailed processes write to standard error, read by the gateway, bounded and labelled.

A jail's standard error is a pipe, never a file of the gateway (a worker that held the
gateway's log file could read it, truncate it and write lines that look like the
gateway's own). One thread per :class:`~bastion.sandbox.jail.Jail` reads every such pipe
and logs each line to ``bastion.sandbox`` as ``jail <label>: <text>``:

- the text is escaped (``unicode_escape``: newlines, carriage returns, ANSI escapes and any
  other control character become ``\n``, ``\x1b``…, a backslash ``\\``), so a line from a
  jail is always one log line, and always marked as the jail's;
- a line keeps at most ``MAX_LINE`` bytes (the rest is dropped, and the cut marked);
- a jail may log ``BURST`` lines at once and ``RATE`` lines a second after that. The
  gateway reads no more at a time than the allowance can log (about ``MAX_LINE`` bytes a
  line); past it, it drops what it has already read (and says how many lines), then stops
  reading that pipe until the allowance refills: a flooding worker blocks on its own
  writes and overruns its time, rather than costing the gateway CPU or disk.

The thread never touches the event loop. It starts with the first pipe and ends when the
last one is closed (every process holding it has ended), so no reader outlives its jails,
and it closes each pipe it reads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import threading
import time
from dataclasses import dataclass, field

logger = logging.getLogger("bastion.sandbox")

MAX_LINE = 1024  # bytes of one line
BURST = 200  # lines a jail may log at once
RATE = 20.0  # lines a second after that
_READ = 64 * 1024
_CUT = " [cut]"


@dataclass
class _Pipe:
    fd: int
    label: str
    done: threading.Event = field(default_factory=threading.Event)  # set once read to its end
    buffer: bytearray = field(default_factory=bytearray)
    allowance: float = BURST
    stamp: float = field(default_factory=time.monotonic)
    dropped: int = 0
    skipping: bool = False  # past MAX_LINE: drop until the next newline
    resume: float = 0.0  # when a paused pipe is read again


class JailLogs:
    """Reads the standard error pipes of jailed processes (see the module's docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[_Pipe] = []
        self._thread: threading.Thread | None = None
        self._wake = (-1, -1)

    def follow(self, fd: int, *, label: str) -> threading.Event:
        """Read and log the pipe ``fd`` until it ends, then close it (it becomes ours).

        Returns an event set once the pipe has been read to its end and closed.
        """
        os.set_blocking(fd, False)
        pipe = _Pipe(fd, escape(label.encode()))
        with self._lock:
            self._pending.append(pipe)
            if self._thread is None:
                self._wake = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
                self._thread = threading.Thread(
                    target=self._run, name="bastion-jail-logs", daemon=True
                )
                self._thread.start()
            else:
                with contextlib.suppress(BlockingIOError):  # already woken
                    os.write(self._wake[1], b"\0")
        return pipe.done

    def is_reading(self) -> bool:
        """Whether the reader thread runs (while some jail's pipe is open)."""
        with self._lock:
            return self._thread is not None

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._wake[0], selectors.EVENT_READ)
        pipes: dict[int, _Pipe] = {}
        paused: dict[int, _Pipe] = {}
        while True:
            with self._lock:
                new, self._pending = self._pending, []
                if not new and not pipes and not paused:
                    selector.close()
                    os.close(self._wake[0])
                    os.close(self._wake[1])
                    self._thread = None
                    return
            for pipe in new:
                pipes[pipe.fd] = pipe
                selector.register(pipe.fd, selectors.EVENT_READ)
            now = time.monotonic()
            for pipe in [p for p in paused.values() if p.resume <= now]:
                del paused[pipe.fd]
                pipes[pipe.fd] = pipe
                selector.register(pipe.fd, selectors.EVENT_READ)
            timeout = max(0.0, min(p.resume for p in paused.values()) - now) if paused else None
            for key, _ in selector.select(timeout):
                if key.fd == self._wake[0]:
                    os.read(self._wake[0], _READ)
                    continue
                pipe = pipes[key.fd]
                state = _read(pipe)
                if state != "open":
                    selector.unregister(pipe.fd)
                    del pipes[pipe.fd]
                if state == "closed":
                    os.close(pipe.fd)
                    pipe.done.set()
                elif state == "paused":
                    paused[pipe.fd] = pipe


def _read(pipe: _Pipe) -> str:
    """Read what the pipe holds; "open", "paused" (over its allowance) or "closed"."""
    _refill(pipe)
    # No more than the allowance can log: a flooding jail costs the gateway one read of
    # about MAX_LINE bytes per line it may log, whatever it writes.
    size = min(_READ, max(1, int(pipe.allowance)) * (MAX_LINE + 1))
    try:
        data = os.read(pipe.fd, size)
    except BlockingIOError:
        return "open"
    except OSError:
        data = b""
    if not data:
        if pipe.buffer and not pipe.skipping:
            _emit(pipe, bytes(pipe.buffer))
        _report_dropped(pipe)
        return "closed"
    pipe.buffer += data
    while True:
        end = pipe.buffer.find(b"\n")
        if end < 0:
            break
        line = bytes(pipe.buffer[:end])
        del pipe.buffer[: end + 1]
        if pipe.skipping:
            pipe.skipping = False
        else:
            _emit(pipe, line)
    if len(pipe.buffer) > MAX_LINE:
        if not pipe.skipping:
            _emit(pipe, bytes(pipe.buffer))
        pipe.skipping = True
        pipe.buffer.clear()
    if pipe.allowance < 1:
        pipe.resume = time.monotonic() + (1 - pipe.allowance) / RATE
        return "paused"
    _report_dropped(pipe)
    return "open"


def _refill(pipe: _Pipe) -> None:
    now = time.monotonic()
    pipe.allowance = min(BURST, pipe.allowance + (now - pipe.stamp) * RATE)
    pipe.stamp = now


def _emit(pipe: _Pipe, line: bytes) -> None:
    _refill(pipe)
    if pipe.allowance < 1:
        pipe.dropped += 1
        return
    pipe.allowance -= 1
    text = escape(line[:MAX_LINE]) + (_CUT if len(line) > MAX_LINE else "")
    logger.warning("jail %s: %s", pipe.label, text)


def _report_dropped(pipe: _Pipe) -> None:
    if pipe.dropped:
        logger.warning("jail %s: %d lines dropped (over its allowance)", pipe.label, pipe.dropped)
        pipe.dropped = 0


def escape(raw: bytes) -> str:
    r"""``raw`` as one printable ASCII line: every control character, and ``\``, escaped."""
    text = raw.decode("utf-8", "backslashreplace")
    return text.encode("unicode_escape").decode("ascii")
