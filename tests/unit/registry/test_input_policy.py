import numpy as np
import pytest

from bastion.errors import InvalidInput
from bastion.registry import InputPolicy


def test_the_default_passes_everything_through():
    """No sanitizer: the very same array comes back."""
    x = np.array([[5.0, -3.0]], dtype=np.float32)
    assert InputPolicy().apply(x) is x


def test_clip_and_quantize_snap_values_into_the_domain():
    """Values are clamped, then rounded to the nearest of `levels` evenly spaced values."""
    x = np.array([[-1.0, 0.2, 0.49, 0.51, 2.0]], dtype=np.float32)
    out = InputPolicy(clip=(0.0, 1.0), levels=3).apply(x)
    assert out.dtype == np.float32 and out.tolist() == [[0.0, 0.0, 0.5, 0.5, 1.0]]


def test_the_median_filter_removes_isolated_spikes():
    """A lone bright pixel on an 8x8 image, or in a row, is smoothed away; edges stay."""
    image = np.zeros((1, 64), dtype=np.float32)
    image[0, 27] = 1.0
    assert InputPolicy(median=3, image=(8, 8)).apply(image).max() == 0.0
    row = np.array([[0, 0, 1, 0, 0, 1, 1, 1]], dtype=np.float64)
    assert InputPolicy(median=3).apply(row).tolist() == [[0, 0, 0, 0, 0, 1, 1, 1]]


def test_bounds_refuse_values_outside_the_range_without_echoing_them():
    """A value outside the declared range is a 400 that counts, never shows, the values."""
    policy = InputPolicy(bounds=(0.0, 1.0))
    inside = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    assert policy.apply(inside).tolist() == inside.tolist()
    with pytest.raises(
        InvalidInput, match=r"2 input values lie outside the model's range \[0, 1\]"
    ) as caught:
        policy.apply(np.array([[-0.25, 0.5, 7.5]], dtype=np.float32))
    assert "7.5" not in caught.value.public_message


def test_integer_inputs_are_left_alone():
    """Only floating-point tensors are sanitized."""
    ids = np.array([[7, 9]], dtype=np.int64)
    assert InputPolicy(clip=(0.0, 1.0)).apply(ids) is ids


def test_a_wrong_image_layout_is_a_clear_input_error():
    """Inputs that do not fill the declared image raise InvalidInput."""
    with pytest.raises(InvalidInput, match="8x8"):
        InputPolicy(median=3, image=(8, 8)).apply(np.zeros((1, 10), dtype=np.float32))


@pytest.mark.parametrize(
    "bad",
    [
        {"clip": (1.0, 0.0)},
        {"levels": 4},
        {"clip": (0.0, 1.0), "levels": 1},
        {"median": 2},
        {"image": (0, 8)},
        {"bounds": (1.0, 0.0)},
    ],
)
def test_contradictions_are_refused(bad):
    """Empty ranges, quantizing without a range, even windows and empty images raise."""
    with pytest.raises(ValueError, match=r"clip|levels|median|image|bounds"):
        InputPolicy(**bad)


def test_the_json_form_round_trips():
    """to_json / from_json are inverse; None (older versions) is the pass-through policy."""
    policy = InputPolicy(clip=(-1.0, 1.0), levels=16, median=3, image=(4, 4), bounds=(-2.0, 2.0))
    assert InputPolicy.from_json(policy.to_json()) == policy
    assert InputPolicy.from_json(None) == InputPolicy()
