"""The V2 binary tensor extension: tensors as raw little-endian bytes after a JSON header.

A request that carries ``Inference-Header-Content-Length: N`` has N bytes of JSON first; each
input with ``parameters.binary_data_size`` takes that many bytes of what follows, in input
order, and the sizes must account for every byte. A response sends an output in binary when
the request asks for it (``outputs[].parameters.binary_data`` or the request parameter
``binary_data_output``), and says so with the same header.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bastion.errors import InvalidInput
from bastion.serving.protocol import InferenceRequest

HEADER = "Inference-Header-Content-Length"


def split_body(body: bytes, header_length: str) -> tuple[bytes, bytes]:
    """The JSON header and the binary part of a request body.

    Raises:
        InvalidInput: the header length is not a whole number within the body.
    """
    if not header_length.isdigit() or int(header_length) > len(body):
        raise InvalidInput(f"{HEADER} must be a whole number no larger than the body.")
    cut = int(header_length)
    return body[:cut], body[cut:]


def binary_inputs(request: InferenceRequest, raw: bytes) -> dict[str, bytes]:
    """Each binary input's bytes, cut from ``raw`` in input order.

    Raises:
        InvalidInput: a size is not a whole number, the sizes overrun the body or leave bytes over.
    """
    found, offset = {}, 0
    for tensor in request.inputs:
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is None:
            continue
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidInput(f"Input {tensor.name!r}: binary_data_size must be a whole number.")
        if offset + size > len(raw):
            raise InvalidInput(f"Input {tensor.name!r}: binary_data_size runs past the body.")
        found[tensor.name] = raw[offset : offset + size]
        offset += size
    if offset != len(raw):
        raise InvalidInput(f"{len(raw) - offset} bytes after the binary inputs belong to no input.")
    return found


def decode(raw: bytes, dtype: type[np.generic]) -> NDArray[Any]:
    """A flat array from little-endian bytes (BOOL bytes must be 0 or 1).

    Raises:
        ValueError: the byte count is not a whole number of elements, or a BOOL byte is not 0/1.
    """
    kind = np.dtype(dtype).newbyteorder("<")
    if len(raw) % kind.itemsize:
        raise ValueError(f"{len(raw)} bytes are not a whole number of {kind.itemsize}-byte values")
    if kind.kind == "b":
        values = np.frombuffer(raw, dtype=np.uint8)
        if (values > 1).any():
            raise ValueError("BOOL tensors hold bytes 0 or 1")
        return values.astype(bool)
    return np.frombuffer(raw, dtype=kind).astype(np.dtype(dtype))


def wants_binary(request: InferenceRequest | None, outputs: Iterable[str]) -> set[str]:
    """The names of the outputs the request wants as binary data."""
    if request is None:
        return set()
    if (request.parameters or {}).get("binary_data_output") is True:
        return set(outputs)
    asked = request.outputs or ()
    return {o.name for o in asked if (o.parameters or {}).get("binary_data") is True}


def encode_response(
    body: dict[str, Any], outputs: Mapping[str, NDArray[Any]], binary: set[str]
) -> tuple[bytes, int]:
    """The response bytes and its JSON header's length, with ``binary`` outputs as raw bytes."""
    chunks = []
    for entry in body["outputs"]:
        if entry["name"] in binary:
            data = np.ascontiguousarray(outputs[entry["name"]])
            raw = data.astype(data.dtype.newbyteorder("<")).tobytes()
            del entry["data"]
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
    header = json.dumps(body, separators=(",", ":")).encode()
    return header + b"".join(chunks), len(header)
