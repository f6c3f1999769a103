"""What a model file is: its format, told by content, and the checks each format needs.

An ONNX model must parse and pass the ONNX checker; the external data files it names must
be regular files below its folder (and in its signed manifest, when it has one); they
travel with it as one :class:`OnnxBundle`. An estimator (skops, pickle, joblib) must scan
clean. Tensor-only files (NumPy, safetensors, PyTorch) hold no computation and are refused
with a hint. The registry (``store.py``) records what passes.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from bastion.errors import IntegrityError, InvalidInput
from bastion.registry.manifest import SignedManifest
from bastion.registry.scan import scan_bytes
from bastion.registry.signature import ModelSignature
from bastion.sandbox.models import BUNDLE_MAGIC, OnnxBundle

if TYPE_CHECKING:
    import onnx

# What the scanner calls the files an estimator can come in (after any compression: "zlib+"),
# and the files that hold only tensors (weights without the computation that uses them).
_ESTIMATOR_FILES = frozenset({"skops", "pickle", "joblib"})
_TENSOR_FILES = frozenset({"numpy", "safetensors", "pytorch-zip", "pytorch-legacy"})
_MAX_EXTERNAL_FILES = 4096


def check_estimator_file(name: str, artifact: bytes) -> None:
    """A skops file or a pickle must scan clean and be an estimator's kind of file.

    Raises:
        InvalidInput: skops is missing, the file does not scan clean, or it holds no model.
    """
    if importlib.util.find_spec("skops") is None:
        raise InvalidInput("Serving scikit-learn models needs skops: install bastion[sklearn].")
    report = scan_bytes(artifact, name=name)
    if not report.is_safe:
        raise InvalidInput(f"{name} does not scan clean; see `bastion scan {name}`.")
    if report.format.rpartition("+")[2] not in _ESTIMATOR_FILES:
        raise not_servable(name, report.format)


def check_onnx(artifact: bytes, path: Path) -> tuple[ModelSignature, set[str]]:
    """The signature of the ONNX model at ``path`` and the external data files it names."""
    import onnx  # noqa: PLC0415 - only registration parses ONNX; CLI and gateway start faster
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data  # noqa: PLC0415

    try:
        model = onnx.load_model_from_string(artifact)
        locations = {
            ExternalDataInfo(tensor).location
            for tensor in _tensors(model.graph)
            if uses_external_data(tensor)
        }
        # With external data the checker reads the files, relative to the model's folder
        # when given its path (and refuses links and paths that leave it); given only the
        # bytes it would look in the current directory.
        onnx.checker.check_model(str(path) if locations else model)
    except Exception:  # onnx raises many unrelated types for a bad file
        kind = scan_bytes(artifact, name=path.name).format
        if kind in _TENSOR_FILES:
            raise not_servable(path.name, kind) from None
        raise InvalidInput("The file is not a valid ONNX model.") from None
    return ModelSignature.from_onnx(model), locations


def not_servable(name: str, kind: str) -> InvalidInput:
    """Why a file the scanner recognizes cannot be registered, and what to do instead."""
    if kind.rpartition("+")[2] in _TENSOR_FILES:
        return InvalidInput(
            f"{name} is a {kind} file: tensors without the model's computation. "
            "Export the model to ONNX to serve it."
        )
    return InvalidInput(
        f"{name} is a {kind} file, not a model Bastion serves: register an ONNX model, or a "
        "scikit-learn estimator saved with skops, pickle or joblib."
    )


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor a graph holds: initializers, sparse ones, attributes, subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for attribute in node.attribute:
            yield from (attribute.t, *attribute.tensors)
            for subgraph in (attribute.g, *attribute.graphs):
                yield from _tensors(subgraph)


def external_data(
    path: Path, locations: set[str], manifest: SignedManifest | None
) -> dict[str, bytes]:
    """The external data files of the model at ``path``, each confined to its folder.

    A location must be a relative path below the model's folder naming a regular file,
    not a symbolic link; with a signed manifest, each file must be listed there with its
    digest.

    Raises:
        InvalidInput: a location leaves the folder, is a link, or names no file.
        IntegrityError: a file is not in the signed manifest as it is now.
    """
    if len(locations) > _MAX_EXTERNAL_FILES:
        raise InvalidInput(f"The model names over {_MAX_EXTERNAL_FILES} external data files.")
    folder = path.parent.resolve()
    listed = {f.path: f.sha256 for f in manifest.manifest.files} if manifest else None
    files = {}
    for location in sorted(locations):
        relative = PurePosixPath(location)
        file = path.parent / relative
        if (
            not location
            or "\\" in location
            or relative.is_absolute()
            or ".." in relative.parts
            or file.is_symlink()
            or not file.resolve().is_relative_to(folder)
            or not file.is_file()
        ):
            raise InvalidInput(
                f"External data {location[:100]!r} is not a file in the model's folder."
            )
        data = file.read_bytes()
        if listed is not None and listed.get(relative.as_posix()) != sha256(data):
            raise IntegrityError(f"{relative} is not in the signed manifest as it is now.")
        files[location] = data
    return files


def model_file(artifact: bytes) -> bytes:
    """The model itself: the ONNX file of a bundle, or the artifact."""
    return OnnxBundle.unpack(artifact).model if artifact.startswith(BUNDLE_MAGIC) else artifact


def file_digests(artifact: bytes) -> set[str]:
    """The SHA-256 of each file the artifact was made from (a bundle: model and data)."""
    if not artifact.startswith(BUNDLE_MAGIC):
        return {sha256(artifact)}
    bundle = OnnxBundle.unpack(artifact)
    return {sha256(bundle.model), *(sha256(data) for data in bundle.data.values())}


def sha256(data: bytes) -> str:
    """The SHA-256 of ``data``, in hex, as digests are recorded."""
    return hashlib.sha256(data).hexdigest()
