"""The allow-list enforced where it matters: on the imports a pickle really makes as it loads.

The scanner decides from an emulation of the pickle machine; a loader that trusted its
verdict would be exactly as safe as the emulation is faithful. :func:`load_pickle` does not:
every name the unpickler asks for goes through the same :class:`AllowList` before it is
imported, so a file that slipped past the emulation still cannot reach anything off the list.
Persistent ids are refused, and so are bytes after the pickle and ``BUILD`` on a class,
function or module (planting attributes on code the process shares). joblib's format (arrays
written after the pickle) is read by joblib's own unpickler, but an object array — a nested
pickle — is read here, by the same restricted unpickler: joblib before 1.6 read it with a
bare ``pickle.load`` (GHSA-m62q-453p-gv66), so its version must not decide. Compressed
files are decompressed first, with the scanner's size bound.

>>> import pickle
>>> load_pickle(pickle.dumps({"weights": [1.0, 2.0]}))
{'weights': [1.0, 2.0]}
>>> load_pickle(pickle.dumps(print))
Traceback (most recent call last):
...
_pickle.UnpicklingError: builtins.print is not on the allow-list
"""

from __future__ import annotations

import io
import pickle
import types

import numpy as np

from bastion.registry.scan.allowlist import AllowList
from bastion.registry.scan.pickles import Global
from bastion.registry.scan.scanner import decompress


def load_pickle(data: bytes, *, allow: AllowList | None = None) -> object:
    """The object a pickle or joblib file holds, importing only what ``allow`` allows.

    Raises:
        pickle.UnpicklingError: the file imports a name off the list, uses persistent ids,
            or its compression is corrupt or expands too much.
        Exception: whatever unpickling raises on a malformed file.
    """
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler  # noqa: PLC0415

    names = allow or AllowList()
    compressed = decompress(data)
    if compressed is not None:
        kind, inner = compressed
        if inner is None:
            raise pickle.UnpicklingError(f"{kind} data is corrupt or expands too much")
        data = inner

    class Restricted(NumpyUnpickler):  # type: ignore[misc]  # joblib is untyped
        dispatch = NumpyUnpickler.dispatch.copy()

        def find_class(self, module: str, name: str) -> object:
            if not names.is_allowed(Global(module, name)):
                raise pickle.UnpicklingError(f"{module}.{name} is not on the allow-list")
            return super().find_class(module, name)

        def load_build(self) -> None:
            state, target = self.stack[-1], self.stack[-2]  # BUILD: an object, its state
            if isinstance(target, type | types.FunctionType | types.BuiltinFunctionType):
                raise pickle.UnpicklingError(f"BUILD on {target!r} would plant attributes")
            dtype = state.get("dtype") if isinstance(state, dict) else None
            objects = isinstance(dtype, np.dtype) and dtype.hasobject
            if isinstance(target, NumpyArrayWrapper) and objects:  # a nested pickle follows
                del self.stack[-2:]
                nested = type(self)("", self.file_handle, ensure_native_byte_order=True)
                self.stack.append(nested.load())
                return
            super().load_build()

        dispatch[pickle.BUILD[0]] = load_build

    stream = io.BytesIO(data)
    loaded = Restricted("", stream, ensure_native_byte_order=True).load()
    if stream.read(1):  # what no loader reads is what a scanner might not look at either
        raise pickle.UnpicklingError("there are bytes after the end of the pickle")
    return loaded
