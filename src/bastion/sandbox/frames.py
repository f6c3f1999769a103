"""The worker protocol: length-prefixed binary frames over a Unix socket.

A frame is a 9-byte header — kind (u8) and payload length (u64, big-endian) — then the
payload. The gateway sends ``LOAD`` (the model's bytes) once and waits for ``READY``; then
each ``RUN`` gets one ``RESULT`` or ``FAILED``. Tensors travel as raw little-endian
buffers, never pickled::

    tensors  := count:u16 tensor*
    tensor   := name_len:u16 name dtype:u8 ndim:u8 dim:u64*ndim data
    RUN      := output_count:u16 (name_len:u16 name)* tensors

The gateway decodes what a worker sends as untrusted input: every length is checked
against the payload, and a malformed frame is a :class:`FrameError`.
"""

from __future__ import annotations

import math
import socket
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

Tensors = dict[str, NDArray[Any]]

LOAD, READY, RUN, RESULT, FAILED = 1, 2, 3, 4, 5
HEADER = struct.Struct("!BQ")
_U16 = struct.Struct("<H")
_TENSOR = struct.Struct("<BB")
_MAX_NAME = 1024
_MAX_DIMS = 32

# The dtypes a tensor may have on the wire; object and string arrays never cross.
_DTYPES = [
    np.dtype(name).newbyteorder("<")
    for name in (
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
    )
]
_CODES = {dtype: code for code, dtype in enumerate(_DTYPES)}


class FrameError(Exception):
    """A frame does not follow the protocol (a broken or hostile worker)."""


def receive(sock: socket.socket, *, limit: int | None = None) -> tuple[int, bytearray]:
    """One frame from a blocking socket: its kind and payload.

    A payload longer than ``limit`` is cut to it (the rest is left unread).

    Raises:
        EOFError: the socket closed before the whole frame arrived.
    """
    kind, size = HEADER.unpack(_receive_exactly(sock, HEADER.size))
    return kind, _receive_exactly(sock, size if limit is None else min(size, limit))


def _receive_exactly(sock: socket.socket, size: int) -> bytearray:
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        count = sock.recv_into(view[got:])
        if count == 0:
            raise EOFError
        got += count
    return buffer


def frame(kind: int, *parts: bytes | memoryview) -> bytes:
    """One frame of ``kind`` whose payload is ``parts`` joined."""
    return b"".join([HEADER.pack(kind, sum(len(part) for part in parts)), *parts])


def encode_run(inputs: Tensors, outputs: Sequence[str]) -> list[bytes | memoryview]:
    """The payload parts of a ``RUN`` frame."""
    names = [_U16.pack(len(outputs))]
    for name in outputs:
        names.append(_name(name))
    return [b"".join(names), *encode_tensors(inputs)]


def decode_run(payload: memoryview) -> tuple[list[str], Tensors]:
    """Output names and input tensors of a ``RUN`` payload."""
    reader = _Reader(payload)
    names = [reader.name() for _ in range(reader.u16())]
    return names, reader.tensors()


def encode_tensors(tensors: Tensors) -> list[bytes | memoryview]:
    """Payload parts for ``tensors``: a small header per tensor, then its raw buffer."""
    parts: list[bytes | memoryview] = [_U16.pack(len(tensors))]
    for name, value in tensors.items():
        array = np.require(value, dtype=value.dtype.newbyteorder("<"), requirements="C")
        code = _CODES.get(array.dtype)
        if code is None or array.ndim > _MAX_DIMS:
            raise FrameError(f"tensor {name!r} has dtype {array.dtype}, not sent to workers")
        dims = struct.pack(f"<{array.ndim}Q", *array.shape)
        parts += [
            _name(name) + _TENSOR.pack(code, array.ndim) + dims,
            array.reshape(-1).view(np.uint8).data,
        ]
    return parts


def decode_tensors(payload: memoryview) -> Tensors:
    """The tensors of a ``RESULT`` payload (zero-copy views into it)."""
    return _Reader(payload).tensors()


def _name(name: str) -> bytes:
    encoded = name.encode()
    if len(encoded) > _MAX_NAME:
        raise FrameError("tensor name too long")
    return _U16.pack(len(encoded)) + encoded


class _Reader:
    """Reads a payload front to back, checking every length against what is left."""

    def __init__(self, payload: memoryview) -> None:
        self._data = payload
        self._at = 0

    def take(self, size: int) -> memoryview:
        end = self._at + size
        if size < 0 or end > len(self._data):
            raise FrameError("frame shorter than its contents")
        chunk = self._data[self._at : end]
        self._at = end
        return chunk

    def u16(self) -> int:
        value: int = _U16.unpack(self.take(2))[0]
        return value

    def name(self) -> str:
        size = self.u16()
        if size > _MAX_NAME:
            raise FrameError("tensor name too long")
        try:
            return bytes(self.take(size)).decode()
        except UnicodeDecodeError:
            raise FrameError("tensor name is not UTF-8") from None

    def tensors(self) -> Tensors:
        tensors: Tensors = {}
        for _ in range(self.u16()):
            name = self.name()
            code, ndim = _TENSOR.unpack(self.take(_TENSOR.size))
            if code >= len(_DTYPES) or ndim > _MAX_DIMS:
                raise FrameError("unknown dtype or too many dimensions")
            shape = struct.unpack(f"<{ndim}Q", self.take(8 * ndim))
            dtype = _DTYPES[code]
            data = self.take(math.prod(shape) * dtype.itemsize)
            tensors[name] = np.frombuffer(data, dtype=dtype).reshape(shape)
        if self._at != len(self._data):
            raise FrameError("trailing bytes after the tensors")
        return tensors
