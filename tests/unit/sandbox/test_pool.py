"""Worker pools on real jails: hostile models are stopped, and the pool serves on."""

import asyncio
import os
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bastion.errors import BackendError
from bastion.sandbox import Jail, SandboxLimits, WorkerPool
from tests.hostile_models import hoarder, spinner

pytestmark = pytest.mark.anyio
LIMITS = SandboxLimits(memory_mb=1024, cpu_seconds=5, timeout_seconds=1.0)


def n(value):
    return {"n": np.array([value], dtype=np.int64)}


@pytest.fixture
async def make_pool():
    """Pools closed on the event loop, as the gateway closes them at shutdown."""
    pools = []

    def make(artifact, *, size=1, limits=LIMITS):
        model = SimpleNamespace(name="m", version="1", ref="m@1")
        pools.append(
            WorkerPool(model, jail=Jail(limits=limits), artifact=lambda: artifact, size=size)
        )
        return pools[-1]

    yield make
    for pool in pools:
        pool.close()


async def test_a_spinning_model_is_killed_at_its_timeout_and_replaced(make_pool):
    pool = make_pool(spinner())
    assert (await pool.run(n(5), ["out"]))["out"].tolist() == [5]
    started = time.monotonic()
    with pytest.raises(BackendError) as caught:
        await pool.run(n(10**15), ["out"])
    assert time.monotonic() - started < 5
    assert "timed out" in caught.value.detail
    assert (await pool.run(n(7), ["out"]))["out"].tolist() == [7]
    assert pool.starts == 2


async def test_cpu_time_is_limited_per_request_even_without_the_timeout(make_pool):
    limits = SandboxLimits(memory_mb=1024, cpu_seconds=1, timeout_seconds=60)
    pool = make_pool(spinner(), limits=limits)
    started = time.monotonic()
    with pytest.raises(BackendError) as caught:
        await pool.run(n(10**15), ["out"])
    assert time.monotonic() - started < 30  # SIGXCPU, long before the 60 s timeout
    assert "exited" in caught.value.detail
    assert (await pool.run(n(3), ["out"]))["out"].tolist() == [3]


async def test_a_memory_bomb_fails_and_the_pool_serves_on(make_pool):
    pool = make_pool(hoarder())
    with pytest.raises(BackendError):
        await pool.run(n(2**40), ["out"])  # 4 TiB of floats
    assert (await pool.run(n(10), ["out"]))["out"].tolist() == [10.0]


async def test_a_worker_killed_while_idle_is_replaced_without_failing_a_request(make_pool):
    pool = make_pool(spinner())
    await pool.run(n(1), ["out"])
    for worker in pool._workers:
        os.killpg(worker._process.pid, signal.SIGKILL)
        worker._process.wait()
    assert (await pool.run(n(2), ["out"]))["out"].tolist() == [2]
    assert pool.starts == 2


async def test_a_pool_runs_requests_in_parallel_on_its_workers(make_pool):
    pool = make_pool(spinner(), size=2)
    await asyncio.gather(pool.run(n(1), ["out"]), pool.run(n(1), ["out"]))  # start both
    started = time.monotonic()
    results = await asyncio.gather(*(pool.run(n(i), ["out"]) for i in range(20)))
    assert [r["out"][0] for r in results] == list(range(20))
    assert time.monotonic() - started < 5
    assert pool.starts == 2


async def test_a_freed_worker_goes_to_the_longest_waiting_request_not_a_newcomer(make_pool):
    pool = make_pool(spinner())
    await pool.run(n(0), ["out"])  # started
    finished = []

    async def hog():  # asks again the moment it is answered, without yielding first
        for i in range(10):
            await pool.run(n(i), ["out"])
            finished.append("hog")

    async def waiter():
        await pool.run(n(0), ["out"])
        finished.append("waiter")

    await asyncio.gather(hog(), waiter())
    assert finished.index("waiter") <= 1  # served after the hog's first call, not its last


async def test_a_request_cancelled_while_waiting_for_a_worker_loses_no_worker(make_pool):
    pool = make_pool(spinner())
    await pool.run(n(0), ["out"])
    last = []  # the last waiter, which gives up just as it is handed the worker

    async def holder():  # holds the only worker while the others line up
        answer = await pool.run(n(3), ["out"])
        last[0].cancel()  # handed the worker by the line above, not yet resumed
        return answer

    held = asyncio.ensure_future(holder())
    await asyncio.sleep(0)
    for _ in range(3):  # these give up while still waiting
        waiting = asyncio.ensure_future(pool.run(n(1), ["out"]))
        await asyncio.sleep(0)
        waiting.cancel()
    last.append(asyncio.ensure_future(pool.run(n(2), ["out"])))
    assert (await held)["out"].tolist() == [3]
    with pytest.raises(asyncio.CancelledError):
        await last[0]
    assert (await asyncio.wait_for(pool.run(n(4), ["out"]), 5))["out"].tolist() == [4]
    assert pool.is_idle and pool.starts == 1


