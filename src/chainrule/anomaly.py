"""`detect_anomaly()`: find the first operation that turns finite numbers into NaN or inf.

Like PyTorch's `torch.autograd.detect_anomaly` and JAX's `debug_nans`. Inside the block, every node
the eager engine creates is checked as it is made, and every backward step as it runs; the first
operation whose *inputs are finite* but whose result is not raises `AnomalyError`, naming the op, its
inputs and the line of your code that created the node. NaN or inf that you put into the data
yourself is not an anomaly of any op: it propagates silently, as IEEE arithmetic says it should.

It costs nothing when off. The engine has one declared seam for this, `chainrule.engine.set_observer`:
while any thread is inside a block it holds an observer that sees every node an operation makes and
gives backward passes their checking hook, so that they run the reference sweep with checks. The
mode is per thread, as in PyTorch: the observer checks only the nodes and sweeps of the threads
inside a block, and leaves the seam empty again when the last block in the
process exits (also after an exception).

It covers the eager `Value` engine, not compiled `Program`s.
"""

from __future__ import annotations

import linecache
import math
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .engine import Value, operation_of, set_observer, stored_inputs
from .ops import Op

# the chainrule package's folder: frames inside it are chainrule's own, not the user's code
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

_local = threading.local()  # .depth: nesting depth of detect_anomaly() blocks in this thread
_lock = threading.Lock()
_blocks = 0  # detect_anomaly() blocks open right now, in all threads together
# Where each node created inside a block was made, keyed by id(node). Keys are ids rather than
# nodes so that the block does not keep every node alive; an id is only reused after its node has
# died, and the new node made in the block overwrites the entry, so a live node's entry is its own.
_sites: dict[int, tuple[str, int, str]] = {}
# What each node created inside a block was computed from and gave, keyed the same way: (its op, its
# inputs' ids, their data, its data). Backward compares, as PyTorch's version counters do.
_made_from: dict[int, tuple[Op, tuple[int, ...], tuple[float, ...], float]] = {}


class DataChangedError(RuntimeError):
    """Inside `detect_anomaly()`: a node's `.data`, or one of its inputs', changed after it was computed.

    Its gradient would mix two points (the derivative rules read the data as it is now), so backward
    stops, naming the node, as PyTorch's version counters do.
    """


class AnomalyError(FloatingPointError):
    """An operation produced NaN or inf from finite numbers (raised inside `detect_anomaly()`)."""

    def __init__(
        self,
        message: str,
        op: str,
        inputs: tuple[float, ...],
        output: float,
        phase: str,
        site: tuple[str, int, str] | None,
    ) -> None:
        super().__init__(message)
        self.op = op  # the op's name in chainrule.OPS, e.g. "mul"
        self.inputs = inputs  # the data of its inputs
        self.output = output  # the NaN or inf it produced (in backward: the gradient contribution)
        self.phase = phase  # "forward" or "backward"
        self.site = site  # (filename, line number, function) of the code that created the node


@contextmanager
def detect_anomaly() -> Iterator[None]:
    """Inside this block, the first op making NaN/inf from finite numbers raises AnomalyError."""
    global _blocks
    _local.depth = _depth() + 1
    with _lock:
        _blocks += 1
        set_observer(_OBSERVER)
    try:
        yield
    finally:
        _local.depth -= 1
        with _lock:
            _blocks -= 1
            if _blocks == 0:
                set_observer(None)
                _sites.clear()
                _made_from.clear()


def _depth() -> int:
    return getattr(_local, "depth", 0)


def is_anomaly_enabled() -> bool:
    """Whether a `detect_anomaly()` block is active in this thread."""
    return _depth() > 0


class _Observer:
    """What the engine's seam holds while some thread is inside `detect_anomaly()`."""

    def created(self, node: Value, op: Op, inputs: tuple[float, ...]) -> None:
        """Check a node just made by `op` from `inputs` (in threads inside a block only)."""
        if not _depth():
            return
        data = node.data
        if not math.isfinite(data) and all(math.isfinite(x) for x in inputs):
            site = _user_site()
            raise AnomalyError(
                f"detect_anomaly: {op.name} produced {data!r} from finite {_show(inputs)} "
                f"in the forward pass\n{_describe(site, 'at')}",
                op=op.name,
                inputs=inputs,
                output=data,
                phase="forward",
                site=site,
            )
        _sites[id(node)] = _user_site()
        _made_from[id(node)] = (op, tuple(map(id, stored_inputs(node))), tuple(inputs), data)

    def checks(self) -> _Checks | None:
        """The backward sweep's checking hook for this thread: the checks inside a block, else None."""
        return _CHECKS if _depth() else None


