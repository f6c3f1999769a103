"""The model registry: signatures, output policies and encrypted artifacts.

>>> from bastion.registry import OutputPolicy
>>> OutputPolicy(top_k=3).to_json()
{'top_k': 3, 'round_digits': None, 'outputs': None}
"""

from bastion.registry.output_policy import OutputPolicy
from bastion.registry.signature import NUMPY_TYPES, V2_TYPES, ModelSignature, TensorSpec
from bastion.registry.store import ModelRegistry, ModelVersion

__all__ = [
    "NUMPY_TYPES",
    "V2_TYPES",
    "ModelRegistry",
    "ModelSignature",
    "ModelVersion",
    "OutputPolicy",
    "TensorSpec",
]
