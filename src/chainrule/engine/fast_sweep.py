"""The reference sweep, inlined for floats: skip on a first read.

`sweep_order` and `sweep_floats` are the hot loop of every training step: the walk and the sweep.

`sweep_order` gives `walk.gradient_order`'s nodes in the same order, without a set of the nodes seen:
it marks each node it reaches in the node's own `_g` slot (every node is made with one), and it
finishes a chain's links and a neuron's products without pushing them on its stack.
tests/test_walk.py holds it to a plain search, node for node.

`sweep_floats` does what `chain_rule.sweep` does with `chain_rule.contributions` on floats, with
three changes that make it several times faster and change no number: the gradients live in each
node's `_g` slot instead of a dict; the slot layout (`layout.py`) is decoded inline; and rows that
declare their algebra (`Op.bilinear` for mul, `Op.linear` for add, sub, neg and sum) are swept
without calling their rules: each input gets g times the other input, or g times its coefficient.
The declarations are facts about the rules, which tests/test_ops_table.py holds to the rules;
tests/test_chain_rule.py holds this loop to the reference sweep bit for bit on random graphs.

All or nothing: with `accumulate`, each node's `.grad += g` happens as the node is reached, and the
`.grad` it had is kept in its `_g` (no longer needed by then), so a step that raises puts every `.grad`
back exactly as it was.
"""

from __future__ import annotations

from typing import Any

from ..backends import FLOAT
from .chain_rule import failed_rule
from .hand_built import hand_built_contributions
from .layout import MANY
from .walk import EXIT, gradient_order


def sweep_order(root: Any) -> list[Any]:
    """The nodes a gradient flows into, each after its inputs, each with `_g` set to 0.0."""
    try:
        return marked_order(root)
    except AttributeError:  # a node made without its scratch slot (not by the engine): walk with a set
        order = gradient_order(root)
        for node in order:
            node._g = 0.0
        return order


def marked_order(root: Any) -> list[Any]:
    """`walk.gradient_order(root)` with each node's `_g` slot as its mark: no set, and `_g` left 0.0.

    The plain search's order, with its stack traffic mostly saved: the input the search would pop
    next is expanded at once, a chain's links wait in a list of their own, and a node with nothing
    left to visit (a leaf, most of a neuron's products) is finished where it is met. For the float
    sweep, which may write the scratch slots (it holds the gradient lock and no other pass is running
    in this thread). A node
    is marked by setting its `_g` to a float object made for this walk alone, `zero`: `node._g is
    zero` says it was reached, and its `_g` is 0.0 for the sweep. An object still referenced cannot be
    made again, so no mark of an earlier walk can pass for one of this walk. Raises AttributeError at
    a node whose slot was never set (`sweep_order` then walks with a set). Set
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
        if node is EXIT:
            emit(pop())
            continue
        if node._g is zero:
            continue
        while True:
            node._g = zero
            a = node._a
            b = node._b
            if b is None or type(b) is float:
                # The commonest node: a leaf, a one-input op, or an op with a number on its right
                # (y * 1.5). Its one input, if any, is a node: walked next, as a chain's link.
                if a is not None and a.requires_grad and a._g is not zero:
                    link(node)
                    node = a
                    continue
                emit(node)
                if chain:
                    order.extend(reversed(chain))
                    chain.clear()
                break
            if b is not MANY:  # two inputs: b a node, a a node or a number (2 - y)
                if type(a) is float or not a.requires_grad or a._g is zero:
                    a = None
                if not b.requires_grad or b._g is zero:
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
                    push(EXIT)
                chain.clear()
            push(node)
            push(EXIT)
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


def sweep_floats(order: list[Any], accumulate: bool) -> None:
    """Leave d(root)/d(node) in `node._g` for every node of `order` (the root's `_g` is its seed).

    With `accumulate`, add it into `node.grad` instead, leaving the node's previous `.grad` in `_g`.
    """
    m = FLOAT
    node = None
    try:
        for node in reversed(order):
            g = node._g
            if accumulate:
                node._g = node._grad  # kept, to be put back if a later step fails
                node._grad += g
            op = node._operation
            if op is None:
                continue
            a = node._a
            b = node._b
            # The operands first: a node with a number in it (y * 1.5, y - 0.25, 2 ** y) is the
            # commonest kind, and then only one input takes a gradient; measured, this order of the
            # tests is a few percent faster on a chain than testing the row's algebra first.
            if type(b) is float:  # a number on the right: only `a` takes a gradient
                if a.requires_grad:  # False if it was switched off after the graph was built
                    if op.bilinear:
                        a._g += g * b
                    elif op.linear is not None:
                        a._g += g * op.linear[0]
                    else:
                        a._g += op.derivatives[0](m, g, node._data, a._data, b)
            elif b is None:  # one input
                if a.requires_grad:
                    a._g += op.derivatives[0](m, g, node._data, a._data)
            elif b is not MANY:  # two inputs, `b` a node; `a` a node or a number (2 ** y)
                if type(a) is float:
                    if b.requires_grad:
                        if op.bilinear:
                            b._g += g * a
                        elif op.linear is not None:
                            b._g += g * op.linear[1]
                        else:
                            b._g += op.derivatives[1](m, g, node._data, a, b._data)
                elif op.bilinear:
                    if a.requires_grad:
                        a._g += g * b._data
                    if b.requires_grad:
                        b._g += g * a._data
                elif op.linear is not None:
                    ca, cb = op.linear
                    if a.requires_grad:
                        a._g += g * ca
                    if b.requires_grad:
                        b._g += g * cb
                else:
                    out = node._data
                    x = a._data
                    y = b._data
                    da, db = op.derivatives
                    if a.requires_grad:
                        a._g += da(m, g, out, x, y)
                    if b.requires_grad:
                        b._g += db(m, g, out, x, y)
            elif op.hand_built:
                for _, child, d in hand_built_contributions(node, g):
                    child._g += d
            elif op.arity is None:
                if op.linear is not None:
                    d = g * op.linear[0]
                else:
                    d = op.derivatives[0](m, g, node._data, *[c._data for c in a])
                for child in a:
                    if child.requires_grad:
                        child._g += d
            else:  # three inputs or more (an op made with defop): one rule per input
                out = node._data
                xs = [c._data for c in a]
                for rule, child in zip(op.derivatives, a, strict=True):
                    if child.requires_grad:
                        child._g += rule(m, g, out, *xs)
    except BaseException as exc:
        if accumulate and node is not None:
            # put back the .grad of every node reached so far (the failing one included)
            for reached in order[order.index(node) :]:
                reached._grad = reached._g
        if isinstance(exc, ArithmeticError | ValueError) and node is not None and node._operation is not None:
            if not node._operation.hand_built:
                raise failed_rule(node, exc) from exc
        raise
