"""The chain rule is written once: every sweep is the reference step or a specialisation tested equal to it.

- the fast float sweep equals the reference sweep bit for bit on random graphs (every row of the
  table, hand-built nodes, shared subexpressions, numbers stored in slots);
- micrograd's `_backward()` stepping, Tensor and `detect_anomaly` run the reference step;
- backward is all or nothing, re-entrant, and a copied graph's closures act on the copy.
"""

from __future__ import annotations

import copy
import math
import random

import pytest

import chainrule
from chainrule import DomainError, Value
from chainrule.engine import (
    contributions,
    fast_sweep,
    gradient_order,
    gradients,
    hand_built,
    sweep,
    topological_order,
)
from chainrule.errors import BackwardClosureError
from chainrule.ops import TABLE
from op_cases import CASES


# --- random graphs --------------------------------------------------------------------------------
def _cube(x: Value) -> Value:
    """micrograd's way: a node built by hand, with its own closure."""
    out = Value(x.data**3, (x,), "cube")

    def _backward() -> None:
        x.grad += 3 * x.data**2 * out.grad

    out._backward = _backward
    return out


def _table_row(op_name: str, a: Value, b: Value) -> Value:
    """The row on a and b, with its operands moved into its domain as tests/op_cases.py's recipe does."""
    return CASES[op_name].build(TABLE_BY_NAME[op_name], a, b, a, 0.5)


TABLE_BY_NAME = {op.name: op for op in TABLE}
ROWS = [op.name for op in TABLE]


def random_graph(rng: random.Random) -> tuple[Value, list[Value]]:
    """A random graph over a few leaves: every kind of node, shared subexpressions, numbers in slots."""
    leaves = [Value(rng.uniform(-1.5, 1.5), label=f"x{i}") for i in range(rng.randint(1, 4))]
    if rng.random() < 0.3:
        leaves.append(Value(rng.uniform(-1, 1), requires_grad=False))  # a constant
    pool: list[Value] = list(leaves)
    for _ in range(rng.randint(1, 25)):
        a, b = rng.choice(pool), rng.choice(pool)  # the same node twice is allowed: shared paths
        kind = rng.randrange(9)
        if kind == 0:
            node = a + b
        elif kind == 1:
            node = a * rng.uniform(-2, 2)  # a number stored in the slot
        elif kind == 2:
            node = rng.uniform(-2, 2) - a
        elif kind == 3:
            node = a * b
        elif kind == 4:
            node = a / (b * b + 1.0)
        elif kind == 5:
            node = _table_row(rng.choice(ROWS), a, b)
        elif kind == 6:
            node = chainrule.sum(rng.sample(pool, min(len(pool), 3)) + [2.0])
        elif kind == 7:
            node = _cube(a.tanh())
        else:
            node = (a * a + 1.0) ** rng.choice([2, 0.5, -1.5])
        pool.append(node)
    return chainrule.sum(pool[-3:]), leaves


@pytest.mark.parametrize("seed", range(300))
def test_the_fast_float_sweep_equals_the_reference_sweep_bit_for_bit(seed: int) -> None:
    rng = random.Random(seed)
    root, _ = random_graph(rng)
    if not root.requires_grad:
        return
    reference = sweep(root, 1.0, gradient_order(root))
    fast = gradients(root)  # the fast path: no anomaly, no nesting
    assert set(fast) == set(gradient_order(root))
    for node in gradient_order(root):
        want = reference.get(node, 0.0)
        got = fast[node]
        assert got == want or (math.isnan(got) and math.isnan(want)), (seed, node, got, want)


def test_every_row_kind_is_covered_by_the_random_graphs() -> None:
    seen: set[str] = set()
    for seed in range(300):
        root, _ = random_graph(random.Random(seed))
        seen.update(n._operation.name for n in topological_order(root) if n._operation is not None)
    assert {op.name for op in TABLE} <= seen
    assert "cube" in seen


def test_micrograds_manual_step_is_the_reference_step() -> None:
    checked = 0
    for name, case in CASES.items():
        for point in case.points:
            wrt = point.inputs()
            xs = [Value(x, label=f"x{i}") if i in wrt else x for i, x in enumerate(point.xs)]
            out = case.spell(*xs)
            out.grad = 0.75
            nodes = [x for x in xs if isinstance(x, Value)]
            expected = {x: 0.0 for x in nodes}
            try:
                for _, child, d in contributions(out, 0.75):
                    expected[child] += d
            except DomainError:
                with pytest.raises(DomainError):
                    out._backward()
                assert all(x.grad == 0.0 for x in nodes)
                continue
            out._backward()
            for x in nodes:
                assert x.grad == expected[x] or (math.isnan(x.grad) and math.isnan(expected[x])), name
            checked += 1
    assert checked > 2 * len(CASES)


