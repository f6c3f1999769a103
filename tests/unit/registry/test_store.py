import time

import onnx
import pytest
import sqlalchemy as sa
from onnx import TensorProto, helper

from bastion.errors import Conflict, CryptoError, IntegrityError, InvalidInput, NotFound
from bastion.registry import (
    Budget,
    InputPolicy,
    ModelRegistry,
    ModelSignature,
    OutputPolicy,
    RobustnessClaim,
)
from bastion.storage import tables


@pytest.fixture
def registry(database, blobs):
    return ModelRegistry(database=database, blobs=blobs, clock=time.time)


def test_register_reads_the_signature(registry, digits_file):
    """Registration records the ONNX inputs and outputs in V2 terms."""
    model = registry.register(
        digits_file, name="digits", version=None, output_policy=OutputPolicy()
    )
    assert model.ref == "digits@1"
    assert [(t.name, t.datatype, t.shape) for t in model.signature.inputs] == [
        ("pixels", "FP32", (-1, 64))
    ]
    assert [t.name for t in model.signature.outputs] == ["label", "probabilities"]


def test_versions_count_up_and_are_immutable(registry, digits_file):
    """Versions default to the next number, and an existing version cannot be replaced."""
    policy = OutputPolicy()
    assert (
        registry.register(digits_file, name="d", version=None, output_policy=policy).version == "1"
    )
    assert (
        registry.register(digits_file, name="d", version=None, output_policy=policy).version == "2"
    )
    registry.register(digits_file, name="d", version="canary", output_policy=policy)
    with pytest.raises(Conflict, match="immutable"):
        registry.register(digits_file, name="d", version="2", output_policy=policy)
    assert registry.get("d").version == "canary"  # the newest registration
    assert registry.get("d", "1").version == "1"
    assert [m.version for m in registry.list()] == ["1", "2", "canary"]


def test_artifacts_are_encrypted_at_rest(registry, database, digits_file, digits):
    """The database holds ciphertext; the runner gets the exact registered bytes back."""
    model = registry.register(digits_file, name="d", version=None, output_policy=OutputPolicy())
    with database.transaction() as db:
        stored = db.execute(
            sa.select(tables.blobs.c.data).where(tables.blobs.c.namespace == "model")
        ).scalar_one()
    assert digits.onnx[:64] not in stored and b"pixels" not in stored
    assert registry.load_artifact(model) == digits.onnx


def test_swapped_or_tampered_artifacts_are_refused(registry, database, digits_file):
    """A ciphertext moved to another version, or edited, does not decrypt."""
    policy = OutputPolicy()
    one = registry.register(digits_file, name="d", version="1", output_policy=policy)
    registry.register(digits_file, name="d", version="2", output_policy=policy)
    with database.transaction() as db:
        stored = dict(db.execute(sa.select(tables.blobs.c.name, tables.blobs.c.data)).all())
        db.execute(
            tables.blobs.update().where(tables.blobs.c.name == "d@1").values(data=stored["d@2"])
        )
    with pytest.raises(CryptoError):
        registry.load_artifact(one)


def test_digest_mismatch_is_an_integrity_error(registry, database, digits_file):
    """If the recorded digest was changed, loading refuses the artifact."""
    model = registry.register(digits_file, name="d", version=None, output_policy=OutputPolicy())
    with database.transaction() as db:
        db.execute(tables.models.update().values(sha256="0" * 64))
    with pytest.raises(IntegrityError):
        registry.load_artifact(registry.get("d"))
    assert model.sha256 != "0" * 64


def test_not_onnx_is_refused(registry, tmp_path):
    """A file that is not ONNX gets a clear error."""
    path = tmp_path / "model.onnx"
    path.write_bytes(b"GIF89a, not a model")
    with pytest.raises(InvalidInput, match="not a valid ONNX model"):
        registry.register(path, name="x", version=None, output_policy=OutputPolicy())


