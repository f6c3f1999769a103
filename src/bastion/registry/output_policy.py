"""What a model may reveal: the output policy the harden stage enforces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OutputPolicy:
    """Limits on model outputs, set at registration.

    ``top_k`` keeps the k largest scores per row of floating-point outputs and zeroes
    the rest; ``round_digits`` rounds floating-point outputs; ``outputs`` lists the
    only outputs clients may receive (for example just the label). The default
    passes everything through.
    """

    top_k: int | None = None
    round_digits: int | None = None
    outputs: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.top_k is not None and self.top_k < 1:
            raise ValueError("top_k must be at least 1")
        if self.round_digits is not None and not 0 <= self.round_digits <= 8:  # noqa: PLR2004
            raise ValueError("round_digits must be between 0 and 8")

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly form, as stored in the registry."""
        return {
            "top_k": self.top_k,
            "round_digits": self.round_digits,
            "outputs": list(self.outputs) if self.outputs is not None else None,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> OutputPolicy:
        """Inverse of :meth:`to_json`."""
        outputs = value.get("outputs")
        return cls(
            top_k=value.get("top_k"),
            round_digits=value.get("round_digits"),
            outputs=tuple(outputs) if outputs is not None else None,
        )
