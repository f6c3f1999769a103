"""Adversarial attacks: white box on differentiable models, black box on predict functions.

Every attack stays inside its :class:`~bastion.robustness.threat.Threat` (the ε-ball and the
input domain) and returns an :class:`AttackResult`::

    >>> import torch
    >>> from bastion.robustness import Domain, Threat
    >>> from bastion.robustness.attacks import PGD
    >>> model = torch.nn.Linear(4, 3)
    >>> x, y = torch.rand(8, 4), torch.zeros(8, dtype=torch.long)
    >>> result = PGD(Threat("linf", 0.1, Domain(0, 1)), steps=5).run(
    ...     model, x, y, generator=torch.Generator().manual_seed(0))
    >>> bool(((result.x_adv - x).abs() <= 0.1 + 1e-6).all())
    True
"""

from bastion.robustness.attacks.cw import CarliniWagnerL2
from bastion.robustness.attacks.gradient import APGD, FGSM, PGD
from bastion.robustness.attacks.hopskipjump import HopSkipJump
from bastion.robustness.attacks.result import LOSSES, Attack, AttackResult, Loss, attack_loss
from bastion.robustness.attacks.square import SquareAttack

__all__ = [
    "APGD",
    "FGSM",
    "LOSSES",
    "PGD",
    "Attack",
    "AttackResult",
    "CarliniWagnerL2",
    "HopSkipJump",
    "Loss",
    "SquareAttack",
    "attack_loss",
]
