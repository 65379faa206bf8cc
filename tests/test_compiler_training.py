"""The functional form of a Program (SPEC §4): `parameter_array`, `loss_and_grad`, `set_parameters`.

`loss_and_grad(theta, *inputs)` must give the batch's summed output and its gradient with respect
to theta: the numbers `value_and_grad` adds into `.grad`, and that B eager `backward()` calls give,
without reading or writing any Value.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import chainrule as cr
from chainrule import Value, placeholder
from chainrule.nn import MLP
from conftest import need
from test_compiler_props import (
    SETTINGS,
    close,
    compiled_program,
    eager_run,
    finite_and_moderate,
    make_params,
    recipes,
)

np = need("numpy")


@SETTINGS
@given(recipe=recipes(), data=st.data())
def test_loss_and_grad_equals_value_and_grad_and_eager(recipe: dict[str, Any], data: Any) -> None:
    params = make_params(recipe)
    program, single = compiled_program(recipe, params)
    if not single:
        with pytest.raises(ValueError, match="loss_and_grad: this Program has 2 outputs; it needs one"):
            program.loss_and_grad(program.parameter_array(), *([0.0] * recipe["n_in"]))
        return
    batch = data.draw(st.integers(1, 5))
    columns = [
        data.draw(st.lists(st.floats(-2, 2), min_size=batch, max_size=batch)) for _ in range(recipe["n_in"])
    ]
    eager = [eager_run(recipe, params, list(xs)) for xs in zip(*columns, strict=True)]
    scale = max(e[2] for e in eager) * batch
    assume(finite_and_moderate(scale))
    eager_grads = [p.grad for p in params]
    theta = program.parameter_array()
    assert theta.tolist() == [p.data for p in program.parameters]
    for p in params:
        p.grad = 0.0
    arrays = [np.array(c) for c in columns]
    total, dtheta = program.loss_and_grad(theta, *arrays)
    assert [p.grad for p in params] == [0.0] * len(params)  # no Value touched
    assert close(total, sum(e[0][0] for e in eager), scale)
    by_value = dict(zip(program.parameters, dtheta.tolist(), strict=True))
    for p, g in zip(params, eager_grads, strict=True):
        assert close(by_value.get(p, 0.0), g, scale)  # a parameter the output ignores has gradient 0
    values, _ = program.value_and_grad(*arrays)
    assert close(total, float(np.sum(values)), scale)
    assert all(close(p.grad, by_value.get(p, 0.0), scale) for p in params)


def _mlp_loss(model: MLP, extra: list[Value]) -> tuple[cr.Program, list[placeholder]]:
    xs = [placeholder(f"x{i}", requires_grad=False) for i in range(3)]
    y = placeholder("y", requires_grad=False)
    out = model(xs)
    loss = (out - y) ** 2 + 1e-3 * cr.sum([p * p for p in model.parameters()]) + cr.sum(extra) * out
    return cr.compile(loss, [*xs, y]), [*xs, y]


def _eager_total(model: MLP, extra: list[Value], X: Any, Y: Any) -> float:
    total = 0.0
    for row, target in zip(X.tolist(), Y.tolist(), strict=True):
        out = model([Value(v) for v in row])
        loss = (out - target) ** 2 + 1e-3 * cr.sum([p * p for p in model.parameters()]) + cr.sum(extra) * out
        loss.backward()
        total += loss.data
    return total


def test_mlp_with_a_shared_parameter_and_a_frozen_one():
    random.seed(1)
    model = MLP(3, [5, 4, 1])
    # one weight shared between the layers, and one frozen (requires_grad=False) before compiling
    model.layers[1].neurons[2].w[0] = model.layers[0].neurons[1].w[2]
    frozen = model.layers[0].neurons[0].w[1]
    frozen.requires_grad = False
    extra = [Value(0.25), Value(-0.5, requires_grad=False)]
    program, _ = _mlp_loss(model, extra)
    assert frozen not in program.parameters and frozen in program.constants
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(11, 3)), rng.normal(size=11)
    theta = program.parameter_array()
    total, dtheta = program.loss_and_grad(theta, *X.T, Y)
    expected_total = _eager_total(model, extra, X, Y)
    assert total == pytest.approx(expected_total, rel=1e-12)
    for p, g in zip(program.parameters, dtheta.tolist(), strict=True):
        assert g == pytest.approx(p.grad, rel=1e-10, abs=1e-12)
    assert frozen.grad == 0.0


def test_loss_and_grad_reads_theta_not_the_values_and_set_parameters_writes_back():
    random.seed(2)
    model = MLP(3, [4, 1])
    program, _ = _mlp_loss(model, [])
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(7, 3)), rng.normal(size=7)
    theta = program.parameter_array() + 0.1
    before = [p.data for p in program.parameters]
    total, dtheta = program.loss_and_grad(theta, *X.T, Y)
    assert [p.data for p in program.parameters] == before  # theta was used, the Values untouched
    program.set_parameters(theta)
    assert [p.data for p in program.parameters] == theta.tolist()
    for p in program.parameters:
        p.grad = 0.0
    values, _ = program.value_and_grad(*X.T, Y)
    assert float(values.sum()) == pytest.approx(total, rel=1e-13)
    assert [p.grad for p in program.parameters] == pytest.approx(dtheta.tolist(), rel=1e-12, abs=1e-15)


def test_training_with_an_array_optimizer_lowers_the_loss():
    random.seed(3)
    model = MLP(3, [8, 1])
    program, _ = _mlp_loss(model, [])
    rng = np.random.default_rng(5)
    X = rng.normal(size=(64, 3))
    Y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2]
    theta = program.parameter_array()
    opt = cr.optim.Adam(theta, lr=0.02)
    first = None
    for _ in range(60):
        total, dtheta = program.loss_and_grad(theta, *X.T, Y)
        first = total if first is None else first
        opt.step(dtheta)
    assert total < 0.5 * first


def test_bad_theta_is_refused_clearly():
    x = placeholder("x")
    w = Value(2.0)
    program = cr.compile((x * w).tanh(), [x])
    with pytest.raises(ValueError, match=r"loss_and_grad: theta must be a 1-d array of 1 parameter values"):
        program.loss_and_grad(np.zeros(3), np.ones(2))
    with pytest.raises(TypeError, match="loss_and_grad: theta must be a 1-d numpy array, got str"):
        program.loss_and_grad("theta", np.ones(2))
    with pytest.raises(ValueError, match=r"set_parameters: theta must be a 1-d array of 1 parameter"):
        program.set_parameters(np.zeros((1, 1)))
    with pytest.raises(TypeError, match="this Program takes 1 inputs"):
        program.loss_and_grad(np.ones(1))
    total, dtheta = program.loss_and_grad(np.array([0.5]), 2.0)  # a number is a batch of one
    assert total == pytest.approx(np.tanh(1.0)) and dtheta.shape == (1,)


def test_parameters_come_in_a_fixed_documented_order():
    random.seed(4)
    model = MLP(2, [3, 1])
    xs = [placeholder("a"), placeholder("b")]
    program = cr.compile(model(xs), xs)
    assert set(program.parameters) == set(model.parameters())
    theta = program.parameter_array()
    assert theta.dtype == np.float64 and theta.tolist() == [p.data for p in program.parameters]
    assert program.parameter_array() is not theta  # a new array each time
