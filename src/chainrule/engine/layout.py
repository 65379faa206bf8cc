"""What a graph node is made of: its slots, and how it stores its inputs.

`Node` declares the slots every graph node has, `Value` and `Tensor` alike, so that the walks and
the chain-rule step read both the same way. A node keeps its inputs in two slots, `_a` and `_b`,
rather than in a `_prev` tuple: one object per node instead of two halves the work of Python's
cyclic garbage collector while a graph is built (see docs/performance.md). The layout:

    leaf:                   _a = None,        _b = None
    one input:              _a = x,           _b = None
    two inputs:             _a = x,           _b = y       (a Value keeps a plain number as a float)
    n-ary or hand-built:    _a = (x, y, ...), _b = MANY

`_operation` holds what made the node: a row of the derivative table (`chainrule.ops.Op`), a
`HandBuilt` record for a node built by hand, or None for a leaf. `_g` is the float sweep's scratch:
its walk marks the nodes it reaches there, then the sweep adds their gradients in it (0.0 from the
start). Every node is made by `new_node`. Everything reads the input slots through `stored_inputs`
and writes them through `set_inputs`, except the engine's hot paths (`walk.py`, `fast_sweep.py`,
`operators.py` and `Value._prev`, which every walk over a graph reads), which decode it inline.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any, ClassVar

from .mode import STATE, recording


class Node:
    """The slots of a graph node: its inputs, the operation that made it, and scratch for backward."""

    __slots__ = ("requires_grad", "_grad", "_a", "_b", "_operation", "_g")


class Many:
    """The type of `MANY`, the marker in a node's `_b` slot saying `_a` holds a tuple of inputs."""

    __slots__ = ()

    def __reduce__(self) -> str:
        return "MANY"  # copy and pickle it as this module's global: `is MANY` survives deepcopy

    def __repr__(self) -> str:
        return "MANY"


MANY = Many()


def new_node(cls: type, data: Any, op: Any, inputs: tuple[Any, ...], requires_grad: bool) -> Any:
    """A new node of class `cls` holding `data`, made by `op` from `inputs` (recorded only in grad mode).

    `op` is a row of the table or a `HandBuilt` record; None makes a leaf. Outside grad mode
    (`no_grad()`) the result is a leaf too: it keeps its data and forgets how it was made.
    """
    out = object.__new__(cls)
    if data is not None:
        out._data = data
    out._grad = 0.0
    out._g = 0.0  # set from the start: the float sweep's walk marks the nodes it reaches in it
    if op is not None and (STATE.recording_everywhere or recording()):
        out.requires_grad = requires_grad
        out._operation = op
        # Stored by the op's arity (not the number of inputs), so the backward sweep can rely on it.
        set_inputs(out, inputs, many=op.arity is None or op.hand_built)
    else:
        out.requires_grad = False if op is not None else requires_grad
        out._a = out._b = out._operation = None
    return out


def stored_inputs(node: Node) -> tuple[Any, ...]:
    """The node's inputs as stored, in operand order: nodes, and plain numbers kept as floats."""
    a, b = node._a, node._b
    if a is None:
        return ()
    if b is None:
        return (a,)
    if b is MANY:
        return a
    return (a, b)


def set_inputs(node: Node, inputs: tuple[Any, ...], many: bool = False) -> None:
    """Store `inputs` in the node's slots; `many` keeps the tuple form (n-ary rows, hand-built nodes)."""
    if many:
        node._a, node._b = inputs, MANY
    elif not inputs:
        node._a = node._b = None
    elif len(inputs) == 1:
        node._a, node._b = inputs[0], None
    elif len(inputs) == 2:
        node._a, node._b = inputs
    else:
        node._a, node._b = inputs, MANY


# What made a node: a row of the derivative table (an `Op`), a `HandBuilt` record, or None (a leaf).
# A C-level getter rather than a Python function: compiling reads it for every node of a graph.
operation_of: Callable[[Node], Any] = attrgetter("_operation")


def has_input_tuple(node: Node) -> bool:
    """Whether the node keeps its inputs as a tuple (an n-ary row or a node built by hand)."""
    return node._b is MANY


class HandBuilt:
    """The operation of a node built by hand: its symbol, and the `_backward` closure its author wrote.

    `Value(x.data ** 3, (x,), "cube")` makes one; `out._backward = closure` fills it in. The closure
    follows micrograd: it reads `out.grad` and adds into the children's `.grad`.
    """

    __slots__ = ("symbol", "backward")
    hand_built: ClassVar[bool] = True
    arity: ClassVar[None] = None

    def __init__(self, symbol: str, backward: Callable[[], Any] | None = None) -> None:
        self.symbol = symbol
        self.backward = backward

    @property
    def name(self) -> str:
        """How messages name the op: its symbol, or 'a hand-built op' if it has none."""
        return self.symbol or "a hand-built op"

    def __repr__(self) -> str:
        return f"HandBuilt({self.symbol!r})"
