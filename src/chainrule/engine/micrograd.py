"""micrograd's faces of a `Value`: the names code written for micrograd reads and writes.

`_op` (the op's symbol), `_children` (seed 000's name for `_prev`), and `_backward`: on a node made
by an operation, one step of backprop by hand (the reference step, added into `.grad` as micrograd
does); on a node built by hand, the closure its author gave. `Value` inherits them from
`MicrogradFaces`; `_prev` itself is the node's inputs, and lives with `Value` in node.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .chain_rule import contributions
from .hand_built import no_backward
from .layout import HandBuilt, Node, set_inputs
from .numbers import shown

CHILDREN_TYPES = (tuple, list, set, frozenset)


def check_children(children: Any, what: str = "_children") -> tuple[Any, ...]:
    """The children given to a hand-built node, as a tuple of Values, or a TypeError naming the problem."""
    if type(children) is tuple and not children:  # the default, and the common case: a leaf
        return children
    if not isinstance(children, CHILDREN_TYPES):
        raise TypeError(
            f"Value: {what} must be a tuple, list or set of Values, got "
            f"{type(children).__name__}: {shown(children)}"
        )
    children = tuple(children)
    for i, child in enumerate(children):
        if not isinstance(child, MicrogradFaces):  # only a Value has these faces
            raise TypeError(
                f"Value: _children[{i}] must be a Value, got {type(child).__name__}: {shown(child)}"
            )
    return children


class MicrogradFaces:
    """`_op`, `_children` and `_backward`, as micrograd's `Value` has them (mixed into `Value`)."""

    __slots__ = ()

    @property
    def _children(self) -> tuple[Any, ...]:
        """Seed 000's name for `_prev`: the inputs, in operand order."""
        return self._prev  # type: ignore[attr-defined]

    @property
    def _op(self) -> str:
        """The symbol of the op that made this node ('' for a leaf), as micrograd names it."""
        op = self._operation  # type: ignore[attr-defined]
        return op.symbol if op is not None else ""

    @property
    def _backward(self) -> Callable[[], None]:
        """micrograd's one step of backprop: push this node's `.grad` into its inputs' `.grad`.

        Call it node by node to do backpropagation by hand. On a node made by an operation it applies
        the op's derivative rules from the table; on a node built by hand it is the closure you gave.
        """
        op = self._operation  # type: ignore[attr-defined]
        if op is None:
            return nothing
        if op.hand_built:
            return op.backward if op.backward is not None else MissingBackward(self)
        return ManualStep(self)

    @_backward.setter
    def _backward(self, closure: Callable[[], None]) -> None:
        if not callable(closure):
            raise TypeError(f"_backward must be a function of no arguments, got {type(closure).__name__}")
        op = self._operation  # type: ignore[attr-defined]
        if op is not None and op.hand_built:
            op.backward = closure
            return
        # A leaf, or a node an operation made: from now on it is built by hand, and your closure
        # replaces the table's rule for it.
        set_inputs(self, self._prev, many=True)  # type: ignore[arg-type, attr-defined]
        self._operation = HandBuilt(self._op, closure)  # type: ignore[attr-defined]


class ManualStep:
    """`node._backward` for a node made by an operation: the reference step, added into `.grad`.

    micrograd's semantics: each input's `.grad += contribution` for the node's current `.grad`, so the
    lecture's backprop by hand (`o._backward(); n._backward(); ...`) runs unchanged.
    """

    __slots__ = ("node",)

    def __init__(self, node: Node) -> None:
        self.node = node

    def __call__(self) -> None:
        node = self.node
        g = node.grad
        found = contributions(node, g, graph=isinstance(g, Node))
        # all contributions are computed before any .grad changes: a failing rule changes nothing
        for _, child, d in found:
            child.grad = child.grad + d


class MissingBackward:
    """`node._backward` of a node built by hand before its closure was given: says what to do."""

    __slots__ = ("node",)

    def __init__(self, node: Node) -> None:
        self.node = node

    def __call__(self) -> None:
        raise no_backward(self.node)


def nothing() -> None:
    """A leaf's `_backward`: there is nothing below it to push a gradient into."""
