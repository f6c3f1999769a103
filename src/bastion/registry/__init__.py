"""The model registry: signatures, input and output policies, claims, encrypted artifacts.

>>> from bastion.registry import OutputPolicy
>>> OutputPolicy(top_k=3).to_json()
{'top_k': 3, 'round_digits': None, 'outputs': None}
"""

from bastion.registry.claims import Budget, RobustnessClaim
from bastion.registry.input_policy import InputPolicy
from bastion.registry.output_policy import OutputPolicy
from bastion.registry.signature import (
    NUMPY_TYPES,
    V2_TYPES,
    ModelSignature,
    TensorSpec,
    tensor_from_json,
    tensor_to_json,
)
from bastion.registry.store import ModelRegistry, ModelVersion
from bastion.registry.upstream import UPSTREAM_FORMAT, UpstreamEndpoint
from bastion.sandbox.models import LOCAL_FORMATS, ONNX_FORMAT, PICKLE_FORMAT, SKOPS_FORMAT

__all__ = [
    "LOCAL_FORMATS",
    "NUMPY_TYPES",
    "ONNX_FORMAT",
    "PICKLE_FORMAT",
    "SKOPS_FORMAT",
    "UPSTREAM_FORMAT",
    "V2_TYPES",
    "Budget",
    "InputPolicy",
    "ModelRegistry",
    "ModelSignature",
    "ModelVersion",
    "OutputPolicy",
    "RobustnessClaim",
    "TensorSpec",
    "UpstreamEndpoint",
    "tensor_from_json",
    "tensor_to_json",
]
