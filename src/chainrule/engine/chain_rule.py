"""The chain rule, written once: the reference step for one node, and the reference sweep.

The **step**: a node `out = op(x1, ..., xn)` and the gradient `g = d(root)/d(out)` that has reached it
give each input the contribution `g * d(out)/d(xi)`, which the op's row in the derivative table
computes (`op.derivatives[i](m, g, out, *xs)`). `rule_contributions` is that step for a table row on
any number system `m` (floats, `Value`s, numpy arrays, JAX, torch); `contributions` applies it to a
graph node: a table row, an n-ary row, or a node built by hand, whose closure speaks micrograd.

The **sweep**: visit the nodes from the root down, each after every node that uses it, so that its
gradient is complete when it is reached, and add each step's contributions into the inputs'
gradients. `sweep` is that loop, with two hooks: `check` (what `detect_anomaly` needs) and `record`
(what the explorer needs). It keeps its gradients in a dict of its own, so it touches no node: a
sweep started from inside another one (a rule that calls `chainrule.grad`) cannot disturb it.

Every other place that back-propagates is this step or a specialisation of it tested equal to it:
the fast float sweep (`fast_sweep.py`), compiled float and batch mode, Tensor, and the exports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..backends import FLOAT, VALUE
from ..errors import BackwardClosureError, rule_failure
from .layout import Node, stored_inputs
from .mode import GRAD_LOCK

NO_PARAMS: dict[str, Any] = {}  # the parameters of a row that has none (a Tensor row may have some)
Contribution = tuple[int, Any, Any]  # (input position, input node, contribution to its gradient)


def rule_contributions(
    op: Any, g: Any, out: Any, xs: Sequence[Any], wanted: Sequence[bool], m: Any, params: dict[str, Any]
) -> list[Any]:
    """The chain-rule step of table row `op`: input i's contribution for output gradient `g`.

    `out` and `xs` are the output and the inputs on number system `m`; inputs not `wanted` (no gradient
    flows into them) get None, and their rules are not run (pow's rule for a constant exponent would
    take the log of a negative base). An n-ary row has one rule for all inputs, which is not told which
    input it is for: its value is the same for each, so it runs once.
    """
    if op.arity is None:
        d = op.derivatives[0](m, g, out, *xs, **params) if any(wanted) else None
        return [d if w else None for w in wanted]
    return [
        rule(m, g, out, *xs, **params) if w else None for rule, w in zip(op.derivatives, wanted, strict=True)
    ]


def contributions(node: Node, g: Any, graph: bool = False) -> list[Contribution]:
    """The reference step for a `Value` node: `(i, input, contribution)` for each input that takes a gradient.

    With `graph`, `g` is a `Value` and the rules run on `Value`s (the VALUE backend), so that each
    contribution is itself a graph node that can be differentiated again; otherwise on floats.
    """
    op = node._operation
    if op is None:
        return []
    if op.hand_built:
        if graph:
            raise not_differentiable_twice(node)
        return hand_built_contributions(node, g)
    if graph:
        inputs = node._prev  # numbers stored in the node become constant Values: rules call methods
        out, xs, m = node, inputs, VALUE
    else:
        inputs = stored_inputs(node)  # numbers stored in the node stay floats: no constant Values made
        out, m = node._data, FLOAT
        xs = [x if type(x) is float else x._data for x in inputs]
    wanted = [type(x) is not float and x.requires_grad for x in inputs]
    try:
        found = rule_contributions(op, g, out, xs, wanted, m, NO_PARAMS)
    except (ArithmeticError, ValueError) as exc:
        raise failed_rule(node, exc) from exc
    return [(i, x, d) for i, (x, d, w) in enumerate(zip(inputs, found, wanted, strict=True)) if w]


# --- nodes built by hand: the closure speaks micrograd ------------------------------------------------
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


def hand_built_contributions(node: Node, g: float) -> list[Contribution]:
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


# --- the reference sweep -------------------------------------------------------------------------------
class SweepCheck(Protocol):
    """What the sweep's `check` hook offers (chainrule.anomaly implements it)."""

    def visiting(self, node: Node, g: Any) -> None:
        """Called before the step of each node that has a gradient: raise to stop the sweep."""

    def contribution(self, node: Node, i: int, g: Any, d: Any, before: Any, total: Any) -> None:
        """Called after each input's gradient is updated: raise to stop the sweep."""

    def failed(self, node: Node, g: Any, exc: BaseException) -> None:
        """Called when the step of `node` raised `exc`: raise a better error, or return to re-raise it."""


Record = Callable[[Node, Any, list[Contribution]], None]
Step = Callable[[Node, Any, bool], list[Contribution]]


def sweep(
    root: Node,
    seed: Any,
    order: list[Node],
    graph: bool = False,
    check: SweepCheck | None = None,
    record: Record | None = None,
    step: Step = contributions,
) -> dict[Node, Any]:
    """The reference sweep: d(root)/d(node) for every node of `order` that a gradient reaches.

    `order` lists the nodes, each after its inputs (`walk.gradient_order(root)`); `seed` is the root's
    own gradient (1.0, or a constant `Value` with `graph`). Touches no `.grad` and no `_g`: the
    gradients come back as a dict, and a step that raises leaves nothing half-done behind. `step` is
    the reference step for the kind of node (`contributions` for Values; `Tensor` gives its own, made
    of `rule_contributions` and the broadcasting rule).
    """
    grads: dict[Node, Any] = {root: seed}
    for node in reversed(order):
        g = grads.get(node)
        if g is None:
            continue
        if check is not None:
            check.visiting(node, g)
        try:
            found = step(node, g, graph)
        except Exception as exc:
            if check is not None:
                check.failed(node, g, exc)
            raise
        if record is not None:
            record(node, g, found)
        for i, child, d in found:
            before = grads.get(child)
            try:
                total = d if before is None else before + d
            except Exception as exc:
                if check is not None:
                    check.failed(node, g, exc)
                raise
            if check is not None:
                check.contribution(node, i, g, d, before, total)
            grads[child] = total
    return grads


# --- the errors of a step, built once ------------------------------------------------------------------
def failed_rule(node: Node, exc: BaseException) -> Exception:
    """A derivative rule of `node`'s op that raised, as the DomainError naming the op and its inputs."""
    inputs = tuple(x if type(x) is float else x.data for x in stored_inputs(node))
    return rule_failure(node._operation.name, inputs, exc)


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


def not_differentiable_twice(node: Any) -> TypeError:
    """A hand-built node met by a backward pass whose gradients must be differentiable."""
    return TypeError(
        f"backward(create_graph=True): {node!r} was built by hand (op {node._operation.name!r}); its "
        f"_backward works on numbers, so its gradient cannot be differentiated again. Define the "
        f"operation with chainrule.defop, whose rules also run on Values"
    )


# --- micrograd's `node._backward()`: one step, by hand ------------------------------------------------
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
