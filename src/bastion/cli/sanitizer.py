"""The input-sanitizer options, shared by `model register` and `robustness eval`."""

from __future__ import annotations

from typing import Annotated

import typer

from bastion.errors import InvalidInput
from bastion.registry import InputPolicy

Clip = Annotated[
    str | None,
    typer.Option(
        help="Sanitize: clamp every input value into LOW:HIGH, e.g. 0:1.", metavar="LOW:HIGH"
    ),
]
Levels = Annotated[
    int | None,
    typer.Option(help="Sanitize: quantize inputs to this many values of the --clip range.", min=2),
]
Median = Annotated[
    int | None,
    typer.Option(help="Sanitize: median filter of this odd width (over --image if given).", min=3),
]
Bounds = Annotated[
    str | None,
    typer.Option(
        help="Refuse (400) any request with a value outside LOW:HIGH, e.g. 0:1.",
        metavar="LOW:HIGH",
    ),
]
Image = Annotated[
    str | None,
    typer.Option(help="Lay each input out as HxW for --median, e.g. 8x8.", metavar="HxW"),
]


def input_policy(
    clip: str | None,
    levels: int | None,
    median: int | None,
    image: str | None,
    bounds: str | None = None,
) -> InputPolicy:
    """The sanitizer the options describe (pass-through when none is given).

    Raises:
        InvalidInput: an option is malformed or they contradict each other.
    """
    try:
        return InputPolicy(
            clip=_pair(clip, ":") if clip else None,
            levels=levels,
            median=median,
            image=_size(image) if image else None,
            bounds=_pair(bounds, ":") if bounds else None,
        )
    except ValueError as exc:
        raise InvalidInput(f"Invalid sanitizer: {exc}.") from None


def _pair(text: str, separator: str) -> tuple[float, float]:
    first, _, second = text.partition(separator)
    try:
        return float(first), float(second)
    except ValueError:
        raise InvalidInput(f"Expected two numbers as A{separator}B, got {text!r}.") from None


def _size(text: str) -> tuple[int, int]:
    height, width = _pair(text, "x")
    if not (height.is_integer() and width.is_integer()):
        raise InvalidInput(f"Expected whole numbers as HxW, got {text!r}.")
    return int(height), int(width)
