"""The graph walks: every traversal of a graph of nodes lives here, each iterative.

- `topological_order(root)`: every node, each after its inputs (numbers stored in a node come out as
  constant Values, through `_prev`).
- `gradient_order(root)`: just the nodes a gradient flows into, in the same kind of order: what a
  backward sweep visits.
- `reading_order(root)`: the order a reader meets the nodes in (first operands first): what drawings
  and the explorer number nodes by.
- `nodes_below(root)`: every node once, in no particular order (the cheapest walk);
  `count_nodes(root, limit)` counts them, stopping past `limit`; `depends_on` finds inputs below a node.

No walk recurses: a chain of a million nodes needs no recursion limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .layout import MANY

EXIT = object()  # a marker on a search's stack: "all inputs of the node below me are done"


def topological_order(root: Any, only_requiring_grad: bool = False) -> list[Any]:
    """Every node below `root`, each after all of its inputs (iterative depth-first search).

    With `only_requiring_grad`, just the nodes a gradient flows into (`gradient_order`); otherwise every
    node, numbers stored in a node included (as constant Values).
    """
    if only_requiring_grad:
        return gradient_order(root)
    order: list[Any] = []
    seen: set[Any] = set()
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if node is EXIT:
            order.append(stack.pop())
            continue
        if node in seen:
            continue
        seen.add(node)
        if node._a is None:
            order.append(node)
            continue
        stack.append(node)
        stack.append(EXIT)
        stack.extend(child for child in node._prev if child not in seen)
    return order


def gradient_order(root: Any) -> list[Any]:
    """The nodes a gradient flows into, each after its inputs: what a backward sweep visits.

    An iterative depth-first search: push every input that takes a gradient, finish a node once all
    of them are done. The float sweep walks the same order faster (`fast_sweep.sweep_order`, tested
    equal to this one); this loop decodes the slot layout (`layout.py`) inline.
    """
    order: list[Any] = []
    # A node is marked when it is expanded, not when it is pushed: a node pushed early (a child of
    # the root) but also reachable deeper down (y = x + x*2) must be finished before every user.
    seen: set[Any] = set()
    stack: list[Any] = [root]
    push, pop, mark, emit = stack.append, stack.pop, seen.add, order.append
    while stack:
        node = pop()
        if node is EXIT:
            emit(pop())
            continue
        if node in seen:
            continue
        mark(node)
        a = node._a
        if a is None:  # a leaf is finished as soon as it is reached
            emit(node)
            continue
        push(node)
        push(EXIT)
        b = node._b
        if b is MANY:
            for child in a:
                if child not in seen and child.requires_grad:
                    push(child)
            continue
        # A number operand is a float here (it takes no gradient): skip it.
        if type(a) is not float and a not in seen and a.requires_grad:
            push(a)
        if b is not None and type(b) is not float and b not in seen and b.requires_grad:
            push(b)
    return order


def reading_order(root: Any) -> list[Any]:
    """Every node below `root`, inputs before the nodes made from them, first operands first.

    An iterative depth-first search that visits operands left to right, so `a*b + c` numbers a, b,
    a*b, c, ... in the order a reader meets them (drawings and the explorer number nodes so).
    """
    order: list[Any] = []
    seen = {root}
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        node, i = stack[-1]
        children = node._prev
        # advance to the next operand not seen yet; when there is none, the node is finished
        while i < len(children) and children[i] in seen:
            i += 1
        if i == len(children):
            stack.pop()
            order.append(node)
            continue
        stack[-1] = (node, i + 1)
        seen.add(children[i])
        stack.append((children[i], 0))
    return order


def nodes_below(root: Any) -> Iterator[Any]:
    """Every node below `root` (and root) once, in no particular order; numbers stored in nodes skipped."""
    seen = {root}
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        a = node._a
        if a is None:
            continue
        b = node._b
        for child in a if b is MANY else (a,) if b is None else (a, b):
            if type(child) is not float and child not in seen:
                seen.add(child)
                stack.append(child)


def count_nodes(root: Any, limit: int) -> int:
    """How many nodes are below `root` (and root), counting no further than `limit` + 1: a bounded walk.

    What the explorer asks before it replays a graph, so that a huge one is refused fast.
    """
    seen = {root}
    stack = [root]
    while stack:
        for child in stack.pop()._prev:
            if child not in seen:
                seen.add(child)
                if len(seen) > limit:
                    return len(seen)
                stack.append(child)
    return len(seen)


def depends_on(node: Any, candidates: list[Any]) -> list[Any]:
    """Those of `candidates` that `node` is computed from (or is), in the candidates' order."""
    below = set(nodes_below(node))
    return [c for c in candidates if c in below]
