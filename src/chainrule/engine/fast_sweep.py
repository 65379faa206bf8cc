"""The reference sweep, inlined for floats: skip on a first read.

`sweep_floats` is the hot loop of every training step. It does what `chain_rule.sweep` does with
`chain_rule.contributions` on floats, with three changes that make it several times faster and
change no number: the gradients live in each node's `_g` slot instead of a dict; the slot layout
(`layout.py`) is decoded inline; and rows that declare their algebra (`Op.bilinear` for mul,
`Op.linear` for add, sub, neg and sum) are swept without calling their rules: each input gets g times
the other input, or g times its coefficient. The declarations are facts about the rules, which
tests/test_ops_table.py holds to the rules; tests/test_chain_rule.py holds this loop to the reference
sweep bit for bit on random graphs.

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
            if b is None:  # one input
                if a.requires_grad:  # False if it was switched off after the graph was built
                    a._g += op.derivatives[0](m, g, node._data, a._data)
            elif b is not MANY:  # two inputs; a number among them is stored as a float
                # The operands first: a node with a number in it (y * 1.5, y - 0.25, 2 ** y) is the
                # commonest kind, and then only one input takes a gradient; measured, this order of
                # the tests is a few percent faster on a chain than testing the row's algebra first.
                if type(b) is float:
                    if a.requires_grad:
                        if op.bilinear:
                            a._g += g * b
                        elif op.linear is not None:
                            a._g += g * op.linear[0]
                        else:
                            a._g += op.derivatives[0](m, g, node._data, a._data, b)
                elif type(a) is float:
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
