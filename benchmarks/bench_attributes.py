"""What letting a node take attributes of the user's own costs, for each way Python offers.

micrograd's `Value` takes any attribute (`v._vis_color = ...`, an optimizer's `p.m`), and so must
chainrule's. A class with `__slots__` only refuses them; the two ways to accept them are an instance
dict (`"__dict__"` among the slots) or a `__setattr__` hook that files unknown names away. This makes
100,000 objects of each kind the way the engine makes a node (`object.__new__`, then six slot writes)
and reports the time per object (best of 5) and the bytes per object (tracemalloc).

Usage: python benchmarks/bench_attributes.py
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc
from typing import Any

SLOTS = ("_data", "label", "requires_grad", "_grad", "_a", "_b", "_operation", "_g")  # no dict


class PlainSlots:
    """Slots only: takes no attribute of the user's own."""

    __slots__ = SLOTS


class SlotsAndDict:
    """What a chainrule node is: the label moves into the dict (most nodes have none)."""

    __slots__ = tuple(s for s in SLOTS if s != "label") + ("__dict__",)


_OWN = frozenset(SLOTS)
_set = object.__setattr__
_get = object.__getattribute__


class SlotsAndHook:
    """Slots, and a `__setattr__` that keeps unknown names in a dict made on first use."""

    __slots__ = (*SLOTS, "extra")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWN:
            _set(self, name, value)
            return
        try:
            extra = self.extra
        except AttributeError:
            extra = {}
            _set(self, "extra", extra)
        extra[name] = value

    def __getattr__(self, name: str) -> Any:  # asked only when the usual lookup fails
        try:
            return _get(self, "extra")[name]
        except (AttributeError, KeyError):
            raise AttributeError(name) from None


def make(cls: type, n: int) -> list[Any]:
    """n objects made as the engine makes a node: `object.__new__` and six slot writes."""
    new = object.__new__
    made = []
    for _ in range(n):
        node = new(cls)
        node._data = 1.0
        node._grad = 0.0
        node.requires_grad = True
        node._a = None
        node._b = None
        node._operation = None
        made.append(node)
    return made


def main() -> None:
    print(f"CPython {sys.version.split()[0]}; 100,000 objects, best of 5; bytes by tracemalloc")
    for cls in (PlainSlots, SlotsAndDict, SlotsAndHook):
        best = float("inf")
        for _ in range(5):
            gc.collect()
            start = time.perf_counter()
            make(cls, 100_000)
            best = min(best, time.perf_counter() - start)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        kept = make(cls, 10_000)
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        per_object = (after - before) / len(kept) - 8  # less the list's pointer to it
        ns = best / 100_000 * 1e9
        print(f"{cls.__name__:13s} {ns:6.0f} ns per object  {per_object:5.0f} bytes per object")


if __name__ == "__main__":
    main()
