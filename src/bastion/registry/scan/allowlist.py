"""Which imports a pickle may make: an explicit allow-list, nothing by pattern but one rule.

A name is allowed only if it is listed here exactly (module and attribute; an attribute
path such as ``OrderedDict.__init__.__globals__`` is never allowed), or if it is a *class*
defined in scikit-learn (estimators, their trees and helpers: constructing them runs no
code of the file's choosing) or the function Cython generates to rebuild one of them
(``__pyx_unpickle_<Class>``, beside the class in its module: it only makes that class), or
if the user allowed it by name. Everything else is refused; names from the families below
are also called out as known attack primitives, to make the report plain.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from bastion.registry.scan.pickles import Global

SAFE: frozenset[str] = frozenset(
    {
        # Containers and numbers that protocols 0-5 rebuild by calling their type.
        "builtins.set", "builtins.frozenset", "builtins.bytearray", "builtins.slice",
        "builtins.complex", "__builtin__.set", "__builtin__.frozenset", "__builtin__.bytearray",
        "__builtin__.slice", "__builtin__.complex", "collections.OrderedDict",
        "collections.defaultdict", "copyreg._reconstructor", "copy_reg._reconstructor",
        "builtins.object", "__builtin__.object",
        # Protocols 0-2 write bytes as _codecs.encode(text, "latin1").
        "_codecs.encode",
        # NumPy arrays, scalars, dtypes and random states.
        "numpy.ndarray", "numpy.dtype", "numpy.core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar", "numpy._core.multiarray._reconstruct",
        "numpy._core.multiarray.scalar", "numpy.core.numeric._frombuffer",
        "numpy._core.numeric._frombuffer",  # protocol 5 arrays: bytes, dtype, shape, order
        "numpy.random._pickle.__randomstate_ctor",
        "numpy.random._pickle.__bit_generator_ctor", "numpy.random._pickle.__generator_ctor",
        "numpy.random._mt19937.MT19937", "numpy.random._pcg64.PCG64",
        "numpy.random._pcg64.PCG64DXSM", "numpy.random._philox.Philox",
        "numpy.random._sfc64.SFC64",
        "joblib.numpy_pickle.NumpyArrayWrapper",
        # PyTorch tensors and storages as torch.save writes them.
        "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
        "torch.FloatStorage", "torch.DoubleStorage", "torch.HalfStorage", "torch.BFloat16Storage",
        "torch.LongStorage", "torch.IntStorage", "torch.ShortStorage", "torch.CharStorage",
        "torch.ByteStorage", "torch.BoolStorage", "torch.Size", "torch.device",
        "torch.float32", "torch.float64", "torch.float16", "torch.bfloat16", "torch.int64",
        "torch.int32", "torch.int16", "torch.int8", "torch.uint8", "torch.bool",
        # torch.load's persistent ids (storages); a plain pickle.load refuses them.
        "<persistent>.load",
    }
)  # fmt: skip

# Known attack primitives, by family (only used to label a refusal).
DANGEROUS: dict[str, tuple[str, ...]] = {
    "code execution": ("os.", "posix.", "nt.", "subprocess.", "pty.", "runpy.", "code.",
                       "pdb.", "timeit.", "cProfile.", "profile.", "trace.", "pip.",
                       "asyncio.", "ctypes.", "_posixsubprocess.", "multiprocessing.",
                       "builtins.eval", "builtins.exec", "builtins.compile",
                       "builtins.__import__", "builtins.breakpoint", "builtins.open",
                       "__builtin__.", "types.CodeType", "types.FunctionType", "marshal."),
    "universal resolver": ("pkgutil.", "importlib.", "pydoc.", "operator.", "_operator.",
                           "builtins.getattr", "builtins.setattr", "builtins.delattr",
                           "builtins.globals", "builtins.vars", "functools."),
    "nested loader": ("pickle.", "_pickle.", "dill.", "cloudpickle.", "torch.load",
                      "torch.serialization.", "numpy.load", "numpy.lib.npyio.", "joblib.load",
                      "shelve.", "yaml."),
    "file or network side effect": ("logging.", "_io.", "io.", "shutil.", "tempfile.",
                                    "urllib.", "http.", "socket.", "smtplib.", "ftplib.",
                                    "webbrowser.", "requests.", "zipfile.", "tarfile."),
}  # fmt: skip


@dataclass(frozen=True)
class AllowList:
    """The names a pickle may import: :data:`SAFE`, scikit-learn classes, and ``extra``."""

    extra: frozenset[str] = frozenset()

    def is_allowed(self, name: Global) -> bool:
        """True when a load may import ``name``."""
        if "." in name.name:  # an attribute path (protocol 4+): never on the list
            return False
        text = str(name)
        if text in SAFE or text in self.extra:
            return True
        return _is_sklearn_class(name)

    def family(self, name: Global) -> str | None:
        """The attack family ``name`` belongs to, if it is a known primitive."""
        text = str(name)
        for family, prefixes in DANGEROUS.items():
            if (
                any(text == p or text.startswith(p) for p in prefixes if p.endswith("."))
                or text in prefixes
            ):
                return family
        return None


# scikit-learn modules whose classes touch files or the network, or exist for its own tests.
_UNTRUSTED_PARTS = frozenset({"tests", "_testing", "externals", "datasets", "_build_utils"})
_CYTHON_UNPICKLE = "__pyx_unpickle_"


def _is_sklearn_class(name: Global) -> bool:
    """A class (not a function) defined by an importable ``sklearn`` module."""
    if (
        not (name.module == "sklearn" or name.module.startswith("sklearn."))
        or not name.name.isidentifier()
    ):
        return False
    parts = name.module.split(".")
    if not all(part.isidentifier() for part in parts) or _UNTRUSTED_PARTS & set(parts):
        return False
    try:
        module = importlib.import_module(name.module)
    except ImportError:
        return False
    rebuilt = name.name.removeprefix(_CYTHON_UNPICKLE)
    if rebuilt != name.name and not callable(getattr(module, name.name, None)):
        return False
    value = getattr(module, rebuilt, None)
    return isinstance(value, type) and (value.__module__ or "").startswith("sklearn")
