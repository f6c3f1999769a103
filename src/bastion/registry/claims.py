"""Claims recorded with a model version: the summary of its robustness evaluation.

``bastion robustness eval`` writes ``robustness.json``; ``bastion model register
--robustness robustness.json`` keeps its summary with the version, so that reviewers (and
promotion checks) see what the model withstood without rerunning the attacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bastion.errors import InvalidInput


@dataclass(frozen=True)
class Budget:
    """The lowest accuracy any attack reached at one budget."""

    norm: str
    epsilon: float
    robust_accuracy: float


@dataclass(frozen=True)
class RobustnessClaim:
    """What an evaluation found: clean accuracy, worst case per budget, and the verdict."""

    clean_accuracy: float
    worst: tuple[Budget, ...]
    verdict: tuple[str, ...]
    samples: int
    dataset: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly form, as stored in the registry."""
        return {
            "clean_accuracy": self.clean_accuracy,
            "worst": [vars(b) for b in self.worst],
            "verdict": list(self.verdict),
            "samples": self.samples,
            "dataset": self.dataset,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> RobustnessClaim:
        """Read a stored claim, or the ``robustness.json`` an evaluation wrote.

        Raises:
            InvalidInput: it is not an evaluation summary.
        """
        try:
            worst = tuple(
                Budget(str(w["norm"]), float(w["epsilon"]), float(w["robust_accuracy"]))
                for w in body["worst"]
            )
            return cls(
                float(body["clean_accuracy"]),
                worst,
                tuple(str(line) for line in body["verdict"]),
                int(body["samples"]),
                str(body["dataset"]),
            )
        except (KeyError, TypeError, ValueError):
            raise InvalidInput(
                "The robustness file is not a report of `bastion robustness eval`."
            ) from None


@dataclass(frozen=True)
class PrivacyClaim:
    """How a model was trained with differential privacy, and the guarantee it has."""

    epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    max_grad_norm: float
    mechanism: str = "DP-SGD, Poisson sampling"
    accountant: str = "RDP (Mironov et al. 2019), converted as Balle et al. 2020"

    def __post_init__(self) -> None:
        # One spelling per value, so that a claim read back signs the same bytes.
        for name in ("epsilon", "delta", "noise_multiplier", "sample_rate", "max_grad_norm"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "steps", int(self.steps))

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly form, as written to privacy.json and the manifest."""
        return dict(vars(self))

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> PrivacyClaim:
        """Read a claim written by :meth:`to_json`.

        Raises:
            InvalidInput: it is not one.
        """
        try:
            return cls(
                epsilon=float(body["epsilon"]),
                delta=float(body["delta"]),
                noise_multiplier=float(body["noise_multiplier"]),
                sample_rate=float(body["sample_rate"]),
                steps=int(body["steps"]),
                max_grad_norm=float(body["max_grad_norm"]),
                mechanism=str(body["mechanism"]),
                accountant=str(body["accountant"]),
            )
        except (KeyError, TypeError, ValueError):
            raise InvalidInput("The privacy file is not a claim of `bastion dp train`.") from None