# --- all or nothing -------------------------------------------------------------------------------
def test_a_failed_backward_changes_no_grad_and_training_can_skip_the_sample() -> None:
    # the loop: three samples, the middle one outside log's derivative's domain
    w = Value(2.0, label="w")
    for x in (1.0, 0.0, 2.0):
        loss = (w * x).sqrt() * 3.0  # d/dw is undefined at w*x == 0
        try:
            loss.backward()
        except DomainError:
            continue  # skip the bad sample
    # d/dw 3*sqrt(w*x) = 1.5 * x / sqrt(w*x): at x=1 1.0607, at x=2 2.1213
    assert w.grad == pytest.approx(1.5 / math.sqrt(2.0) + 1.5 * 2 / math.sqrt(4.0))


def test_a_closure_that_raises_leaves_every_grad_as_it_was() -> None:
    x = Value(1.5, label="x")
    y = Value(-0.5, label="y")
    bad = Value(x.data * 2, (x,), "boom")

    def _backward() -> None:
        x.grad += 2 * bad.grad
        raise RuntimeError("the closure failed")

    bad._backward = _backward
    root = (x * y).tanh() + bad * y + x
    x.grad, y.grad = 0.25, -4.0
    with pytest.raises(RuntimeError, match="the closure failed"):
        root.backward()
    assert (x.grad, y.grad, root.grad, bad.grad) == (0.25, -4.0, 0.0, 0.0)
    for node in topological_order(root):
        assert node.grad in (0.0, 0.25, -4.0)


@pytest.mark.parametrize("mode", ["floats", "create_graph", "anomaly", "tensor"])
def test_all_or_nothing_in_every_backward_mode(mode: str) -> None:
    if mode == "tensor":
        from chainrule import Tensor

        w = Tensor([1.0, 2.0])
        x = Tensor([1.0, -1.0])
        (w * x).sum().backward()
        before = w.grad.copy()
        with pytest.raises(DomainError):
            (w * 0.0).log().sum().backward()  # forward raises before anything
        assert (w.grad == before).all()
        return
    w = Value(0.5, label="w")
    w.grad = 1.0
    loss = (w * 0.0).sqrt() + w * w  # the sqrt's derivative at 0 is undefined
    with pytest.raises(DomainError, match="sqrt"):
        if mode == "anomaly":
            with chainrule.detect_anomaly():
                loss.backward()
        else:
            loss.backward(create_graph=mode == "create_graph")
    assert w.grad == 1.0 and loss.grad == 0.0


# --- re-entrant ------------------------------------------------------------------------------------
def test_a_rule_that_calls_grad_on_a_shared_parameter_does_not_disturb_the_outer_sweep() -> None:
    w = Value(2.0, label="w")

    def slope(m, g, out, x):  # the derivative of x*w in x, found with chainrule.grad itself
        inner = chainrule.grad(lambda v: v * w)(x if isinstance(x, float) else x.data)
        return g * inner

    scale = chainrule.defop("scale_by_w_reentrant", lambda m, x: x * w.data, slope, replace=True)
    x = Value(3.0, label="x")
    loss = w * x + scale(x)  # dL/dw = x = 3 (scale's rule treats w.data as a number); dL/dx = w + w
    loss.backward()
    assert w.grad == 3.0
    assert x.grad == 4.0


def test_backward_inside_a_closure_does_not_disturb_the_outer_sweep() -> None:
    w = Value(2.0, label="w")
    x = Value(3.0, label="x")
    node = Value(x.data * 2, (x,), "twice")

    def _backward() -> None:
        (w * w).backward()  # an unrelated pass over the shared parameter w, from inside the sweep
        x.grad += 2 * node.grad

    node._backward = _backward
    loss = w * x + node
    loss.backward()
    assert w.grad == 3.0 + 4.0  # the outer pass's dL/dw = x, plus the inner pass's d(w*w)/dw
    assert x.grad == 2.0 + 2.0


# --- copies ---------------------------------------------------------------------------------------
def test_a_deep_copied_graph_runs_its_own_closures_on_its_own_nodes() -> None:
    x = Value(2.0, label="x")
    y = _cube(x) + x
    z = copy.deepcopy(y)
    z.backward()
    x_copy = next(n for n in topological_order(z) if n.label == "x")
    assert x_copy is not x
    assert x_copy.grad == 13.0 and x.grad == 0.0  # 3 * 2**2 + 1 on the copy, nothing on the original
    y.backward()
    assert x.grad == 13.0 and x_copy.grad == 13.0


def test_a_shallow_copy_of_a_hand_built_node_reads_its_own_grad() -> None:
    x = Value(2.0, label="x")
    out = _cube(x)
    twin = copy.copy(out)
    twin.grad = 1.0
    twin._backward()
    assert x.grad == 12.0


def test_a_closure_that_cannot_be_repointed_is_refused_by_name() -> None:
    class Step:
        def __init__(self, x: Value, out: Value) -> None:
            self.x, self.out = x, out

        def __call__(self) -> None:
            self.x.grad += self.out.grad

    x = Value(1.0)
    out = Value(1.0, (x,), "same")
    out._backward = Step(x, out)
    with pytest.raises(TypeError, match=r"copy: the _backward of .* \(op 'same'\) is a Step"):
        copy.deepcopy(out + 1.0)


