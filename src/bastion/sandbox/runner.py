"""The sandboxed runner: a pool of jailed workers per model version."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from bastion.sandbox.frames import Tensors
from bastion.sandbox.jail import Jail
from bastion.sandbox.pool import WorkerPool

if TYPE_CHECKING:
    from bastion.registry import ModelVersion


class SandboxRunner:
    """Runs each model version in its own pool of bubblewrap workers.

    ``load_artifact`` decrypts and verifies a version's artifact (it is called again for
    every worker started, so a tampered artifact never reaches a new worker).
    ``pool_sizes`` overrides ``workers`` per model name.
    """

    def __init__(
        self,
        *,
        jail: Jail,
        load_artifact: Callable[[ModelVersion], bytes],
        workers: int,
        pool_sizes: Mapping[str, int] | None = None,
    ) -> None:
        self._jail = jail
        self._load = load_artifact
        self._workers = workers
        self._sizes = dict(pool_sizes or {})
        self._pools: dict[tuple[str, str], WorkerPool] = {}
        self._lock = asyncio.Lock()
        self._warming = False

    async def run(self, model: ModelVersion, inputs: Tensors, outputs: Sequence[str]) -> Tensors:
        """Run ``model`` on ``inputs`` in a sandboxed worker; return the named ``outputs``.

        Raises:
            BackendError: the model failed, overran its time or its worker died.
            IntegrityError: the artifact no longer matches its digest or signature.
        """
        pool = self._pools.get((model.name, model.version))
        if pool is None:
            pool = await self._pool(model)
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
                self._pools[key] = WorkerPool(
                    model,
                    jail=self._jail,
                    artifact=lambda: self._load(model),
                    size=self._sizes.get(model.name, self._workers),
                )
            return self._pools[key]
