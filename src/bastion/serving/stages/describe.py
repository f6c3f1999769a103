"""Resolve a model for the metadata and readiness routes."""

from __future__ import annotations

from bastion.serving.cache import ModelCache
from bastion.serving.call import Call


class Describe:
    """Looks up the model version the call names."""

    def __init__(self, *, models: ModelCache) -> None:
        self._models = models

    async def __call__(self, call: Call) -> None:
        """Set ``call.model``.

        Raises:
            NotFound: the model or version is not registered.
        """
        target = call.target
        call.model = await self._models.get(target.model, target.version)
