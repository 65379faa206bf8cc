"""Placeholders, for define-then-run: `Value`s with no data yet.

`placeholder("x")` is an input whose number comes later. Operations on it (and on anything computed
from it) run no rule: each records a `Symbolic` node, so that the graph can be built once and then
compiled (`chainrule.compile`) and run for many inputs. Reading the data of such a node, or branching
on it in Python, raises `NoDataError`, which names the placeholders it depends on.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from ..errors import PlaceholderError
from ..ops import Op
from .layout import new_node, set_inputs
from .node import Value
from .walk import nodes_below

_new = object.__new__
_requires_grad = attrgetter("requires_grad")


class NoDataError(PlaceholderError):
    """Reading the data of a traced node (a placeholder, or a node computed from one).

    The message, which names the placeholders the node depends on, is built only when it is shown:
    tracing may raise and catch this many times.
    """

    def __init__(self, node: Value) -> None:
        super().__init__(node)  # args hold the node, so the error pickles and re-raises like others
        self.node = node

    def __str__(self) -> str:
        node = self.node
        names = ", ".join(
            repr(p.label) for p in nodes_below(node) if isinstance(p, Symbolic) and p._operation is None
        )
        what = (
            f"placeholder {node.label!r}"
            if node._operation is None
            else f"this Value (it depends on {names})"
        )
        return (
            f"{what} has no data yet: a traced graph cannot be read or used in Python control flow "
            f"(if/while/comparisons). Compile it with chainrule.compile(output, inputs) and run the "
            f"Program with numbers. (Building a node by hand from .data, micrograd's way, cannot be "
            f"traced either: define that operation with chainrule.defop.)"
        )


class Symbolic(Value):
    """A Value whose data is not known yet: a placeholder, or something computed from one."""

    __slots__ = ()

    @property  # type: ignore[override]
    def data(self) -> float:
        # Operations read the `_data` slot, which a Symbolic never has, so they never get here.
        raise NoDataError(self)

    @data.setter
    def data(self, value: float) -> None:
        raise PlaceholderError(
            f"placeholder {self.label!r} cannot be given data: pass the numbers to the compiled "
            f"Program instead (program(x) or program.value_and_grad(x))"
        )

    def __bool__(self) -> bool:
        raise NoDataError(self)

    def __float__(self) -> float:
        raise NoDataError(self)

    def traced(self, op: Op, inputs: tuple[Any, ...]) -> Value:
        """The node for `op` applied to `inputs`, of which this one has no data yet (see node.py)."""
        return symbolic(op, inputs)

    def __repr__(self) -> str:
        if self._operation is None:
            return f"placeholder({self.label!r})"
        return f"Symbolic({self._op}, label={self.label!r})"


def placeholder(label: str, requires_grad: bool = True) -> Value:
    """An input with no data yet: build a graph on it, then `compile` and run it for many inputs.

    With `requires_grad=False` (data such as labels) a compiled Program computes no gradient for it.
    """
    node = new_node(Symbolic, None, None, (), requires_grad)
    node.label = label
    return node


def symbolic(op: Op, children: tuple[Any, ...]) -> Value:
    """A node made by `op` from `children` when some of them have no data yet (always recorded)."""
    node = _new(Symbolic)
    node._grad = 0.0
    node._g = 0.0
    node.requires_grad = any(map(_requires_grad, children))
    node._operation = op
    set_inputs(node, tuple(children), many=op.arity is None or op.hand_built)
    return node