def test_non_tensor_outputs_are_refused_with_a_hint(registry, tmp_path):
    """A ZipMap-style output is refused, with the converter option that avoids it."""
    seq = helper.make_tensor_sequence_value_info("out", TensorProto.FLOAT, None)
    graph = helper.make_graph(
        [helper.make_node("SequenceConstruct", ["x"], ["out"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [seq],
    )
    path = tmp_path / "seq.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(InvalidInput, match="zipmap"):
        registry.register(path, name="x", version=None, output_policy=OutputPolicy())


@pytest.mark.parametrize(
    ("element", "datatype"),
    [("BOOL", "BOOL"), ("UINT8", "UINT8"), ("UINT16", "UINT16"), ("UINT32", "UINT32"),
     ("UINT64", "UINT64"), ("INT8", "INT8"), ("INT16", "INT16"), ("INT32", "INT32"),
     ("INT64", "INT64"), ("FLOAT16", "FP16"), ("FLOAT", "FP32"), ("DOUBLE", "FP64")],
)  # fmt: skip
def test_each_onnx_element_type_reads_as_its_v2_datatype(element, datatype):
    """The registry's element-type numbers are onnx's: a model of each type reads right."""
    kind = getattr(TensorProto, element)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", kind, [-1, 2])],
        [helper.make_tensor_value_info("y", kind, [-1, 2])],
    )
    signature = ModelSignature.from_onnx(helper.make_model(graph))
    assert [spec.datatype for spec in signature.inputs + signature.outputs] == [datatype] * 2


@pytest.mark.parametrize(("name", "version"), [("", None), ("a/b", None), ("ok", "../x")])
def test_bad_names_and_versions(registry, digits_file, name, version):
    """Names and versions are checked before anything is stored."""
    with pytest.raises(InvalidInput):
        registry.register(digits_file, name=name, version=version, output_policy=OutputPolicy())


def test_unknown_model_and_version(registry, digits_file):
    """Unknown models and versions are NotFound with the name in the message."""
    with pytest.raises(NotFound, match="nope"):
        registry.get("nope")
    registry.register(digits_file, name="d", version=None, output_policy=OutputPolicy())
    with pytest.raises(NotFound, match="d@9"):
        registry.get("d", "9")


def test_output_policy_round_trips_and_checks_ranges():
    """Output policies serialize, and nonsense values are refused."""
    policy = OutputPolicy(top_k=3, round_digits=2, outputs=("label",))
    assert OutputPolicy.from_json(policy.to_json()) == policy
    with pytest.raises(ValueError, match="top_k"):
        OutputPolicy(top_k=0)
    with pytest.raises(ValueError, match="round_digits"):
        OutputPolicy(round_digits=12)


def test_sanitizer_and_robustness_claim_are_kept_with_the_version(registry, digits_file):
    """The input policy and robustness summary given at registration come back from get()."""
    policy = InputPolicy(clip=(0.0, 1.0), levels=4, median=3, image=(8, 8))
    claim = RobustnessClaim(
        0.97, (Budget("linf", 0.1, 0.8),), ("Clean accuracy: 97.0%.",), 450, "digits"
    )
    registry.register(
        digits_file,
        name="guarded",
        version=None,
        output_policy=OutputPolicy(),
        input_policy=policy,
        robustness=claim,
    )
    model = registry.get("guarded")
    assert model.input_policy == policy and model.robustness == claim
    plain = registry.register(digits_file, name="plain", version=None, output_policy=OutputPolicy())
    assert plain.input_policy.is_identity and plain.robustness is None


def test_scikit_learn_estimators_saved_with_skops_register_and_run(registry, tmp_path):
    """Told apart from ONNX by content; the signature comes from the fitted estimator."""
    import numpy as np
    import skops.io
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from bastion.sandbox.models import load

    x, y = load_iris(return_X_y=True)
    estimator = LogisticRegression(max_iter=500).fit(x, y)
    path = tmp_path / "iris.skops"
    skops.io.dump(estimator, path)
    model = registry.register(path, name="iris", version=None, output_policy=OutputPolicy())
    assert model.format == "skops"
    assert [(t.name, t.datatype, t.shape) for t in model.signature.inputs] == [
        ("input", "FP64", (-1, 4))
    ]
    assert [(t.name, t.shape) for t in model.signature.outputs] == [
        ("label", (-1,)), ("probabilities", (-1, 3))
    ]  # fmt: skip
    loaded = load(registry.load_artifact(model))
    labels, scores = loaded.run(["label", "probabilities"], {"input": x[:5]})
    assert labels.tolist() == estimator.predict(x[:5]).tolist()
    assert np.allclose(scores, estimator.predict_proba(x[:5]))


@pytest.mark.parametrize("save", ["pickle", "joblib", "joblib-zlib"])
def test_pickled_estimators_register_when_every_import_is_allowed(registry, tmp_path, save):
    """pickle.dump and joblib.dump (compressed or not) of a fitted estimator: format "pickle"."""
    import pickle

    import joblib
    import numpy as np
    from sklearn.datasets import load_iris
    from sklearn.ensemble import GradientBoostingClassifier

    from bastion.sandbox.models import load

    x, y = load_iris(return_X_y=True)
    estimator = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(x, y)
    path = tmp_path / "iris.bin"  # the name says nothing; the content decides
    if save == "pickle":
        path.write_bytes(pickle.dumps(estimator, protocol=5))
    else:
        joblib.dump(estimator, path, compress=3 if save == "joblib-zlib" else 0)
    model = registry.register(path, name="iris", version=None, output_policy=OutputPolicy())
    assert model.format == "pickle"
    assert [(t.name, t.shape) for t in model.signature.outputs] == [
        ("label", (-1,)), ("probabilities", (-1, 3))
    ]  # fmt: skip
    labels, scores = load(registry.load_artifact(model)).run(
        ["label", "probabilities"], {"input": x[:7]}
    )
    assert labels.tolist() == estimator.predict(x[:7]).tolist()
    assert np.allclose(scores, estimator.predict_proba(x[:7]))


def test_a_pickle_that_imports_anything_else_is_refused_before_loading(registry, tmp_path):
    from tests.unit.registry.test_scan import attack

    marker = tmp_path / "ran"
    path = tmp_path / "model.pkl"
    path.write_bytes(attack("os", "system", f"touch {marker}"))
    with pytest.raises(InvalidInput, match="does not scan clean"):
        registry.register(path, name="evil", version=None, output_policy=OutputPolicy())
    assert not marker.exists()


def test_tensor_files_and_other_pickles_are_not_taken_for_models(registry, tmp_path):
    """A state dict holds weights without the computation; a clean dict is no estimator."""
    import pickle

    import numpy as np
    import torch
    from safetensors.torch import save

    (tmp_path / "w.safetensors").write_bytes(save({"w": torch.zeros(2, 2)}))
    np.save(tmp_path / "w.npy", np.zeros((2, 2)))
    torch.save({"w": torch.zeros(2, 2)}, tmp_path / "zip.pt")
    torch.save(
        {"w": torch.zeros(2, 2)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False
    )
    for name in ("zip.pt", "legacy.pt", "w.safetensors", "w.npy"):
        with pytest.raises(InvalidInput, match="tensors without the model's computation"):
            registry.register(tmp_path / name, name="w", version=None, output_policy=OutputPolicy())
    archive = tmp_path / "arrays.npz"  # a clean zip archive, but no model
    np.savez(archive, w=np.zeros(3))
    with pytest.raises(InvalidInput, match="not a model Bastion serves"):
        registry.register(archive, name="z", version=None, output_policy=OutputPolicy())
    (tmp_path / "dict.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=4))
    with pytest.raises(InvalidInput, match="cannot load"):
        registry.register(
            tmp_path / "dict.pkl", name="d", version=None, output_policy=OutputPolicy()
        )
    assert registry.list() == []


def test_loading_a_skops_file_checks_what_skops_itself_would_construct():
    """The load does not rest on the registration scan: skops's own list meets the allow-list."""
    import fractions

    import skops.io

    from bastion.sandbox.models import load

    with pytest.raises(ValueError, match=r"fractions\.Fraction is not on the allow-list"):
        load(skops.io.dumps({"ratio": fractions.Fraction(1, 3)}))


def test_a_skops_file_that_does_not_scan_clean_is_refused_before_loading(registry, tmp_path):
    import json
    import zipfile

    schema = {"__class__": "system", "__module__": "os", "__loader__": "ObjectNode", "content": {}}
    path = tmp_path / "evil.skops"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    with pytest.raises(InvalidInput, match="does not scan clean"):
        registry.register(path, name="evil", version=None, output_policy=OutputPolicy())
