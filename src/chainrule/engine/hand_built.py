"""Nodes built by hand, as micrograd teaches: running the `_backward` closure their author wrote.

`Value(x.data ** 3, (x,), "cube")` with `out._backward = closure` makes a node whose operation is a
`HandBuilt` record (layout.py) holding the closure. The closure speaks micrograd: it reads `out.grad`
and adds into its children's `.grad`. `hand_built_contributions` turns that into the reference step's
answer (what each input gets), so the sweeps treat such a node like any other; on the way it catches
the seeds' bug, a closure that assigns a `.grad` (`=`) instead of adding to it (`+=`).
"""

from __future__ import annotations

from typing import Any

from ..errors import BackwardClosureError
from .layout import Node
from .mode import GRAD_LOCK


class _Added(float):
    """A `.grad` lent to a hand-built closure: adding to it gives another `_Added`; assigning does not.

    That is how `hand_built_contributions` tells `x.grad += d` (right) from `x.grad = d` (the seeds'
    bug: a value used twice would keep only its last gradient) without running the closure twice.
    """

    __slots__ = ()

    def __add__(self, other: Any) -> Any:
        total = float.__add__(self, other)
        return total if total is NotImplemented else _Added(total)

    __radd__ = __add__


_LENT = _Added(0.0)


def hand_built_contributions(node: Node, g: float) -> list[tuple[int, Any, float]]:
    """What a hand-built node's `_backward` adds to each of its (distinct) inputs for gradient `g`.

    The closure reads `node.grad` and adds into its children's `.grad`. So for the length of the call,
    `node.grad` holds `g` and each child's `.grad` starts from 0; what the closure adds is the child's
    contribution. Every `.grad` is then put back as it was, so the sweep keeps its own semantics
    (twice doubles, each path counted once) whatever the closure does. A closure that assigns a
    child's `.grad` (`=`) instead of adding to it (`+=`) is stopped with an error that says so.
    """
    closure = node._operation.backward
    children = node._a
    if len(children) > 1:  # a child given twice is one child, with one .grad
        children = tuple(dict.fromkeys(children))
    if closure is None:
        if not children:
            return []
        raise no_backward(node)
    with GRAD_LOCK:  # the .grad slots are lent for the call (re-entrant: backward holds it already)
        saved = [child.grad for child in children]
        own = node.grad
        try:
            for child in children:
                child.grad = _LENT
            node.grad = g
            closure()
            added = [child.grad for child in children]
        finally:
            node.grad = own
            for child, grad in zip(children, saved, strict=True):
                child.grad = grad
    found = []
    for i, (child, d) in enumerate(zip(children, added, strict=True)):
        if type(d) is not _Added:
            raise overwritten_grad(node, child, d)
        if child.requires_grad:
            found.append((i, child, float(d)))
    return found


def no_backward(node: Any) -> TypeError:
    """A hand-built node with inputs but no `_backward`: says how to give it one."""
    what = f"{node!r} (op {node._op!r})" if node._op else repr(node)
    return TypeError(
        f"backward: {what} was built by hand from {len(node._prev)} input(s) but has no _backward: "
        f"give it one (def _backward(): ...; node._backward = _backward, adding into each input's "
        f".grad as micrograd does), or define the operation with chainrule.defop"
    )


def overwritten_grad(node: Any, child: Any, value: Any) -> BackwardClosureError:
    """A hand-built `_backward` that assigned an input's `.grad` instead of adding to it."""
    name = repr(child.label) if child.label else f"Value(data={child.data!r})"
    what = f"{node.label!r}, " if node.label else ""
    return BackwardClosureError(
        f"backward: the _backward of node {what}op {node._op!r} (data {node.data!r}) overwrote the "
        f".grad of its input {name} with '=' (it set it to {value!r}): write '+=' instead, because "
        f"the gradients from several uses of a value add up (x.grad += local_derivative * out.grad)"
    )
