"""Jailed worker processes, and the pool of them that serves one model version."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import subprocess
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from anyio import to_thread

from bastion.errors import BackendError, BastionError
from bastion.sandbox.frames import (
    FAILED,
    HEADER,
    LOAD,
    READY,
    RESULT,
    RUN,
    FrameError,
    Tensors,
    decode_tensors,
    encode_run,
    frame,
)
from bastion.sandbox.jail import Jail

if TYPE_CHECKING:
    from bastion.registry import ModelVersion

logger = logging.getLogger("bastion.sandbox")
_MAX_RESULT_BYTES = 256 * 1024 * 1024
_STOP_SECONDS = 2.0


class WorkerDied(Exception):
    """The worker closed its socket, broke the protocol or overran its time."""


class Worker:
    """One jailed worker process and the gateway's end of its socket."""

    def __init__(self, process: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self._process = process
        self._sock = sock
        self._channel: _Channel | None = None  # made on the event loop, at the first exchange

    @classmethod
    def start(cls, jail: Jail, *, label: str = "worker") -> Worker:
        """Launch a worker (it waits for its model); its standard error is logged as ``label``."""
        process, ours = jail.spawn_worker(label=label)
        ours.setblocking(False)
        return cls(process, ours)

    async def load(self, model: bytes, *, timeout: float) -> None:
        """Send the model and wait until the worker has loaded it."""
        kind, _ = await self._exchange(frame(LOAD, model), timeout=timeout)
        if kind != READY:
            raise WorkerDied("the worker did not load the model")

    async def run(self, inputs: Tensors, outputs: Sequence[str], *, timeout: float) -> Tensors:
        """Run the model once.

        Raises:
            BackendError: the model failed on these inputs (the worker lives on).
            WorkerDied: the worker must be replaced.
        """
        kind, payload = await self._exchange(
            frame(RUN, *encode_run(inputs, outputs)), timeout=timeout
        )
        if kind == FAILED:
            reason = bytes(payload[:64]).decode(errors="replace")
            raise BackendError("The model failed to run.", detail=f"worker: {reason}")
        if kind != RESULT:
            raise WorkerDied("unexpected frame")
        try:
            tensors = decode_tensors(payload)
        except FrameError as exc:
            raise WorkerDied(str(exc)) from None
        if list(tensors) != list(outputs):
            raise WorkerDied("the worker answered with other outputs than asked")
        return tensors

    @property
    def exit_code(self) -> int | None:
        """The jail's exit status once it has ended."""
        return self._process.poll()

    def is_alive(self) -> bool:
        """Whether the jail is still running and its socket open."""
        closed = self._channel is not None and self._channel.failure is not None
        return not closed and self._process.poll() is None

    def stop(self) -> None:
        """Close the socket and end the jail (SIGKILL after a short grace)."""
        if self._channel is not None:
            self._channel.close()
        self._sock.close()
        Jail.kill(self._process)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=_STOP_SECONDS)

    async def _exchange(self, request: bytes, *, timeout: float) -> tuple[int, memoryview]:
        if self._channel is None:
            self._channel = _Channel(self._sock, asyncio.get_running_loop())
        try:
            async with asyncio.timeout(timeout):
                return await self._channel.exchange(request)
        except TimeoutError:
            raise WorkerDied("timed out") from None
        except _Closed:
            raise WorkerDied(f"exited with {self.exit_code}") from None


_READ_BYTES = 256 * 1024


class _Closed(WorkerDied):
    """The worker's end of the socket closed (or the gateway stopped reading it)."""


