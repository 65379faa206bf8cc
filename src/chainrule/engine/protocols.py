"""How a `Value` meets Python's and numpy's number protocols (mixed into `Value` as `NumberProtocols`).

- Comparisons look at the data (`v < 3`); equality stays identity, as in micrograd, so that nodes go
  into sets and dicts.
- `float(v)`, `int(v)` and `round(v)` are refused: they would silently drop the graph (and with them
  `math.tanh(v)` and friends), a gradient that quietly never arrives. `.data` and `.item()` say it.
- numpy's functions: its ufuncs (`np.tan(v)`) call the method of their name themselves; the ones
  written in Python (`np.sinc`) ask `__array_function__`, which runs the row of that name.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ..ops import TABLE

ONE_INPUT_METHODS = frozenset(op.method for op in TABLE if op.arity == 1)


def _data_of(x: Any) -> Any:
    return x.data if isinstance(x, NumberProtocols) else x


def _detached(kind: str) -> Callable[[Any], Any]:
    def convert(self: Any, *args: Any) -> Any:
        raise TypeError(
            f"{kind}() of {self!r} would detach it from the graph: use .data (or .item()) for the "
            "number, and Value methods (v.tanh(), v.exp(), ...) rather than math functions"
        )

    convert.__name__ = f"__{kind}__"
    return convert


class NumberProtocols:
    """Comparisons by data, refused conversions, `item()`, `+v`, and numpy's Python-level functions."""

    __slots__ = ()

    def __pos__(self) -> Any:
        return self

    def __lt__(self, other: Any) -> bool:
        return self.data < _data_of(other)  # type: ignore[attr-defined]

    def __le__(self, other: Any) -> bool:
        return self.data <= _data_of(other)  # type: ignore[attr-defined]

    def __gt__(self, other: Any) -> bool:
        return self.data > _data_of(other)  # type: ignore[attr-defined]

    def __ge__(self, other: Any) -> bool:
        return self.data >= _data_of(other)  # type: ignore[attr-defined]

    __float__ = _detached("float")
    __int__ = _detached("int")
    __round__ = _detached("round")

    def item(self) -> float:
        """The data as a float (PyTorch's spelling of `.data`)."""
        return self.data  # type: ignore[attr-defined]

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        """numpy's functions written in Python (`np.sinc`) ask here: one that is a row runs the row.

        `np.sinc` would otherwise compute sin(pi x) / (pi x) with object arrays, which fails on a
        Value. Every other function gets what it got before this method existed: the Values as 0-d
        object arrays, for which numpy runs its own code.
        """
        if args == (self,) and not kwargs and func.__name__ in ONE_INPUT_METHODS:
            return getattr(self, func.__name__)()
        np = sys.modules["numpy"]  # numpy is calling us, so it is imported
        as_arrays = [np.asarray(a, dtype=object) if isinstance(a, NumberProtocols) else a for a in args]
        return func(*as_arrays, **kwargs)
