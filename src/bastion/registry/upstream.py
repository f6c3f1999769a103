"""Models served by another V2 server (KServe, Triton, MLServer), reached over mutual TLS.

Bastion stays the front door: clients still call ``/v2/models/{name}/infer`` on the
gateway, which authenticates, authorizes, validates and audits as for any model, then
forwards the validated tensors to the upstream server. The endpoint — URL, the model's name
there, the CA that vouches for the upstream, and Bastion's own client certificate — is
stored encrypted in the registry like an artifact. Plain HTTP is refused.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bastion.errors import BackendError, InvalidInput
from bastion.registry.signature import NUMPY_TYPES, ModelSignature, TensorSpec

UPSTREAM_FORMAT = "v2-upstream"
_TIMEOUT = 10.0


@dataclass(frozen=True)
class UpstreamEndpoint:
    """Where an upstream model lives and how Bastion proves itself to it."""

    url: str  # https://host:port of the upstream V2 server
    model: str  # the model's name on the upstream server
    ca: Path  # the CA certificate that signed the upstream's server certificate
    certificate: Path  # Bastion's client certificate (PEM), trusted by the upstream
    key: Path  # its private key (PEM); stays on disk, readable by the gateway only
    version: str | None = None

    def __post_init__(self) -> None:
        if not self.url.startswith("https://"):
            raise InvalidInput("An upstream URL must be https:// (mutual TLS).")

    @property
    def infer_url(self) -> str:
        """The upstream's inference route for this model."""
        return f"{self._model_url}/infer"

    @property
    def ready_url(self) -> str:
        """The upstream's readiness route for this model (V2: 200 when ready)."""
        return f"{self._model_url}/ready"

    @property
    def _model_url(self) -> str:
        base = f"{self.url.rstrip('/')}/v2/models/{self.model}"
        return f"{base}/versions/{self.version}" if self.version else base

    def ssl_context(self) -> ssl.SSLContext:
        """TLS 1.2+ verifying the upstream against ``ca``, presenting the client certificate.

        Raises:
            InvalidInput: a certificate or key file cannot be read.
        """
        try:
            context = ssl.create_default_context(cafile=str(self.ca))
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(str(self.certificate), str(self.key))
        except (OSError, ssl.SSLError):
            raise InvalidInput(
                "The upstream's CA, client certificate or key cannot be read; check the paths."
            ) from None
        return context

    def to_json(self) -> bytes:
        """The stored form (encrypted by the registry's blob store)."""
        fields = {
            "url": self.url,
            "model": self.model,
            "version": self.version,
            "ca": str(self.ca),
            "certificate": str(self.certificate),
            "key": str(self.key),
        }
        return json.dumps(fields, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> UpstreamEndpoint:
        """Inverse of :meth:`to_json`."""
        fields = json.loads(data)
        return cls(
            url=fields["url"],
            model=fields["model"],
            version=fields["version"],
            ca=Path(fields["ca"]),
            certificate=Path(fields["certificate"]),
            key=Path(fields["key"]),
        )

    def read_signature(self) -> ModelSignature:
        """Ask the upstream for the model's metadata (inputs and outputs).

        Raises:
            BackendError: the upstream cannot be reached or refuses Bastion's certificate.
            InvalidInput: its answer is not V2 model metadata.
        """
        try:
            with httpx.Client(verify=self.ssl_context(), timeout=_TIMEOUT) as client:
                response = client.get(self._model_url)
        except httpx.HTTPError as exc:
            raise BackendError(
                "The upstream server cannot be reached over mutual TLS.",
                detail=type(exc).__name__,
            ) from None
        if response.status_code != 200:  # noqa: PLR2004
            raise BackendError(
                f"The upstream answered {response.status_code} for the model's metadata."
            )
        try:
            metadata: dict[str, Any] = response.json()
            signature = ModelSignature(
                inputs=tuple(_spec(spec) for spec in metadata["inputs"]),
                outputs=tuple(_spec(spec) for spec in metadata["outputs"]),
            )
        except (ValueError, KeyError, TypeError):
            raise InvalidInput("The upstream's model metadata is not V2 metadata.") from None
        if not signature.inputs or not signature.outputs:
            raise InvalidInput(
                "The upstream does not describe the model's inputs and outputs, so Bastion "
                "cannot validate requests; declare them on the upstream server (for MLServer, "
                "inputs and outputs in model-settings.json)."
            )
        return signature


def _spec(value: dict[str, Any]) -> TensorSpec:
    if value["datatype"] not in NUMPY_TYPES:
        raise ValueError("unsupported datatype")
    return TensorSpec(value["name"], value["datatype"], tuple(int(d) for d in value["shape"]))
