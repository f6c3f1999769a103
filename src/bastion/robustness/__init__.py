"""Adversarial robustness: attack models, harden them, and report honestly.

Train a digits MLP, attack it with PGD, and evaluate it with every attack::

    >>> import torch
    >>> from bastion.robustness import (
    ...     EvaluationPlan, PGD, Threat, TrainingPlan, evaluate, load_dataset, train)
    >>> data = load_dataset("digits")
    >>> model = train(data, TrainingPlan(epochs=3)).model
    >>> threat = Threat("linf", 0.3, data.domain)
    >>> result = PGD(threat, steps=10).run(
    ...     model, data.x_test, data.y_test, generator=torch.Generator().manual_seed(0))
    >>> result.success_rate > 0.9
    True
    >>> report = evaluate(model, data.x_test, data.y_test, domain=data.domain,
    ...                   plan=EvaluationPlan(linf=(0.1,), l2=(), samples=50))
    >>> report.verdict[0]
    'Clean accuracy: ...'

Attacks live in :mod:`bastion.robustness.attacks`; defenses in :mod:`~.training`
(adversarial training, TRADES, distillation), :mod:`~.squeezing` (detection),
:mod:`~.smoothing` (certification) and :mod:`~.sanitizer` (input sanitization).
"""

from bastion.robustness.attacks import (
    APGD,
    FGSM,
    PGD,
    AttackResult,
    CarliniWagnerL2,
    HopSkipJump,
    SquareAttack,
)
from bastion.robustness.data import DATASETS, Dataset, load_dataset
from bastion.robustness.evaluation import Evaluation, EvaluationPlan, Point, evaluate
from bastion.robustness.networks import Architecture, load_model, save_model, to_onnx
from bastion.robustness.smoothing import Certificate, SmoothedClassifier
from bastion.robustness.squeezing import SqueezingDetector, adaptive_attack
from bastion.robustness.targets import (
    Predictor,
    QueryCounter,
    linear_module,
    numpy_predictor,
    scores_of,
)
from bastion.robustness.threat import Domain, Threat
from bastion.robustness.training import DEFENSES, TrainingPlan, train

__all__ = [
    "APGD",
    "DATASETS",
    "DEFENSES",
    "FGSM",
    "PGD",
    "Architecture",
    "AttackResult",
    "CarliniWagnerL2",
    "Certificate",
    "Dataset",
    "Domain",
    "Evaluation",
    "EvaluationPlan",
    "HopSkipJump",
    "Point",
    "Predictor",
    "QueryCounter",
    "SmoothedClassifier",
    "SquareAttack",
    "SqueezingDetector",
    "Threat",
    "TrainingPlan",
    "adaptive_attack",
    "evaluate",
    "linear_module",
    "load_dataset",
    "load_model",
    "numpy_predictor",
    "save_model",
    "scores_of",
    "to_onnx",
    "train",
]
