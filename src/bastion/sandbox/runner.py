"""The sandboxed runner: a pool of jailed workers per model version."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from bastion.errors import BackendError
from bastion.sandbox.frames import Tensors
from bastion.sandbox.jail import Jail
from bastion.sandbox.pool import WorkerPool

if TYPE_CHECKING:
    from bastion.registry import ModelVersion


class SandboxRunner:
    """Runs each model version in its own pool of bubblewrap workers.

    ``load_artifact`` decrypts and verifies a version's artifact (it is called again for
    every worker started, so a tampered artifact never reaches a new worker).
    ``pool_sizes`` overrides ``workers`` per model name. At most ``max_workers`` worker
    processes run at once: a version called for the first time evicts the least recently
    used idle pools to make room, or is refused (503) while every pool is busy — so calls
    to many versions cannot fill the host with processes.
    """

    def __init__(
        self,
        *,
        jail: Jail,
        load_artifact: Callable[[ModelVersion], bytes],
        workers: int,
        max_workers: int,
        pool_sizes: Mapping[str, int] | None = None,
    ) -> None:
        self._jail = jail
        self._load = load_artifact
        self._workers = workers
        self._max_workers = max_workers
        self._sizes = dict(pool_sizes or {})
        self._pools: OrderedDict[tuple[str, str], WorkerPool] = OrderedDict()  # LRU first
        self._lock = asyncio.Lock()
        self._warming = False

    async def run(self, model: ModelVersion, inputs: Tensors, outputs: Sequence[str]) -> Tensors:
        """Run ``model`` on ``inputs`` in a sandboxed worker; return the named ``outputs``.

        Raises:
            BackendError: the model failed, overran its time or its worker died.
            IntegrityError: the artifact no longer matches its digest or signature.
        """
        key = (model.name, model.version)
        pool = self._pools.get(key)
        if pool is None:
            pool = await self._pool(model)
        self._pools.move_to_end(key)
        return await pool.run(inputs, outputs)

    async def warm(self, models: Sequence[ModelVersion]) -> None:
        """Start the pools of ``models`` now (the gateway warms its default versions)."""
        self._warming = True
        try:
            pools = [await self._pool(model) for model in models]
            await asyncio.gather(*(pool.warm() for pool in pools))
        finally:
            self._warming = False

    def is_ready(self) -> bool:
        """False while warming up, or while a model's workers fail to start."""
        return not self._warming and not any(pool.failing for pool in self._pools.values())

    def is_model_ready(self, model: ModelVersion) -> bool:
        """False while warming up, or while this version's workers fail to start.

        A version not started yet is ready: its workers start on its first request.
        """
        pool = self._pools.get((model.name, model.version))
        return not self._warming and not (pool is not None and pool.failing)

    def pools(self) -> list[WorkerPool]:
        """The pools started so far."""
        return list(self._pools.values())

    def close(self) -> None:
        """Stop every worker."""
        for pool in self._pools.values():
            pool.close()

    async def _pool(self, model: ModelVersion) -> WorkerPool:
        key = (model.name, model.version)
        async with self._lock:
            if key not in self._pools:
                size = min(self._sizes.get(model.name, self._workers), self._max_workers)
                self._make_room(size, for_model=model)
                self._pools[key] = WorkerPool(
                    model, jail=self._jail, artifact=lambda: self._load(model), size=size
                )
            return self._pools[key]

    def _make_room(self, size: int, *, for_model: ModelVersion) -> None:
        """Close least recently used idle pools until ``size`` more workers fit.

        Raises:
            BackendError: every pool is busy, so none can make room.
        """
        used = sum(pool.size for pool in self._pools.values())
        for key in list(self._pools):
            if used + size <= self._max_workers:
                return
            pool = self._pools[key]
            if pool.is_idle:
                pool.close()
                del self._pools[key]
                used -= pool.size
        if used + size > self._max_workers:
            raise BackendError(
                "The gateway runs as many model workers as it may; try again shortly.",
                detail=f"sandbox_max_workers reached for {for_model.ref}",
            )
