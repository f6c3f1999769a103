"""Resolve a model for the metadata and readiness routes."""

from __future__ import annotations

from anyio import to_thread

from bastion.registry import ModelRegistry
from bastion.serving.call import Call


class Describe:
    """Looks up the model version the call names."""

    def __init__(self, *, registry: ModelRegistry) -> None:
        self._registry = registry

    async def __call__(self, call: Call) -> None:
        """Set ``call.model``.

        Raises:
            NotFound: the model or version is not registered.
        """
        target = call.target
        call.model = await to_thread.run_sync(self._registry.get, target.model, target.version)
