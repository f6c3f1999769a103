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
