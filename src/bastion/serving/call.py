"""The state of one request as it moves through the pipeline."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from numpy.typing import NDArray

from bastion.errors import BastionError
from bastion.identity import ApiKey, ClientCertificate, Introspection, IssuedToken, Principal
from bastion.policy import Decision
from bastion.privacy.dp import Reply
from bastion.registry import ModelVersion
from bastion.serving.protocol import InferenceRequest

Tensors = dict[str, NDArray[Any]]


@dataclass(frozen=True)
class Target:
    """What the request is about: the audit action and the resource."""

    action: str  # a Cedar action (infer, describe, read_metrics, query_data) or token
    model: str = ""
    version: str | None = None
    dataset: str = ""

    @property
    def resource(self) -> str:
        """The model or dataset the request is about ("" for gateway-wide actions)."""
        return self.model or self.dataset


@dataclass(frozen=True)
class AdminResult:
    """What an admin operation did."""

    summary: str  # for the audit record: names and counts, never secrets
    body: Any  # the JSON response
    status: int = 200


@dataclass(frozen=True)
class AdminOperation:
    """A change or read an administrator asked for, run only once Cedar allowed it.

    ``run`` gets the request body (read only after authentication) and blocks (database,
    files), so it runs in a worker thread.
    """

    run: Callable[[bytes], AdminResult]


@dataclass
class Call:
    """One request. Each stage reads what earlier stages filled in and adds its part."""

    route: str
    target: Target
    client_ip: str
    authorization: str | None
    content_type: str
    # Reads the body within the size limit; stages call it only after authentication,
    # so an unauthenticated client cannot make the gateway read a large body.
    read_body: Callable[[], Awaitable[bytes]]
    binary_header: str | None = None  # Inference-Header-Content-Length, when tensors are binary
    certificate: ClientCertificate | None = None  # verified by TLS against the workspace CA
    purpose: str = ""  # the Bastion-Purpose header: what the caller says the call is for
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = field(default_factory=time.perf_counter)
    # Filled in by the stages, in pipeline order:
    principal: Principal | None = None
    auth_method: str = ""
    api_key: ApiKey | None = None  # set when the principal authenticated with an API key
    scopes: frozenset[str] | None = None  # the token's scope claim, when it has one
    decision: Decision | None = None
    model: ModelVersion | None = None
    request: InferenceRequest | None = None
    inputs: Tensors = field(default_factory=dict)
    input_sha256: str = ""
    input_bytes: int = 0
    outputs: Tensors = field(default_factory=dict)
    issued: IssuedToken | None = None
    introspection: Introspection | None = None
    reply: Reply | None = None  # a differentially private answer
    operation: AdminOperation | None = None  # what an admin route does, once authorized
    admin: AdminResult | None = None  # what it did
    error: BastionError | None = None

    @property
    def role(self) -> str:
        """The caller's role once authenticated ("" before)."""
        return self.principal.role if self.principal is not None else ""

    @property
    def status(self) -> int:
        """The HTTP status this call ends with."""
        return self.error.http_status if self.error is not None else 200
