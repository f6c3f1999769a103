"""``scan``: decide by content what a file is, look inside it, and report every finding.

Formats: pickle (every protocol, several pickles in a row), joblib (also compressed),
legacy and zip PyTorch checkpoints, NumPy ``.npy``/``.npz`` (object arrays are pickles),
skops (its schema's types go through the same allow-list), safetensors (header checked:
tensors only), ONNX (external data must stay beside the model), and ZIP archives, nested or
not. Archives are read at least as permissively as the loaders read them: every central
directory entry (duplicates included) *and* every local header the directory does not list
is opened, with CRC errors ignored, since some loaders ignore them too. Anything that cannot
be recognized or parsed is a finding: the scanner fails closed.
"""

from __future__ import annotations

import ast
import bz2
import io
import json
import lzma
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

from bastion.registry.scan.allowlist import AllowList
from bastion.registry.scan.pickles import Global, MalformedPickle, trace_pickle

Severity = Literal["critical", "error"]
_MAX_DEPTH = 4  # archives inside archives inside ...
_MAX_EXPANSION = 64  # a compressed member may not grow beyond 64x (or 1 GiB), against bombs
_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
# Plain values skops rebuilds from JSON or .npy members (no code of the file's choosing).
_SKOPS_VALUES = frozenset(
    {f"builtins.{t}" for t in ("dict", "list", "tuple", "str", "int", "float", "bool", "bytes",
                              "bytearray", "complex", "set", "frozenset", "slice", "NoneType")}
    | {f"numpy.{t}" for t in ("ndarray", "dtype", "float64", "float32", "float16", "int64",
                             "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8",
                             "bool_", "complex128", "complex64", "str_", "bytes_")}
)  # fmt: skip
_LEGACY_TORCH_PICKLES = 5
_TORCH_NOTES = frozenset(
    {"version", "byteorder", "serialization_id", ".format_version", ".storage_alignment"}
)
_SAFETENSORS_DTYPES = frozenset(
    {"BOOL", "U8", "I8", "U16", "I16", "F16", "BF16", "U32", "I32", "F32", "U64", "I64", "F64",
     "F8_E4M3", "F8_E5M2", "C64"}
)  # fmt: skip


@dataclass(frozen=True)
class Finding:
    """One reason to refuse a file, with where it is (member path and byte offset)."""

    location: str
    kind: str
    detail: str
    severity: Severity = "critical"


@dataclass(frozen=True)
class ScanReport:
    """The verdict on one file: its format, every import it would make, and the findings."""

    path: str
    format: str
    imports: tuple[str, ...]
    findings: tuple[Finding, ...]

    @property
    def is_safe(self) -> bool:
        """True when nothing was found."""
        return not self.findings


def scan_path(path: Path, *, allow: AllowList | None = None) -> ScanReport:
    """Scan one file.

    Raises:
        OSError: the file cannot be read.
    """
    return scan_bytes(path.read_bytes(), name=path.name, allow=allow)


def scan_bytes(data: bytes, *, name: str, allow: AllowList | None = None) -> ScanReport:
    """Scan a file's bytes (``name`` only labels the findings)."""
    scan = _Scan(allow or AllowList())
    kind = scan.content(data, name, depth=0)
    imports = tuple(dict.fromkeys(scan.imports))
    return ScanReport(name, kind, imports, tuple(scan.findings))


