import pytest

from bastion.errors import InvalidInput, UnsupportedMediaType
from bastion.policy import ModelLabels
from bastion.registry import InputPolicy, ModelSignature, ModelVersion, OutputPolicy, TensorSpec
from bastion.serving.stages.validate import (
    check_inputs,
    check_media_type,
    check_requested_outputs,
    parse_request,
)

MODEL = ModelVersion(
    name="m",
    version="1",
    format="onnx",
    sha256="0" * 64,
    signature=ModelSignature(
        inputs=(TensorSpec("x", "FP32", (-1, 2)), TensorSpec("n", "INT64", (1,))),
        outputs=(TensorSpec("label", "INT64", (-1,)), TensorSpec("scores", "FP32", (-1, 3))),
    ),
    output_policy=OutputPolicy(outputs=("label",)),
    created_at=0.0,
    input_policy=InputPolicy(),
    robustness=None,
    labels=ModelLabels(),
)


def request(x=None, n=None, **extra):
    x = {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]} | (x or {})
    n = {"name": "n", "shape": [1], "datatype": "INT64", "data": [5]} | (n or {})
    import json

    return json.dumps({"inputs": [x, n]} | extra).encode()


def test_valid_request_gives_arrays():
    """Flat or nested data becomes arrays of the declared shape and type."""
    inputs = check_inputs(parse_request(request(x={"data": [[1, 2], [3, 4]]})), MODEL)
    assert inputs["x"].shape == (2, 2) and inputs["x"].dtype.name == "float32"
    assert inputs["n"].tolist() == [5]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "not valid JSON"),
        (b"[]", "Invalid inference request"),
        (b'{"inputs": []}', "inputs"),
        (b'{"inputs": [{"name": "x"}]}', "inputs.0.shape"),
        (b'{"inputs": "x"}', "inputs"),
        (
            b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1], "z": 1}]}',
            "inputs.0.z",
        ),
    ],
)
def test_malformed_bodies(body, message):
    """Malformed bodies are refused with where the problem is."""
    with pytest.raises(InvalidInput, match=message):
        parse_request(body)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        ({"datatype": "FP64"}, "datatype 'FP64'; the model expects FP32"),
        ({"shape": [4]}, "shape"),
        ({"shape": [2, 3]}, "shape"),
        ({"shape": [-2, 2]}, "shape"),
        ({"shape": [3, 2]}, "has 4 values; shape \\[3, 2\\] needs 6"),
        ({"data": [1, 2, 3, "4"]}, "hold numbers"),
        ({"data": [1, 2, 3, None]}, "hold numbers"),
        ({"data": [1, 2, 3, float("nan")]}, "NaN or infinite"),
        ({"data": [1, 2, 3, float("inf")]}, "NaN or infinite"),
        ({"data": [1, 2, 3, 1e39]}, "out of range"),
        ({"data": [[1, 2], [3]]}, "evenly nested"),
    ],
)
def test_inputs_that_do_not_fit(x, message):
    """Wrong datatype, shape, count, or non-finite values are refused with a clear message."""
    with pytest.raises(InvalidInput, match=message):
        check_inputs(parse_request(request(x=x)), MODEL)


@pytest.mark.parametrize(
    ("n", "message"),
    [
        ({"data": [1.5]}, "whole numbers"),
        ({"data": [2**63]}, "out of range"),
        ({"data": [True]}, "whole numbers"),
        ({"name": "q"}, "Unknown input 'q'"),
    ],
)
def test_integer_inputs(n, message):
    """Integer tensors take whole numbers in range only."""
    with pytest.raises(InvalidInput, match=message):
        check_inputs(parse_request(request(n=n)), MODEL)


