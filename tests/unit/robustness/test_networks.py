import numpy as np
import onnxruntime as ort
import pytest
import torch
from safetensors.torch import save_file

from bastion.robustness import Architecture, Domain, load_model, save_model, to_onnx


@pytest.fixture
def network():
    torch.manual_seed(0)
    return Architecture(64, (32, 16), 10).build().eval()


def test_a_saved_model_loads_with_the_same_outputs_and_metadata(network, tmp_path):
    """A safetensors round trip: same logits, architecture, domain and notes."""
    path = tmp_path / "m.safetensors"
    save_model(
        path, network, Architecture(64, (32, 16), 10), domain=Domain(0, 1), notes={"defense": "pgd"}
    )
    loaded = load_model(path)
    x = torch.rand(5, 64)
    assert torch.equal(loaded.model(x), network(x))
    assert loaded.architecture == Architecture(64, (32, 16), 10)
    assert loaded.domain == Domain(0.0, 1.0) and loaded.notes == {"defense": "pgd"}


def test_the_onnx_export_computes_the_same_function(network):
    """The label and probabilities match the network's argmax and softmax."""
    session = ort.InferenceSession(to_onnx(network), providers=["CPUExecutionProvider"])
    x = torch.rand(7, 64)
    label, probabilities = session.run(["label", "probabilities"], {"pixels": x.numpy()})
    with torch.no_grad():
        expected = network(x).softmax(dim=1).numpy()
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    np.testing.assert_array_equal(label, expected.argmax(axis=1))


def test_files_that_are_not_bastion_models_are_refused(tmp_path):
    """Foreign safetensors, garbage and mismatched tensors raise ValueError."""
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    for path in (foreign, garbage):
        with pytest.raises(ValueError, match="not a"):
            load_model(path)
    wrong = tmp_path / "wrong.safetensors"
    save_file(
        {"0.weight": torch.zeros(2, 2)},
        str(wrong),
        metadata={
            "format": "bastion-mlp/1",
            "architecture": "[64, [32], 10]",
            "domain": "[0, 1]",
            "notes": "{}",
        },
    )
    with pytest.raises(ValueError, match="architecture"):
        load_model(wrong)
