"""`detect_anomaly()`: find the first operation that turns finite numbers into NaN or inf.

Like PyTorch's `torch.autograd.detect_anomaly` and JAX's `debug_nans`. Inside the block, every node
the eager engine creates is checked as it is made, and every backward step as it runs; the first
operation whose *inputs are finite* but whose result is not raises `AnomalyError`, naming the op, its
inputs and the line of your code that created the node. NaN or inf that you put into the data
yourself is not an anomaly of any op: it propagates silently, as IEEE arithmetic says it should.

It costs nothing when off. The engine creates every node through `chainrule.engine._node` and runs
its backward sweeps through `chainrule.engine._sweep_floats` / `_sweep_values`; while a block is
active those module globals are replaced by checking versions, and the originals are put back when
the (outermost) block exits, also after an exception. Outside a block the engine runs exactly the
code it runs when this module was never imported.

Not thread-safe (neither is `no_grad()`), and it covers the eager `Value` engine, not compiled
`Program`s.
"""

from __future__ import annotations

import linecache
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import engine
from .backends import FLOAT, VALUE
from .engine import Value
from .ops import Op

_PACKAGE_DIR = os.path.dirname(os.path.abspath(engine.__file__)) + os.sep

_active = 0  # nesting depth of detect_anomaly() blocks
_saved: dict[str, Any] = {}  # the engine functions replaced while active
# Where each node created inside the block was made, keyed by id(node). Keys are ids rather than
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
    global _active
    if _active == 0:
        _saved.update(
            _node=engine._node, _sweep_floats=engine._sweep_floats, _sweep_values=engine._sweep_values
        )
        engine._node = _checked_node
        engine._sweep_floats = _checked_sweep_floats
        engine._sweep_values = _checked_sweep_values
    _active += 1
    try:
        yield
    finally:
        _active -= 1
        if _active == 0:
            for name, original in _saved.items():
                setattr(engine, name, original)
            _saved.clear()
            _sites.clear()


def is_anomaly_enabled() -> bool:
    """Whether a `detect_anomaly()` block is active."""
    return _active > 0


# --- forward: every node is checked as it is created ---------------------------------------------
def _checked_node(op: Op, data: float, children: tuple[Value, ...], requires_grad: bool) -> Value:
    if not math.isfinite(data) and all(math.isfinite(c.data) for c in children):
        inputs = tuple(c.data for c in children)
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
    out = _saved["_node"](op, data, children, requires_grad)
    _sites[id(out)] = _user_site()
    return out


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
