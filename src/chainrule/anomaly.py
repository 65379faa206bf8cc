"""`detect_anomaly()`: find the first operation that turns finite numbers into NaN or inf.

Like PyTorch's `torch.autograd.detect_anomaly` and JAX's `debug_nans`. Inside the block, every node
the eager engine creates is checked as it is made, and every backward step as it runs; the first
operation whose *inputs are finite* but whose result is not raises `AnomalyError`, naming the op, its
inputs and the line of your code that created the node. NaN or inf that you put into the data
yourself is not an anomaly of any op: it propagates silently, as IEEE arithmetic says it should.

It costs nothing when off. The engine has one declared seam for this, `chainrule.engine._observer`:
while any thread is inside a block it holds an observer that sees every node an operation makes and
picks the backward sweeps. The mode is per thread, as in PyTorch: the observer checks only the nodes
and sweeps of the threads inside a block, and leaves the seam empty again when the last block in the
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

from . import engine
from .backends import FLOAT, VALUE
from .engine import Value
from .ops import Op

_PACKAGE_DIR = os.path.dirname(os.path.abspath(engine.__file__)) + os.sep

_local = threading.local()  # .depth: nesting depth of detect_anomaly() blocks in this thread
_lock = threading.Lock()
_blocks = 0  # detect_anomaly() blocks open right now, in all threads together
# Where each node created inside a block was made, keyed by id(node). Keys are ids rather than
# nodes so that the block does not keep every node alive; an id is only reused after its node has
# died, and the new node made in the block overwrites the entry, so a live node's entry is its own.
_sites: dict[int, tuple[str, int, str]] = {}


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
        engine._observer = _OBSERVER
    try:
        yield
    finally:
        _local.depth -= 1
        with _lock:
            _blocks -= 1
            if _blocks == 0:
                engine._observer = None
                _sites.clear()


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
        data = node._data
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

    def sweeps(self, floats: Any, values: Any) -> tuple[Any, Any]:
        """The backward sweeps for this thread: the checking ones inside a block."""
        if not _depth():
            return floats, values
        return _checked_sweep_floats, _checked_sweep_values


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


# --- backward: every contribution is checked as it is made ---------------------------------------
def _number(x: Any) -> float:
    return x.data if isinstance(x, Value) else x


def _backward_anomaly(node: Value, i: int, g: Any, result: Any, summing: bool) -> AnomalyError:
    op = node._fn
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


def _checked_sweep(order: list[Value], accumulate: bool, graph: bool) -> None:
    """The engine's backward sweep, written plainly, checking each contribution for NaN and inf.

    With `graph`, gradients are Values (create_graph=True) and the rules run on the VALUE backend.
    """
    m = VALUE if graph else FLOAT
    isfinite = math.isfinite
    node = None
    try:
        for node in reversed(order):
            g = node._g
            if g is None:
                continue
            if accumulate:
                if graph:  # as the engine does: no needless "0.0 + g" node in the gradient graph
                    node.grad = g if type(node.grad) is float and node.grad == 0.0 else node.grad + g
                else:
                    node.grad += g
            op = node._fn
            if op is None:
                continue
            if op.hand_built:  # the user's own closure: run it as the engine does, then check it
                if graph:
                    raise engine._not_twice_error(node)
                engine._hand_step(node, g)
                continue
            children = node._prev
            out = node if graph else node.data
            xs = children if graph else [c.data for c in children]
            # Only an op whose inputs and incoming gradient are finite can be blamed.
            clean = isfinite(_number(g)) and all(isfinite(c.data) for c in children)
            for i, child in enumerate(children):
                if not child.requires_grad:
                    continue
                before = child._g
                summing = False
                try:
                    d = op.derivative(i)(m, g, out, *xs)
                    if clean and not isfinite(_number(d)):
                        raise _backward_anomaly(node, i, g, d, summing=False)
                    summing = True
                    total = d if before is None else before + d
                except AnomalyError as exc:
                    if exc.phase == "backward":
                        raise
                    # A node of the gradient graph (create_graph=True) blew up: blame this op's rule.
                    raise _backward_anomaly(node, i, g, exc.output, summing) from exc
                if (
                    clean
                    and not isfinite(_number(total))
                    and before is not None
                    and isfinite(_number(before))
                ):
                    raise _backward_anomaly(node, i, g, total, summing=True)
                child._g = total
    except AnomalyError:
        raise
    except (ArithmeticError, ValueError) as exc:
        engine._explain_failed_rule(exc, node)


def _checked_sweep_floats(order: list[Value], accumulate: bool) -> None:
    _checked_sweep(order, accumulate, graph=False)


def _checked_sweep_values(order: list[Value], accumulate: bool) -> None:
    _checked_sweep(order, accumulate, graph=True)
