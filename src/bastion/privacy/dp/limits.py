"""The ranges every differential-privacy number must be in before anything is charged.

A privacy parameter comes from a caller (a JSON body, a command line, a Python call), and
a float can be anything: ``5e-324`` (a positive, finite ε whose noise scale overflows),
``0``, a negative ε that would *refund* a budget, NaN (every comparison false), infinity,
``1e308``, a string, or ``True`` (which Python counts as 1). Each is refused here, with
:class:`~bastion.errors.InvalidInput` for a value out of range and ``TypeError`` for a
value that is not a real number (a ``bool`` included), before a query is built and so
before the ledger is touched.

The limits, and why:

- ε of one query: [1e-6, 10]. Below 1e-6 the answer is noise alone (scale ≥ 10⁶ per
  unit of sensitivity) and the arithmetic approaches overflow; above 10 a single query
  gives almost no privacy.
- ε of a budget or of one charge: [1e-6, 10⁶]; δ: [0, 1).
- query bounds: |bound| ≤ 10¹⁵, so that the clamped range, the grid step and the noise
  scale (bound / ε ≤ 10²¹) all stay finite floats; and each nonzero bound, and the span
  upper - lower, at least 10⁻⁶. A subnormal or tiny bound (``4.8245e-319``) makes the
  grid step ``bound / 2¹⁶`` round (or underflow to 0), so one row moves the integer sum
  by more grid steps than the noise is scaled for (the privacy loss exceeds the ε
  charged), or the step is 0 and the arithmetic divides by zero. From 10⁻⁶ up every
  step is a normal float and ``bound / step`` is exactly 2¹⁶.
"""

from __future__ import annotations

import math
from numbers import Real

from bastion.errors import InvalidInput

EPSILON_MIN = 1e-6
QUERY_EPSILON_MAX = 10.0
BUDGET_EPSILON_MAX = 1e6
BOUND_MAX = 1e15
BOUND_MIN = 1e-6  # smallest nonzero |bound|, and smallest span upper - lower


def check_real(value: object, *, name: str) -> float:
    """``value`` as a float if it is a real number (not a bool); NaN and ±inf pass here.

    Raises:
        TypeError: it is not an int or a float (a bool is not a number here).
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number")
    try:
        return float(value)
    except OverflowError:  # only an int can be too large for a float
        return math.inf if isinstance(value, int) and value > 0 else -math.inf


def check_range(value: object, *, name: str, low: float, high: float) -> float:
    """``value`` as a float, if it is a finite real number in ``[low, high]``.

    Raises:
        TypeError: it is not a real number.
        InvalidInput: it is NaN, infinite, or out of range (the message names the range).
    """
    number = check_real(value, name=name)
    if not (math.isfinite(number) and low <= number <= high):
        raise InvalidInput(f"{name} must be a finite number in [{low:g}, {high:g}].")
    return number


def check_epsilon(value: object, *, high: float = QUERY_EPSILON_MAX) -> float:
    """ε in ``[EPSILON_MIN, high]``.

    Raises:
        TypeError: not a real number.
        InvalidInput: NaN, infinite or out of range.
    """
    return check_range(value, name="epsilon", low=EPSILON_MIN, high=high)


def check_delta(value: object) -> float:
    """δ in ``[0, 1)``.

    Raises:
        TypeError: not a real number.
        InvalidInput: NaN, infinite, negative, or 1 and above.
    """
    number = check_range(value, name="delta", low=0.0, high=1.0)
    if number >= 1:
        raise InvalidInput("delta must be a finite number in [0, 1).")
    return number


def check_bound(value: object, *, name: str) -> float:
    """A query bound: 0, or a finite number with ``BOUND_MIN <= |bound| <= BOUND_MAX``.

    Raises:
        TypeError: not a real number.
        InvalidInput: NaN, infinite, beyond ±1e15, or nonzero and smaller than 1e-6.
    """
    number = check_range(value, name=name, low=-BOUND_MAX, high=BOUND_MAX)
    if number != 0 and abs(number) < BOUND_MIN:
        raise InvalidInput(
            f"{name} must be 0 or at least {BOUND_MIN:g} in magnitude (and at most {BOUND_MAX:g})."
        )
    return number + 0.0  # -0.0 becomes 0.0
