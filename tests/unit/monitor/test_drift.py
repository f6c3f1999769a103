"""Input drift with Evidently's default tests: a shifted stream drifts, a fresh sample does not."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.monitor import DriftDetector


@pytest.mark.parametrize("reference_rows", [600, 3000], ids=["ks", "wasserstein"])
def test_shifted_inputs_drift_and_held_out_ones_do_not(reference_rows):
    """A held-out sample of the same distribution passes; a shifted one is flagged."""
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(reference_rows, 8))
    detector = DriftDetector(reference)
    assert detector.method == ("ks" if reference_rows <= 1000 else "wasserstein")
    held_out = detector.check(rng.normal(size=(300, 8)))
    shifted = detector.check(rng.normal(loc=0.6, size=(300, 8)))
    assert not held_out.drifted and held_out.max_psi < 0.2
    assert shifted.drifted and shifted.drifted_features == 8 and shifted.max_psi > 0.2


def test_digits_drift_when_the_images_darken(digits):
    """Held-out digits match the training reference; inverted images do not."""
    reference, held_out = digits.images[:300], digits.images[300:]
    detector = DriftDetector(reference)
    assert not detector.check(held_out).drifted
    assert detector.check(1.0 - held_out).drifted


def test_bad_shapes_are_refused():
    """References and windows must be 2-D with the same features."""
    with pytest.raises(ValueError, match="2-D"):
        DriftDetector(np.zeros(5))
    with pytest.raises(ValueError, match="features"):
        DriftDetector(np.zeros((5, 2))).check(np.zeros((5, 3)))
