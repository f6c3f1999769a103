"""The gateway's end of a worker socket, against a peer that plays a broken or hostile worker."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import numpy as np
import pytest

from bastion.sandbox.frames import HEADER, READY, RESULT, encode_tensors, frame, receive
from bastion.sandbox.pool import Worker, WorkerDied

pytestmark = pytest.mark.anyio


@pytest.fixture
async def pair():
    """A Worker whose 'process' only sleeps, and the socket end the test answers on."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    worker = Worker(process, ours)
    yield worker, theirs
    worker.stop()
    theirs.close()


async def _answer(peer: socket.socket, reply: bytes) -> None:
    """Read one request on the peer (in a thread: it blocks), then send ``reply``."""

    def serve() -> None:
        receive(peer)
        peer.sendall(reply)

    await asyncio.to_thread(serve)


async def test_a_large_request_and_a_split_answer_get_through(pair):
    worker, peer = pair
    model = bytes(8 * 1024 * 1024)  # far beyond the socket buffer: sent as the peer drains it
    answer = asyncio.create_task(worker.load(model, timeout=10))

    def serve() -> int:
        _, payload = receive(peer)
        reply = frame(READY)
        peer.sendall(reply[:4])  # the header in two pieces
        peer.sendall(reply[4:])
        return len(payload)

    assert await asyncio.to_thread(serve) == len(model)
    await answer
    x = np.arange(3.0)
    result = frame(RESULT, *encode_tensors({"y": x}))
    run = asyncio.create_task(worker.run({"x": x}, ["y"], timeout=10))
    await _answer(peer, result)
    assert (await run)["y"].tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (frame(READY) + frame(READY), "more than once"),
        (HEADER.pack(RESULT, 2**40), "over the size limit"),
    ],
)
async def test_a_worker_that_breaks_the_protocol_is_cut_off(pair, reply, reason):
    worker, peer = pair
    load = asyncio.create_task(worker.load(b"model", timeout=10))
    await _answer(peer, reply)
    with pytest.raises(WorkerDied, match=reason):
        await load
    assert not worker.is_alive()


async def test_a_worker_that_speaks_unasked_is_cut_off(pair):
    worker, peer = pair
    load = asyncio.create_task(worker.load(b"model", timeout=10))
    await _answer(peer, frame(READY))
    await load
    peer.sendall(frame(READY))  # nobody asked
    for _ in range(100):
        if not worker.is_alive():
            break
        await asyncio.sleep(0.01)
    assert not worker.is_alive()
    with pytest.raises(WorkerDied, match="spoke unasked"):
        await worker.load(b"model", timeout=10)


async def test_a_worker_that_closes_its_socket_has_died(pair):
    worker, peer = pair
    load = asyncio.create_task(worker.load(b"model", timeout=10))
    await asyncio.to_thread(receive, peer)
    peer.close()
    with pytest.raises(WorkerDied, match="exited"):
        await load


async def test_a_silent_worker_times_out(pair):
    worker, _ = pair
    with pytest.raises(WorkerDied, match="timed out"):
        await worker.load(b"model", timeout=0.2)
