"""PRADA against a real extraction attack on the digits model, and against benign clients."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.linear_model import LogisticRegression

from bastion.monitor import Prada
from bastion.samples import DIGITS_INPUT


@pytest.fixture(scope="module")
def predict(digits):
    session = ort.InferenceSession(digits.onnx)
    return lambda rows: session.run(["label"], {DIGITS_INPUT: np.asarray(rows, np.float32)})[0]


def jacobian_attack(predict, seeds, *, rounds=6, step=0.1, rng):
    """Papernot et al. (2017): grow a substitute's training set along its Jacobian signs.

    Yields (batch of queries) per round, as an attacker would send them.
    """
    known = list(seeds)
    labels = list(predict(known))
    yield known, labels
    for _ in range(rounds):
        if len(set(labels)) > 1:
            substitute = LogisticRegression(max_iter=500).fit(np.array(known), labels)
            classes = list(substitute.classes_)
            weights = substitute.coef_
            grads = [
                weights[classes.index(c)] if weights.shape[0] > 1 else weights[0] for c in labels
            ]
        else:
            grads = [rng.normal(size=len(known[0])) for _ in known]
        fresh = [
            np.clip(x + step * np.sign(g), 0, 1).astype(np.float32)
            for x, g in zip(known, grads, strict=True)
        ]
        fresh_labels = list(predict(fresh))
        yield fresh, fresh_labels
        known += fresh
        labels += fresh_labels


def test_prada_flags_a_jacobian_augmentation_attack_within_a_few_hundred_queries(digits, predict):
    """The substitute-model attack is caught well before 300 queries, for several seeds."""
    for seed in range(3):
        rng = np.random.default_rng(seed)
        seeds = digits.images[rng.choice(len(digits.images), 10, replace=False)]
        detector, sent, caught_at = Prada(), 0, None
        for batch, labels in jacobian_attack(predict, seeds, rng=rng):
            for row, label in zip(batch, labels, strict=True):
                sent += 1
                if detector.observe(row, int(label)) and caught_at is None:
                    caught_at = sent
            if caught_at is not None or sent > 600:
                break
        assert caught_at is not None and caught_at <= 300, (seed, caught_at, detector.statistic_)


def test_benign_replays_raise_no_alert(digits, predict):
    """Several clients replaying held-out digits in any order never trip the detector."""
    labels = predict(digits.images)
    for client in range(5):
        order = np.random.default_rng(100 + client).permutation(len(digits.images))
        detector = Prada()
        flagged = [detector.observe(digits.images[i], int(labels[i])) for i in order]
        assert not any(flagged), (client, detector.statistic_)


def test_no_verdict_before_the_minimum_sample():
    """Fewer than min_queries distances never raise an alert."""
    detector = Prada(min_queries=100)
    assert not any(detector.observe(np.full(4, i, float), 0) for i in range(50))
