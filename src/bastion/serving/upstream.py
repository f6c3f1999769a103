"""The upstream runner: validated tensors forwarded to another V2 server over mutual TLS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import httpx
from anyio import to_thread

from bastion.errors import BackendError, BastionError
from bastion.registry import (
    ModelRegistry,
    ModelVersion,
    UpstreamEndpoint,
    tensor_from_json,
    tensor_to_json,
)
from bastion.sandbox import Tensors

_TIMEOUT = 10.0
HEALTH_SECONDS = 5.0  # how old an upstream's readiness may be before it is asked again
_HEALTH_TIMEOUT = 2.0


class UpstreamRunner:
    """One HTTP/1.1 connection pool per upstream version, each with its client certificate.

    Readiness: each upstream version's own V2 ready route is asked at startup and then, in
    the background, whenever its answer is older than ``HEALTH_SECONDS`` and someone asks
    (``/v2/health/ready``, the model's ready route). An upstream that does not answer 200
    makes both 503; its calls are still forwarded (and fail with 503 if it is down).
    """

    def __init__(self, *, registry: ModelRegistry, timeout: float = _TIMEOUT) -> None:
        self._registry = registry
        self._timeout = timeout
        self._clients: dict[tuple[str, str], tuple[UpstreamEndpoint, httpx.AsyncClient]] = {}
        self._health: dict[tuple[str, str], tuple[bool, float]] = {}  # ready, monotonic time
        self._polling: dict[tuple[str, str], asyncio.Task[bool]] = {}  # asks under way
        self._models: dict[tuple[str, str], ModelVersion] = {}
        self._warming = False

    async def run(self, model: ModelVersion, inputs: Tensors, outputs: Sequence[str]) -> Tensors:
        """Send the tensors as a V2 JSON request; return the named outputs.

        Raises:
            BackendError: the upstream failed, timed out, or answered outside the protocol.
        """
        endpoint, client = await self._client(model)
        body = {
            "inputs": [tensor_to_json(name, array) for name, array in inputs.items()],
            "outputs": [{"name": name} for name in outputs],
        }
        try:
            response = await client.post(endpoint.infer_url, json=body)
        except httpx.HTTPError as exc:
            raise BackendError(
                "The upstream model server did not answer.", detail=type(exc).__name__
            ) from None
        if response.status_code != 200:  # noqa: PLR2004
            raise BackendError(
                "The upstream model server failed.", detail=f"upstream {response.status_code}"
            )
        return _outputs(response, outputs)

    async def warm(self, models: Sequence[ModelVersion]) -> None:
        """Ask each upstream whether its model is ready (connections stay open)."""
        self._warming = True
        try:
            await asyncio.gather(*(self.poll(model) for model in models))
        finally:
            self._warming = False

    def is_ready(self) -> bool:
        """Whether every upstream asked so far answered ready (refreshed in the background)."""
        return not self._warming and all(self._ready(key) for key in list(self._health))

    def is_model_ready(self, model: ModelVersion) -> bool:
        """Whether the upstream answered ready for ``model`` (asked in the background)."""
        key = (model.name, model.version)
        if key not in self._health:
            self._poll_later(model)
            return True  # not asked yet: its first call will tell
        return self._ready(key)

    async def poll(self, model: ModelVersion) -> bool:
        """Ask the upstream now whether ``model`` is ready, and remember the answer."""
        try:
            endpoint, client = await self._client(model)
            response = await client.get(endpoint.ready_url, timeout=_HEALTH_TIMEOUT)
            ready = response.status_code == 200  # noqa: PLR2004
        except (httpx.HTTPError, BastionError):
            ready = False
        self._health[(model.name, model.version)] = (ready, time.monotonic())
        return ready

    def close(self) -> None:
        """Forget the connection pools (their sockets close with the process)."""
        for task in self._polling.values():
            task.cancel()
        self._clients.clear()

    def _ready(self, key: tuple[str, str]) -> bool:
        ready, checked = self._health[key]
        if time.monotonic() - checked >= HEALTH_SECONDS:
            self._poll_later(self._models[key])
        return ready

    def _poll_later(self, model: ModelVersion) -> None:
        key = (model.name, model.version)
        self._models[key] = model
        if key in self._polling:
            return  # already being asked
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # asked outside the gateway's event loop: nothing to schedule on
        self._polling[key] = loop.create_task(self.poll(model))
        self._polling[key].add_done_callback(lambda _: self._polling.pop(key, None))

    async def _client(self, model: ModelVersion) -> tuple[UpstreamEndpoint, httpx.AsyncClient]:
        key = (model.name, model.version)
        self._models[key] = model
        if key not in self._clients:
            endpoint = await to_thread.run_sync(self._registry.load_upstream, model)
            client = httpx.AsyncClient(verify=endpoint.ssl_context(), timeout=self._timeout)
            self._clients[key] = (endpoint, client)
        return self._clients[key]


def _outputs(response: httpx.Response, wanted: Sequence[str]) -> Tensors:
    """The requested outputs of a V2 JSON response, checked like any untrusted input."""
    try:
        answered: dict[str, Any] = {o["name"]: o for o in response.json()["outputs"]}
        tensors = {name: tensor_from_json(answered[name]) for name in wanted}
    except (ValueError, KeyError, TypeError):
        raise BackendError(
            "The upstream model server answered outside the V2 protocol.", detail="bad response"
        ) from None
    return tensors
