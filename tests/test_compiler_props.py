"""Property tests: compiled programs compute what the eager engine computes, on random graphs.

A random *recipe* (a list of operations on earlier nodes) is built twice: once on placeholders,
then compiled, and once per sample on concrete Values, then run eagerly. Float mode must agree
with eager bit for bit (it runs the same rules in the same order); batch mode, which groups and
reorders the sums, to a relative 1e-12.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import chainrule as cr
from chainrule import TABLE, DomainError, Value, placeholder
from conftest import float_runner, need
from op_cases import case

np = need("numpy")

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])

# Each recipe builds one node from earlier nodes `a`, `b`, `c` (and the number k): one per row of the
# table, from tests/op_cases.py (domain-limited ops get operands that stay inside their domain, so that
# random graphs run to the end), and a few more shapes the compiler treats specially.
RECIPES: dict[str, Any] = {
    op.name: (lambda a, b, c, k, op=op: case(op).build(op, a, b, c, k)) for op in TABLE
} | {
    "rdiv": lambda a, b, c, k: k / (a * a + 0.5),
    "pow_value": lambda a, b, c, k: (a * a + 0.5) ** b.tanh(),
    "rpow": lambda a, b, c, k: 1.5 ** a.tanh(),
    "add_k": lambda a, b, c, k: a + k,
    "k_mul": lambda a, b, c, k: k * a,
    "k_sub": lambda a, b, c, k: k - a,
    "neuron": lambda a, b, c, k: cr.sum([k, a * b, c * 0.5]),  # a sum of products, as in a layer
    "chain": lambda a, b, c, k: a * b - c * k + a,  # micrograd-style binary chain
    "minus_product": lambda a, b, c, k: a - b * c,  # a product with a negative sign in a sum
    "neg_product": lambda a, b, c, k: -(a * b) + c,
}


@st.composite
def recipes(draw: Any) -> dict[str, Any]:
    n_in = draw(st.integers(1, 3))
    params = draw(st.lists(st.floats(-1.5, 1.5), max_size=4))
    n = n_in + len(params)
    steps = []
    for _ in range(draw(st.integers(1, 12))):
        # operands mostly from the last few nodes, so graphs get deep as well as wide
        pick = st.one_of(st.integers(max(0, n - 3), n - 1), st.integers(0, n - 1))
        steps.append(
            (draw(st.sampled_from(sorted(RECIPES))), [draw(pick) for _ in range(3)], draw(st.floats(-2, 2)))
        )
        n += 1
    outputs = [n - 1] + draw(st.lists(st.integers(0, n - 1), max_size=1))
    # half the time the first output sums every node nobody uses, so that no step is dead code
    return {"n_in": n_in, "params": params, "steps": steps, "outputs": outputs, "sinks": draw(st.booleans())}


def build(
    recipe: dict[str, Any], inputs: list[Value], params: list[Value]
) -> tuple[list[Value], list[Value]]:
    """The recipe's nodes on these leaves; returns (outputs, all nodes)."""
    nodes = [*inputs, *params]
    for name, (i, j, m), k in recipe["steps"]:
        nodes.append(RECIPES[name](nodes[i], nodes[j], nodes[m], k))
    outputs = [nodes[o] for o in recipe["outputs"]]
    if recipe["sinks"]:
        used = {c for node in nodes for c in node._prev}
        sinks = [node for node in nodes[len(inputs) + len(params) :] if node not in used]
        outputs[0] = cr.sum(sinks) if len(sinks) > 1 else outputs[0]
    return outputs, nodes


def make_params(recipe: dict[str, Any]) -> list[Value]:
    return [Value(v, label=f"p{i}") for i, v in enumerate(recipe["params"])]


def eager_run(
    recipe: dict[str, Any], params: list[Value], xs: list[float]
) -> tuple[list[float], list[float], float]:
    """Values, input gradients (of the sum of the outputs) and a magnitude scale, from eager."""
    inputs = [Value(x) for x in xs]
    outs, nodes = build(recipe, inputs, params)
    root = outs[0] if len(outs) == 1 else cr.sum(outs)
    if root.requires_grad:
        root.backward()
    scale = max(max(abs(n.data), abs(n.grad)) for n in nodes)
    return [o.data for o in outs], [x.grad for x in inputs], scale