_OBSERVER = _Observer()


def _user_site() -> tuple[str, int, str]:
    """(file, line, function) of the innermost frame outside the chainrule package."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    return frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name


def _describe(site: tuple[str, int, str] | None, how: str) -> str:
    if site is None:
        return "  (the node was created before detect_anomaly() was switched on, so its line is unknown)"
    filename, line, function = site
    source = linecache.getline(filename, line).strip()
    return f"  {how} {filename}:{line} (in {function})" + (f"\n    {source}" if source else "")


def _show(xs: tuple[float, ...]) -> str:
    """'input 2.0' or 'inputs (1.0, 2.0)', for messages."""
    if len(xs) == 1:
        return f"input {xs[0]!r}"
    return "inputs (" + ", ".join(repr(x) for x in xs) + ")"


# --- backward: the reference sweep's checking hook --------------------------------------------------
def _number(x: Any) -> float:
    return x.data if isinstance(x, Value) else x


def _backward_anomaly(node: Value, i: int, g: Any, result: Any, summing: bool) -> AnomalyError:
    op = operation_of(node)
    assert op is not None
    inputs = tuple(c.data for c in node._prev)
    site = _sites.get(id(node))
    how = "summing its contribution with the others" if summing else "its local derivative"
    return AnomalyError(
        f"detect_anomaly: the backward of {op.name} produced {_number(result)!r} in the gradient of "
        f"input {i} ({how}) from finite {_show(inputs)} and finite incoming gradient {_number(g)!r} "
        f"(its output was {node.data!r})\n{_describe(site, 'the node was created at')}",
        op=op.name,
        inputs=inputs,
        output=_number(result),
        phase="backward",
        site=site,
    )


class _Checks:
    """The reference sweep's `check` hook: the first contribution that turns finite into NaN/inf raises.

    Only an op whose inputs and incoming gradient are finite can be blamed; a NaN or inf that was
    already there propagates silently, as IEEE arithmetic says it should.
    """

    def visiting(self, node: Value, g: Any) -> None:
        made = _made_from.get(id(node))
        if made is None or operation_of(node) is not made[0]:
            return
        op, ids, inputs, data = made
        children = stored_inputs(node)
        if tuple(map(id, children)) != ids:
            return  # another node, made outside the block, that took a dead node's id
        now = tuple(c if type(c) is float else c.data for c in children)
        if _same(now, inputs) and _same((node.data,), (data,)):
            return
        changed = [
            f"input {i} from {before!r} to {after!r}"
            for i, (before, after) in enumerate(zip(inputs, now, strict=True))
            if not _same((before,), (after,))
        ]
        if not _same((node.data,), (data,)):
            changed.append(f"its own data from {data!r} to {node.data!r}")
        raise DataChangedError(
            f"detect_anomaly: the data of {op.name} node {node!r} changed after it was computed "
            f"({', '.join(changed)}): its gradient would mix two points; compute it again from the new "
            f"data\n{_describe(_sites.get(id(node)), 'the node was created at')}"
        )

    def _clean(self, node: Value, g: Any) -> bool:
        return math.isfinite(_number(g)) and all(math.isfinite(c.data) for c in node._prev)

    def contribution(self, node: Value, i: int, g: Any, d: Any, before: Any, total: Any) -> None:
        if math.isfinite(_number(d)) and math.isfinite(_number(total)):
            return
        if operation_of(node).hand_built or not self._clean(node, g):
            return
        if not math.isfinite(_number(d)):
            raise _backward_anomaly(node, i, g, d, summing=False)
        if before is not None and math.isfinite(_number(before)):
            raise _backward_anomaly(node, i, g, total, summing=True)

    def failed(self, node: Value, g: Any, exc: BaseException) -> None:
        # A node of the gradient graph (create_graph=True) blew up while a rule of `node` built it:
        # blame this op's rule, in the backward pass.
        if isinstance(exc, AnomalyError) and exc.phase == "forward":
            raise _backward_anomaly(node, 0, g, exc.output, summing=False) from exc


def _same(xs: tuple[float, ...], ys: tuple[float, ...]) -> bool:
    """The same numbers bit for bit (NaN equals NaN; 0.0 and -0.0 differ)."""
    return all(
        (x == y and math.copysign(1.0, x) == math.copysign(1.0, y)) or (x != x and y != y)
        for x, y in zip(xs, ys, strict=True)
    )


_CHECKS = _Checks()
