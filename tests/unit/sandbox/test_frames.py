"""The worker protocol's codec: exact round trips, and hostile frames refused."""

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bastion.sandbox import FrameError
from bastion.sandbox.frames import HEADER, RUN, decode_run, decode_tensors, encode_run, frame

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
DTYPES += ["float16", "float32", "float64"]


def payload(parts):
    return memoryview(b"".join(parts))


@given(
    hnp.arrays(
        dtype=st.sampled_from(DTYPES).map(np.dtype),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
    ),
    st.lists(st.text(min_size=1, max_size=8), max_size=3),
)
def test_run_frames_round_trip_every_dtype_and_shape(array, outputs):
    names, tensors = decode_run(payload(encode_run({"x": array, "y": array.T}, outputs)))
    assert names == outputs
    assert tensors["x"].dtype == array.dtype and tensors["x"].shape == array.shape
    np.testing.assert_array_equal(tensors["x"], array)
    np.testing.assert_array_equal(tensors["y"], array.T)  # non-contiguous input


def test_a_frame_header_states_kind_and_length():
    data = frame(RUN, b"ab", b"cde")
    assert HEADER.unpack(data[: HEADER.size]) == (RUN, 5)
    assert data[HEADER.size :] == b"abcde"


def test_object_and_string_arrays_never_cross():
    with pytest.raises(FrameError):
        encode_run({"x": np.array(["a"], dtype=object)}, [])
    with pytest.raises(FrameError):
        encode_run({"x": np.array(["a"])}, [])


GOOD = b"".join(encode_run({"x": np.arange(6, dtype=np.float32).reshape(2, 3)}, ["y"]))
TENSORS = GOOD[5:]  # after the output names


@pytest.mark.parametrize(
    "hostile",
    [
        GOOD[:-1],  # truncated data
        GOOD + b"\0",  # trailing bytes
        GOOD[:3],  # truncated name
        b"\1\0\xff\xff",  # a name longer than the frame
        b"\0\0\1\0\1\0x\x63\0",  # unknown dtype code
        b"\0\0\1\0\1\0x\x0a\x40",  # 64 dimensions
        b"\0\0\1\0\1\0x\x0a\2" + struct.pack("<2Q", 2**40, 2**40),  # 2^80 elements
        b"\0\0\1\0\1\0x\x0a\2" + struct.pack("<2Q", 2**32, 2**32),  # overflows 64 bits
        b"\1\0\2\0\xff\xfe\0\0",  # a name that is not UTF-8
    ],
)
def test_hostile_frames_are_refused(hostile):
    with pytest.raises(FrameError):
        decode_run(memoryview(hostile))


def test_results_decode_as_views_of_the_frame():
    tensors = decode_tensors(memoryview(TENSORS))
    np.testing.assert_array_equal(tensors["x"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert not tensors["x"].flags.writeable