def finite_and_moderate(*numbers: float, bound: float = 1e6) -> bool:
    return all(math.isfinite(x) and abs(x) < bound for x in numbers)


def close(a: float, b: float, scale: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12 * (1.0 + scale))


def compiled_program(recipe: dict[str, Any], params: list[Value]) -> tuple[cr.Program, bool]:
    holders = [placeholder(f"x{i}") for i in range(recipe["n_in"])]
    outs, _ = build(recipe, holders, params)
    single = len(outs) == 1
    return cr.compile(outs[0] if single else outs, holders), single


def bits(xs: list[float | None]) -> list[bytes | None]:
    """The numbers' bit patterns: equal bits also means the same sign of zero."""
    return [None if x is None else struct.pack("<d", x) for x in xs]


@pytest.mark.parametrize("runner", ["generated", "interpreted"])
@SETTINGS
@given(recipe=recipes(), data=st.data())
def test_float_mode_equals_eager_bit_for_bit(runner: str, recipe: dict[str, Any], data: Any) -> None:
    params = make_params(recipe)
    program, single = compiled_program(recipe, params)
    xs = data.draw(st.lists(st.floats(-2, 2), min_size=recipe["n_in"], max_size=recipe["n_in"]))
    values, in_grads, scale = eager_run(recipe, params, xs)
    assume(finite_and_moderate(scale))
    eager_param_grads = [p.grad for p in params]
    for p in params:
        p.grad = 0.0
    with float_runner(runner):  # both of float mode's runners, whatever the program's size
        value, grads = program.value_and_grad(*xs)
    got = [value] if single else value
    assert program(*xs) == value
    if single:  # one output: the same operations in the same order as eager backward()
        assert bits(got) == bits(values)
        assert bits(list(grads)) == bits(in_grads)
        assert bits([p.grad for p in params]) == bits(eager_param_grads)
    else:  # eager has no multi-output backward: it summed the outputs with one more node
        assert all(close(a, b, scale) for a, b in zip(got, values, strict=True))
        assert all(close(a, b, scale) for a, b in zip(grads, in_grads, strict=True))
        assert all(close(p.grad, g, scale) for p, g in zip(params, eager_param_grads, strict=True))


@SETTINGS
@given(recipe=recipes(), data=st.data())
def test_batch_mode_equals_eager_per_sample(recipe: dict[str, Any], data: Any) -> None:
    from chainrule.compiler import batch_plan

    params = make_params(recipe)
    program, single = compiled_program(recipe, params)
    with pytest.MonkeyPatch.context() as patch:
        if data.draw(st.booleans()):  # sums of products as gathered sparse sums instead of matmuls
            patch.setattr(batch_plan, "DENSE_FACTOR", 0)
            patch.setattr(batch_plan, "DENSE_SLACK", -1)
        program._plan()
    batch = data.draw(st.integers(1, 6))
    columns = [
        data.draw(st.lists(st.floats(-2, 2), min_size=batch, max_size=batch)) for _ in range(recipe["n_in"])
    ]
    samples = [list(s) for s in zip(*columns, strict=True)]
    eager = [eager_run(recipe, params, xs) for xs in samples]  # accumulates into the params
    scale = max(e[2] for e in eager)
    assume(finite_and_moderate(scale))
    eager_param_grads = [p.grad for p in params]
    for p in params:
        p.grad = 0.0
    value, grads = program.value_and_grad(*(np.array(c) for c in columns))
    got = [value] if single else value
    for s in range(batch):
        assert all(close(got[o][s], eager[s][0][o], scale) for o in range(len(got)))
        assert all(close(grads[i][s], eager[s][1][i], scale) for i in range(recipe["n_in"]))
    assert all(close(p.grad, g, scale * batch) for p, g in zip(params, eager_param_grads, strict=True))
    assert all(g.shape == (batch,) for g in grads)