class _Scan:
    def __init__(self, allow: AllowList) -> None:
        self.allow = allow
        self.imports: list[str] = []
        self.findings: list[Finding] = []

    def find(self, where: str, kind: str, detail: str, severity: Severity = "critical") -> None:
        self.findings.append(Finding(where, kind, detail, severity))

    def content(self, data: bytes, where: str, *, depth: int) -> str:  # noqa: PLR0911 - one per format
        """Scan ``data`` as whatever its bytes say it is; return the format's name."""
        if depth > _MAX_DEPTH:
            self.find(where, "too_deep", f"archives nested more than {_MAX_DEPTH} deep")
            return "archive"
        if data.startswith(b"\x93NUMPY"):
            self.npy(data, where)
            return "numpy"
        if _is_zip(data):
            return self.archive(data, where, depth=depth)
        compressed = decompress(data)
        if compressed is not None:
            kind, inner = compressed
            if inner is None:
                self.find(where, "bad_compression", f"{kind} data is corrupt or expands too much")
                return kind
            return f"{kind}+{self.content(inner, where, depth=depth + 1)}"
        if _looks_like_safetensors(data):
            self.safetensors(data, where)
            return "safetensors"
        if _starts_a_pickle(data):
            return self.pickles(data, where)
        if self.onnx(data, where):
            return "onnx"
        self.find(where, "unknown_format", "not a format Bastion can check (fail closed)")
        return "unknown"

    # -- pickles -----------------------------------------------------------------------

    def pickles(self, data: bytes, where: str, *, start: int = 0) -> str:
        """Every pickle in a row from ``start``; legacy torch files end in raw storages."""
        kind, count, offset = "pickle", 0, start
        while offset < len(data):
            try:
                trace = trace_pickle(data, offset)
            except MalformedPickle as exc:
                what = "unparseable" if count == 0 else "trailing_data"
                self.find(
                    f"{where}@{exc.offset}",
                    what,
                    str(exc) if count == 0 else "bytes after the last pickle do not parse",
                )
                return kind
            self.record(trace.globals, trace.problems, where)
            count, offset = count + 1, trace.end
            if count == 1 and trace.result == _TORCH_MAGIC:
                kind = "pytorch-legacy"
            if kind == "pytorch-legacy" and count == _LEGACY_TORCH_PICKLES:
                return kind  # what follows is raw tensor storage, read as bytes, never unpickled
            if any(str(g) == "joblib.numpy_pickle.NumpyArrayWrapper" for g, _ in trace.globals):
                kind = "joblib"
        return kind

    def record(
        self, imports: list[tuple[Global, int]], problems: list[tuple[str, str, int]], where: str
    ) -> None:
        for name, offset in imports:
            self.imports.append(str(name))
            if not self.allow.is_allowed(name):
                family = self.allow.family(name)
                detail = f"imports {name}" + (
                    f" ({family})" if family else " (not on the allow-list)"
                )
                self.find(f"{where}@{offset}", "unsafe_global", detail)
        for kind, detail, offset in problems:
            self.find(f"{where}@{offset}", kind, detail)

    # -- containers ----------------------------------------------------------------------

    def archive(self, data: bytes, where: str, *, depth: int) -> str:
        try:
            members = _members(data)
        except zipfile.BadZipFile as exc:
            self.find(where, "bad_archive", f"not a readable ZIP archive: {exc}")
            return "zip"
        names = [name for name, _ in members]
        torch = any(n.endswith("data.pkl") for n in names)
        kind = "pytorch-zip" if torch else "skops" if "schema.json" in names else "zip"
        for name, payload in members:
            member = f"{where}/{name}"
            if payload is None:
                self.find(
                    member,
                    "bad_archive",
                    "a member cannot be read (encrypted, or an unknown compression)",
                )
            elif torch and _is_raw_torch_member(name):
                continue  # tensor bytes and version strings: read as data, never unpickled
            elif kind == "skops" and name == "schema.json":
                self.skops_schema(payload, member)
            elif name.endswith(".pkl") or (
                _starts_a_pickle(payload) and not payload.startswith(b"\x93NUMPY")
            ):
                self.pickles(payload, member)
            else:
                self.content(payload, member, depth=depth + 1)
        return kind

    def npy(self, data: bytes, where: str) -> None:
        try:
            major = data[6]
            size_format = "<H" if major == 1 else "<I"
            width = struct.calcsize(size_format)
            (length,) = struct.unpack(size_format, data[8 : 8 + width])
            header = ast.literal_eval(data[8 + width : 8 + width + length].decode("latin-1"))
            descr = header["descr"]
        except (IndexError, struct.error, ValueError, SyntaxError, KeyError, TypeError):
            self.find(where, "unparseable", "a malformed .npy header")
            return
        if "O" in str(descr):
            self.pickles(data, f"{where}(object array)", start=8 + width + length)

    def skops_schema(self, payload: bytes, where: str) -> None:
        try:
            schema = json.loads(payload)
        except ValueError:
            self.find(where, "unparseable", "schema.json is not JSON")
            return
        for module, name in _skops_types(schema):
            found = Global(module, name)
            self.imports.append(str(found))
            if not skops_may_construct(found, self.allow):
                self.find(where, "unsafe_type", f"constructs {found} (not on the allow-list)")

    def safetensors(self, data: bytes, where: str) -> None:
        problem = _safetensors_problem(data)
        if problem:
            self.find(where, "bad_safetensors", problem)

    def onnx(self, data: bytes, where: str) -> bool:
        import onnx  # noqa: PLC0415 - only for files that are nothing else
        from onnx.external_data_helper import uses_external_data  # noqa: PLC0415

        try:
            model = onnx.load_model_from_string(data)
        except Exception:  # protobuf raises its own DecodeError and friends
            return False
        if model.ir_version <= 0 or not model.graph.node:
            return False
        for tensor in model.graph.initializer:
            if uses_external_data(tensor):
                location = next((e.value for e in tensor.external_data if e.key == "location"), "")
                if not location or Path(location).is_absolute() or ".." in Path(location).parts:
                    self.find(
                        where, "external_data_escape", f"tensor {tensor.name} reads {location!r}"
                    )
        return True


