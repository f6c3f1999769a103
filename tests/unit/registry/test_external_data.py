"""ONNX models with external data files: bundled at registration, confined to their folder."""

import asyncio
import hashlib
import time

import numpy as np
import onnx
import pytest
import sqlalchemy as sa
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import convert_model_to_external_data

from bastion.crypto.keys import SigningKey
from bastion.errors import IntegrityError, InvalidInput
from bastion.registry import ModelRegistry, OutputPolicy
from bastion.registry.manifest import build_manifest, sign_manifest
from bastion.sandbox import Jail, SandboxLimits, WorkerPool
from bastion.sandbox.models import OnnxBundle, load
from bastion.storage import tables

WEIGHTS = np.arange(12, dtype=np.float32).reshape(3, 4)


def save_with_external_data(folder, location="weights.bin"):
    """A MatMul by WEIGHTS saved as model.onnx, its weights in ``location`` (relative)."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [-1, 4])],
        [numpy_helper.from_array(WEIGHTS, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    convert_model_to_external_data(model, location=location, size_threshold=0)
    (folder / location).parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, folder / "model.onnx")
    return folder / "model.onnx"


def rename_location(path, location):
    """Point the model's external tensor at ``location`` (the file is left where it is)."""
    model = onnx.load_model(path, load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    path.write_bytes(model.SerializeToString())


@pytest.fixture
def registry(database, blobs):
    return ModelRegistry(database=database, blobs=blobs, clock=time.time)


def register(registry, path, **extra):
    return registry.register(path, name="m", version=None, output_policy=OutputPolicy(), **extra)


@pytest.mark.parametrize("location", ["weights.bin", "data/weights.bin"])
def test_a_model_with_external_data_registers_with_its_data_and_runs(registry, tmp_path, location):
    """The data file travels with the model (encrypted, one artifact) and the model runs."""
    path = save_with_external_data(tmp_path / "model", location)
    model = register(registry, path)
    artifact = registry.load_artifact(model)
    bundle = OnnxBundle.unpack(artifact)
    assert list(bundle.data) == [location]
    assert bundle.data[location] == (tmp_path / "model" / location).read_bytes()
    x = np.ones((2, 3), dtype=np.float32)
    (y,) = load(artifact).run(["y"], {"x": x})
    assert np.array_equal(y, x @ WEIGHTS)
    with registry._db.transaction() as db:
        stored = b"".join(db.execute(sa.select(tables.blobs.c.data)).scalars())
    assert WEIGHTS.tobytes() not in stored  # the weights are encrypted at rest too


def test_locations_outside_the_folder_are_refused(registry, tmp_path):
    """Upward, absolute, linked and missing locations are refused before anything is read."""
    path = save_with_external_data(tmp_path / "model")
    outside = tmp_path / "outside.bin"
    outside.write_bytes((tmp_path / "model" / "weights.bin").read_bytes())
    (tmp_path / "model" / "link.bin").symlink_to(outside)
    for location in ["../outside.bin", str(outside), "link.bin", "missing.bin"]:
        rename_location(path, location)
        with pytest.raises(InvalidInput):
            register(registry, path)
    assert registry.list() == []


def test_a_bundle_runs_in_the_jail_from_memory(registry, tmp_path):
    """The jailed worker, which can open no file of the model, runs it from the bundle."""
    model = register(registry, save_with_external_data(tmp_path / "model"))
    artifact = registry.load_artifact(model)
    pool = WorkerPool(model, jail=Jail(limits=SandboxLimits()), artifact=lambda: artifact, size=1)

    async def run():
        try:
            return await pool.run({"x": np.eye(3, dtype=np.float32)}, ["y"])
        finally:
            pool.close()

    assert np.array_equal(asyncio.run(run())["y"], WEIGHTS)


def test_signed_data_files_are_checked_at_registration_and_every_load(database, blobs, tmp_path):
    """Each data file must be in the signed manifest: when registered and at every load."""
    folder = tmp_path / "model"
    path = save_with_external_data(folder)
    key = SigningKey.generate(tmp_path / "k.pem")
    manifest = sign_manifest(build_manifest(folder, name="m", owner="ml", created_at=0), key)
    registry = ModelRegistry(
        database=database,
        blobs=blobs,
        clock=time.time,
        trusted_signers=lambda: {key.kid: key.public_key},
    )
    model = register(registry, path, manifest=manifest)
    assert OnnxBundle.unpack(registry.load_artifact(model)).data  # verified, data and all
    # Someone with the database swaps in other weights and fixes up the recorded digest.
    zeros = np.zeros(12, np.float32).tobytes()
    forged = OnnxBundle(model=path.read_bytes(), data={"weights.bin": zeros}).pack()
    with database.transaction() as db:
        blob = (tables.blobs.c.namespace == "model") & (tables.blobs.c.name == model.ref)
        db.execute(tables.blobs.delete().where(blob))
        db.execute(tables.models.update().values(sha256=hashlib.sha256(forged).hexdigest()))
    blobs.put("model", model.ref, forged)
    with pytest.raises(IntegrityError) as refused:
        registry.load_artifact(registry.get("m"))
    assert "manifest" in refused.value.detail
    (folder / "weights.bin").write_bytes(zeros)  # changed after signing
    with pytest.raises(IntegrityError):
        registry.register(
            path, name="m", version="2", output_policy=OutputPolicy(), manifest=manifest
        )
