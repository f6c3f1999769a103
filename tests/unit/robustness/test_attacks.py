import math

import pytest
import torch
import torchattacks
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.robustness import (
    APGD,
    FGSM,
    PGD,
    CarliniWagnerL2,
    Domain,
    HopSkipJump,
    SquareAttack,
    Threat,
    scores_of,
)
from tests.unit.robustness.peers import art_pgd

LINF = Threat("linf", 0.1, Domain(0.0, 1.0))
L2 = Threat("l2", 1.0, Domain(0.0, 1.0))
WHITE = {
    "fgsm": FGSM(LINF),
    "pgd-linf": PGD(LINF, steps=10),
    "pgd-l2": PGD(L2, steps=10, restarts=2),
    "pgd-margin": PGD(LINF, steps=10, loss="margin"),
    "apgd-linf": APGD(LINF, steps=20),
    "apgd-l2-ce": APGD(L2, steps=20, loss="ce"),
    "cw": CarliniWagnerL2(L2, steps=30, search_steps=3),
}
BLACK = {
    "square": SquareAttack(LINF, queries=200, shape=(8, 8)),
    "square-1d": SquareAttack(LINF, queries=100),
    "hopskipjump": HopSkipJump(L2, iterations=5),
}


@pytest.mark.parametrize("name", [*WHITE, *BLACK])
def test_every_attack_stays_in_its_threat_and_reports_success_truthfully(
    name, mlp, digit_set, generator
):
    """x_adv is inside the ε-ball and the domain; success is exactly "the model is wrong"."""
    attack = WHITE.get(name) or BLACK[name]
    target = mlp if name in WHITE else scores_of(mlp)
    x, y = digit_set.x_test[:64], digit_set.y_test[:64]
    result = attack.run(target, x, y, generator=generator)
    assert result.x_adv.shape == x.shape
    assert attack.threat.contains(result.x_adv, x).all()
    with torch.no_grad():
        wrong = mlp(result.x_adv).argmax(dim=1) != y
    assert torch.equal(result.success, wrong)
    assert result.success.any(), "every attack fools the undefended model on some digits"
    if name in BLACK:
        assert result.queries > 0


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    epsilon=st.floats(0.01, 0.5),
    low=st.floats(-2.0, 0.0),
    width=st.floats(0.5, 3.0),
)
def test_attacks_respect_any_ball_and_domain(seed, epsilon, low, width):
    """On random linear models and inputs, no attack ever leaves its ball or domain."""
    torch.manual_seed(seed)
    domain = Domain(low, low + width)
    model = torch.nn.Linear(6, 4)
    g = torch.Generator().manual_seed(seed)
    x = low + width * torch.rand((10, 6), generator=g)
    y = torch.randint(0, 4, (10,), generator=g)
    for attack in (
        FGSM(Threat("linf", epsilon, domain)),
        PGD(Threat("linf", epsilon, domain), steps=3),
        PGD(Threat("l2", epsilon, domain), steps=3),
        APGD(Threat("linf", epsilon, domain), steps=5),
        CarliniWagnerL2(Threat("l2", epsilon, domain), steps=5, search_steps=2),
        SquareAttack(Threat("linf", epsilon, domain), queries=10),
        HopSkipJump(Threat("l2", epsilon, domain), iterations=2, initial_probes=10),
    ):
        target = scores_of(model) if isinstance(attack, SquareAttack | HopSkipJump) else model
        result = attack.run(target, x, y, generator=g)
        assert attack.threat.contains(result.x_adv, x).all(), attack


def test_pgd_at_a_large_budget_leaves_an_undefended_model_near_zero(mlp, digit_set, generator):
    """At L∞ ε = 0.3 on [0, 1] pixels, PGD-20 leaves under 2 % accuracy."""
    attack = PGD(Threat("linf", 0.3, digit_set.domain), steps=20)
    result = attack.run(mlp, digit_set.x_test, digit_set.y_test, generator=generator)
    assert 1 - result.success_rate < 0.02


def test_pgd_finds_at_least_as_many_as_torchattacks_and_art(mlp, digit_set, generator):
    """Same model, ε, step, steps and start: Bastion's PGD fools at least as many digits."""
    x, y = digit_set.x_test, digit_set.y_test
    eps, step, steps = 0.08, 0.02, 10
    ours = PGD(
        Threat("linf", eps, digit_set.domain), steps=steps, step_size=step, random_start=False
    )
    found = int(ours.run(mlp, x, y, generator=generator).success.sum())
    ta = torchattacks.PGD(mlp, eps=eps, alpha=step, steps=steps, random_start=False)
    art = art_pgd(mlp, eps=eps, step=step, steps=steps, restarts=0)
    from_ta, from_art = ta(x, y), torch.from_numpy(art.generate(x.numpy(), y=y.numpy()))
    with torch.no_grad():
        by_ta = int((mlp(from_ta).argmax(dim=1) != y).sum())
        by_art = int((mlp(from_art).argmax(dim=1) != y).sum())
    assert found >= by_ta and found >= by_art
    assert found > 0.3 * len(x)


def test_restarts_only_add_successes(mlp, digit_set):
    """More restarts never fool fewer rows (the same seed draws the same first start)."""
    threat = Threat("l2", 0.5, digit_set.domain)
    x, y = digit_set.x_test, digit_set.y_test
    once = PGD(threat, restarts=1).run(mlp, x, y, generator=torch.Generator().manual_seed(1))
    thrice = PGD(threat, restarts=3).run(mlp, x, y, generator=torch.Generator().manual_seed(1))
    assert bool((thrice.success | ~once.success).all())


def test_unbounded_carlini_wagner_fools_nearly_everything_with_small_perturbations(mlp, digit_set):
    """With ε = ∞, C&W finds an adversarial for almost every digit, closer than PGD's budget."""
    x, y = digit_set.x_test[:100], digit_set.y_test[:100]
    attack = CarliniWagnerL2(Threat("l2", math.inf, digit_set.domain), steps=100)
    result = attack.run(mlp, x, y)
    assert result.success_rate > 0.95
    assert float((result.x_adv - x).norm(dim=1)[result.success].median()) < 1.0


def test_label_only_access_is_enough_for_hopskipjump(mlp, digit_set, generator):
    """HopSkipJump works from one-hot labels alone and counts every query."""

    def labels_only(x):
        return torch.nn.functional.one_hot(scores_of(mlp)(x).argmax(dim=1), 10).float()

    x, y = digit_set.x_test[:20], digit_set.y_test[:20]
    result = HopSkipJump(Threat("l2", 1.5, digit_set.domain), iterations=10).run(
        labels_only, x, y, generator=generator
    )
    assert result.success_rate > 0.5 and result.queries > 20 * 100


@pytest.mark.parametrize(
    "make",
    [
        lambda: SquareAttack(L2),
        lambda: HopSkipJump(LINF),
        lambda: CarliniWagnerL2(LINF),
        lambda: PGD(LINF, steps=0),
        lambda: SquareAttack(LINF, p_init=0),
    ],
)
def test_attacks_refuse_a_threat_they_cannot_honour(make):
    """Norms an attack does not support, and empty budgets, raise ValueError."""
    with pytest.raises(ValueError, match=r"attack|at least"):
        make()
