"""A scikit-learn estimator saved with skops, registered and served from a bubblewrap jail."""

from __future__ import annotations

import ssl

import httpx
import numpy as np
import pytest

from bastion.registry import OutputPolicy
from bastion.serving import ServerProcess, free_port
from bastion.settings import Settings
from bastion.workspace import Workspace
from tests.integration.conftest import access_token

PASSPHRASE = "skops test passphrase"


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    import skops.io
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    x, y = load_iris(return_X_y=True)
    estimator = RandomForestClassifier(n_estimators=20, random_state=0).fit(x, y)
    path = tmp_path_factory.mktemp("skops") / "iris.skops"
    skops.io.dump(estimator, path)
    return estimator, x, path


def test_a_skops_estimator_answers_through_the_sandboxed_gateway(tmp_path, iris):
    """Registration loads it in a jail (never in the registering process); the gateway too."""
    estimator, x, path = iris
    home, port = tmp_path / "ws", free_port()
    workspace = Workspace.create(Settings(home=home, port=port, passphrase=PASSPHRASE), force=False)
    model = workspace.registry.register(
        path, name="iris", version="1", output_policy=OutputPolicy()
    )
    assert model.format == "skops"
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
    assert metadata["platform"] == "sklearn_skops"
    workspace.close()
