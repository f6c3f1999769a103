"""The upstream runner: validated tensors forwarded to another V2 server over mutual TLS."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from anyio import to_thread

from bastion.errors import BackendError
from bastion.registry import ModelRegistry, ModelVersion, tensor_from_json, tensor_to_json
from bastion.sandbox import Tensors

_TIMEOUT = 10.0


class UpstreamRunner:
    """One HTTP/1.1 connection pool per upstream version, each with its client certificate."""

    def __init__(self, *, registry: ModelRegistry, timeout: float = _TIMEOUT) -> None:
        self._registry = registry
        self._timeout = timeout
        self._clients: dict[tuple[str, str], tuple[str, httpx.AsyncClient]] = {}

    async def run(self, model: ModelVersion, inputs: Tensors, outputs: Sequence[str]) -> Tensors:
        """Send the tensors as a V2 JSON request; return the named outputs.

        Raises:
            BackendError: the upstream failed, timed out, or answered outside the protocol.
        """
        url, client = await self._client(model)
        body = {
            "inputs": [tensor_to_json(name, array) for name, array in inputs.items()],
            "outputs": [{"name": name} for name in outputs],
        }
        try:
            response = await client.post(url, json=body)
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
        """Nothing to start: connections open on first use."""

    def is_ready(self) -> bool:
        """Upstreams report their own health; the gateway does not poll them."""
        return True

    def is_model_ready(self, model: ModelVersion) -> bool:
        """As ``is_ready``: the upstream's own health is not polled."""
        return True

    def close(self) -> None:
        """Forget the connection pools (their sockets close with the process)."""
        self._clients.clear()

    async def _client(self, model: ModelVersion) -> tuple[str, httpx.AsyncClient]:
        key = (model.name, model.version)
        if key not in self._clients:
            endpoint = await to_thread.run_sync(self._registry.load_upstream, model)
            client = httpx.AsyncClient(verify=endpoint.ssl_context(), timeout=self._timeout)
            self._clients[key] = (endpoint.infer_url, client)
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
