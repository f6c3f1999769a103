"""The scanner against a corpus made here: every attack family refused, every format accepted."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import pickle
import struct
import warnings
import zipfile
import zlib

import numpy as np
import pytest

from bastion.registry.scan import AllowList, scan_bytes

# -- building pickles by hand, opcode by opcode ----------------------------------------------

PROTO4 = b"\x80\x04"


def text(value: str, via: str = "short_binunicode") -> bytes:
    raw = value.encode()
    return {
        "short_binunicode": b"\x8c" + bytes([len(raw)]) + raw,
        "binunicode": b"X" + struct.pack("<I", len(raw)) + raw,
        "binunicode8": b"\x8d" + struct.pack("<Q", len(raw)) + raw,
        "unicode": b"V" + raw + b"\n",
        "short_binstring": b"U" + bytes([len(raw)]) + raw,
        "binstring": b"T" + struct.pack("<i", len(raw)) + raw,
        "string": b"S'" + raw + b"'\n",
    }[via]


def stack_global(module: str, name: str, via: str = "short_binunicode") -> bytes:
    return text(module, via) + text(name, via) + b"\x93"


def call(callee: bytes, *args: str) -> bytes:
    return callee + b"(" + b"".join(text(a) for a in args) + b"tR"


def program(body: bytes) -> bytes:
    return PROTO4 + body + b"."


def attack(module: str, name: str, *args: str) -> bytes:
    return program(call(stack_global(module, name), *args))


FAMILIES = {
    "universal resolver": [
        attack("pkgutil", "resolve_name", "os:system"),
        attack("importlib", "import_module", "os"),
        attack("pydoc", "locate", "os.system"),
        attack("operator", "attrgetter", "system"),
        # getattr(import_module('os'), 'system')('id'): a chain through computed objects
        program(
            stack_global("builtins", "getattr")
            + b"("
            + call(stack_global("importlib", "import_module"), "os")
            + text("system")
            + b"tR("
            + text("id")
            + b"tR"
        ),
    ],
    "code construction": [
        attack("types", "CodeType", "x"),
        attack("types", "FunctionType", "x"),
        attack("marshal", "loads", "c\x00\x00"),
    ],
    "nested loader": [
        attack("pickle", "loads", "cos\nsystem\n"),
        attack("_pickle", "loads", "x"),
        attack("torch", "load", "evil.pt"),
        attack("numpy", "load", "evil.npy"),
    ],
    "obscure sink": [
        attack("pip", "main", "install"),
        attack("runpy", "_run_code", "import os"),
        attack("timeit", "timeit", "import os"),
        attack("cProfile", "run", "import os"),
        attack("pdb", "run", "import os"),
        attack("code", "InteractiveInterpreter"),
        attack("pty", "spawn", "/bin/sh"),
        attack("ctypes", "CDLL", "libc.so.6"),
        attack("asyncio.subprocess", "create_subprocess_shell", "id"),
    ],
    "C-module alias": [
        attack("posix", "system", "id"),
        attack("nt", "system", "id"),
        attack("_operator", "attrgetter", "system"),
        attack("__builtin__", "eval", "1"),
        attack("builtins", "exec", "import os"),
    ],
    "file or network side effect": [
        attack("logging", "FileHandler", "/var/log/x"),
        attack("_io", "FileIO", "/etc/passwd"),
        attack("urllib.request", "urlopen", "http://attacker"),
    ],
    "dotted-name evasion": [
        attack("collections", "OrderedDict.__init__.__globals__"),
        attack("torch", "serialization.load", "x"),
        attack("numpy", "core.multiarray._reconstruct"),
        attack("os.path", "os.system", "id"),
    ],
    "attribute planting": [
        program(
            stack_global("collections", "OrderedDict")
            + b"}"
            + text("__reduce__")
            + text("x")
            + b"sb"
        ),
        attack("builtins", "setattr", "x"),
    ],
}

TRICKS = {
    "protocol 0 GLOBAL": b"cos\nsystem\n(S'id'\ntR.",
    "INST": b"(S'id'\nios\nsystem\n.",
    "OBJ": b"(cos\nsystem\nS'id'\no.",
    "NEWOBJ_EX": program(stack_global("subprocess", "Popen") + b")}" + b"\x92"),
    "names from the memo": program(
        text("os")
        + b"\x94"
        + b"0"
        + text("system")
        + b"\x94"
        + b"0h\x00h\x01\x93("
        + text("id")
        + b"tR"
    ),
    "names from BINPUT/LONG_BINGET": program(
        text("os")
        + b"q\x07"
        + b"0"
        + text("system")
        + b"r\x08\x00\x00\x00"
        + b"0h\x07j\x08\x00\x00\x00\x93)R"
    ),
    **{
        f"names as {via}": program(call(stack_global("os", "system", via), "id"))
        for via in (
            "binunicode",
            "binunicode8",
            "unicode",
            "short_binstring",
            "binstring",
            "string",
        )
    },
    "computed STACK_GLOBAL": program(
        call(stack_global("builtins", "str"), "os") + text("system") + b"\x93)R"
    ),
    "extension registry": b"\x80\x02\x82\x01)R.",
    "second pickle": pickle.dumps({"ok": 1}) + attack("os", "system", "id"),
    "FRAME past the end": PROTO4 + b"\x95" + struct.pack("<Q", 10_000) + text("x") + b".",
    "truncated": attack("os", "system", "id")[:-3],
    "unknown opcode": PROTO4 + b"\xff.",
    "memo key never stored": program(b"h\x05"),
    "trailing garbage": pickle.dumps([1, 2]) + b"\x00\x01garbage",
}


def assert_refused(data: bytes, name: str = "x.bin"):
    report = scan_bytes(data, name=name)
    assert not report.is_safe, f"{name} was accepted"
    return report


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(d, id=f"{family}-{i}")
        for family, ds in FAMILIES.items()
        for i, d in enumerate(ds)
    ],
)
def test_every_attack_family_is_refused(data):
    """Each malicious pickle is refused, and the finding names the import or the trick."""
    report = assert_refused(data)
    assert any(
        f.kind in {"unsafe_global", "build_on_global", "computed_call"} for f in report.findings
    )


@pytest.mark.parametrize("name", TRICKS)
def test_every_parsing_trick_is_refused(name):
    """Other opcodes, string kinds, memo, several pickles, bad frames and garbage fail closed."""
    assert_refused(TRICKS[name])


def test_findings_say_where_and_what():
    """The finding carries the byte offset and the attack family of the import."""
    report = assert_refused(attack("posix", "system", "id"), "evil.pkl")
    finding = report.findings[0]
    assert (
        finding.location.startswith("evil.pkl@")
        and "posix.system (code execution)" in finding.detail
    )
    assert report.imports == ("posix.system",)


class Evil:
    def __reduce__(self):
        return (__import__("os").system, ("echo pwned",))


def _zip(entries, *, duplicates=False) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # duplicate names are the point of one test
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def _torch_zip(payload: bytes) -> bytes:
    return _zip(
        [
            ("archive/data.pkl", payload),
            ("archive/version", b"3\n"),
            ("archive/data/0", b"\x80" * 16),
        ]
    )


def _npy_object(obj) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([obj, 1], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def test_archives_are_opened_at_least_as_permissively_as_loaders():
    """Torch zips, bad CRCs, duplicate names, unlisted entries and nested archives are all read."""
    evil = pickle.dumps(Evil())
    assert_refused(_torch_zip(evil), "model.pt")
    assert_refused(
        _zip([("data/data.pkl", evil), ("data/data/0", b"\0" * 8)]), "root-named-data.pt"
    )
    assert_refused(
        _zip([("archive/data.pkl", pickle.dumps(1)), ("archive/data/1.pkl", evil)]), "hidden.pt"
    )
    corrupted = bytearray(_torch_zip(evil))
    for signature in (
        b"PK\x03\x04",
        b"PK\x01\x02",
    ):  # break the CRC in the local and central headers
        at = corrupted.find(signature)
        offset = 14 if signature == b"PK\x03\x04" else 16
        corrupted[at + offset : at + offset + 4] = b"\x00\x00\x00\x00"
    assert_refused(bytes(corrupted), "crc.pt")
    assert_refused(
        _zip([("archive/data.pkl", pickle.dumps(1)), ("archive/data.pkl", evil)]), "dup.pt"
    )
    hidden = _zip([("x", evil)])
    central = hidden.find(b"PK\x01\x02")
    assert_refused(hidden[:central] + _zip([("ok.txt", b"fine")]), "unlisted.zip")
    assert_refused(
        _zip([("inner.zip", _zip([("deeper.zip", _zip([("data.pkl", evil)]))]))]), "nested.zip"
    )


def test_numpy_object_arrays_and_compressed_files_are_opened():
    """Object .npy (also in .npz), gzip, bz2, xz and zlib wrappers hide nothing."""
    evil = pickle.dumps(Evil())
    assert_refused(_npy_object(Evil()), "evil.npy")
    assert_refused(_zip([("a.npy", _npy_object(Evil()))]), "evil.npz")
    for packed in (
        gzip.compress(evil),
        bz2.compress(evil),
        lzma.compress(evil),
        zlib.compress(evil),
    ):
        assert_refused(packed, "evil.gz")


def test_joblib_and_legacy_torch_payloads_are_found(tmp_path):
    """A malicious object after joblib's raw arrays, or inside a legacy torch.save, is found."""
    import joblib
    import torch

    joblib.dump({"w": np.arange(100.0), "x": Evil()}, tmp_path / "m.joblib")
    report = assert_refused((tmp_path / "m.joblib").read_bytes())
    assert report.format == "joblib" and "posix.system" in report.imports
    torch.save({"x": Evil()}, tmp_path / "m.pt", _use_new_zipfile_serialization=False)
    assert assert_refused((tmp_path / "m.pt").read_bytes()).format == "pytorch-legacy"
    torch.save({"x": Evil()}, tmp_path / "z.pt")
    assert assert_refused((tmp_path / "z.pt").read_bytes()).format == "pytorch-zip"


