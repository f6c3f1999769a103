import numpy as np
import pytest

from bastion.robustness import Dataset, load_dataset


def test_digits_are_scaled_and_split(digit_set):
    """1,797 digits in [0, 1], 8x8, split 1,347 / 450 with every class in both."""
    assert (len(digit_set.x_train), len(digit_set.x_test)) == (1347, 450)
    assert digit_set.shape == (8, 8) and digit_set.features == 64 and digit_set.classes == 10
    assert float(digit_set.x_train.min()) == 0.0 and float(digit_set.x_train.max()) == 1.0


def test_mnist1d_is_generated_locally_never_downloaded(monkeypatch):
    """MNIST-1D comes from make_dataset; any network call would fail the test."""
    import requests

    def no_network(*args, **kwargs):
        raise AssertionError("MNIST-1D tried the network")

    monkeypatch.setattr(requests, "get", no_network)
    data = load_dataset("mnist1d")
    assert data.shape == (1, 40) and (len(data.x_train), len(data.x_test)) == (4000, 1000)
    assert (
        data.domain.low <= float(data.x_train.min())
        and float(data.x_train.max()) <= data.domain.high
    )


def test_an_npz_file_works_and_a_bad_one_says_why(tmp_path):
    """x_test/y_test (and optional bounds) load; missing arrays and pickles are refused."""
    path = tmp_path / "mine.npz"
    np.savez(
        path,
        x_test=np.random.default_rng(0).random((5, 3)),
        y_test=np.arange(5) % 2,
        low=0.0,
        high=1.0,
    )
    data = Dataset.from_npz(path)
    assert (
        data.features == 3 and data.classes == 2 and (data.domain.low, data.domain.high) == (0, 1)
    )
    np.savez(tmp_path / "bad.npz", x=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="x_test"):
        Dataset.from_npz(tmp_path / "bad.npz")
    np.savez(
        tmp_path / "pickled.npz", x_test=np.array([{"a": 1}], dtype=object), y_test=np.zeros(1)
    )
    with pytest.raises(ValueError, match="allow_pickle"):
        Dataset.from_npz(tmp_path / "pickled.npz")


def test_unknown_datasets_are_refused():
    """Only the named datasets exist."""
    with pytest.raises(ValueError, match="digits"):
        load_dataset("imagenet")  # type: ignore[arg-type]
