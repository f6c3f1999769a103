"""A Python client for the gateway: gets and caches a token, calls models.

Example (needs a running ``bastion serve``)::

    from bastion.client import Client

    with Client("https://127.0.0.1:8443", CLIENT_ID, SECRET, ca=".bastion/tls/ca.pem") as c:
        labels = c.infer("digits", {"pixels": images})["label"]
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from numpy.typing import NDArray
from pydantic import SecretStr

from bastion.errors import (
    AuthError,
    BackendError,
    BastionError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RateLimited,
)
from bastion.registry import tensor_from_json, tensor_to_json
from bastion.types import Clock

_REFRESH_MARGIN_SECONDS = 30
_ERRORS: dict[int, type[BastionError]] = {
    400: InvalidInput,
    401: AuthError,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
}


class Client:
    """Calls a Bastion gateway with OAuth 2.0 client credentials."""

    def __init__(
        self,
        url: str,
        client_id: str,
        client_secret: str | SecretStr,
        *,
        ca: str | Path | None = None,
        timeout: float = 30.0,
        clock: Clock = time.time,
    ) -> None:
        self._url = url.rstrip("/")
        self._client_id = client_id
        self._secret = SecretStr(client_secret) if isinstance(client_secret, str) else client_secret
        verify = ssl.create_default_context(cafile=ca) if ca else True
        self._http = httpx.Client(verify=verify, timeout=timeout)
        self._clock = clock
        self._token: SecretStr | None = None
        self._expires = 0.0

    def token(self) -> str:
        """A valid access token, fetched again shortly before the cached one expires.

        Raises:
            AuthError: the client id or secret is wrong.
        """
        if self._token is None or self._clock() > self._expires - _REFRESH_MARGIN_SECONDS:
            body = self._send(
                "POST",
                "/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(self._client_id, self._secret.get_secret_value()),
            )
            self._token = SecretStr(body["access_token"])
            self._expires = self._clock() + int(body["expires_in"])
        return self._token.get_secret_value()

    def infer(
        self,
        model: str,
        inputs: Mapping[str, NDArray[Any]],
        *,
        version: str | None = None,
        outputs: tuple[str, ...] | None = None,
    ) -> dict[str, NDArray[Any]]:
        """Run ``model`` on ``inputs`` and return its outputs as arrays.

        Raises:
            BastionError: the gateway refused the call; the subclass says why.
        """
        request: dict[str, Any] = {
            "inputs": [tensor_to_json(name, array) for name, array in inputs.items()]
        }
        if outputs is not None:
            request["outputs"] = [{"name": name} for name in outputs]
        body = self._send("POST", f"{_model_path(model, version)}/infer", json=request)
        return {out["name"]: tensor_from_json(out) for out in body["outputs"]}

    def model_metadata(self, model: str, *, version: str | None = None) -> dict[str, Any]:
        """The V2 metadata of a model: versions, inputs and outputs."""
        return self._send("GET", _model_path(model, version))

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        if path != "/oauth2/token":
            kwargs["headers"] = {"Authorization": f"Bearer {self.token()}"}
        try:
            response = self._http.request(method, self._url + path, **kwargs)
        except httpx.TransportError as exc:
            raise BackendError(f"Cannot reach {self._url}: {type(exc).__name__}.") from None
        if response.is_success:
            body: dict[str, Any] = response.json()
            return body
        try:
            error = response.json()
            message = str(error.get("error_description") or error["error"])
        except (ValueError, KeyError, AttributeError):
            message = f"HTTP {response.status_code}"
        if response.status_code == 429:  # noqa: PLR2004
            raise RateLimited(message, retry_after=float(response.headers.get("Retry-After", 1)))
        raise _ERRORS.get(response.status_code, BackendError)(message)


def _model_path(model: str, version: str | None) -> str:
    return f"/v2/models/{model}" + (f"/versions/{version}" if version else "")
