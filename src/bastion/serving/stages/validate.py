"""Stage 4: read the body, check it against V2 and the model's signature, and sanitize it."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from bastion.errors import InvalidInput, UnsupportedMediaType
from bastion.registry import NUMPY_TYPES, ModelVersion, TensorSpec
from bastion.serving import binary
from bastion.serving.cache import ModelCache
from bastion.serving.call import Call, Tensors
from bastion.serving.protocol import InferenceRequest, RequestInput, as_array


class Validate:
    """Resolves the model and turns a V2 request into checked input arrays."""

    def __init__(self, *, models: ModelCache) -> None:
        self._models = models

    async def __call__(self, call: Call) -> None:
        """Set ``call.model``, ``call.request``, ``call.inputs`` and ``call.input_sha256``.

        Raises:
            NotFound: the model or version is not registered.
            InvalidInput: the body is malformed or does not fit the model.
            PayloadTooLarge: the body is over the size limit.
            UnsupportedMediaType: the Content-Type is not JSON (binary: octet-stream).
        """
        check_media_type(call.content_type, binary=call.binary_header is not None)
        target = call.target
        call.model = await self._models.get(target.model, target.version)
        body = await call.read_body()
        call.input_sha256 = hashlib.sha256(body).hexdigest()
        call.input_bytes = len(body)
        raw: dict[str, bytes] = {}
        if call.binary_header is not None:
            header, tail = binary.split_body(body, call.binary_header)
            call.request = parse_request(header)
            raw = binary.binary_inputs(call.request, tail)
        else:
            call.request = parse_request(body)
        named = (call.request.model_name, call.request.model_version)
        if named[0] not in (None, call.model.name) or named[1] not in (None, call.model.version):
            raise InvalidInput("The body's model_name or model_version is not the URL's model.")
        sanitizer = call.model.input_policy
        call.inputs = {
            name: sanitizer.apply(array)
            for name, array in check_inputs(call.request, call.model, raw).items()
        }
        check_requested_outputs(call.request, call.model, call.role)


def check_media_type(content_type: str, *, binary: bool) -> None:
    """Check the Content-Type of an inference request.

    JSON requests are ``application/json`` (UTF-8 if a charset is named); requests with the
    binary tensor extension are ``application/octet-stream``. A request without a
    Content-Type is taken as the protocol's own format: NVIDIA's tritonclient sends none,
    and a browser cannot send a bearer token cross-site without a CORS preflight anyway.

    Raises:
        UnsupportedMediaType: any other type, or a charset other than UTF-8.
    """
    check_content_type(content_type, _BINARY_TYPE if binary else _JSON_TYPE)


def check_content_type(content_type: str, wanted: str) -> None:
    """Check that a body's Content-Type is ``wanted`` (UTF-8 if a charset is named), or absent.

    Raises:
        UnsupportedMediaType: another type, or another charset.
    """
    if not content_type:
        return
    kind, *parameters = (part.strip().lower() for part in content_type.split(";"))
    charsets = {
        p.removeprefix("charset=").strip('"') for p in parameters if p.startswith("charset=")
    }
    if kind != wanted or not charsets <= {"utf-8"}:
        raise UnsupportedMediaType(f"Send the request body as {wanted}.")


_JSON_TYPE = "application/json"
_BINARY_TYPE = "application/octet-stream"


def parse_request(body: bytes) -> InferenceRequest:
    """Parse a V2 inference request.

    Raises:
        InvalidInput: the JSON is malformed or not a V2 request; the message says where.
    """
    try:
        return InferenceRequest.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        if first["type"] == "json_invalid":
            raise InvalidInput("The body is not valid JSON.") from None
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise InvalidInput(
            f"Invalid inference request at {where or 'body'}: {first['msg']}{more}."
        ) from None


def check_inputs(
    request: InferenceRequest, model: ModelVersion, raw: Mapping[str, bytes] | None = None
) -> Tensors:
    """Arrays for the model's inputs, each matching its declared datatype and shape.

    Raises:
        InvalidInput: an input is missing, unknown, repeated or does not fit.

    ``raw`` holds the bytes of inputs sent with the binary tensor extension.
    """
    raw = raw or {}
    given = {tensor.name: tensor for tensor in request.inputs}
    if len(given) != len(request.inputs):
        raise InvalidInput("An input is given more than once.")
    expected = {spec.name: spec for spec in model.signature.inputs}
    unknown = sorted(given.keys() - expected.keys())
    if unknown:
        raise InvalidInput(f"Unknown input {unknown[0]!r}; {model.ref} takes {sorted(expected)}.")
    missing = sorted(expected.keys() - given.keys())
    if missing:
        raise InvalidInput(f"Missing input {missing[0]!r} for {model.ref}.")
    return {
        name: _check_tensor(given[name], spec, raw.get(name)) for name, spec in expected.items()
    }


def check_requested_outputs(request: InferenceRequest, model: ModelVersion, role: str = "") -> None:
    """Check that every requested output exists and the output policy allows it to ``role``.

    Raises:
        InvalidInput: an output is unknown or withheld by the model's output policy.
    """
    available = allowed_outputs(model, role)
    for output in request.outputs or ():
        if output.name not in available:
            raise InvalidInput(
                f"Output {output.name!r} is not available; {model.ref} returns {list(available)}."
            )


def allowed_outputs(model: ModelVersion, role: str = "") -> tuple[str, ...]:
    """The outputs of ``model`` that its output policy lets callers of ``role`` see."""
    allowed = model.output_policy.for_role(role).outputs
    return tuple(
        spec.name for spec in model.signature.outputs if allowed is None or spec.name in allowed
    )


def _check_tensor(tensor: RequestInput, spec: TensorSpec, raw: bytes | None) -> NDArray[Any]:
    name = spec.name
    if tensor.datatype != spec.datatype:
        raise InvalidInput(
            f"Input {name!r} has datatype {tensor.datatype[:16]!r}; "
            f"the model expects {spec.datatype}."
        )
    shape = tensor.shape
    fits = len(shape) == len(spec.shape) and all(
        want in (-1, got) for got, want in zip(shape, spec.shape, strict=True)
    )
    if not fits or any(dim < 1 for dim in shape):  # no empty tensor (serving/protocol.py)
        raise InvalidInput(
            f"Input {name!r} has shape {list(shape)}; the model expects "
            f"{list(spec.shape)} (-1 means any size)."
        )
    if raw is None and tensor.data is None:
        raise InvalidInput(f"Input {name!r} has no data (nor binary_data_size).")
    try:
        if raw is not None:
            values = binary.decode(raw, NUMPY_TYPES[spec.datatype])
        else:
            values = as_array(tensor.data or [], NUMPY_TYPES[spec.datatype])
    except ValueError as exc:
        raise InvalidInput(f"Input {name!r}: {exc}.") from None
    if values.size != math.prod(shape):
        raise InvalidInput(
            f"Input {name!r} has {values.size} values; "
            f"shape {list(shape)} needs {math.prod(shape)}."
        )
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise InvalidInput(f"Input {name!r} contains NaN or infinite values.")
    return values.reshape(shape)
