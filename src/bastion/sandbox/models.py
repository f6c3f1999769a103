"""The models a worker runs: ONNX (onnxruntime) and scikit-learn estimators (skops, pickle).

The format is told by content, never by name: a skops file is a zip archive, a pickle starts
with its protocol opcode (or a compression header: joblib compresses), an ONNX model is a
protocol buffer. A worker loads its model here inside the jail (or the gateway does, with
``unsafe_in_process_runner``). Registration has already scanned a skops file or a pickle:
every type a skops schema names and every global a pickle imports is on the scanner's
allow-list, and the bytes are re-verified against their digest before each load. The load
checks again, on what the loader itself would construct: the types skops asks to trust, and
each import of a pickle (a restricted unpickler, ``registry/scan/loader.py``), go through the
same allow-list — so a file the scanner read differently from its loader gains nothing.

An estimator takes one tensor ``input`` (FP64, rows x ``n_features_in_``) and answers
``label`` (INT64; classifiers with integer classes) and ``probabilities`` (FP64, when it
has ``predict_proba``), or ``prediction`` (FP64; regressors). ONNX models carry their own
signature; for an estimator the loader reports it, as JSON, for the registry.

An ONNX model whose weights live in external data files travels as one :class:`OnnxBundle`:
the model and the files it names, which onnxruntime reads from memory. A worker never opens
a file for its model, so a location in the model can name nothing outside what was bundled.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

SKOPS_MAGIC = b"PK\x03\x04"  # a zip archive's local file header
# A pickle of protocol 2 or later (PROTO), or one compressed by joblib: gzip, bzip2, xz, zlib.
# No ONNX protocol buffer starts so: its first byte is a field tag, 0x08 (ir_version).
PICKLE_MAGICS = (b"\x80", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x78")
BUNDLE_MAGIC = b"BASTION-ONNX-BUNDLE\x00"  # no ONNX protocol buffer starts with b"BA"
ONNX_FORMAT = "onnx"  # an ONNX model, or an OnnxBundle of it and its external data
SKOPS_FORMAT = "skops"
PICKLE_FORMAT = "pickle"  # a scikit-learn estimator pickled, or saved with joblib
# The formats a worker runs, as the registry records them.
LOCAL_FORMATS = (ONNX_FORMAT, SKOPS_FORMAT, PICKLE_FORMAT)
INPUT = "input"
_COUNT = struct.Struct("<H")
_ENTRY = struct.Struct("<HQ")  # name length, data length


class LoadedModel(Protocol):
    """A model ready to run."""

    signature: bytes  # JSON of its inputs and outputs when the format does not carry them

    def run(self, names: Sequence[str], inputs: Mapping[str, NDArray[Any]]) -> list[NDArray[Any]]:
        """The named outputs on ``inputs``."""
        ...


def load(artifact: bytes) -> LoadedModel:
    """Load a model's bytes.

    Raises:
        ValueError: an estimator Bastion cannot serve (no integer classes, no features), or
            a skops file that would construct a type off the allow-list.
        Exception: whatever onnxruntime, skops or the unpickler raise for a file they
            cannot load (a pickle importing a name off the allow-list among them).
    """
    kind = format_of(artifact)
    if kind == SKOPS_FORMAT:
        return _Estimator(_from_skops(artifact))
    if kind == PICKLE_FORMAT:
        from bastion.registry.scan import load_pickle  # noqa: PLC0415 - only for pickles

        return _Estimator(load_pickle(artifact))
    if artifact.startswith(BUNDLE_MAGIC):
        bundle = OnnxBundle.unpack(artifact)
        return _Onnx(bundle.model, bundle.data)
    return _Onnx(artifact)


def format_of(artifact: bytes) -> str:
    """The format of a model's bytes, told by how they start: skops, pickle or else ONNX.

    A skops file is a zip archive; a pickle of protocol 2 or later starts with PROTO, or
    with a compression header when joblib compressed it.
    """
    if artifact[:4] == SKOPS_MAGIC:
        return SKOPS_FORMAT
    if artifact.startswith(PICKLE_MAGICS):
        return PICKLE_FORMAT
    return ONNX_FORMAT


def _from_skops(artifact: bytes) -> Any:
    """The object of a skops file, once every type skops would have to trust is allowed.

    Raises:
        ValueError: skops would construct a type off the scanner's allow-list.
    """
    import skops.io  # noqa: PLC0415 - scikit-learn is imported only for estimators

    from bastion.registry.scan import AllowList, Global  # noqa: PLC0415 - only for estimators
    from bastion.registry.scan.scanner import skops_may_construct  # noqa: PLC0415

    allow = AllowList()
    wanted = skops.io.get_untrusted_types(data=artifact)
    for name in wanted:
        module, _, attribute = name.rpartition(".")
        if not skops_may_construct(Global(module, attribute), allow):
            raise ValueError(f"{name} is not on the allow-list")
    return skops.io.loads(artifact, trusted=wanted)


@dataclass(frozen=True)
class OnnxBundle:
    """An ONNX model and its external data files, keyed by the location the model names.

    Packed as ``BUNDLE_MAGIC count:u16 (name_len:u16 data_len:u64 name data)* model``.
    """

    model: bytes
    data: Mapping[str, bytes]

    def pack(self) -> bytes:
        """The bundle as one artifact."""
        parts = [BUNDLE_MAGIC, _COUNT.pack(len(self.data))]
        for name, data in self.data.items():
            encoded = name.encode()
            parts += [_ENTRY.pack(len(encoded), len(data)), encoded, data]
        return b"".join([*parts, self.model])

    @classmethod
    def unpack(cls, artifact: bytes) -> OnnxBundle:
        """Inverse of :meth:`pack`.

        Raises:
            ValueError: the bytes are not a whole bundle.
        """
        view = memoryview(artifact)
        at = len(BUNDLE_MAGIC) + _COUNT.size
        if bytes(view[: len(BUNDLE_MAGIC)]) != BUNDLE_MAGIC or len(view) < at:
            raise ValueError("not an ONNX bundle")
        (count,) = _COUNT.unpack_from(view, len(BUNDLE_MAGIC))
        data: dict[str, bytes] = {}
        for _ in range(count):
            if len(view) < at + _ENTRY.size:
                raise ValueError("truncated ONNX bundle")
            name_length, data_length = _ENTRY.unpack_from(view, at)
            at += _ENTRY.size
            end = at + name_length + data_length
            if end > len(view):
                raise ValueError("truncated ONNX bundle")
            data[bytes(view[at : at + name_length]).decode()] = bytes(view[at + name_length : end])
            at = end
        return cls(model=bytes(view[at:]), data=data)


class _Onnx:
    signature = b""

    def __init__(self, artifact: bytes, data: Mapping[str, bytes] | None = None) -> None:
        import onnxruntime as ort  # noqa: PLC0415 - a worker imports only its own format

        ort.disable_telemetry_events()
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = 1  # one thread a worker: the pool is the parallelism
        options.inter_op_num_threads = 1
        if data:  # external data from memory; a location not given here fails the load
            buffers = [np.frombuffer(content, dtype=np.uint8) for content in data.values()]
            options.add_external_initializers_from_files_in_memory(
                list(data), buffers, [len(content) for content in data.values()]
            )
        self._session = ort.InferenceSession(
            artifact, sess_options=options, providers=["CPUExecutionProvider"]
        )

    def run(self, names: Sequence[str], inputs: Mapping[str, NDArray[Any]]) -> list[NDArray[Any]]:
        return list(self._session.run(list(names), dict(inputs)))


class _Estimator:
    """A fitted scikit-learn estimator: one FP64 input, labels and scores or predictions."""

    def __init__(self, estimator: Any) -> None:
        if not callable(getattr(estimator, "predict", None)):
            raise ValueError("the file holds no estimator with a predict method")
        self._estimator = estimator
        features = getattr(self._estimator, "n_features_in_", None)
        if not isinstance(features, int | np.integer) or features < 1:
            raise ValueError("the estimator is not fitted on a feature matrix")
        classes = getattr(self._estimator, "classes_", None)
        if classes is not None and np.asarray(classes).dtype.kind not in "iub":
            raise ValueError("only integer class labels can be served")
        outputs = (
            [_spec("label", "INT64", [-1])]
            + ([_spec("probabilities", "FP64", [-1, len(classes)])]
               if hasattr(self._estimator, "predict_proba") else [])
            if classes is not None
            else [_spec("prediction", "FP64", [-1])]
        )  # fmt: skip
        inputs = [_spec(INPUT, "FP64", [-1, int(features)])]
        self.signature = json.dumps({"inputs": inputs, "outputs": outputs}).encode()

    def run(self, names: Sequence[str], inputs: Mapping[str, NDArray[Any]]) -> list[NDArray[Any]]:
        return [self._answer(name, inputs[INPUT]) for name in names]

    def _answer(self, name: str, rows: NDArray[Any]) -> NDArray[Any]:
        if name == "probabilities":
            return np.asarray(self._estimator.predict_proba(rows), dtype=np.float64)
        predicted = np.asarray(self._estimator.predict(rows))
        return predicted.astype(np.int64 if name == "label" else np.float64)


def _spec(name: str, datatype: str, shape: list[int]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape}
