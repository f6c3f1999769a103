"""A pickle machine that runs nothing: it follows the opcodes to learn what a load would import.

Every opcode of protocols 0 to 5 is read with the standard library's own argument readers
(:mod:`pickletools`), and the stack and memo are emulated with inert values, so that
``STACK_GLOBAL`` names built from any string opcode or fetched from the memo are resolved,
and calls (``REDUCE``, ``NEWOBJ``, ``OBJ``, ``INST``) and attribute planting (``BUILD`` on a
class) are seen. What cannot be followed — a name computed at load time, a call of a
computed object, the extension registry, a malformed stream — is reported, never guessed.

joblib writes NumPy array bytes *between* opcodes (after the ``BUILD`` of each
``NumpyArrayWrapper``); the machine skips them as joblib's loader reads them, and follows the
nested pickle of object arrays.
"""

from __future__ import annotations

import contextlib
import io
import pickletools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_HIGHEST_PROTOCOL = 5
_JOBLIB_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")


@dataclass(frozen=True)
class Global:
    """A name a load would import (``module`` then the attribute path ``name``)."""

    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass
class _Instance:
    """The inert result of a call: what was called, with what, and the state it was given."""

    callee: Any
    args: Any
    state: Any = None


class _Mark:
    """The MARK opcode's marker on the stack."""


_UNKNOWN = object()  # a value the emulation does not track (an array, a buffer, ...)
_MARK = _Mark()


