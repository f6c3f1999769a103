"""scikit-learn estimators saved with skops, joblib and pickle, served from a bubblewrap jail."""

from __future__ import annotations

import pickle
import ssl

import httpx
import numpy as np
import pytest

from bastion.registry import OutputPolicy
from bastion.serving import ServerProcess, free_port
from bastion.settings import Settings
from bastion.workspace import Workspace
from tests.integration.conftest import access_token

PASSPHRASE = "estimator test passphrase"
SAVED = {"skops": "iris.skops", "joblib": "iris.joblib", "pickle": "iris.pkl"}


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    import joblib
    import skops.io
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    x, y = load_iris(return_X_y=True)
    estimator = RandomForestClassifier(n_estimators=20, random_state=0).fit(x, y)
    folder = tmp_path_factory.mktemp("estimators")
    skops.io.dump(estimator, folder / SAVED["skops"])
    joblib.dump(estimator, folder / SAVED["joblib"], compress=3)
    (folder / SAVED["pickle"]).write_bytes(pickle.dumps(estimator, protocol=5))
    return estimator, x, folder


@pytest.mark.parametrize("saved", list(SAVED))
def test_an_estimator_answers_through_the_sandboxed_gateway(tmp_path, iris, saved):
    """Registration loads it in a jail (never in the registering process); the gateway too."""
    estimator, x, folder = iris
    home, port = tmp_path / "ws", free_port()
    workspace = Workspace.create(Settings(home=home, port=port, passphrase=PASSPHRASE), force=False)
    model = workspace.registry.register(
        folder / SAVED[saved], name="iris", version="1", output_policy=OutputPolicy()
    )
    assert model.format == ("skops" if saved == "skops" else "pickle")
    analyst = workspace.principals.add("ana", role="analyst", attributes={})
    env = {"BASTION_PASSPHRASE": PASSPHRASE}
    with ServerProcess(home=home, port=port, log=tmp_path / "server.log", env=env) as server:
        context = ssl.create_default_context(cafile=server.ca)
        with httpx.Client(base_url=server.url, verify=context, timeout=60) as http:
            headers = {"Authorization": f"Bearer {access_token(http, analyst)}"}
            rows = x[::15]
            tensor = {"name": "input", "shape": list(rows.shape), "datatype": "FP64"}
            body = {"inputs": [tensor | {"data": rows.ravel().tolist()}]}
            answer = http.post("/v2/models/iris/infer", headers=headers, json=body)
            wrong = http.post("/v2/models/iris/infer", headers=headers, json={"inputs": [
                tensor | {"shape": [1, 3], "data": [0.0, 0.0, 0.0]}]})  # fmt: skip
            metadata = http.get("/v2/models/iris", headers=headers).json()
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert outputs["label"]["data"] == estimator.predict(rows).tolist()
    served = np.array(outputs["probabilities"]["data"]).reshape(len(rows), 3)
    assert np.allclose(served, estimator.predict_proba(rows))
    assert wrong.status_code == 400  # the estimator's own signature is enforced
    assert metadata["platform"] == f"sklearn_{model.format}"
    workspace.close()
