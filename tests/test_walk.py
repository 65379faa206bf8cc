"""The walk a backward pass sweeps: `gradient_order` gives exactly a plain depth-first search's order.

The order decides in which order the contributions into a shared node are added up, so a faster walk
must not change it by one node: the gradients would then differ in their last bits. The plain search
below (push every input that takes a gradient, then finish a node once all of them are done) is the
definition both of the engine's walks, with their shortcuts, are held to: the one with a set of the
nodes seen, and the float sweep's, which marks nodes in their `_g` slots (`fast_sweep.marked_order`).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

import chainrule
from chainrule import Value
from chainrule.engine import gradient_order
from chainrule.engine.fast_sweep import marked_order, sweep_order
from chainrule.engine.layout import stored_inputs
from test_chain_rule import random_graph

_DONE = object()


def plain_search_order(root: Any) -> list[Any]:
    """Every node a gradient flows into, each after its inputs: the textbook iterative search."""
    order: list[Any] = []
    seen: set[Any] = set()
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if node is _DONE:
            order.append(stack.pop())
            continue
        if node in seen:
            continue
        seen.add(node)
        stack += [node, _DONE]
        for child in stored_inputs(node):
            if type(child) is not float and child not in seen and child.requires_grad:
                stack.append(child)
    return order


def _inputs(node: Any) -> list[Any]:
    return [c for c in stored_inputs(node) if type(c) is not float and c.requires_grad]


def _orders(root: Any) -> list[list[Any]]:
    """Every way the engine walks the graph: with a set, and with marks (twice: the marks of one
    walk must not pass for those of the next)."""
    with_a_set = gradient_order(root)
    for node in with_a_set:  # every slot set: the marked walk can run
        node._g = 0.0
    return [with_a_set, marked_order(root), marked_order(root)]


@pytest.mark.parametrize("seed", range(300))
def test_gradient_order_is_the_plain_search_order(seed: int) -> None:
    root, leaves = random_graph(random.Random(seed))
    if random.Random(seed).random() < 0.3:
        leaves[0].requires_grad = False  # switched off after the graph was built: no longer visited
    want = plain_search_order(root)
    assert _orders(root) == [want, want, want]
    assert sweep_order(root) == want
    assert all(node._g == 0.0 for node in want)
    position = {node: i for i, node in enumerate(want)}
    assert all(position[c] < position[node] for node in want for c in _inputs(node))


def test_the_backward_walk_marks_nodes_in_their_slots_and_falls_back_to_a_set() -> None:
    x = Value(0.5)
    y = chainrule.sum([x * 2.0, (x * x).relu(), 1.0]) * 3.0
    want = plain_search_order(y)
    assert sweep_order(y) == want  # marks in the slots every new node has
    assert sweep_order(y) == want  # again: the marks of one walk do not pass for the next
    marks = {id(node._g) for node in want}
    assert len(marks) == 1 and all(node._g == 0.0 and type(node._g) is float for node in want)
    del want[2]._g  # a node whose slot was never set, below a root whose slot is
    assert sweep_order(y) == want
    assert all(node._g == 0.0 for node in want)
    y.backward()
    assert x.grad == 3.0 * (2.0 + 2 * 0.5)


def test_gradient_order_of_shared_inputs_chains_and_neurons() -> None:
    x, w, b = Value(0.5), Value(-1.0), Value(0.25)
    shapes = [
        x + x * 2,  # x pushed early, reached again deeper down
        x * x,  # the same input twice
        chainrule.sum([b, w * x, w * (x + 1.0), x]),  # a neuron: products whose inputs are seen
        ((x * 1.5 + 0.5).relu() - 0.25) / 1.5,  # a chain with numbers in its slots
        chainrule.sum([x, x, w]) * chainrule.sum([w, b]),
    ]
    for root in shapes:
        want = plain_search_order(root)
        assert _orders(root) == [want, want, want]
    y = x
    for _ in range(10_000):  # deep: no recursion
        y = (y * 1.0001).relu()
    want = plain_search_order(y)
    assert _orders(y) == [want, want, want]
    assert want[0] is x and len(want) == 20_001


def test_copies_and_unpickled_graphs_are_made_with_the_slot_the_marked_walk_needs() -> None:
    import copy
    import pickle

    x = Value(0.5)
    y = chainrule.sum([x * 2.0, (x * x).relu(), 1.0]) * 3.0
    for twin in (copy.deepcopy(y), pickle.loads(pickle.dumps(y)), copy.copy(y)):
        nodes = chainrule.engine.topological_order(twin)
        assert all(type(node._g) is float and node._g == 0.0 for node in nodes)
        assert marked_order(twin) == plain_search_order(twin)  # no node without its slot: no fallback