# --- the seeds' `=` bug ----------------------------------------------------------------------------
def _plus_with_assignment(a: Value, b: Value) -> Value:
    out = Value(a.data + b.data, (a, b), "+")

    def _backward() -> None:
        a.grad = 1.0 * out.grad  # seed 001's `=`
        b.grad = 1.0 * out.grad

    out._backward = _backward
    return out


def test_backward_catches_a_closure_that_assigns_instead_of_adding() -> None:
    a = Value(3.0, label="a")
    b = _plus_with_assignment(a, a)  # a used twice: d(b)/da = 2
    with pytest.raises(BackwardClosureError, match=r"input 'a' with '='.*write '\+=' instead"):
        b.backward()
    assert a.grad == 0.0


def test_stepping_by_hand_keeps_micrograds_semantics_for_the_assignment_bug() -> None:
    a = Value(3.0, label="a")
    b = _plus_with_assignment(a, a)
    b.grad = 1.0
    b._backward()  # micrograd's one step: the user's own closure, as written
    assert a.grad == 1.0  # the bug, visible: 1.0 where 2.0 is right


def test_table_ops_never_see_the_lent_grad() -> None:
    x = Value(0.3)
    (x * x).tanh().backward()
    assert type(x.grad) is float
    assert hand_built._LENT == 0.0  # the marker is a float 0.0


def test_the_fast_sweep_is_labelled_as_the_specialisation() -> None:
    assert "the reference sweep, inlined for floats: skip on a first read" in fast_sweep.__doc__.lower()


# --- the operators are new_node inlined -------------------------------------------------------------
HOSTILE = [0.0, -0.0, 1.5, -2.25, 1e300, -1e300, 5e-324, math.inf, -math.inf, math.nan]


def _same_number(a: float, b: float) -> bool:
    return (a == b and math.copysign(1, a) == math.copysign(1, b)) or (a != a and b != b)


def test_the_operators_make_the_node_apply_makes_for_every_row_and_hostile_numbers() -> None:
    from chainrule.engine import apply, stored_inputs

    for op in TABLE:
        if op.arity not in (1, 2):
            continue
        for x in HOSTILE:
            for y in HOSTILE if op.arity == 2 else [None]:
                a, b = Value(x), Value(y) if y is not None else None
                operands = (a,) if b is None else (a, b)
                try:
                    expected = apply(op, *operands)
                except (DomainError, ZeroDivisionError) as exc:
                    with pytest.raises(type(exc)):
                        getattr(a, f"__{op.name}__" if op.arity == 2 else op.method)(*operands[1:])
                    continue
                got = getattr(a, f"__{op.name}__" if op.arity == 2 else op.method)(*operands[1:])
                assert _same_number(got.data, expected.data), (op.name, x, y)
                assert got._operation is expected._operation is op
                assert stored_inputs(got) == stored_inputs(expected)
                assert got.requires_grad == expected.requires_grad and got.grad == 0.0 and got.label == ""
                if op.arity == 2:  # the reflected operator, with a number on the left
                    flipped = getattr(b, f"__r{op.name}__")(x)
                    want = op.forward(chainrule.backends.FLOAT, x, y)
                    assert _same_number(flipped.data, want), (op.name, "reflected", x, y)


def test_explore_and_gradcheck_catch_the_assignment_bug_too() -> None:
    a = Value(3.0, label="a")
    with pytest.raises(BackwardClosureError, match=r"input 'a' with '='"):
        chainrule.explore(_plus_with_assignment(a, a))
    with pytest.raises(chainrule.GradcheckError, match=r"write '\+=' instead"):
        chainrule.gradcheck(lambda x: _plus_with_assignment(x, x), 3.0)
    assert a.grad == 0.0


def test_sum_makes_the_node_apply_makes_for_hostile_numbers() -> None:
    from chainrule.engine import apply, stored_inputs
    from chainrule.ops import OPS

    rng = random.Random(7)
    for n in (1, 2, 3, 17):
        for _ in range(40):
            xs = [Value(rng.choice(HOSTILE)) for _ in range(n)]
            xs[0].requires_grad = rng.random() < 0.8
            got, expected = chainrule.sum(xs), apply(OPS["sum"], *xs)
            assert _same_number(got.data, expected.data), [x.data for x in xs]
            assert got._operation is expected._operation is OPS["sum"]
            assert stored_inputs(got) == stored_inputs(expected) == tuple(xs)
            assert got.requires_grad == expected.requires_grad and got.grad == 0.0 and got.label == ""
    with chainrule.no_grad():
        alone = chainrule.sum([Value(1.0), Value(2.0)])
    assert alone.data == 3.0 and alone._prev == () and not alone.requires_grad