class MalformedPickle(Exception):
    """The stream is not a pickle a loader would accept; ``offset`` says where."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass
class PickleTrace:
    """What one pickle would do: the globals it imports and the suspicious acts seen."""

    start: int
    end: int = 0
    globals: list[tuple[Global, int]] = field(default_factory=list)
    problems: list[tuple[str, str, int]] = field(default_factory=list)  # kind, detail, offset
    result: Any = None


def trace_pickle(data: bytes, start: int = 0) -> PickleTrace:
    """Follow one pickle from ``start`` to its STOP.

    Raises:
        MalformedPickle: the bytes are not a complete, valid pickle.
    """
    return _Machine(data, start).run()


class _Machine:
    def __init__(self, data: bytes, start: int) -> None:
        self._data = data
        self._stream = io.BytesIO(data)
        self._stream.seek(start)
        self._stack: list[Any] = []
        self._memo: dict[int, Any] = {}
        self._trace = PickleTrace(start)
        self._offset = start

    def run(self) -> PickleTrace:
        while True:
            self._offset = self._stream.tell()
            code = self._stream.read(1)
            if not code:
                raise MalformedPickle("the pickle ends before its STOP opcode", self._offset)
            opcode = _OPCODES.get(code)
            if opcode is None:
                raise MalformedPickle(f"unknown opcode {code!r}", self._offset)
            try:
                arg = opcode.arg.reader(self._stream) if opcode.arg is not None else None
            except (ValueError, UnicodeDecodeError, OverflowError) as exc:
                raise MalformedPickle(
                    f"bad argument of {opcode.name}: {exc}", self._offset
                ) from None
            if opcode.name == "STOP":
                self._trace.result = self._pop()
                self._trace.end = self._stream.tell()
                return self._trace
            self._step(opcode.name, arg)

    # -- the stack -------------------------------------------------------------------

    def _pop(self) -> Any:
        if not self._stack or self._stack[-1] is _MARK:
            raise MalformedPickle("stack underflow", self._offset)
        return self._stack.pop()

    def _pop_mark(self) -> list[Any]:
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i] is _MARK:
                items = self._stack[i + 1 :]
                del self._stack[i:]
                return items
        raise MalformedPickle("no MARK on the stack", self._offset)

    def _top(self) -> Any:
        if not self._stack:
            raise MalformedPickle("stack underflow", self._offset)
        return self._stack[-1]

    def _problem(self, kind: str, detail: str) -> None:
        self._trace.problems.append((kind, detail, self._offset))

    def _import(self, module: Any, name: Any) -> Any:
        if not isinstance(module, str) or not isinstance(name, str):
            self._problem("unresolved_global", "STACK_GLOBAL with a name computed at load time")
            return _UNKNOWN
        found = Global(module, name)
        self._trace.globals.append((found, self._offset))
        return found

    def _call(self, callee: Any, args: Any, how: str) -> Any:
        if not isinstance(callee, Global):
            self._problem("computed_call", f"{how} calls an object made during the load")
        return _Instance(callee, args)

    # -- opcodes ---------------------------------------------------------------------

    def _step(self, name: str, arg: Any) -> None:  # noqa: PLR0912 - an opcode dispatch
        stack = self._stack
        if name in _LITERALS:
            stack.append(arg)
        elif name in _CONSTANTS:
            stack.append(_CONSTANTS[name])
        elif name in _EMPTY:
            stack.append(_EMPTY[name]())
        elif name in _MEMO_GET:
            key = int(arg)
            if key not in self._memo:
                raise MalformedPickle(f"memo key {key} was never stored", self._offset)
            stack.append(self._memo[key])
        elif name in _MEMO_PUT:
            self._memo[int(arg)] = self._top()
        elif name == "MEMOIZE":
            self._memo[len(self._memo)] = self._top()
        elif name == "PROTO":
            if int(arg) > _HIGHEST_PROTOCOL:
                raise MalformedPickle(f"unsupported protocol {arg}", self._offset)
        elif name == "FRAME":
            if self._stream.tell() + int(arg) > len(self._data):
                raise MalformedPickle("a FRAME runs past the end of the data", self._offset)
        elif name in _CALLS:
            self._calls(name, arg)
        else:
            self._structural(name)

    def _calls(self, name: str, arg: Any) -> None:
        """Imports, calls, state and persistent ids: everything that could run code."""
        stack = self._stack
        if name in {"GLOBAL", "INST"}:
            module, _, attribute = str(arg).partition(" ")
            found = self._import(module, attribute)
            stack.append(
                self._call(found, tuple(self._pop_mark()), name) if name == "INST" else found
            )
        elif name == "STACK_GLOBAL":
            attribute = self._pop()
            stack.append(self._import(self._pop(), attribute))
        elif name in {"REDUCE", "NEWOBJ"}:
            args = self._pop()
            stack.append(self._call(self._pop(), args, name))
        elif name == "NEWOBJ_EX":
            kwargs, args = self._pop(), self._pop()
            stack.append(self._call(self._pop(), (args, kwargs), name))
        elif name == "OBJ":
            items = self._pop_mark()
            if not items:
                raise MalformedPickle("OBJ without a class", self._offset)
            stack.append(self._call(items[0], tuple(items[1:]), name))
        elif name == "BUILD":
            self._build(self._pop())
        elif name in {"EXT1", "EXT2", "EXT4"}:
            self._problem("extension", f"{name} imports through the copyreg extension registry")
            stack.append(_UNKNOWN)
        else:  # PERSID, BINPERSID
            pid = arg if name == "PERSID" else self._pop()
            stack.append(_Instance(Global("<persistent>", "load"), pid))

    def _structural(self, name: str) -> None:  # noqa: PLR0912, PLR0915 - an opcode dispatch
        stack = self._stack
        if name == "APPEND":
            value = self._pop()
            target = self._top()
            if isinstance(target, list):
                target.append(value)
        elif name == "APPENDS":
            items = self._pop_mark()
            target = self._top()
            if isinstance(target, list):
                target.extend(items)
        elif name in {"LIST", "TUPLE", "FROZENSET"}:
            items = self._pop_mark()
            stack.append(items if name == "LIST" else tuple(items))
        elif name in {"TUPLE1", "TUPLE2", "TUPLE3"}:
            count = int(name[-1])
            items = [self._pop() for _ in range(count)][::-1]
            stack.append(tuple(items))
        elif name in {"DICT", "SETITEMS"}:
            items = self._pop_mark()
            if len(items) % 2:
                raise MalformedPickle(f"{name} with an odd number of items", self._offset)
            target = {} if name == "DICT" else self._top()
            if isinstance(target, dict):
                for key, value in zip(items[::2], items[1::2], strict=True):
                    _set(target, key, value)
            if name == "DICT":
                stack.append(target)
        elif name == "SETITEM":
            value, key = self._pop(), self._pop()
            target = self._top()
            if isinstance(target, dict):
                _set(target, key, value)
        elif name == "ADDITEMS":
            self._pop_mark()
            self._top()
        elif name == "POP":
            if stack and stack[-1] is _MARK:
                stack.pop()
            else:
                self._pop()
        elif name == "DUP":
            stack.append(self._top())
        elif name == "MARK":
            stack.append(_MARK)
        elif name == "POP_MARK":
            self._pop_mark()
        elif name == "NEXT_BUFFER":
            stack.append(_UNKNOWN)
        elif name == "READONLY_BUFFER":
            self._top()
        else:
            raise MalformedPickle(f"opcode {name} is not handled", self._offset)

    def _build(self, state: Any) -> None:
        target = self._top()
        if isinstance(target, Global):
            self._problem("build_on_global", f"BUILD sets attributes of {target} itself")
            return
        if isinstance(target, _Instance):
            target.state = state
            if target.callee == Global(*_JOBLIB_WRAPPER):
                self._stack[-1] = self._joblib_array(state)

    def _joblib_array(self, state: Any) -> Any:
        """Skip the array bytes joblib wrote after this wrapper (or trace its nested pickle)."""
        if not isinstance(state, dict):
            raise MalformedPickle("a joblib array without its state", self._offset)
        dtype, shape = _joblib_dtype(state.get("dtype")), state.get("shape")
        if (
            dtype is None
            or not isinstance(shape, tuple)
            or not all(isinstance(n, int) and n >= 0 for n in shape)
        ):
            raise MalformedPickle("a joblib array with an unreadable dtype or shape", self._offset)
        position = self._stream.tell()
        if dtype.hasobject:
            nested = trace_pickle(self._data, position)
            self._trace.globals += nested.globals
            self._trace.problems += nested.problems
            self._stream.seek(nested.end)
            return _UNKNOWN
        if state.get("numpy_array_alignment_bytes") is not None:
            padding = self._stream.read(1)
            position += 1 + (padding[0] if padding else 0)
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if position + size > len(self._data):
            raise MalformedPickle("joblib array data runs past the end of the file", self._offset)
        self._stream.seek(position + size)
        return _UNKNOWN


def _joblib_dtype(value: Any) -> np.dtype[Any] | None:
    """The dtype a joblib wrapper describes: ``numpy.dtype(code, …)`` with its byte order."""
    allowed = {Global("numpy", "dtype")}
    if (
        not isinstance(value, _Instance)
        or value.callee not in allowed
        or not isinstance(value.args, tuple)
    ):
        return None
    code = value.args[0] if value.args else None
    if not isinstance(code, str) or not code.isalnum():
        return None
    try:
        dtype = np.dtype(code)
    except TypeError:
        return None
    state = value.state
    if isinstance(state, tuple) and len(state) > 1 and state[1] in {"<", ">", "|", "="}:
        dtype = dtype.newbyteorder(state[1])
    if dtype.fields is not None:  # structured dtypes carry fields the wrapper does not show
        return None
    return dtype


def _set(target: dict[Any, Any], key: Any, value: Any) -> None:
    with contextlib.suppress(TypeError):  # an unhashable key (a list, an instance): untracked
        target[key] = value


_OPCODES = {op.code.encode("latin-1"): op for op in pickletools.opcodes}
_LITERALS = {
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "STRING", "BINSTRING",
    "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8", "UNICODE",
    "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "FLOAT", "BINFLOAT",
}  # fmt: skip
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_EMPTY: dict[str, Any] = {
    "EMPTY_LIST": list,
    "EMPTY_TUPLE": tuple,
    "EMPTY_DICT": dict,
    "EMPTY_SET": set,
}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_CALLS = {
    "GLOBAL", "INST", "STACK_GLOBAL", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ", "BUILD",
    "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID",
}  # fmt: skip
