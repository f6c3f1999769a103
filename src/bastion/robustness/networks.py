"""The classifiers Bastion trains: small MLPs, saved as safetensors and exported to ONNX.

Weights go to safetensors (tensors only, nothing to execute on load), with the architecture
and domain in its string metadata. :func:`to_onnx` writes the same network as an ONNX graph
with ``label`` and ``probabilities`` outputs, ready for ``bastion model register``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from bastion.robustness.threat import Domain

_FORMAT = "bastion-mlp/1"


@dataclass(frozen=True)
class Architecture:
    """A fully connected ReLU network: input width, hidden widths, number of classes."""

    inputs: int
    hidden: tuple[int, ...]
    classes: int

    def build(self) -> nn.Sequential:
        """A freshly initialized network of this shape (seed torch first for repeatability)."""
        widths = (self.inputs, *self.hidden)
        layers: list[nn.Module] = []
        for a, b in pairwise(widths):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], self.classes))
        return nn.Sequential(*layers)


@dataclass(frozen=True)
class SavedModel:
    """A network loaded from disk with what it was saved with."""

    model: nn.Sequential
    architecture: Architecture
    domain: Domain
    notes: dict[str, str]


def save_model(
    path: Path,
    model: nn.Sequential,
    architecture: Architecture,
    *,
    domain: Domain,
    notes: dict[str, str],
) -> None:
    """Write the weights and metadata as safetensors."""
    from safetensors.torch import save_file  # noqa: PLC0415 - optional extra

    metadata = {
        "format": _FORMAT,
        "architecture": json.dumps(
            [architecture.inputs, list(architecture.hidden), architecture.classes]
        ),
        "domain": json.dumps([domain.low, domain.high]),
        "notes": json.dumps(notes),
    }
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata=metadata
    )


def load_model(path: Path) -> SavedModel:
    """Read a network written by :func:`save_model`.

    Raises:
        ValueError: the file is not a Bastion MLP, or its tensors do not fit its architecture.
    """
    from safetensors import SafetensorError, safe_open  # noqa: PLC0415
    from safetensors.torch import load_file  # noqa: PLC0415

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path.name} is not a readable safetensors file") from exc
    if metadata.get("format") != _FORMAT:
        raise ValueError(f"{path.name} is not a model saved by Bastion ({_FORMAT})")
    inputs, hidden, classes = json.loads(metadata["architecture"])
    architecture = Architecture(int(inputs), tuple(int(h) for h in hidden), int(classes))
    model = architecture.build()
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        raise ValueError(f"{path.name}: the tensors do not match the architecture") from exc
    low, high = json.loads(metadata["domain"])
    return SavedModel(model.eval(), architecture, Domain(low, high), json.loads(metadata["notes"]))


def to_onnx(model: nn.Sequential, *, input_name: str = "pixels") -> bytes:
    """The network as an ONNX graph: ``label`` (INT64) and ``probabilities`` (FP32) outputs."""
    nodes, weights, current = [], [], input_name
    linears = [layer for layer in model if isinstance(layer, nn.Linear)]
    for i, layer in enumerate(linears):
        w, b = f"w{i}", f"b{i}"
        weights += [
            numpy_helper.from_array(layer.weight.detach().numpy().astype(np.float32), w),
            numpy_helper.from_array(layer.bias.detach().numpy().astype(np.float32), b),
        ]
        out = f"z{i}"
        nodes.append(helper.make_node("Gemm", [current, w, b], [out], transB=1))
        if i < len(linears) - 1:
            nodes.append(helper.make_node("Relu", [out], [f"h{i}"]))
            out = f"h{i}"
        current = out
    nodes += [
        helper.make_node("Softmax", [current], ["probabilities"], axis=1),
        helper.make_node("ArgMax", [current], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "bastion-mlp",
        [
            helper.make_tensor_value_info(
                input_name, TensorProto.FLOAT, [None, linears[0].in_features]
            )
        ],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info(
                "probabilities", TensorProto.FLOAT, [None, linears[-1].out_features]
            ),
        ],
        weights,
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(onnx_model)
    serialized: bytes = onnx_model.SerializeToString()
    return serialized