async def test_a_model_that_does_not_load_makes_the_pool_fail_and_say_so(make_pool):
    pool = make_pool(b"not an onnx model")
    with pytest.raises(BackendError):
        await pool.run(n(1), ["out"])
    assert pool.failing


async def test_warming_starts_every_worker_before_the_first_request(make_pool):
    pool = make_pool(spinner(), size=3)
    await pool.warm()
    assert pool.starts == 3
    await asyncio.gather(*(pool.run(n(i), ["out"]) for i in range(6)))
    assert pool.starts == 3  # no request had to start one


async def test_the_runner_bounds_its_workers_evicting_idle_pools_first():
    """At most max_workers processes: an idle pool makes room; busy ones are never killed."""
    from bastion.errors import BackendError
    from bastion.sandbox import SandboxRunner

    models = {v: SimpleNamespace(name="m", version=v, ref=f"m@{v}") for v in "abc"}
    limits = SandboxLimits(memory_mb=1024, cpu_seconds=5, timeout_seconds=3.0)
    runner = SandboxRunner(
        jail=Jail(limits=limits), load_artifact=lambda model: spinner(), workers=1, max_workers=2
    )
    try:
        await runner.run(models["a"], n(1), ["out"])
        await runner.run(models["b"], n(1), ["out"])
        await runner.run(models["c"], n(1), ["out"])  # evicts a, the least recently used
        assert [pool.model.version for pool in runner.pools()] == ["b", "c"]
        busy = asyncio.ensure_future(runner.run(models["b"], n(10**15), ["out"]))
        await asyncio.sleep(0.5)  # b is now busy spinning; c is idle
        await runner.run(models["a"], n(2), ["out"])  # evicts c, not the busy b
        assert sorted(pool.model.version for pool in runner.pools()) == ["a", "b"]
        other = asyncio.ensure_future(runner.run(models["a"], n(10**15), ["out"]))
        await asyncio.sleep(0.5)  # both pools busy: no room for c
        with pytest.raises(BackendError, match="as many model workers"):
            await runner.run(models["c"], n(1), ["out"])
        for spinning in (busy, other):
            with pytest.raises(BackendError):  # each ends at its timeout
                await spinning
    finally:
        runner.close()


async def test_a_version_whose_workers_fail_to_start_is_not_ready_the_others_are():
    """Per-model readiness: the broken version says not ready; a good or unstarted one is."""
    from bastion.sandbox import SandboxRunner

    good, broken, later = (SimpleNamespace(name="m", version=v, ref=f"m@{v}") for v in "gbl")
    artifacts = {"g": spinner(), "b": b"not an onnx model", "l": spinner()}
    runner = SandboxRunner(
        jail=Jail(limits=LIMITS),
        load_artifact=lambda model: artifacts[model.version],
        workers=1,
        max_workers=4,
    )
    try:
        await runner.warm([good, broken])
        assert runner.is_model_ready(good) and runner.is_model_ready(later)
        assert not runner.is_model_ready(broken) and not runner.is_ready()
    finally:
        runner.close()


def _jailed_processes():
    """The bubblewrap processes this test process started, and their children."""
    tasks = Path("/proc/self/task").iterdir()
    ours = [int(pid) for task in tasks for pid in (task / "children").read_text().split()]
    jails = [pid for pid in ours if b"bwrap" in _cmdline(pid)]
    return jails + [int(c) for pid in jails for c in _children(pid)]


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read()
    except OSError:
        return b""


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return children.read().split()
    except OSError:
        return []


async def test_closing_a_pool_ends_every_process_of_its_jails(make_pool):
    """No worker outlives its pool, not even one busy spinning: bubblewrap and worker end."""
    limits = SandboxLimits(memory_mb=1024, cpu_seconds=3600, timeout_seconds=3600)
    pool = make_pool(spinner(), size=2, limits=limits)
    await asyncio.gather(pool.run(n(1), ["out"]), pool.run(n(2), ["out"]))
    busy = asyncio.ensure_future(pool.run(n(10**15), ["out"]))  # spins until killed
    await asyncio.sleep(0.5)
    started = _jailed_processes()
    assert len(started) == 4  # two bubblewraps, each with its worker
    pool.close()
    deadline = time.monotonic() + 30
    while any(os.path.exists(f"/proc/{pid}") for pid in started):
        assert time.monotonic() < deadline, "a jailed process outlived its pool"
        await asyncio.sleep(0.05)
    with pytest.raises(BackendError):
        await busy


async def test_a_worker_retires_before_its_lifetime_cpu_budget_and_is_replaced(make_pool):
    """A worker whose hard CPU budget cannot cover another run exits idle; the pool restarts it."""
    limits = SandboxLimits(memory_mb=1024, cpu_seconds=5, lifetime_cpu_seconds=3)
    pool = make_pool(spinner(), limits=limits)
    assert (await pool.run(n(1), ["out"]))["out"].tolist() == [1]
    (worker,) = pool._workers
    assert await asyncio.to_thread(worker._process.wait, 60) == 0  # retired, not killed
    assert (await pool.run(n(2), ["out"]))["out"].tolist() == [2]
    assert pool.starts == 2
