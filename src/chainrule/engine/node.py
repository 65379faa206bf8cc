"""`Value`: a number that remembers how it was made, so that gradients can flow back through it.

A `Value` wraps a float. An operation on Values (`a * b`, `x.tanh()`) runs the forward rule of its
row in the derivative table (`chainrule.ops`) and records a new node (`apply`): its data, its inputs
(in the slots of `layout.py`) and the row (`_operation`). `backward()` walks that graph back to the
leaves, applying the rows' derivative rules (`chain_rule.py`).

- A node made by an operation stores the row, never a closure. Closures that capture their own output
  make reference cycles, which only Python's cyclic garbage collector can free; without them a graph
  is freed the moment its last reference goes.
- A node built by hand, as micrograd and the seed notebooks teach (`Value(x.data**3, (x,), "cube")`
  and then `out._backward = closure`), works too: its operation is a `HandBuilt` record holding the
  closure, which `backward()` runs in the middle of the same sweep (hand_built.py).
- A placeholder (`placeholder("x")`, for define-then-run; placeholder.py) is a `Value` with no data yet:
  an operation on it asks it for the node (`operators.traced`), which records the graph without
  running it.

The operators and methods (`__mul__`, `tanh`, ...) are `apply` for one row each, made from the table
in operators.py; micrograd's `_op` and `_backward` are in micrograd.py, comparisons and numpy's
functions in protocols.py.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from operator import attrgetter
from typing import Any, Union

from ..backends import FLOAT
from ..ops import OPS, Op
from . import backprop, copying
from .layout import MANY, HandBuilt, Node, new_node, set_inputs
from .micrograd import MicrogradFaces, check_children
from .mode import STATE, recording
from .numbers import as_float, shown, to_float
from .operators import attach_value_operators, sum_node, traced
from .protocols import NumberProtocols
from .walk import depends_on, nodes_below

Number = int | float
Operand = Union["Value", int, float]

_requires_grad = attrgetter("requires_grad")


def apply(op: Op, *children: Value) -> Value:
    """Run `op` forward on the data of `children` and record the result as a graph node."""
    try:
        xs = [c._data for c in children]
    except AttributeError:  # a placeholder (or a node computed from one) has no data yet
        return traced(op, children)
    if op.invalid is not None:
        op.check(FLOAT, *xs)  # a DomainError naming the op and the value
    data = op.forward(FLOAT, *xs)
    if type(data) is not float:  # a rule defined with defop may give an int or a numpy scalar
        data = to_float(data, op.name)
    out = new_node(Value, data, op, children, any(map(_requires_grad, children)))
    observer = STATE.observer
    if observer is not None:
        observer.created(out, op, tuple(xs))
    return out


def leaf(x: Any) -> Value | None:
    """A plain number as a constant Value (no gradient); None if `x` is not a real number."""
    if type(x) is not float:
        x = as_float(x)
        if x is None:
            return None
    return new_node(Value, x, None, (), False)


class Value(Node, MicrogradFaces, NumberProtocols):
    """A scalar that records the operations applied to it, so gradients can flow back.

    `Value(data, _children=(), _op="", label="", *, requires_grad=True, grad=0.0)`: micrograd's
    signature. Also `Value(2.0, "a")` (label second, as seed 000 writes it). Giving children makes a
    node built by hand, whose `_backward` you write yourself (see `HandBuilt`). Code may set
    attributes of its own on a node (`v._vis_color = ...`), as on micrograd's Value.
    """

    # `label` is not a slot: most nodes have none, and read the class's "" until one is given (it then
    # lives with any attributes of the user's own, in the node's attribute dict).
    __slots__ = ("_data", "__dict__")
    label: str = ""

    def __init__(
        self,
        data: Number,
        _children: Iterable[Value] | str = (),
        _op: str = "",
        label: str = "",
        *,
        requires_grad: bool = True,
        grad: Number = 0.0,
    ) -> None:
        self._data = data if type(data) is float else to_float(data, "Value")
        if type(_children) is str:  # seed 000's Value(2.0, "a"): the label comes second
            if label:
                raise TypeError(f"Value: the label is given twice ({_children!r} and {label!r})")
            if _op != "":
                raise TypeError(
                    f"Value: after a label given second ({_children!r}), pass children and op as "
                    f"keywords (_children=..., _op=...), got {_op!r}"
                )
            label, _children = _children, ()
        if type(label) is not str:
            raise TypeError(f"Value: label must be a str, got {type(label).__name__}: {shown(label)}")
        if type(_op) is not str:
            raise TypeError(f"Value: _op must be a str, got {type(_op).__name__}: {shown(_op)}")
        if type(requires_grad) is not bool:
            np = sys.modules.get("numpy")
            if np is None or not isinstance(requires_grad, np.bool_):
                raise TypeError(
                    f"Value: requires_grad must be True or False, got "
                    f"{type(requires_grad).__name__}: {shown(requires_grad)}"
                )
            requires_grad = bool(requires_grad)
        self._grad = grad if type(grad) is float else to_float(grad, "Value(grad=...)")
        self._g = 0.0  # the backward sweep's scratch (layout.py)
        if label:
            self.label = label
        self._a = self._b = self._operation = None
        children = check_children(_children)
        if not children:
            if _op:  # micrograd allows an op on a node without children: a hand-built node of none
                self._a, self._b, self._operation = (), MANY, HandBuilt(_op)
            self.requires_grad = requires_grad
            return
        if STATE.recording_everywhere or recording():
            self._a, self._b, self._operation = children, MANY, HandBuilt(_op)
            self.requires_grad = requires_grad and any(c.requires_grad for c in children)
        else:
            self.requires_grad = False

    # `data` and `grad` are always numbers: assigning a numpy float32 (or an int) to `data` converts it,
    # so one stray assignment cannot turn later results into float32, and `a.grad = "6"` is refused at
    # once. Inside the engine the slots are read directly; the public faces read through C-level getters.
    def _set_data(self, value: Number) -> None:
        self._data = value if type(value) is float else to_float(value, "Value.data")

    def _set_grad(self, value: Any) -> None:
        # a float (a float subclass too: a hand-built closure's lent .grad) or, after
        # backward(create_graph=True), a Value; anything else must be a real number
        if type(value) is not float and not isinstance(value, float | Node):
            value = to_float(value, "Value.grad")
        self._grad = value

    data = property(attrgetter("_data"), _set_data, doc="The number this node holds (a float).")
    grad = property(attrgetter("_grad"), _set_grad, doc="d(output)/d(self), added up by backward().")

    @property
    def _prev(self) -> tuple[Value, ...]:
        """The inputs of the op that made this node, in operand order (() for a leaf), as in micrograd."""
        # The slot layout (layout.py) decoded inline: every walk over a whole graph reads this.
        a, b = self._a, self._b
        if b is None:
            return () if a is None else (a,)
        if b is MANY:
            return a
        if type(a) is float or type(b) is float:
            # a number operand, stored as a float: make it a constant Value once, so that it keeps
            # its identity from now on
            a, b = self._a, self._b = _as_node(a), _as_node(b)
        return (a, b)

    @_prev.setter
    def _prev(self, children: tuple[Value, ...]) -> None:
        set_inputs(self, check_children(children, "_prev"))

    def __repr__(self) -> str:
        label = f", label={self.label!r}" if self.label else ""
        return f"Value(data={self.data}, grad={self.grad}{label})"

    __hash__ = object.__hash__  # equality is identity, as in micrograd: nodes go into sets and dicts

    # --- gradients ----------------------------------------------------------------------------
    def backward(self, create_graph: bool = False) -> None:
        """Add d(self)/d(node) into `.grad` of every node of the graph below self.

        All or nothing: if a step raises, every `.grad` is left as it was. With `create_graph=True`
        the gradients are themselves `Value`s connected to the graph, so they can be differentiated
        again (see `chainrule.grad` for the friendlier way).
        """
        backprop.backward(self, create_graph=create_graph)

    def zero_grad(self) -> None:
        """Set `.grad = 0.0` on this node and every node below it."""
        for node in nodes_below(self):
            node._grad = 0.0

    # --- copying: iterative, so that a long chain copies without recursion ---------------------
    def __copy__(self) -> Value:
        return copying.copy_node(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> Value:
        return copying.copy_graph(self, memo)

    def __reduce_ex__(self, protocol: Any) -> Any:
        return copying.graph_reduce(self)


# Every row of the table becomes an operator (two inputs: `__mul__` and `__rmul__`) or a method (one
# input: `tanh`, `__neg__`, and math's spellings such as `atan` as aliases).
attach_value_operators(Value)


def _as_node(x: Value | float) -> Value:
    """An operand as a Value: a number stored in a node's slot becomes a constant leaf."""
    return leaf(x) if type(x) is float else x


def constant(x: Operand) -> Value:
    """`x` as a Value that takes no gradient (a Value given is returned as it is)."""
    if isinstance(x, Value):
        return x
    return Value(x, requires_grad=False)


_SUM = OPS["sum"]
_is_value = Value.__instancecheck__


def sum(values: Iterable[Operand]) -> Value:  # noqa: A001 - chainrule.sum, like numpy.sum
    """a + b + c + ... as one graph node, so backward makes one step instead of a long chain."""
    children = tuple(values)
    xs = [c._data for c in children if type(c) is Value]
    if children and len(xs) == len(children):  # the common case, Values with data: `apply` inlined
        return sum_node(Value, _SUM, children, xs)
    if not all(map(_is_value, children)):  # numbers among the inputs become constants
        children = tuple(v if isinstance(v, Value) else constant(v) for v in children)
    if not children:
        return Value(0.0, requires_grad=False)
    return apply(_SUM, *children)


__all__ = ["Value", "apply", "constant", "depends_on", "leaf", "sum"]
