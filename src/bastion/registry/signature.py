"""Model input/output signatures in the vocabulary of the V2 inference protocol."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from bastion.errors import InvalidInput

if TYPE_CHECKING:
    import onnx

# ONNX tensor element types (TensorProto.DataType, fixed by onnx.proto) and the V2 protocol's
# names and numpy types for them. Numbers, not onnx.TensorProto names: importing onnx costs
# a third of a second, which every CLI command and gateway start would pay.
_ONNX_TO_V2: dict[int, str] = {
    9: "BOOL",
    2: "UINT8",
    4: "UINT16",
    12: "UINT32",
    13: "UINT64",
    3: "INT8",
    5: "INT16",
    6: "INT32",
    7: "INT64",
    10: "FP16",
    1: "FP32",
    11: "FP64",
}
NUMPY_TYPES: dict[str, type[np.generic]] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
V2_TYPES = {np.dtype(t): name for name, t in NUMPY_TYPES.items()}


def tensor_to_json(name: str, array: NDArray[Any]) -> dict[str, Any]:
    """A tensor as V2 JSON: name, datatype, shape and the values flattened in row order."""
    return {
        "name": name,
        "datatype": V2_TYPES[array.dtype],
        "shape": list(array.shape),
        "data": array.ravel().tolist(),
    }


def tensor_from_json(value: Mapping[str, Any]) -> NDArray[Any]:
    """Inverse of :func:`tensor_to_json` (KeyError, TypeError or ValueError when malformed)."""
    array: NDArray[Any] = np.asarray(value["data"], dtype=NUMPY_TYPES[value["datatype"]])
    return array.reshape([int(d) for d in value["shape"]])


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor: its V2 datatype and shape (-1 for a dimension of any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        """The V2 metadata form."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> TensorSpec:
        """Inverse of :meth:`to_json`."""
        return cls(value["name"], value["datatype"], tuple(value["shape"]))


@dataclass(frozen=True)
class ModelSignature:
    """The tensors a model takes and returns."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @classmethod
    def from_onnx(cls, model: onnx.ModelProto) -> ModelSignature:
        """Read the signature from an ONNX graph.

        Raises:
            InvalidInput: an input or output is not a plain tensor of a supported type.
        """
        initializers = {init.name for init in model.graph.initializer}
        inputs = [v for v in model.graph.input if v.name not in initializers]
        return cls(
            inputs=tuple(_spec(value) for value in inputs),
            outputs=tuple(_spec(value) for value in model.graph.output),
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly form, as stored in the registry."""
        return {
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ModelSignature:
        """Inverse of :meth:`to_json`."""
        return cls(
            inputs=tuple(TensorSpec.from_json(t) for t in value["inputs"]),
            outputs=tuple(TensorSpec.from_json(t) for t in value["outputs"]),
        )


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    if value.type.WhichOneof("value") != "tensor_type":
        raise InvalidInput(
            f"Model tensor {value.name!r} is not a plain tensor (a ZipMap or sequence?). "
            "Convert scikit-learn models with options={'zipmap': False}."
        )
    tensor = value.type.tensor_type
    datatype = _ONNX_TO_V2.get(tensor.elem_type)
    if datatype is None:
        raise InvalidInput(f"Model tensor {value.name!r} has an unsupported element type.")
    shape = tuple(dim.dim_value if dim.HasField("dim_value") else -1 for dim in tensor.shape.dim)
    return TensorSpec(value.name, datatype, shape)
