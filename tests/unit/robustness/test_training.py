import pytest
import torch
from art.defences.trainer import AdversarialTrainer

from bastion.robustness import DEFENSES, PGD, Threat, TrainingPlan, train
from bastion.robustness.networks import Architecture
from bastion.robustness.training import _clean, _Loop
from tests.unit.robustness.peers import art_pgd

EPS = 0.1


def accuracy(model, x, y):
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def robust_accuracy(model, data, steps=20):
    attack = PGD(Threat("linf", EPS, data.domain), steps=steps)
    result = attack.run(model, data.x_test, data.y_test, generator=torch.Generator().manual_seed(0))
    return 1 - result.success_rate


@pytest.mark.parametrize("defense", DEFENSES)
def test_every_defense_trains_a_usable_model(defense, digit_set):
    """Each defense reaches over 85 % clean accuracy on digits in a few epochs."""
    plan = TrainingPlan(
        defense=defense, epochs=4, learning_rate=1e-2 if defense == "distillation" else 1e-3
    )
    trained = train(digit_set, plan)
    assert accuracy(trained.model, digit_set.x_test, digit_set.y_test) > 0.85
    assert len(trained.epoch_seconds) == (8 if defense == "distillation" else 4)


def test_adversarial_training_beats_arts_adversarial_trainer(digit_set):
    """Same MLP, ε, PGD-10 inner attack and 10 epochs: TRADES and PGD-AT beat ART's trainer.

    ART's AdversarialTrainer runs as shipped (ratio 0.5 of adversarial examples per batch).
    """
    ours = {
        d: train(digit_set, TrainingPlan(defense=d, epsilon=EPS, epochs=10)).model
        for d in ("pgd", "trades")
    }
    torch.manual_seed(0)
    model = Architecture(64, (256, 256), 10).build()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    attack = art_pgd(model, eps=EPS, step=2.5 * EPS / 10, steps=10, restarts=1, optimizer=optimizer)
    classifier = attack.estimator
    AdversarialTrainer(classifier, attacks=attack).fit(
        digit_set.x_train.numpy(), digit_set.y_train.numpy(), nb_epochs=10, batch_size=64
    )
    theirs = robust_accuracy(model.eval(), digit_set)
    assert robust_accuracy(ours["pgd"], digit_set) > theirs
    assert robust_accuracy(ours["trades"], digit_set) > theirs


def test_adversarial_training_adds_robustness(mlp, digit_set):
    """PGD-AT keeps far more accuracy under PGD-20 than the undefended model."""
    defended = train(digit_set, TrainingPlan(defense="fgsm-rs", epsilon=EPS, epochs=10)).model
    assert robust_accuracy(defended, digit_set) > robust_accuracy(mlp, digit_set) + 0.25


def test_catastrophic_overfitting_stops_training_and_restores_the_best_epoch(digit_set):
    """When PGD accuracy collapses between epochs, the loop stops and keeps the best weights."""
    calls = []

    def sabotaged(model, x, y):
        calls.append(1)
        # After three epochs, climb the loss instead of descending it: robustness collapses.
        loss = _clean(model, x, y)
        return -loss if len(calls) > 3 * 22 else loss

    torch.manual_seed(0)
    plan = TrainingPlan(defense="fgsm-rs", epochs=10)
    generator = torch.Generator().manual_seed(0)
    watch = Threat("linf", 0.05, digit_set.domain)
    loop = _Loop(plan, digit_set, generator, None, watch=watch)
    run = loop.run(Architecture(64, (64,), 10).build(), sabotaged)
    assert run.stopped_early and len(run.epoch_seconds) < 10
    # The ascent drives accuracy to chance; the restored epoch is a working model.
    assert accuracy(run.model, digit_set.x_test, digit_set.y_test) > 0.7


def test_a_bad_plan_is_refused():
    """Unknown defenses and non-positive settings raise ValueError."""
    for bad in ({"defense": "magic"}, {"epochs": 0}, {"temperature": 0}, {"epsilon": -1}):
        with pytest.raises(ValueError, match=r"defense|at least|positive|non-negative"):
            TrainingPlan(**bad)
