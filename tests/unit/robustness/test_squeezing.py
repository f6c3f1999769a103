import pytest
import torch

from bastion.errors import NotFittedError
from bastion.robustness import PGD, SqueezingDetector, Threat, adaptive_attack


@pytest.fixture(scope="module")
def detector(mlp, digit_set):
    return SqueezingDetector(mlp, domain=digit_set.domain, shape=digit_set.shape).fit(
        digit_set.x_train
    )


def test_the_threshold_gives_the_chosen_false_positive_rate(detector, digit_set):
    """Fitted for 5 % on training digits, it flags about 5 % of held-out clean digits."""
    assert 0.0 < float(detector.predict(digit_set.x_test).float().mean()) < 0.1


def test_plain_pgd_is_detected_and_the_adaptive_attack_is_honest_about_it(detector, mlp, digit_set):
    """Most PGD examples are flagged; the adaptive attack evades more and stays in its ball."""
    threat = Threat("linf", 0.1, digit_set.domain)
    x, y = digit_set.x_test, digit_set.y_test
    g = torch.Generator().manual_seed(0)
    plain = PGD(threat, steps=20).run(mlp, x, y, generator=g)
    adaptive = adaptive_attack(detector, threat, x, y, steps=30, generator=g)
    assert threat.contains(adaptive, x).all()
    with torch.no_grad():
        fooled = mlp(adaptive).argmax(dim=1) != y
    caught_plain = float(detector.predict(plain.x_adv)[plain.success].float().mean())
    caught_adaptive = float(detector.predict(adaptive)[fooled].float().mean())
    assert caught_plain > 0.8
    assert caught_adaptive < caught_plain


def test_the_median_squeezer_runs_on_images_and_rows(mlp, digit_set):
    """A median window works over the 8x8 layout and over a flat row."""
    for shape in ((8, 8), (1, 64)):
        squeezer = SqueezingDetector(mlp, domain=digit_set.domain, shape=shape, median=3)
        assert len(squeezer.squeezed_logits(digit_set.x_test[:5])) == 2
        assert squeezer.fit(digit_set.x_train[:200]).threshold_ is not None


def test_using_the_detector_before_fit_is_an_error(mlp, digit_set):
    """Using predict before fit raises NotFittedError (a ValueError too)."""
    squeezer = SqueezingDetector(mlp, domain=digit_set.domain, shape=digit_set.shape)
    with pytest.raises(NotFittedError):
        squeezer.predict(digit_set.x_test)
    with pytest.raises(ValueError, match="bits"):
        SqueezingDetector(mlp, domain=digit_set.domain, shape=digit_set.shape, bits=0)
