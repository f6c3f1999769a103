"""Runs registered ONNX models with onnxruntime; decrypted models live in memory only."""

from __future__ import annotations

from collections.abc import Sequence
from threading import Lock
from typing import Any

import onnxruntime as ort
from numpy.typing import NDArray

from bastion.errors import BackendError
from bastion.registry import ModelRegistry, ModelVersion

Tensors = dict[str, NDArray[Any]]


class OnnxRunner:
    """Keeps one inference session per model version and runs it."""

    def __init__(self, *, registry: ModelRegistry) -> None:
        self._registry = registry
        self._sessions: dict[tuple[str, str], ort.InferenceSession] = {}
        self._lock = Lock()

    def run(self, model: ModelVersion, inputs: Tensors, outputs: Sequence[str]) -> Tensors:
        """Run ``model`` on ``inputs`` and return the named ``outputs``.

        Raises:
            BackendError: onnxruntime failed on inputs that passed validation.
        """
        session = self._session(model)
        try:
            results = session.run(list(outputs), inputs)
        except Exception:  # onnxruntime raises untyped errors that may echo tensor values
            raise BackendError("The model failed to run.", detail=f"{model.ref}") from None
        return dict(zip(outputs, results, strict=True))

    def _session(self, model: ModelVersion) -> ort.InferenceSession:
        key = (model.name, model.version)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                artifact = self._registry.load_artifact(model)
                options = ort.SessionOptions()
                options.log_severity_level = 3
                session = ort.InferenceSession(
                    artifact, sess_options=options, providers=["CPUExecutionProvider"]
                )
                self._sessions[key] = session
            return session
