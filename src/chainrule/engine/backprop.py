"""Backward passes: which sweep runs, under which lock, and how its gradients reach `.grad`.

`backward(root)` is what `Value.backward()` runs; `gradients(root)` is the same pass returning the
gradients without touching `.grad` (for `chainrule.grad` and the course's `Variable`).

Both are all or nothing: the sweep computes every gradient first, and a pass that raises (a domain
error at one node, a hand-built closure that throws) leaves every `.grad` exactly as it was, so a
training loop can skip the sample and go on.

Which sweep:
- on floats, normally the fast one (`fast_sweep.sweep_floats`, gradients in the nodes' `_g` slots);
- the reference sweep (`chain_rule.sweep`, gradients in a dict of its own) for gradients that are
  `Value`s (`create_graph=True`), inside `detect_anomaly()` (its checking hook), and for a pass started
  while another one is running in this thread (a rule that calls `chainrule.grad` on shared
  parameters): the outer pass is still using the `_g` slots, which the inner one must not touch.
"""

from __future__ import annotations

from typing import Any

from . import mode
from .chain_rule import sweep
from .fast_sweep import sweep_floats, sweep_order
from .mode import GRAD_LOCK, STATE
from .walk import gradient_order


def add_gradients(nodes: Any, grads: Any) -> None:
    """Add each float gradient into its node's `.grad`, as `backward()` does; skip frozen nodes.

    For engines that computed the gradients elsewhere (a compiled Program): under the lock every pass
    holds, so that threads sharing parameters leave the exact sum, and only into nodes that still
    take a gradient (one frozen after compiling gets none). It writes the slot behind `.grad` directly:
    these are numbers the engine made, which need none of the public setter's checks.
    """
    with GRAD_LOCK:
        for node, g in zip(nodes, grads, strict=True):
            if node.requires_grad:
                node._grad += g


def zero_gradients(nodes: Any) -> None:
    """Set `.grad = 0.0` on each of `nodes` (what `Module.zero_grad` and the optimizers do)."""
    for node in nodes:
        node._grad = 0.0


def _check_root(root: Any, what: str) -> None:
    root.data  # noqa: B018 - a placeholder (or a node computed from one) raises the error naming it
    if not root.requires_grad:
        raise ValueError(
            f"{what}: this Value does not require grad (it was made from constants, "
            "requires_grad=False, or inside chainrule.no_grad())"
        )


def _reference(root: Any, order: list[Any], graph: bool) -> dict[Any, Any]:
    """The reference sweep from `root`, with the anomaly checks when this thread asked for them."""
    observer = STATE.observer
    check = observer.checks() if observer is not None else None
    if not graph:
        return sweep(root, 1.0, order, check=check)
    seed = type(root)(1.0, requires_grad=False)
    with mode.enable_grad():  # the rules' own operations must be recorded, even inside no_grad()
        return sweep(root, seed, order, graph=True, check=check)


def _fast(root: Any, accumulate: bool) -> list[Any]:
    """The fast float sweep from `root`; returns the order it swept (gradients in `_g`, or in `.grad`)."""
    order = sweep_order(root)
    root._g = 1.0
    sweep_floats(order, accumulate)
    return order


def _run(root: Any, create_graph: bool, into_grad: bool) -> dict[Any, Any] | None:
    """One backward pass from `root`, under the lock: into `.grad` (`into_grad`), or as a dict.

    Written out rather than with a context manager for the bookkeeping: it runs once per backward()
    call, and a generator-based one cost about 1 us of a 1,000-op chain's 300 us.
    """
    with GRAD_LOCK:
        nested = STATE.sweeps_running > 0
        STATE.sweeps_running += 1
        try:
            observer = STATE.observer
            if not create_graph and not nested and (observer is None or observer.checks() is None):
                order = _fast(root, accumulate=into_grad)
                return None if into_grad else {node: node._g for node in order}
            order = gradient_order(root)
            grads = _reference(root, order, create_graph)
            if not into_grad:
                return grads
            for node in order:  # every gradient is known: only now does any .grad change
                g = grads.get(node)
                if g is None:
                    continue
                if create_graph:  # keep the gradient graph free of a needless "0.0 + g" node
                    node.grad = g if type(node.grad) is float and node.grad == 0.0 else node.grad + g
                else:
                    node.grad += g
            return None
        finally:
            STATE.sweeps_running -= 1


def backward(root: Any, create_graph: bool = False) -> None:
    """Add d(root)/d(node) into `.grad` of every node below `root`: all of them, or (on error) none."""
    _check_root(root, "backward")
    _run(root, create_graph, into_grad=True)


def gradients(root: Any, create_graph: bool = False) -> dict[Any, Any]:
    """d(root)/d(node) for every node a gradient flows into, as a dict; no `.grad` changes.

    With `create_graph`, the gradients are `Value`s connected to the graph (differentiable again).
    """
    _check_root(root, "backward")
    grads = _run(root, create_graph, into_grad=False)
    assert grads is not None  # for the type checker: a pass not into .grad returns its dict
    return grads