def test_skops_safetensors_onnx_and_unknown_files_fail_closed():
    """A skops schema naming os.system, bad safetensors headers, escaping ONNX data, noise."""
    schema = {"__class__": "system", "__module__": "os", "__loader__": "ObjectNode", "content": {}}
    assert_refused(_zip([("schema.json", json.dumps(schema).encode())]), "evil.skops")
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 64]}}).encode()
    assert_refused(struct.pack("<Q", len(header)) + header + b"\x00" * 16, "short.safetensors")
    header = json.dumps({"__metadata__": {"a": 1}}).encode()
    assert_refused(struct.pack("<Q", len(header)) + header, "meta.safetensors")
    assert_refused(_onnx_with_external_data("../../etc/passwd"), "escape.onnx")
    assert_refused(np.random.default_rng(0).bytes(256), "noise.bin")
    assert_refused(b"PK\x03\x04broken", "broken.zip")


def _onnx_with_external_data(location: str) -> bytes:
    from onnx import TensorProto, helper

    tensor = helper.make_tensor("w", TensorProto.FLOAT, [1], [0.0])
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    node = helper.make_node("Identity", ["w"], ["y"])
    graph = helper.make_graph(
        [node], "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [tensor]
    )
    return helper.make_model(graph).SerializeToString()


