"""What a model receives: the input sanitizer the validate stage applies.

Sanitizing squeezes away part of what an attacker controls: ``bounds`` refuses a request
with any value outside the model's range (400), ``clip`` clamps every value into
the model's domain, ``levels`` quantizes it to that many evenly spaced values of the domain,
and ``median`` smooths each input with a median filter of that (odd) width, over the
``image`` layout (height, width) when one is given, else along the row. It is applied to
every floating-point input, after the checks of the signature and before the model.

>>> import numpy as np
>>> policy = InputPolicy(clip=(0.0, 1.0), levels=5)
>>> policy.apply(np.array([[-0.3, 0.1, 0.62, 1.7]], dtype=np.float32)).tolist()
[[0.0, 0.0, 0.5, 1.0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from bastion.errors import InvalidInput


@dataclass(frozen=True)
class InputPolicy:
    """The sanitizer of one model version; the default passes inputs through unchanged."""

    clip: tuple[float, float] | None = None
    levels: int | None = None
    median: int | None = None
    image: tuple[int, int] | None = None
    bounds: tuple[float, float] | None = None  # refuse (400) inputs with a value outside

    def __post_init__(self) -> None:
        if self.bounds is not None and not self.bounds[0] <= self.bounds[1]:
            raise ValueError("bounds needs low <= high")
        if self.clip is not None and not self.clip[0] < self.clip[1]:
            raise ValueError("clip needs low < high")
        if self.levels is not None and (self.levels < 2 or self.clip is None):  # noqa: PLR2004
            raise ValueError("levels must be at least 2 and needs clip (the range to quantize)")
        if self.median is not None and (self.median < 3 or self.median % 2 == 0):  # noqa: PLR2004
            raise ValueError("median must be an odd window width of at least 3")
        if self.image is not None and min(self.image) < 1:
            raise ValueError("image needs a positive height and width")

    @property
    def is_identity(self) -> bool:
        """True when the policy changes nothing."""
        return self.clip is None and self.median is None and self.bounds is None

    def apply(self, array: NDArray[Any]) -> NDArray[Any]:
        """The sanitized copy of a batch (the first axis is the batch).

        Raises:
            InvalidInput: a value lies outside ``bounds``, or the inputs do not fit the
                declared image layout.
        """
        if self.is_identity or not np.issubdtype(array.dtype, np.floating):
            return array
        if self.bounds is not None:
            low, high = self.bounds
            outside = int(np.count_nonzero((array < low) | (array > high)))
            if outside:
                raise InvalidInput(
                    f"{outside} input values lie outside the model's range [{low:g}, {high:g}]."
                )
        out = array
        if self.median is not None:
            out = self._smooth(out)
        if self.clip is not None:
            low, high = self.clip
            out = np.clip(out, low, high)
            if self.levels is not None:
                steps = self.levels - 1
                out = low + np.round((out - low) / (high - low) * steps) / steps * (high - low)
        return out.astype(array.dtype, copy=False)

    def _smooth(self, array: NDArray[Any]) -> NDArray[Any]:
        rows = array.reshape(len(array), -1)
        height, width = self.image or (1, rows.shape[1])
        if height * width != rows.shape[1]:
            raise InvalidInput(
                f"Inputs have {rows.shape[1]} values; the model expects {height}x{width} images."
            )
        k, pad = int(self.median or 1), int(self.median or 1) // 2
        images = rows.reshape(-1, height, width)
        if height == 1:
            padded = np.pad(images, ((0, 0), (0, 0), (pad, pad)), mode="edge")
            windows = sliding_window_view(padded, k, axis=2)
        else:
            padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
            windows = sliding_window_view(padded, (k, k), axis=(1, 2)).reshape(*images.shape, k * k)
        smoothed: NDArray[Any] = np.median(windows, axis=-1).reshape(array.shape)
        return smoothed

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly form, as stored in the registry."""
        return {
            "clip": list(self.clip) if self.clip is not None else None,
            "levels": self.levels,
            "median": self.median,
            "image": list(self.image) if self.image is not None else None,
            "bounds": list(self.bounds) if self.bounds is not None else None,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> InputPolicy:
        """Inverse of :meth:`to_json`; ``None`` (a version from before sanitizers) passes all."""
        if not value:
            return cls()
        clip, image, bounds = value.get("clip"), value.get("image"), value.get("bounds")
        return cls(
            clip=(float(clip[0]), float(clip[1])) if clip is not None else None,
            levels=value.get("levels"),
            median=value.get("median"),
            image=(int(image[0]), int(image[1])) if image is not None else None,
            bounds=(float(bounds[0]), float(bounds[1])) if bounds is not None else None,
        )
