"""Open Inference Protocol (V2) request and response bodies (JSON; binary tensors in binary.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from bastion.registry import tensor_to_json

_NAME = r"^[A-Za-z0-9_.:/-]{1,128}$"
MAX_DIMENSIONS = 8
MAX_DIMENSION = 2**31 - 1
# A dimension is a JSON integer: not "1", not 1.0, not true, never negative, and never 0:
# an empty tensor has nothing to predict, and every later stage (models, sanitizers,
# monitors) may assume at least one value, so it is refused here (fail closed).
Dimension = Annotated[int, Field(ge=1, le=MAX_DIMENSION)]


class _Frozen(BaseModel):
    # Strict: no value is coerced from another JSON type (a string, a float, a boolean).
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True, strict=True)


class RequestInput(_Frozen):
    """One input tensor of an inference request."""

    name: str = Field(pattern=_NAME)
    shape: tuple[Dimension, ...] = Field(max_length=MAX_DIMENSIONS)
    datatype: str
    data: list[Any] | None = None  # absent when the tensor comes as binary data
    parameters: dict[str, Any] | None = None


class RequestOutput(_Frozen):
    """An output the client asks for."""

    name: str = Field(pattern=_NAME)
    parameters: dict[str, Any] | None = None


class InferenceRequest(_Frozen):
    """The body of ``POST /v2/models/{name}/infer``."""

    id: str | None = Field(None, max_length=128)
    # KServe's clients repeat the model in the body; when given, it must be the URL's.
    model_name: str | None = Field(None, max_length=128)
    model_version: str | None = Field(None, max_length=64)
    parameters: dict[str, Any] | None = None
    inputs: tuple[RequestInput, ...] = Field(min_length=1, max_length=64)
    outputs: tuple[RequestOutput, ...] | None = Field(None, max_length=64)


def response_body(
    *, model: str, version: str, request_id: str | None, outputs: Mapping[str, NDArray[Any]]
) -> dict[str, Any]:
    """The V2 inference response for ``outputs``."""
    body: dict[str, Any] = {
        "model_name": model,
        "model_version": version,
        "outputs": [tensor_to_json(name, array) for name, array in outputs.items()],
    }
    if request_id is not None:
        body["id"] = request_id
    return body


def as_array(values: list[Any], dtype: type[np.generic]) -> NDArray[Any]:
    """Flatten nested JSON data into a one-dimensional array of ``dtype``.

    Raises:
        ValueError: the values are ragged, not numbers of a kind ``dtype`` can hold, or
            out of its range.
    """
    try:
        array = np.asarray(values)
    except ValueError:
        raise ValueError("data must be a flat or evenly nested list") from None
    target = np.dtype(dtype)
    kind = array.dtype.kind
    if target.kind == "b":
        if kind != "b" and array.size:
            raise ValueError("BOOL tensors hold true or false")
    elif target.kind in "iu":
        if kind not in "iu" and array.size:
            raise ValueError("integer tensors hold whole numbers within range")
        info = np.iinfo(target)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise ValueError("a value is out of range for the datatype")
    elif kind not in "iuf" and array.size:
        raise ValueError("floating-point tensors hold numbers")
    elif (
        array.size
        and np.abs(array[np.isfinite(array)], dtype=np.float64).max(initial=0.0)
        > np.finfo(target).max
    ):
        raise ValueError("a value is out of range for the datatype")
    return array.ravel().astype(target)
