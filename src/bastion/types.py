"""Type aliases shared by several concerns."""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], float]
"""Returns the current time as seconds since the epoch (``time.time`` in production)."""