def test_missing_and_repeated_inputs():
    """Every input is needed exactly once."""
    import json

    one = {"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}
    with pytest.raises(InvalidInput, match="Missing input 'n'"):
        check_inputs(parse_request(json.dumps({"inputs": [one]}).encode()), MODEL)
    with pytest.raises(InvalidInput, match="more than once"):
        check_inputs(parse_request(json.dumps({"inputs": [one, one]}).encode()), MODEL)


def test_requested_outputs_respect_the_output_policy():
    """Outputs withheld by policy, or unknown, cannot be requested."""
    check_requested_outputs(parse_request(request(outputs=[{"name": "label"}])), MODEL)
    for name in ("scores", "nope"):
        with pytest.raises(InvalidInput, match="not available"):
            check_requested_outputs(parse_request(request(outputs=[{"name": name}])), MODEL)


@pytest.mark.parametrize(
    "shape",
    [
        ["2", 2],  # a string
        [2, "2"],
        [True, 2],  # a boolean
        [2, False],
        [2.0, 2],  # a float, even a whole one
        [2, 2e0],
        [-2, 2],  # negative
        [None, 2],
        [[2], 2],
        [2**31, 2],  # past the largest dimension
    ],
)
def test_shape_dimensions_are_strict_integers(shape):
    """A shape holds JSON integers from 1 up: no string, boolean, float or negative is coerced."""
    with pytest.raises(InvalidInput, match="shape"):
        parse_request(request(x={"shape": shape}))


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", 5), ("datatype", 1), ("data", "1,2,3,4"), ("parameters", [1])],
)
def test_tensor_fields_are_not_coerced(field, value):
    """Every field of a tensor has its JSON type; none is converted from another."""
    with pytest.raises(InvalidInput, match=field):
        parse_request(request(x={field: value}))


@pytest.mark.parametrize("extra", [{"id": 7}, {"model_name": 1}, {"model_version": 1.0}])
def test_request_fields_are_not_coerced(extra):
    """The request's own fields are strings when given, never numbers made into strings."""
    with pytest.raises(InvalidInput):
        parse_request(request(**extra))


@pytest.mark.parametrize(
    ("content_type", "binary"),
    [
        ("text/plain", False),
        ("text/plain; charset=utf-8", False),
        ("application/x-www-form-urlencoded", False),
        ("multipart/form-data; boundary=x", False),
        ("application/json; charset=latin-1", False),
        ("application/jsonx", False),
        ("application/octet-stream", False),  # binary type without the binary header
        ("application/json", True),  # the binary extension is octet-stream
        ("text/plain", True),
    ],
)
def test_wrong_content_types_are_415(content_type, binary):
    """An inference request whose Content-Type is not its format's is refused with 415."""
    with pytest.raises(UnsupportedMediaType):
        check_media_type(content_type, binary=binary)


@pytest.mark.parametrize(
    ("content_type", "binary"),
    [
        ("application/json", False),
        ("Application/JSON; charset=UTF-8", False),
        ("application/octet-stream", True),
        ("", False),  # tritonclient sends none
        ("", True),
    ],
)
def test_protocol_content_types_are_accepted(content_type, binary):
    """JSON, octet-stream for the binary extension, or no Content-Type at all."""
    check_media_type(content_type, binary=binary)


@pytest.mark.parametrize("shape", [[0, 3], [3, 0], [0], [1, 0, 64], [0, 2], [2, 0]])
def test_empty_tensors_are_refused(shape):
    """A shape with a 0 dimension (an empty tensor) is a 400, whatever the model declares."""
    data = {"shape": shape, "data": []}
    with pytest.raises(InvalidInput, match="shape"):
        check_inputs(parse_request(request(x=data)), MODEL)


def test_an_empty_binary_tensor_is_refused():
    """The binary extension's JSON header with a 0 dimension is refused like a JSON tensor."""
    header = (
        b'{"inputs":[{"name":"x","shape":[0,3],"datatype":"FP32",'
        b'"parameters":{"binary_data_size":0}}]}'
    )
    with pytest.raises(InvalidInput, match="shape"):
        parse_request(header)
