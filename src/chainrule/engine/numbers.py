"""How plain numbers enter a graph: which objects count as real numbers, and how they become floats.

A `Value` holds a float; an operation takes Values and real numbers (int, float, bool, numpy scalars)
on either side. Anything else is refused with an error that names the operation and shows the
offending object, shortened (a huge int or a long string is not printed whole).
"""

from __future__ import annotations

import numbers
import sys
from typing import Any

from .layout import Node


def is_real(x: Any) -> bool:
    """Whether `x` is a real number: int, float, bool, or a numpy scalar of those kinds (not a Value)."""
    if isinstance(x, numbers.Real):
        return not isinstance(x, Node)
    # numpy.bool_ is not registered as numbers.Real; if numpy is not imported, x is not a numpy bool.
    np = sys.modules.get("numpy")
    return np is not None and isinstance(x, np.bool_)


def shown(x: Any) -> str:
    """`repr(x)` for an error message, shortened past 40 characters."""
    text = repr(x)
    return text if len(text) <= 40 else f"{text[:20]}...{text[-8:]} ({len(text)} characters)"


def to_float(x: Any, what: str) -> float:
    """`x` as a float if it is a real number (int, float, bool, numpy scalar); else a TypeError naming `what`.

    An int too large for a float is an OverflowError that shows the number shortened, not all its digits.
    """
    if type(x) is float:
        return x
    if is_real(x):
        try:
            return float(x)
        except OverflowError:
            raise OverflowError(
                f"{what}: {shown(x)} is too large for a float (at most about 1.8e308)"
            ) from None
    raise TypeError(f"{what} needs a real number, got {type(x).__name__}: {shown(x)}")


def as_float(x: Any) -> float | None:
    """A real number (int, bool, numpy scalar, ...) as a float; None if `x` is not one."""
    if type(x) is int and -(2**53) <= x <= 2**53:  # the common case, exactly representable
        return float(x)
    if not is_real(x):
        return None
    return to_float(x, "Value")


# Operands that are certainly not numbers. Python's own answer for them would be confusing (for
# `Value(2) * "ab"`, str's sequence repetition says "can't multiply sequence by non-int of type
# 'Value'"), so they get our error. Anything else unknown gets NotImplemented: e.g. a numpy array
# combines with a Value element by element in its own reflected operator.
NOT_NUMBERS = (str, bytes, bytearray, list, tuple, dict, set, frozenset, type(None))


def not_a_number(op: Any, x: Any) -> Any:
    """An operand of `op` that is not a number: a TypeError naming both, or NotImplemented for Python."""
    if isinstance(x, NOT_NUMBERS):
        raise TypeError(
            f"{op.name}: a Value combines with real numbers and Values, not {type(x).__name__}: {x!r}"
        )
    return NotImplemented
