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
from ..errors import rule_failure
from .hand_built import hand_built_contributions
from .layout import Node, stored_inputs

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


def not_differentiable_twice(node: Any) -> TypeError:
    """A hand-built node met by a backward pass whose gradients must be differentiable."""
    return TypeError(
        f"backward(create_graph=True): {node!r} was built by hand (op {node._operation.name!r}); its "
        f"_backward works on numbers, so its gradient cannot be differentiated again. Define the "
        f"operation with chainrule.defop, whose rules also run on Values"
    )