def _members(data: bytes) -> list[tuple[str, bytes | None]]:
    """Every member: the central directory's entries, then local headers it does not list.

    Raises:
        zipfile.BadZipFile: there is no readable central directory.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (ValueError, OSError) as exc:
        raise zipfile.BadZipFile(str(exc)) from None
    listed, found = set(), []
    for info in archive.infolist():
        listed.add(info.header_offset)
        found.append((info.filename, _local_member(data, info.header_offset, info.compress_size)))
    position = data.find(b"PK\x03\x04")
    while position != -1:
        if position not in listed:
            found.append((f"<unlisted entry at {position}>", _local_member(data, position)))
        position = data.find(b"PK\x03\x04", position + 4)
    return found


def _local_member(  # noqa: PLR0911 - each way a member can be unreadable
    data: bytes, offset: int, size: int | None = None
) -> bytes | None:
    """Read a member from its local header, ignoring the CRC (as torch's reader does)."""
    header = data[offset : offset + 30]
    if len(header) < 30 or header[:4] != b"PK\x03\x04":  # noqa: PLR2004 - the fixed header size
        return None
    flags, method = struct.unpack("<HH", header[6:10])
    compressed, _ = struct.unpack("<II", header[18:26])
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    start = offset + 30 + name_length + extra_length
    if flags & 0x1:  # encrypted
        return None
    if flags & 0x8 and compressed == 0:  # sizes only in a data descriptor: use the directory's
        if size is None:
            return None
        compressed = size
    body = data[start : start + compressed]
    if method == 0:
        return body
    if method == 8:  # noqa: PLR2004 - deflate
        inflater = zlib.decompressobj(-15)
        try:
            out = inflater.decompress(body, max(len(body), 1) * _MAX_EXPANSION)
        except zlib.error:
            return None
        return out
    return None


def _is_raw_torch_member(name: str) -> bool:
    """Tensor storages (``<root>/data/<key>``) and format notes, which torch reads as bytes."""
    parts = name.split("/")
    if name.endswith(".pkl"):
        return False
    storage = len(parts) >= 3 and parts[-2] == "data"  # noqa: PLR2004 - root, data, key
    return storage or parts[-1] in _TORCH_NOTES


def _is_zip(data: bytes) -> bool:
    return data.startswith((b"PK\x03\x04", b"PK\x05\x06")) or (
        b"PK\x05\x06" in data[-65_557:] and zipfile.is_zipfile(io.BytesIO(data))
    )


def _starts_a_pickle(data: bytes) -> bool:
    if not data:
        return False
    if data[0] == 0x80:  # noqa: PLR2004 - PROTO
        return len(data) > 1 and data[1] <= 5  # noqa: PLR2004
    return data[:1] in {
        b"(",
        b"c",
        b"]",
        b"}",
        b")",
        b"N",
        b"I",
        b"S",
        b"V",
        b"F",
        b"L",
        b"l",
        b"d",
        b"t",
        b"i",
    }


def _looks_like_safetensors(data: bytes) -> bool:
    if len(data) < 10:  # noqa: PLR2004 - 8 bytes of length, then at least "{}"
        return False
    (length,) = struct.unpack("<Q", data[:8])
    return 2 <= length <= len(data) - 8 and data[8:9] == b"{"  # noqa: PLR2004


def _safetensors_problem(data: bytes) -> str | None:  # noqa: PLR0911 - one check per rule
    (length,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8 : 8 + length])
    except ValueError:
        return "the header is not JSON"
    if not isinstance(header, dict):
        return "the header is not a JSON object"
    body = len(data) - 8 - length
    spans = []
    for key, entry in header.items():
        if key == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                return "__metadata__ must map strings to strings"
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            return f"tensor {key!r} is not dtype, shape and data_offsets"
        if entry["dtype"] not in _SAFETENSORS_DTYPES:
            return f"tensor {key!r} has unknown dtype {entry['dtype']!r}"
        start, end = entry["data_offsets"]
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= body):
            return f"tensor {key!r} points outside the data"
        spans.append((start, end))
    spans.sort()
    if any(a_end > b_start for (_, a_end), (b_start, _) in pairwise(spans)):
        return "tensors overlap"
    return None