# -- benign files: every format, accepted ---------------------------------------------------


@pytest.fixture(scope="module")
def estimators():
    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    digits = load_digits()
    x, y = digits.data[:300], digits.target[:300]
    return [
        LogisticRegression(max_iter=300).fit(x, y),
        RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y),
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(x, y),
    ]


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("xz", 3), ("bz2", 3)])
def test_scikit_learn_models_saved_with_joblib_are_accepted(estimators, compress, tmp_path):
    """Joblib files of real estimators (plain and compressed) pass."""
    import joblib

    for i, estimator in enumerate(estimators):
        joblib.dump(estimator, tmp_path / f"{i}.joblib", compress=compress)
        report = scan_bytes((tmp_path / f"{i}.joblib").read_bytes(), name=f"{i}.joblib")
        assert report.is_safe, report.findings
        assert "joblib" in report.format


def test_scikit_learn_models_saved_with_skops_are_accepted(estimators):
    """Skops files pass: their schemas name only values and scikit-learn classes."""
    import skops.io

    for estimator in estimators:
        report = scan_bytes(skops.io.dumps(estimator), name="m.skops")
        assert report.is_safe and report.format == "skops", report.findings


def test_torch_numpy_onnx_and_safetensors_files_are_accepted(tmp_path, digits):
    """State dicts (zip and legacy), arrays, npz, ONNX and safetensors pass."""
    import torch
    from safetensors.torch import save

    state = torch.nn.Sequential(
        torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2)
    ).state_dict()
    for legacy in (False, True):
        torch.save(state, tmp_path / "m.pt", _use_new_zipfile_serialization=not legacy)
        assert scan_bytes((tmp_path / "m.pt").read_bytes(), name="m.pt").is_safe
    numeric, objects, archive = io.BytesIO(), io.BytesIO(), io.BytesIO()
    np.save(numeric, np.arange(12.0).reshape(3, 4))
    np.save(objects, np.array([1, "a", None], dtype=object), allow_pickle=True)
    np.savez_compressed(archive, a=np.arange(3), b=np.ones((2, 2)))
    for data in (
        numeric.getvalue(),
        objects.getvalue(),
        archive.getvalue(),
        digits.onnx,
        save({"w": torch.zeros(3, 4)}),
    ):
        report = scan_bytes(data, name="file")
        assert report.is_safe, (report.format, report.findings)


@pytest.mark.parametrize("protocol", range(6))
def test_plain_pickles_of_every_protocol_are_accepted(protocol):
    """Dicts, lists, sets, tuples, OrderedDicts and numbers pass in protocols 0 to 5."""
    from collections import OrderedDict

    value = {
        "a": [1, 2.5, None, True],
        "b": (1, "x"),
        "c": {3, 4},
        "d": OrderedDict(k=b"v"),
        "e": frozenset({1}),
    }
    assert scan_bytes(pickle.dumps(value, protocol=protocol), name="p.pkl").is_safe


def test_a_user_can_allow_a_name_explicitly():
    """--allow adds exact names, nothing more."""
    data = attack("mypackage.layers", "Dense")
    assert not scan_bytes(data, name="x").is_safe
    assert scan_bytes(
        data, name="x", allow=AllowList(frozenset({"mypackage.layers.Dense"}))
    ).is_safe
