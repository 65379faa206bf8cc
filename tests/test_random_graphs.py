"""Random expression graphs (hypothesis): values and gradients agree with PyTorch float64.

A drawn program is a list of steps; each applies an op of the table to earlier nodes (any of them, so
subexpressions are shared and inputs are reached along several paths) or to plain numbers. Operands are
picked among the nodes whose value lies inside the op's domain, well away from its edge, so every drawn
program is valid and its gradients are finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainrule import TABLE, Value
from chainrule.backends import FLOAT
from conftest import need
from op_cases import case

# Every row of the table, with its spelling, PyTorch twin and domain from tests/op_cases.py.
BUILTIN = {op.name: op for op in TABLE}
LIMIT = 1e3  # keep values (and so gradients) in a range where float64 rounding stays far below 1e-9


@dataclass(frozen=True)
class Step:
    """One op applied to operands: ("node", index) refers to an earlier node, ("num", x) to a number."""

    op: str
    args: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Program:
    """Leaf values (and whether each takes a gradient), then the steps; the last node is the output."""

    leaves: tuple[float, ...]
    trainable: tuple[bool, ...]
    steps: tuple[Step, ...]


finite = st.floats(-3.0, 3.0, allow_nan=False).map(lambda x: round(x, 3))


@st.composite
def programs(draw: st.DrawFn) -> Program:
    n = draw(st.integers(1, 4))
    leaves = tuple(draw(finite) for _ in range(n))
    trainable = tuple(draw(st.booleans()) or i == 0 for i in range(n))
    values = list(leaves)
    steps: list[Step] = []

    def pick() -> int:
        # the later of two draws: recent nodes are likelier operands, so graphs get deep as well as wide
        return max(draw(st.integers(0, len(values) - 1)), draw(st.integers(0, len(values) - 1)))

    def number(entry: Any, i: int) -> float:
        choices = entry.numbers[i] if entry.numbers is not None else None
        return draw(finite if choices is None else st.sampled_from(choices))

    for _ in range(draw(st.integers(1, 25))):
        op = draw(st.sampled_from(sorted(BUILTIN)))
        entry = case(BUILTIN[op])
        arity = BUILTIN[op].arity
        if arity is None:  # n-ary (sum): nodes only
            args: tuple[tuple[str, Any], ...] = tuple(
                ("node", pick()) for _ in range(draw(st.integers(1, 5)))
            )
        elif arity == 1:
            args = (("node", pick()),)
        else:  # each input a node or a plain number, at least one of them a node
            args = tuple(
                ("node", pick()) if draw(st.booleans()) else ("num", number(entry, i)) for i in range(arity)
            )
            if all(kind == "num" for kind, _ in args):
                args = (("node", pick()), *args[1:])
        xs = [values[v] if kind == "node" else v for kind, v in args]
        if not entry.safe(xs, [kind == "node" for kind, _ in args]):
            continue
        out = BUILTIN[op].forward(FLOAT, *xs)
        if not abs(out) < LIMIT:
            continue
        values.append(out)
        steps.append(Step(op, args))
    return Program(leaves, trainable, tuple(steps))


# --- running a program on either engine ---------------------------------------------------------
def run_chainrule(program: Program) -> list[Value]:
    nodes = [Value(x, requires_grad=t) for x, t in zip(program.leaves, program.trainable, strict=True)]
    for step in program.steps:
        xs = [nodes[v] if kind == "node" else v for kind, v in step.args]
        nodes.append(case(BUILTIN[step.op]).spell(*xs))  # as users write it: operators and methods
    return nodes


def run_torch(program: Program) -> list[Any]:
    torch = need("torch")
    nodes = [
        torch.tensor(x, dtype=torch.float64, requires_grad=t)
        for x, t in zip(program.leaves, program.trainable, strict=True)
    ]
    for step in program.steps:
        xs = [nodes[v] if kind == "node" else v for kind, v in step.args]
        out = case(BUILTIN[step.op]).torch(*xs)  # plain numbers become constant tensors
        if out.requires_grad:
            out.retain_grad()
        nodes.append(out)
    return nodes


def close(got: float, want: float) -> bool:
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)


RANDOM = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@RANDOM
@given(programs())
def test_values_and_gradients_agree_with_torch(program: Program) -> None:
    ours = run_chainrule(program)
    theirs = run_torch(program)
    out, ref = ours[-1], theirs[-1]
    assert close(out.data, ref.item()), (out.data, ref.item())
    if not out.requires_grad:  # a graph of constants only: nothing to differentiate
        assert not ref.requires_grad
        return
    out.backward()
    ref.backward()
    for i, (node, t) in enumerate(zip(ours, theirs, strict=True)):
        want = 0.0 if t.grad is None else t.grad.item()
        assert close(node.grad, want), f"node {i} ({node._op or 'leaf'}): grad {node.grad}, torch {want}"


@RANDOM
@given(programs())
def test_second_backward_doubles_every_gradient_exactly(program: Program) -> None:
    nodes = run_chainrule(program)
    out = nodes[-1]
    if not out.requires_grad:
        return
    out.backward()
    first = [node.grad for node in nodes]
    out.backward()
    assert [node.grad for node in nodes] == [2 * g for g in first]


@RANDOM
@given(programs())
def test_gradients_as_values_equal_float_gradients(program: Program) -> None:
    # backward(create_graph=True) runs the same table rules on Values: same numbers, as graph nodes.
    floats = run_chainrule(program)
    graphs = run_chainrule(program)
    if not floats[-1].requires_grad:
        return
    floats[-1].backward()
    graphs[-1].backward(create_graph=True)
    for a, b in zip(floats, graphs, strict=True):
        got = b.grad.data if isinstance(b.grad, Value) else b.grad
        assert got == pytest.approx(a.grad, rel=1e-12, abs=1e-12)


def test_programs_share_subexpressions() -> None:
    # The strategy must actually produce reuse (a node used by several later nodes), or the tests above
    # would not exercise gradient accumulation.
    shared = 0

    @settings(max_examples=50, deadline=None, database=None)
    @given(programs())
    def count(program: Program) -> None:
        nonlocal shared
        uses: dict[int, int] = {}
        for step in program.steps:
            for kind, v in step.args:
                if kind == "node":
                    uses[v] = uses.get(v, 0) + 1
        shared += any(n > 1 for n in uses.values())

    count()
    assert shared >= 10
