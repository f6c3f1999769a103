"""Where models run: jailed worker pools, upstream V2 servers, or (when asked) in the gateway."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from threading import Lock
from typing import Protocol

from anyio import to_thread

from bastion.errors import BackendError
from bastion.registry import (
    LOCAL_FORMATS,
    UPSTREAM_FORMAT,
    ModelRegistry,
    ModelVersion,
)
from bastion.sandbox import SandboxRunner, Tensors
from bastion.sandbox.models import LoadedModel, load
from bastion.serving.upstream import UpstreamRunner
from bastion.workspace import Workspace


class Runner(Protocol):
    """Runs a registered model version on validated inputs."""

    async def run(self, model: ModelVersion, inputs: Tensors, outputs: Sequence[str]) -> Tensors:
        """The named ``outputs`` of ``model`` on ``inputs``; BackendError when it fails."""
        ...

    async def warm(self, models: Sequence[ModelVersion]) -> None:
        """Get ready to run ``models`` (start their workers) before the first request."""
        ...

    def is_ready(self) -> bool:
        """Whether every model started so far can serve."""
        ...

    def is_model_ready(self, model: ModelVersion) -> bool:
        """Whether ``model`` can serve now."""
        ...

    def close(self) -> None:
        """Stop whatever runs models."""
        ...


def build_runner(workspace: Workspace) -> Runner:
    """The runner of every model format: ONNX, scikit-learn estimators, upstream V2 servers.

    ONNX models and estimators (skops, pickle) run in the sandbox, or in process when
    ``unsafe_in_process_runner`` is set.

    Raises:
        ConfigError: bubblewrap is missing or cannot make its namespaces here.
    """
    upstream = UpstreamRunner(
        registry=workspace.registry, timeout=workspace.settings.sandbox_timeout_seconds
    )
    local = _local_runner(workspace)
    runners: dict[str, Runner] = dict.fromkeys(LOCAL_FORMATS, local)
    runners[UPSTREAM_FORMAT] = upstream
    return RunnerByFormat(runners)


class RunnerByFormat:
    """Sends each model version to the runner of its format."""

    def __init__(self, runners: Mapping[str, Runner]) -> None:
        self._runners = dict(runners)
        # One runner may serve several formats (the sandbox runs ONNX and estimators alike).
        self._distinct = list({id(runner): runner for runner in runners.values()}.values())

    async def run(self, model: ModelVersion, inputs: Tensors, outputs: Sequence[str]) -> Tensors:
        """Run ``model`` with the runner of its format."""
        return await self._runners[model.format].run(model, inputs, outputs)

    async def warm(self, models: Sequence[ModelVersion]) -> None:
        """Warm each runner with the models of its formats."""
        for runner in self._distinct:
            await runner.warm([model for model in models if self._runners[model.format] is runner])

    def is_ready(self) -> bool:
        """Whether every runner is ready."""
        return all(runner.is_ready() for runner in self._distinct)

    def is_model_ready(self, model: ModelVersion) -> bool:
        """Whether the runner of its format can serve ``model`` now."""
        return self._runners[model.format].is_model_ready(model)

    def close(self) -> None:
        """Close every runner."""
        for runner in self._distinct:
            runner.close()


def _local_runner(workspace: Workspace) -> Runner:
    settings = workspace.settings
    if settings.unsafe_in_process_runner:
        return UnsafeInProcessRunner(registry=workspace.registry)
    jail = workspace.jail()
    jail.check()
    return SandboxRunner(
        jail=jail,
        load_artifact=workspace.registry.load_artifact,
        workers=settings.sandbox_workers,
        max_workers=settings.sandbox_max_workers,
        pool_sizes=settings.sandbox_pool_sizes,
    )


class UnsafeInProcessRunner:
    """Runs models inside the gateway process: no isolation, for development only."""

    def __init__(self, *, registry: ModelRegistry) -> None:
        self._registry = registry
        self._sessions: dict[tuple[str, str], LoadedModel] = {}
        self._lock = Lock()

    async def run(self, model: ModelVersion, inputs: Tensors, outputs: Sequence[str]) -> Tensors:
        """Run ``model`` in a thread of the gateway.

        Raises:
            BackendError: onnxruntime failed on inputs that passed validation.
        """
        return await to_thread.run_sync(self._run, model, inputs, outputs)

    async def warm(self, models: Sequence[ModelVersion]) -> None:
        """Nothing to start: sessions load on first use."""

    def is_ready(self) -> bool:
        """Always: there is nothing to start."""
        return True

    def is_model_ready(self, model: ModelVersion) -> bool:
        """Always: sessions load on first use."""
        return True

    def close(self) -> None:
        """Forget the loaded sessions."""
        self._sessions.clear()

    def _run(self, model: ModelVersion, inputs: Tensors, outputs: Sequence[str]) -> Tensors:
        session = self._session(model)
        try:
            results = session.run(outputs, inputs)
        except Exception:  # the runtimes raise untyped errors that may echo tensor values
            raise BackendError("The model failed to run.", detail=f"{model.ref}") from None
        return dict(zip(outputs, results, strict=True))

    def _session(self, model: ModelVersion) -> LoadedModel:
        key = (model.name, model.version)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                session = load(self._registry.load_artifact(model))
                self._sessions[key] = session
            return session
