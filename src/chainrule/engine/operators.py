"""Value's operators and one-input methods, one per row of the table: `apply` inlined. Skip on a first read.

`node.apply(op, *inputs)` is how an operation makes a node: check the domain, run the row's forward
rule, record the node. The functions made here do exactly that for one row each (`__mul__` for `mul`,
`tanh` for `tanh`), with `new_node` written out inline and a row that declares its algebra (`mul`,
`add`, `sub`) computed by Python's own operator: they are the hottest code in chainrule, and one call
less per node is measurable. tests/test_chain_rule.py holds them to `apply` for every row and hostile
numbers.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from operator import attrgetter
from typing import Any

from ..backends import FLOAT, spellings
from ..ops import TABLE, Op
from .layout import MANY, new_node
from .mode import STATE, recording
from .numbers import as_float, not_a_number

_new = object.__new__
_requires_grad = attrgetter("requires_grad")


def traced(op: Op, inputs: tuple[Any, ...]) -> Any:
    """`op` applied to inputs of which some have no data yet (placeholders): such an input makes the node.

    A node without data is a `Symbolic` (placeholder.py), which records the operation without running it.
    """
    for x in inputs:
        if not hasattr(x, "_data"):
            return x.traced(op, inputs)
    raise AssertionError("an input without data was expected")  # pragma: no cover


# A row that declares its algebra is computed by Python's own operator, without calling its forward
# rule: the same number (tests/test_ops_table.py holds each declaration to the row's own forward
# rule), and one Python call less per node on the hottest path.
_DECLARED = {
    (True, None): operator.mul,
    (False, (1.0, 1.0)): operator.add,
    (False, (1.0, -1.0)): operator.sub,
}


def binary_operator(cls: type, op: Op, reflected: bool) -> Callable[[Any, Any], Any]:
    """`cls`'s method for the two-input op `op`: `__mul__`, or `__rmul__` when `reflected`."""
    # One function per operator, with `new_node` inlined, saves two calls per node on the hottest path
    # of the engine. The op's rules stay in the table; this only wires them to Python's operators.
    forward = op.forward
    declared = _DECLARED.get((op.bilinear, op.linear))  # None: the forward rule computes it
    invalid = op.invalid  # the domain test; `op.check` builds the error when it fails
    state = STATE

    def method(self: Any, other: Any) -> Any:
        if isinstance(other, cls):
            if reflected:
                a = other
                b = self
            else:
                a = self
                b = other
            # A placeholder (or a node computed from one) has no data yet: it makes the node itself.
            try:
                x = a._data
            except AttributeError:
                return a.traced(op, (a, b))
            try:
                y = b._data
            except AttributeError:
                return b.traced(op, (a, b))
            requires_grad = a.requires_grad or b.requires_grad
        else:
            # A plain number operand is stored in the node as the float itself, not as a constant
            # Value: one object less per node. `_prev` turns it into a constant Value when asked.
            number = other if type(other) is float else as_float(other)
            if number is None:
                return not_a_number(op, other)
            try:
                mine = self._data
            except AttributeError:
                constant_leaf = new_node(cls, number, None, (), False)
                return self.traced(op, (constant_leaf, self) if reflected else (self, constant_leaf))
            if reflected:
                a = x = number
                b = self
                y = mine
            else:
                a = self
                x = mine
                b = y = number
            requires_grad = self.requires_grad
        if invalid is not None and invalid(FLOAT, x, y):
            op.check(FLOAT, x, y)
        out = _new(cls)
        out._data = declared(x, y) if declared is not None else forward(FLOAT, x, y)
        out._grad = 0.0
        out._g = 0.0
        if state.recording_everywhere or recording():
            out.requires_grad = requires_grad
            out._a = a
            out._b = b
            out._operation = op
        else:
            out.requires_grad = False
            out._a = out._b = out._operation = None
        if state.observer is not None:
            state.observer.created(out, op, (x, y))
        return out

    name = f"__{'r' if reflected else ''}{op.name}__"
    method.__name__ = name
    method.__qualname__ = f"{cls.__name__}.{name}"
    method.__doc__ = f"other {op.symbol} self" if reflected else f"self {op.symbol} other"
    return method


def unary_method(cls: type, op: Op) -> Callable[[Any], Any]:
    """`cls`'s method for the one-input op `op` (`v.tanh()`, `-v`, `abs(v)`), made from its row."""
    forward = op.forward
    invalid = op.invalid
    state = STATE

    def method(self: Any) -> Any:
        try:
            x = self._data
        except AttributeError:
            return self.traced(op, (self,))
        if invalid is not None and invalid(FLOAT, x):
            op.check(FLOAT, x)
        out = _new(cls)
        out._data = forward(FLOAT, x)
        out._grad = 0.0
        out._g = 0.0
        if state.recording_everywhere or recording():
            out.requires_grad = self.requires_grad
            out._a = self
            out._b = None
            out._operation = op
        else:
            out.requires_grad = False
            out._a = out._b = out._operation = None
        if state.observer is not None:
            state.observer.created(out, op, (x,))
        return out

    method.__name__ = op.method
    method.__qualname__ = f"{cls.__name__}.{op.method}"
    method.__doc__ = op.doc + (f"; a {op.error.__name__} unless {op.domain_text}" if op.invalid else "")
    return method


def sum_node(cls: type, op: Op, children: tuple[Any, ...], xs: list[float]) -> Any:
    """`apply(op, *children)` for the n-ary `sum` row, inlined: every neuron is one such node.

    `children` are `cls` nodes with data, `xs` their data. The row declares its algebra (linear, each
    coefficient 1.0), so Python's `sum` of the floats in order is the number its forward rule gives.
    """
    out = _new(cls)
    out._data = sum(xs)  # the row's forward rule is this sum
    out._grad = 0.0
    out._g = 0.0
    if STATE.recording_everywhere or recording():
        out.requires_grad = any(map(_requires_grad, children))
        out._a = children
        out._b = MANY
        out._operation = op
    else:
        out.requires_grad = False
        out._a = out._b = out._operation = None
    observer = STATE.observer
    if observer is not None:
        observer.created(out, op, tuple(xs))
    return out


def attach_table_methods(cls: type, binary: Callable[..., Any], unary: Callable[..., Any]) -> None:
    """Give `cls` an operator or method for every row of the table (also used by `Tensor`).

    A one-input row's method has numpy's name (`arctan`, `deg2rad`), so that `np.arctan(v)`, which
    calls `v.arctan()`, works; math's spelling of the same function (`atan`, `radians`: the backends'
    `ALIASES`) is the same method under a second name.
    """
    for op in TABLE:
        if op.arity == 2:
            setattr(cls, f"__{op.name}__", binary(op, reflected=False))
            setattr(cls, f"__r{op.name}__", binary(op, reflected=True))
        elif op.arity == 1:
            method = unary(op)
            for name in spellings(op.method):
                setattr(cls, name, method)


def attach_value_operators(cls: type) -> None:
    """Give the `Value` class `cls` its operator or method for every row of the table."""
    attach_table_methods(
        cls,
        lambda op, reflected: binary_operator(cls, op, reflected),
        lambda op: unary_method(cls, op),
    )
