"""The restricted unpickler: the allow-list enforced on what a pickle really imports."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest

from bastion.registry.scan import AllowList, load_pickle, scan_bytes
from tests.unit.registry.test_scan import FAMILIES, TRICKS, attack, program, stack_global, text

ALLOW_LIST_ERROR = "is not on the allow-list"


def _unsafe_imports(data: bytes) -> bool:
    return any(f.kind == "unsafe_global" for f in scan_bytes(data, name="x").findings)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(data, id=name)
        for name, data in [
            *((f"{family}-{i}", d) for family, ds in FAMILIES.items() for i, d in enumerate(ds)),
            *TRICKS.items(),
        ]
        if _unsafe_imports(data)
    ],
)
def test_every_import_the_scanner_refuses_the_loader_refuses_too(data):
    """The two halves agree, but the loader does not rely on the scanner: it asks the list.

    (A second pickle after the first is refused as trailing bytes: no loader would read it.)
    """
    with pytest.raises(pickle.UnpicklingError, match=f"{ALLOW_LIST_ERROR}|after the end"):
        load_pickle(data)


def test_attributes_are_not_planted_on_shared_classes():
    """BUILD on an allowed class would change it for every later use in the process."""
    from sklearn.linear_model import LogisticRegression

    cls = stack_global("sklearn.linear_model._logistic", "LogisticRegression")
    slots = b"N}" + text("predict") + text("planted") + b"s\x86"  # state (None, {...})
    with pytest.raises(pickle.UnpicklingError, match="plant attributes"):
        load_pickle(program(cls + slots + b"b"))
    assert callable(LogisticRegression.predict)


def test_nothing_runs_before_the_refusal(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(pickle.UnpicklingError, match=r"posix\.system"):
        load_pickle(attack("posix", "system", f"touch {marker}"))
    assert not marker.exists()


@pytest.mark.parametrize("joblib_reads", ["itself", "as before 1.6"])
def test_object_arrays_in_joblib_files_go_through_the_same_list(
    tmp_path, monkeypatch, joblib_reads
):
    """Joblib writes object arrays as nested pickles; their imports are checked as well.

    Whatever joblib does with them: before 1.6 it read them with a bare ``pickle.load``.
    """
    import joblib
    from joblib.numpy_pickle import NumpyArrayWrapper

    if joblib_reads == "as before 1.6":
        read_array = NumpyArrayWrapper.read_array

        def unrestricted(self, unpickler, ensure_native_byte_order):
            if self.dtype.hasobject:
                return pickle.load(unpickler.file_handle)  # noqa: S301 - the old behaviour
            return read_array(self, unpickler, ensure_native_byte_order)

        monkeypatch.setattr(NumpyArrayWrapper, "read_array", unrestricted)

    class Planted:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    buffer = io.BytesIO()
    joblib.dump({"names": np.array(["a", Planted()], dtype=object)}, buffer)
    with pytest.raises(pickle.UnpicklingError, match=ALLOW_LIST_ERROR):
        load_pickle(buffer.getvalue())
    assert not (tmp_path / "ran").exists()
    joblib.dump({"names": np.array(["a", "b"], dtype=object)}, buffer := io.BytesIO())
    assert load_pickle(buffer.getvalue())["names"].tolist() == ["a", "b"]


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("xz", 3), ("bz2", 3)])
def test_estimators_saved_with_joblib_load_and_predict_the_same(compress):
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    x, y = load_iris(return_X_y=True)
    estimator = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer, compress=compress)
    loaded = load_pickle(buffer.getvalue())
    assert np.array_equal(loaded.predict_proba(x), estimator.predict_proba(x))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_estimators_pickled_with_any_protocol_load(protocol):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    estimator = LogisticRegression(max_iter=500).fit(x, y)
    loaded = load_pickle(pickle.dumps(estimator, protocol=protocol))
    assert loaded.predict(x).tolist() == estimator.predict(x).tolist()


def test_persistent_ids_and_bombs_are_refused():
    class Persistent(pickle.Pickler):
        def persistent_id(self, obj):
            return "storage" if obj == "x" else None

    buffer = io.BytesIO()
    Persistent(buffer, protocol=4).dump(["x"])
    with pytest.raises(pickle.UnpicklingError):
        load_pickle(buffer.getvalue())
    import zlib

    bomb = zlib.compress(pickle.dumps(b"\0" * 50_000_000), 9)
    with pytest.raises(pickle.UnpicklingError, match="expands too much"):
        load_pickle(bomb)


def test_a_name_the_user_allowed_loads():
    data = pickle.dumps(io.BytesIO)
    with pytest.raises(pickle.UnpicklingError):
        load_pickle(data)
    assert load_pickle(data, allow=AllowList(frozenset({"_io.BytesIO"}))) is io.BytesIO
