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

_EXIT = object()  # a marker on the DFS stack: "all children of the node below me are done"


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
        if node is _EXIT:
            order.append(stack.pop())
            continue
        if node in seen:
            continue
        seen.add(node)
        if node._a is None:
            order.append(node)
            continue
        stack.append(node)
        stack.append(_EXIT)
        stack.extend(child for child in node._prev if child not in seen)
    return order


def gradient_order(root: Any, zero_scratch: bool = False) -> list[Any]:
    """The nodes a gradient flows into, each after its inputs; with `zero_scratch`, also `_g = 0.0`.

    The float sweep zeroes each node's scratch gradient here, as the node is reached, rather than in a
    second loop over the order. This loop decodes the slot layout (`layout.py`) inline: it runs once
    per backward pass over every node.
    """
    if zero_scratch and hasattr(root, "_g"):
        try:
            return scratch_marked_order(root)
        except AttributeError:  # a node whose scratch slot was never set: the walk with a set, below
            pass
    order: list[Any] = []
    # A node is marked when it is expanded, not when it is pushed: a node pushed early (a child of
    # the root) but also reachable deeper down (y = x + x*2) must be finished before every user.
    seen: set[Any] = set()
    stack: list[Any] = [root]
    # The nodes passed on the way down a chain (each with one input left to visit), to be finished
    # together, the last one first, where the chain ends.
    chain: list[Any] = []
    push, pop, mark, emit, link = stack.append, stack.pop, seen.add, order.append, chain.append
    while stack:
        node = pop()
        if node is _EXIT:
            emit(pop())
            continue
        if node in seen:
            continue
        # Expand `node`, and go on down from it. The order is exactly that of a plain depth-first
        # search, which pushes every input, then the node and an _EXIT marker to finish it by, but
        # most of that stack traffic (the larger part of a walk's cost) is saved: the input such a
        # search would pop next is expanded right here; a node with one input left to visit (every
        # link of a chain) waits in `chain` instead of on the stack; and a node with nothing left to
        # visit (a leaf; most products of a neuron, whose inputs are already seen) is finished at once.
        while True:
            mark(node)
            if zero_scratch:
                node._g = 0.0
            a = node._a
            b = node._b
            if b is not MANY:
                # The inputs still to visit (a leaf has none); a number operand is a float here.
                if a is not None and (type(a) is float or a in seen or not a.requires_grad):
                    a = None
                if b is not None and (type(b) is float or b in seen or not b.requires_grad):
                    b = None
                if a is None and b is None:  # finished, and with it the chain that led here
                    emit(node)
                    if chain:
                        order.extend(reversed(chain))
                        chain.clear()
                    break
                if a is None or b is None:  # one input to visit: go on down the chain
                    link(node)
                    node = a if b is None else b
                    continue
            # Several inputs to visit: the chain that led here waits on the stack, below this node.
            if chain:
                for waiting in chain:
                    push(waiting)
                    push(_EXIT)
                chain.clear()
            push(node)
            push(_EXIT)
            if b is not MANY:  # b now, a once b is done
                push(a)
                node = b
                continue
            for child in a:
                if child not in seen and child.requires_grad:
                    push(child)
            if stack[-1] is _EXIT:  # every input was visited already
                pop()
                emit(pop())
            break
    return order


def scratch_marked_order(root: Any) -> list[Any]:
    """`gradient_order(root, zero_scratch=True)` with each node's `_g` slot as its mark: no set.

    The same walk as `gradient_order`'s (and one shortcut more: an n-ary node's inputs with nothing
    left to visit are finished in its own loop), for the float sweep, which may write the scratch
    slots (it holds the gradient lock and no other pass is running in this thread). A node
    is marked by setting its `_g` to a float object made for this walk alone, `zero`: `node._g is
    zero` says it was reached, and its `_g` is 0.0 for the sweep. An object still referenced cannot be
    made again, so no mark of an earlier walk can pass for one of this walk. Raises AttributeError at
    a node whose slot was never set (only `gradient_order` calls it, and then walks with a set). Set
    lookups cost more than slot reads, and a set of every node of a large graph is megabytes to fill
    and search: on a demo graph this walk takes 40% less time (docs/performance.md).
    """
    zero = float(0)  # not the literal 0.0: a new object, distinct from every float in any slot now
    order: list[Any] = []
    stack: list[Any] = [root]
    chain: list[Any] = []
    push, pop, emit, link = stack.append, stack.pop, order.append, chain.append
    while stack:
        node = pop()
        if node is _EXIT:
            emit(pop())
            continue
        if node._g is zero:
            continue
        while True:
            node._g = zero
            a = node._a
            b = node._b
            if b is not MANY:
                if a is not None and (type(a) is float or not a.requires_grad or a._g is zero):
                    a = None
                if b is not None and (type(b) is float or not b.requires_grad or b._g is zero):
                    b = None
                if a is None and b is None:
                    emit(node)
                    if chain:
                        order.extend(reversed(chain))
                        chain.clear()
                    break
                if a is None or b is None:
                    link(node)
                    node = a if b is None else b
                    continue
            if chain:
                for waiting in chain:
                    push(waiting)
                    push(_EXIT)
                chain.clear()
            push(node)
            push(_EXIT)
            if b is not MANY:
                push(a)
                node = b
                continue
            # An input with nothing of its own left to visit (a leaf; a neuron's product of a weight
            # and an input both reached already) is finished right here, last input first, as a
            # search would finish it right after popping it. At the first input that needs a walk
            # of its own, it and the inputs before it go on the stack, in the order a search pushes
            # them.
            left = len(a)
            for child in reversed(a):
                left -= 1
                if not child.requires_grad or child._g is zero:
                    continue
                ca = child._a
                cb = child._b
                if ca is None or (
                    cb is not MANY
                    and (type(ca) is float or not ca.requires_grad or ca._g is zero)
                    and (cb is None or type(cb) is float or not cb.requires_grad or cb._g is zero)
                ):
                    child._g = zero
                    emit(child)
                    continue
                for waiting in a[:left]:
                    if waiting.requires_grad and waiting._g is not zero:
                        push(waiting)
                node = child
                break
            else:  # every input is finished
                pop()
                emit(pop())
                break
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