def _skops_types(schema: Any) -> Iterator[tuple[str, str]]:
    """Every (module, name) a skops schema would construct or look up."""
    if isinstance(schema, dict):
        if isinstance(schema.get("__module__"), str) and isinstance(schema.get("__class__"), str):
            yield schema["__module__"], schema["__class__"]
        if isinstance(schema.get("module_path"), str) and isinstance(schema.get("function"), str):
            yield schema["module_path"], schema["function"]
        for value in schema.values():
            yield from _skops_types(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _skops_types(value)


def skops_may_construct(found: Global, allow: AllowList) -> bool:
    """Whether a skops file may construct ``found``: a plain value, or on the allow-list."""
    return str(found) in _SKOPS_VALUES or allow.is_allowed(found)


def decompress(data: bytes) -> tuple[str, bytes | None] | None:
    """(format, bytes) for gzip, bz2, xz/lzma and zlib streams; None if not compressed."""
    limit = max(len(data), 1) * _MAX_EXPANSION
    if data.startswith(b"\x1f\x8b"):
        return "gzip", _bounded(zlib.decompressobj(16 + zlib.MAX_WBITS).decompress, data, limit)
    if data.startswith(b"BZh"):
        return "bz2", _bounded(bz2.BZ2Decompressor().decompress, data, limit)
    if data.startswith((b"\xfd7zXZ", b"\x5d\x00\x00")):
        return "xz", _bounded(lzma.LZMADecompressor().decompress, data, limit)
    if data[:1] == b"\x78" and len(data) > 1 and int.from_bytes(data[:2], "big") % 31 == 0:
        return "zlib", _bounded(zlib.decompressobj().decompress, data, limit)  # joblib's default
    return None


def _bounded(decompress: Any, data: bytes, limit: int) -> bytes | None:
    try:
        out: bytes = decompress(data, limit + 1)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
        return None
    return out if len(out) <= limit else None