class _Channel:
    """The gateway's end of a worker's socket: one request, then exactly one frame back.

    The socket stays registered with the event loop for reading, so an answer costs one
    wake-up and no system calls to start or stop watching it; a worker that speaks unasked,
    answers with more than one frame, or announces an answer over the size limit is cut off.
    """

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self._sock = sock
        self._loop = loop
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, memoryview]] | None = None
        self.failure: WorkerDied | None = None
        loop.add_reader(sock.fileno(), self._readable)

    async def exchange(self, request: bytes) -> tuple[int, memoryview]:
        """Send ``request``; the frame the worker answers with.

        Raises:
            WorkerDied: the worker is gone, or was cut off.
        """
        if self.failure is not None:
            raise self.failure
        waiter: asyncio.Future[tuple[int, memoryview]] = self._loop.create_future()
        self._waiter = waiter
        try:
            try:
                sent = self._sock.send(request)
            except BlockingIOError:
                sent = 0
            if sent < len(request):  # a large frame (a model): the rest as the socket drains
                await self._loop.sock_sendall(self._sock, memoryview(request)[sent:])
            return await waiter
        except OSError as exc:
            raise WorkerDied(type(exc).__name__) from None
        finally:
            self._waiter = None  # an answer that comes later is unasked

    def close(self) -> None:
        """Stop reading (the worker is being stopped)."""
        self._fail(_Closed())

    def _readable(self) -> None:
        try:
            data = self._sock.recv(_READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(WorkerDied(type(exc).__name__))
            return
        if not data:
            self._fail(_Closed())
            return
        self._buffer += data
        waiter = self._waiter
        if waiter is None or waiter.done():
            self._fail(WorkerDied("the worker spoke unasked"))
            return
        if len(self._buffer) < HEADER.size:
            return
        kind, size = HEADER.unpack_from(self._buffer)
        end = HEADER.size + size
        if size > _MAX_RESULT_BYTES:
            self._fail(WorkerDied("the worker's answer is over the size limit"))
        elif len(self._buffer) > end:
            self._fail(WorkerDied("the worker answered more than once"))
        elif len(self._buffer) == end:
            answer, self._buffer = self._buffer, bytearray()
            waiter.set_result((kind, memoryview(answer)[HEADER.size :]))

    def _fail(self, failure: WorkerDied) -> None:
        if self.failure is None:
            self.failure = failure
            if not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(self.failure)


class WorkerPool:
    """``size`` workers of one model version; a dead worker is replaced on next use."""

    def __init__(
        self, model: ModelVersion, *, jail: Jail, artifact: Callable[[], bytes], size: int
    ) -> None:
        self.model = model
        self.size = size
        self._jail = jail
        self._artifact = artifact  # verifies digest and signature again at every load
        self._idle: deque[Worker | None] = deque([None] * size)  # None: started on first use
        # Requests waiting for a worker, served first come, first served: a freed worker is
        # handed to the oldest of them, never taken by a newcomer (a long tail otherwise).
        self._waiting: deque[asyncio.Future[Worker | None]] = deque()
        self._workers: set[Worker] = set()
        self.starts = 0  # workers started so far (the first ones and their replacements)
        self.failing = False  # the last start failed: the model cannot be served now

    @property
    def is_idle(self) -> bool:
        """Whether no request is using the pool right now."""
        return len(self._idle) == self.size

    async def run(self, inputs: Tensors, outputs: Sequence[str]) -> Tensors:
        """Run on an idle worker, starting or replacing it first when needed.

        Raises:
            BackendError: the model failed, timed out or its worker died.
        """
        worker = await self._acquire()
        try:
            if worker is not None and not worker.is_alive():  # died while idle
                self._retire(worker, reason=f"exited with {worker.exit_code}")
                worker = None
            if worker is None:
                worker = await self._start()
            return await worker.run(inputs, outputs, timeout=self._jail.limits.timeout_seconds)
        except WorkerDied as exc:
            self._retire(worker, reason=str(exc))
            worker = None
            raise BackendError(
                "The model's worker failed; it is being restarted.",
                detail=f"{self.model.ref}: {exc}",
            ) from None
        finally:
            self._release(worker)

    async def warm(self) -> None:
        """Start every worker not started yet, all at once, so no request waits for one.

        A worker that fails to start leaves its slot empty and the pool ``failing``.
        """
        slots = [self._idle.popleft() for _ in range(len(self._idle))]

        async def started(worker: Worker | None) -> Worker | None:
            if worker is None:
                with contextlib.suppress(BastionError, WorkerDied):
                    return await self._start()
            return worker

        for worker in await asyncio.gather(*(started(slot) for slot in slots)):
            self._release(worker)

    def close(self) -> None:
        """Stop every worker of the pool."""
        for worker in list(self._workers):
            self._retire(worker, reason="closed")

    async def _acquire(self) -> Worker | None:
        if self._idle:  # then nobody is waiting (a freed worker goes to a waiter first)
            return self._idle.popleft()
        handed: asyncio.Future[Worker | None] = asyncio.get_running_loop().create_future()
        self._waiting.append(handed)
        try:
            return await handed
        except asyncio.CancelledError:
            if handed.done() and not handed.cancelled():  # handed over, then cancelled
                self._release(handed.result())
            raise

    def _release(self, worker: Worker | None) -> None:
        while self._waiting:
            handed = self._waiting.popleft()
            if not handed.done():  # not cancelled
                handed.set_result(worker)
                return
        self._idle.append(worker)

    async def _start(self) -> Worker:
        limits = self._jail.limits
        try:
            worker = await to_thread.run_sync(
                lambda: Worker.start(self._jail, label=f"worker of {self.model.ref}")
            )
        except OSError as exc:
            self.failing = True
            raise BackendError(
                "The model's sandbox could not start.", detail=f"{self.model.ref}: {exc}"
            ) from None
        self._workers.add(worker)
        try:
            artifact = await to_thread.run_sync(self._artifact)
            await worker.load(artifact, timeout=limits.start_seconds)
        except BaseException:
            self.failing = True
            self._retire(worker, reason="failed to load the model")
            raise
        self.failing = False
        self.starts += 1
        return worker

    def _retire(self, worker: Worker | None, *, reason: str) -> None:
        if worker is not None:
            self._workers.discard(worker)
            worker.stop()
            logger.warning("model worker of %s stopped: %s", self.model.ref, reason)
