import json

import numpy as np
import pytest

from bastion.serving import binary


def test_decode_reads_little_endian_and_checks_bools():
    """Values are little-endian whatever the machine; BOOL bytes must be 0 or 1."""
    assert binary.decode(np.array([1.5, -2.0], dtype="<f4").tobytes(), np.float32).tolist() == [
        1.5,
        -2.0,
    ]
    assert binary.decode(np.array([7], dtype="<i8").tobytes(), np.int64).tolist() == [7]
    assert binary.decode(b"\x00\x01", np.bool_).tolist() == [False, True]
    with pytest.raises(ValueError, match="0 or 1"):
        binary.decode(b"\x02", np.bool_)
    with pytest.raises(ValueError, match="whole number"):
        binary.decode(b"\x00" * 6, np.float32)


def test_binary_outputs_round_trip():
    """An encoded response splits back into its JSON header and the exact array bytes."""
    outputs = {"label": np.array([3, 1], dtype=np.int64), "scores": np.eye(2, dtype=np.float32)}
    body = {
        "model_name": "m",
        "outputs": [
            {"name": n, "datatype": "X", "shape": list(a.shape), "data": a.ravel().tolist()}
            for n, a in outputs.items()
        ],
    }
    content, length = binary.encode_response(body, outputs, {"scores"})
    header = json.loads(content[:length])
    assert header["outputs"][0]["data"] == [3, 1]
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 16}
    assert np.frombuffer(content[length:], dtype="<f4").reshape(2, 2).tolist() == [[1, 0], [0, 1]]