@SETTINGS
@given(recipe=recipes(), data=st.data())
def test_parameter_updates_between_runs_are_seen(recipe: dict[str, Any], data: Any) -> None:
    assume(recipe["params"])
    params = make_params(recipe)
    program, single = compiled_program(recipe, params)
    xs = data.draw(st.lists(st.floats(-2, 2), min_size=recipe["n_in"], max_size=recipe["n_in"]))
    program.value_and_grad(*xs)
    program(*(np.array([x, x]) for x in xs))
    for p in params:  # an optimizer step
        p.data = data.draw(st.floats(-1.5, 1.5))
        p.grad = 0.0
    values, _, scale = eager_run(recipe, params, xs)
    assume(finite_and_moderate(scale))
    got = program(*xs)
    assert ([got] if single else got) == values
    batch = program(*(np.array([x, x]) for x in xs))
    for o, v in enumerate([batch] if single else batch):
        assert close(v[1], values[o], scale)


# --- every op of the table, in its domain and out of it ---------------------------------------
def _table_cases() -> list[Any]:
    return [pytest.param(op, id=op.name) for op in TABLE]


@pytest.mark.parametrize("op", _table_cases())
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_table_op_compiles_like_eager(op: Any, data: Any) -> None:
    arity = op.arity or data.draw(st.integers(1, 4))
    values = st.one_of(st.floats(-3, 3), st.sampled_from([0.0, 1.0, -1.0, 2.0, 0.5]))
    rows = [data.draw(st.lists(values, min_size=arity, max_size=arity)) for _ in range(3)]
    holders = [placeholder(f"x{i}") for i in range(arity)]
    program = cr.compile(cr.engine.apply(op, *holders), holders)
    expected = []
    for row in rows:
        leaves = [Value(x) for x in row]
        try:
            out = cr.engine.apply(op, *leaves)
            out.backward()
            expected.append((out.data, [v.grad for v in leaves]))
        except (ArithmeticError, ValueError) as exc:
            expected.append(type(exc))
            with pytest.raises(type(exc)):  # the same kind of error from float mode
                program.value_and_grad(*row)
            continue
        value, grads = program.value_and_grad(*row)
        assert (value, list(grads)) == expected[-1] or (math.isnan(value) and math.isnan(expected[-1][0]))
    columns = [np.array(c) for c in zip(*rows, strict=True)]
    errors = [e for e in expected if isinstance(e, type)]
    if errors:
        # a batch runs every sample's forward before any backward: a forward error (mod's
        # ZeroDivisionError) comes first even when an earlier sample failed in backward (a DomainError)
        kinds = {ValueError if e is DomainError else e for e in errors}
        with pytest.raises((DomainError, *kinds)):
            program.value_and_grad(*columns)
        return
    value, grads = program.value_and_grad(*columns)
    for s, (v, g) in enumerate(expected):
        assert close(value[s], v, abs(v)) or (math.isnan(value[s]) and math.isnan(v))
        assert all(close(grads[i][s], g[i], abs(g[i])) for i in range(arity))


def test_a_new_table_row_compiles_with_no_compiler_change() -> None:
    """Both modes read the rules: an op that is not in chainrule's table works the same way."""
    cube = cr.Op(
        "cube", "cube", 1, lambda m, a: a * a * a, (lambda m, g, out, a: 3 * g * a * a,), doc="a ** 3"
    )
    x = placeholder("x")
    program = cr.compile(cr.engine.apply(cube, x * 2.0), [x])
    assert "3 * g" in program._float_code().source  # traced from the rule into straight-line code
    assert program.value_and_grad(1.5) == (27.0, (3 * 9.0 * 2.0,))
    values, (grads,) = program.value_and_grad(np.array([1.5, -1.0]))
    assert values.tolist() == [27.0, -8.0] and grads.tolist() == [54.0, 24.0]
