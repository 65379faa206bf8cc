"""Exported programs (`chainrule.export`): JAX and PyTorch compute what the Program computes.

Values and gradients are compared with `Program.value_and_grad` on random graphs that use every row
of the table, and with the table's own float rules at each row's sample points (including the edges
of its domain, from tests/test_ops_table.py). JAX is checked under jit, grad, vmap and with a batch
sharded over 4 simulated CPU devices (in a subprocess: the device count is fixed when JAX starts);
the PyTorch module is trained on the two-moons network and checked against chainrule's own training.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import chainrule as cr
from chainrule import TABLE, Value, placeholder
from chainrule.backends import FLOAT, numpy_backend
from chainrule.engine import apply
from chainrule.ops import TENSOR_OPS_BY_NAME
from conftest import need
from test_compiler_props import RECIPES, build, finite_and_moderate, make_params, recipes
from test_ops_table import CASES
from test_ops_table import close as close_at

np = need("numpy")
ROOT = Path(__file__).resolve().parents[1]
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])


def export():  # noqa: ANN201 - the module under test, imported after need() has run
    from chainrule import export as module

    return module


@pytest.fixture
def jax() -> Any:
    return need("jax")


@pytest.fixture
def torch() -> Any:
    return need("torch")


def close(got: Any, want: Any, scale: float = 1.0, rel: float = 1e-12) -> bool:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return got.shape == want.shape and bool(
        np.allclose(got, want, rtol=rel, atol=rel * (1.0 + scale), equal_nan=True)
    )


def program_and_params(recipe: dict[str, Any]) -> tuple[cr.Program, list[Value]]:
    params = make_params(recipe)
    holders = [placeholder(f"x{i}") for i in range(recipe["n_in"])]
    outs, _ = build(recipe, holders, params)
    return cr.compile(outs[0] if len(outs) == 1 else outs, holders), params


def reference(
    program: cr.Program, params: list[Value], xs: list[Any]
) -> tuple[list[Any], list[Any], list[float]]:
    """(outputs, input gradients, parameter gradients) of the sum of the outputs, from the Program."""
    for p in params:
        p.grad = 0.0
    value, grads = program.value_and_grad(*xs)
    outs = [value] if program.single else list(value)
    return outs, list(grads), [p.grad for p in program.parameters]


def jax_value_and_grads(fn: Any, theta: Any, xs: list[Any], jit: bool = True) -> tuple[list[Any], Any, Any]:
    import jax

    def total(theta: Any, *xs: Any) -> Any:
        out = fn(theta, *xs)
        return sum(o.sum() for o in (out if isinstance(out, tuple) else (out,)))

    grad = jax.grad(total, argnums=tuple(range(len(xs) + 1)))
    if jit:
        fn, grad = jax.jit(fn), jax.jit(grad)
    out = fn(theta, *xs)
    grads = grad(theta, *xs)
    return list(out) if isinstance(out, tuple) else [out], grads[0], grads[1:]


def torch_value_and_grads(module: Any, xs: list[Any]) -> tuple[list[Any], Any, list[Any]]:
    import torch

    ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    module.zero_grad()
    out = module(*ts)
    outs = list(out) if isinstance(out, tuple) else [out]
    sum(o.sum() for o in outs).backward()
    return [o.detach().numpy() for o in outs], module.theta.grad.numpy(), [t.grad.numpy() for t in ts]


# --- the backends ----------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["jax", "torch"])
def test_the_export_backends_are_the_backends_modules(engine: str) -> None:
    """`chainrule.export.jax_backend` and `torch_backend` are the ones in chainrule.backends (their
    contract is tests/test_backends.py's)."""
    need(engine)
    from chainrule import backends

    backend = getattr(export(), f"{engine}_backend")()
    assert backend is getattr(backends, f"{engine}_backend")()
    assert backend.name == engine


TENSOR_CASES = [
    ("matmul", ((3, 4), (4, 2)), {}),
    ("matmul", ((4,), (4, 2)), {}),
    ("matmul", ((3, 4), (4,)), {}),
    ("axis_sum", ((2, 3, 4),), {"axis": None, "keepdims": False}),
    ("axis_sum", ((2, 3, 4),), {"axis": (0, 2), "keepdims": False}),
    ("axis_sum", ((2, 3, 4),), {"axis": (1,), "keepdims": True}),
    ("mean", ((2, 3, 4),), {"axis": (2,), "keepdims": False}),
    ("mean", ((2, 3, 4),), {"axis": None, "keepdims": True}),
    ("reshape", ((2, 3, 4),), {"shape": (6, 4)}),
    ("transpose", ((2, 3, 4),), {"axes": None}),
    ("transpose", ((2, 3, 4),), {"axes": (1, 2, 0)}),
]


def _tensor_params() -> list[Any]:
    return [pytest.param(engine, *case) for engine in ("jax", "torch") for case in TENSOR_CASES]


@pytest.mark.parametrize(("engine", "name", "shapes", "kw"), _tensor_params())
def test_tensor_rules_run_on_the_backends_as_on_numpy(engine: str, name: str, shapes: Any, kw: Any) -> None:
    """The tensor-only rows (forward and every derivative) give numpy's numbers on JAX and torch."""
    lib = need(engine)
    backend = getattr(export(), f"{engine}_backend")()
    to = (lambda a: lib.numpy.asarray(a)) if engine == "jax" else (lambda a: lib.tensor(a))
    op = TENSOR_OPS_BY_NAME[name]
    rng = np.random.default_rng(3)
    xs = [rng.normal(size=s) for s in shapes]
    out = op.forward(numpy_backend(), *xs, **kw)
    got = op.forward(backend, *map(to, xs), **kw)
    assert close(np.asarray(got), out)
    g = rng.normal(size=np.shape(out))
    for i in range(len(xs)):
        want = op.derivative(i)(numpy_backend(), g, out, *xs, **kw)
        part = op.derivative(i)(backend, to(g), to(out), *map(to, xs), **kw)
        assert close(np.asarray(part), want), (name, i)


# --- every row of the table, at its sample points ---------------------------------------------
def _row_cases() -> list[Any]:
    return [pytest.param(engine, op, id=f"{engine}-{op.name}") for engine in ("jax", "torch") for op in TABLE]


@pytest.mark.parametrize(("engine", "op"), _row_cases())
def test_every_row_exports_its_values_and_derivatives(engine: str, op: Any) -> None:
    """At every sample point of every row (domain edges, overflow), the exported value and gradients
    are the table's float rules' (to 1e-12), as a batch of all the points of one arity."""
    need(engine)
    by_arity: dict[int, list[Any]] = {}
    for point in CASES[op.name].points:
        by_arity.setdefault(len(point.xs), []).append(point)
    for arity, points in by_arity.items():
        holders = [placeholder(f"x{i}") for i in range(arity)]
        program = cr.compile(apply(op, *holders), holders)
        columns = [np.array(col) for col in zip(*(p.xs for p in points), strict=True)]
        if engine == "jax":
            fn, theta = export().to_jax(program)
            (out,), _, grads = jax_value_and_grads(fn, theta, columns)
        else:
            (out,), _, grads = torch_value_and_grads(export().to_torch(program), columns)
        for k, point in enumerate(points):
            want = op.forward(FLOAT, *point.xs)
            assert close_at(float(out[k]), want, rel=1e-12), (op.name, point.xs, float(out[k]), want)
            for i in point.inputs():
                slope = op.derivative(i)(FLOAT, 1.0, want, *point.xs)
                got = float(grads[i][k])
                assert close_at(got, slope, rel=1e-12), (op.name, i, point.xs, got, slope)


def test_one_graph_uses_every_row_and_exports_exactly() -> None:
    """A graph made of every recipe of the random-graph tests covers the whole table; both engines
    give the Program's values and gradients on it, on a batch and on numbers."""
    need("jax")
    need("torch")
    names = sorted(RECIPES)
    recipe = {
        "n_in": 2,
        "params": [0.3, -0.7, 1.1],
        "steps": [(name, [k + 2, k + 3, k + 4], 0.5 - 0.1 * k) for k, name in enumerate(names)],
        "outputs": [len(names) + 4],
        "sinks": True,
    }
    program, params = program_and_params(recipe)
    used = {ins.op.name for ins in program.instructions}
    assert used >= {op.name for op in TABLE}, f"rows not covered: {sorted({op.name for op in TABLE} - used)}"
    fn, theta = export().to_jax(program)
    module = export().to_torch(program)
    for xs in ([np.array([0.3, -1.2, 2.0]), np.array([1.5, 0.4, -0.8])], [0.3, 1.5]):
        outs, in_grads, param_grads = reference(program, params, xs)
        scale = max(abs(float(np.max(np.abs(o)))) for o in outs)
        j_outs, j_theta, j_inputs = jax_value_and_grads(fn, theta, xs)
        t_outs, t_theta, t_inputs = torch_value_and_grads(module, xs)
        for got_outs, got_theta, got_inputs in ((j_outs, j_theta, j_inputs), (t_outs, t_theta, t_inputs)):
            assert all(close(a, b, scale) for a, b in zip(got_outs, outs, strict=True))
            assert close(got_theta, param_grads, scale)
            assert all(close(a, b, scale) for a, b in zip(got_inputs, in_grads, strict=True))


# --- every kind of step of the batch plan ----------------------------------------------------------
def _step_kinds(plan: Any) -> set[str]:
    """The ways of running a step that an exported plan uses (see chainrule.compiler.plan.Plan)."""
    from chainrule.compiler.plan import SumsGroup

    found = {"parameters reordered"} if plan.theta_order is not None else set()
    for step in plan.groups:
        for read in step.reads():
            if read.index is not None:
                found.add("gather from several blocks" if len(read.blocks) > 1 else "gather")
        if isinstance(step, SumsGroup):
            found.add(f"{step.layout} sums, {'UV'[step.buffer]}")
            for name in ("scale", "bias_weights", "bias_scale", "bias_segments"):
                if getattr(step, name) is not None:
                    found.add(name)
    return found


def _mixed_program() -> cr.Program:
    """Dense layers with subtraction (scaled W), weighted and several bias terms per sum, a parameter
    first used late (the batch plan reorders the parameters) and operands from several steps."""
    import random

    xs = [placeholder(f"x{i}") for i in range(6)]
    rng = random.Random(3)
    ws = [Value(rng.uniform(-1, 1), label=f"w{i}") for i in range(12)]
    b = Value(0.25, label="b")
    h = [(ws[0] * xs[0] - ws[1] * xs[1] + b).tanh(), (ws[2] * xs[0] - ws[3] * xs[1] + ws[4]).tanh()]
    s1 = cr.sum([ws[5] * xs[2], ws[6] * xs[5], h[0] * ws[7]])
    s2 = cr.sum([ws[8] * xs[3], ws[9] * xs[4], ws[10] * ws[11], 2.0 * ws[1], h[1]])
    out = (s1 * s2 + (h[1] * xs[0]).sin() + ws[11] * ws[2] - (xs[1] * h[0]).exp()) * (h[0] + xs[4])
    return cr.compile([out, s2.relu() + ws[6] * ws[6]], xs)


def _sparse_program() -> cr.Program:
    """24 sums that each read 2 of 24 inputs, as two nodes (binary sums are never merged): gathered
    sparse sums, the first with a scaled bias (- c), the second with a scaled term."""
    import random

    n = 24
    xs = [placeholder(f"x{i}") for i in range(n)]
    rng = random.Random(4)
    ws = [Value(rng.uniform(-1, 1), label=f"w{i}") for i in range(2 * n)]
    c = Value(0.5, label="c")
    sums = [(ws[2 * i] * xs[i] - c) - ws[2 * i + 1] * xs[(i + 1) % n] for i in range(n)]
    return cr.compile(cr.sum([s.tanh() for s in sums]), xs)


def test_every_kind_of_step_exports_exactly() -> None:
    """Programs whose batch plans use every way of running a step (dense and sparse matrix products,
    scaled weights, weighted and scaled biases, reordered parameters, gathers) export exactly."""
    need("jax")
    need("torch")
    programs = [_mixed_program(), _sparse_program(), moons_loss(cr.nn.MLP(2, [4, 1]), 8)[0]]
    kinds = set().union(*(_step_kinds(p.plan()) for p in programs))
    assert kinds >= {
        "parameters reordered", "gather", "gather from several blocks", "dense sums, V", "sparse sums, V",
        "None sums, U", "scale", "bias_weights", "bias_scale", "bias_segments",
    }, kinds  # fmt: skip
    rng = np.random.default_rng(7)
    for program in programs:
        params = list(program.parameters)
        fn, theta = export().to_jax(program)
        module = export().to_torch(program)
        n = len(program.inputs)
        for xs in ([rng.normal(size=5) for _ in range(n)], [float(v) for v in rng.normal(size=n)]):
            outs, in_grads, param_grads = reference(program, params, xs)
            scale = max(float(np.max(np.abs(o))) for o in outs)
            for got_outs, got_theta, got_inputs in (
                jax_value_and_grads(fn, theta, xs),
                torch_value_and_grads(module, xs),
            ):
                assert all(close(a, b, scale) for a, b in zip(got_outs, outs, strict=True))
                assert close(got_theta, param_grads, scale)
                assert all(
                    b is None or close(a, b, scale)  # None: data made with requires_grad=False
                    for a, b in zip(got_inputs, in_grads, strict=True)
                )


# --- random graphs -------------------------------------------------------------------------------
def _random_case(
    recipe: dict[str, Any], data: Any, subnormal: bool = True
) -> tuple[cr.Program, list[Value], list[Any], float]:
    program, params = program_and_params(recipe)
    batch = data.draw(st.integers(1, 5))
    numbers = st.floats(-2, 2, allow_subnormal=subnormal)
    xs = [
        np.array(data.draw(st.lists(numbers, min_size=batch, max_size=batch))) for _ in range(recipe["n_in"])
    ]
    outs, in_grads, param_grads = reference(program, params, xs)
    scale = max(
        [float(np.max(np.abs(o))) for o in outs] + [float(np.max(np.abs(g))) for g in in_grads] + [0.0]
    )
    scale = max([scale] + [abs(g) for g in param_grads])
    assume(finite_and_moderate(scale))
    return program, params, xs, scale


@SETTINGS
@given(recipe=recipes(), data=st.data())
def test_jax_equals_the_program_on_random_graphs(recipe: dict[str, Any], data: Any) -> None:
    need("jax")
    # no subnormal input: JAX on CPU flushes them to zero (abs'(5e-324) is 0.0 there, 1.0 in eager)
    program, params, xs, scale = _random_case(recipe, data, subnormal=False)
    outs, in_grads, param_grads = reference(program, params, xs)
    fn, theta = export().to_jax(program)
    assert close(theta, [p.data for p in program.parameters])
    got, d_theta, d_inputs = jax_value_and_grads(fn, theta, xs, jit=data.draw(st.booleans()))
    assert all(close(a, b, scale, rel=1e-10) for a, b in zip(got, outs, strict=True))
    assert close(d_theta, param_grads, scale, rel=1e-10)
    assert all(close(a, b, scale, rel=1e-10) for a, b in zip(d_inputs, in_grads, strict=True))


@SETTINGS
@given(recipe=recipes(), data=st.data())
def test_torch_equals_the_program_on_random_graphs(recipe: dict[str, Any], data: Any) -> None:
    need("torch")
    program, params, xs, scale = _random_case(recipe, data)
    outs, in_grads, param_grads = reference(program, params, xs)
    got, d_theta, d_inputs = torch_value_and_grads(export().to_torch(program), xs)
    assert all(close(a, b, scale, rel=1e-10) for a, b in zip(got, outs, strict=True))
    assert close(d_theta, param_grads, scale, rel=1e-10)
    assert all(close(a, b, scale, rel=1e-10) for a, b in zip(d_inputs, in_grads, strict=True))


# --- JAX: jit, grad, vmap, checking ---------------------------------------------------------------
def small_program() -> tuple[cr.Program, list[Value]]:
    x, y = placeholder("x"), placeholder("y")
    w, b = Value(0.7, label="w"), Value(-0.3, label="b")
    out = ((x * w + b).tanh() * (y * y + 0.5).log() + (w * y).sigmoid()).softplus()
    return cr.compile([out, x * b - y], [x, y]), [w, b]


def test_jax_returns_what_the_program_returns(jax: Any) -> None:
    program, _ = small_program()
    fn, theta = export().to_jax(program)
    assert theta.dtype == jax.numpy.float64 and theta.shape == (2,)
    got = fn(theta, 0.5, 1.5)
    assert isinstance(got, tuple) and [g.shape for g in got] == [(), ()]
    assert close(got, program(0.5, 1.5))
    xs = [np.array([0.5, -1.0, 2.0]), np.array([1.5, 0.2, -0.3])]
    got = jax.jit(fn)(theta, *xs)
    assert [g.shape for g in got] == [(3,), (3,)] and all(g.dtype == jax.numpy.float64 for g in got)
    assert all(close(a, b) for a, b in zip(got, program(*xs), strict=True))
    # a number mixed with a batch broadcasts, as in the Program
    assert all(close(a, b) for a, b in zip(fn(theta, 0.5, xs[1]), program(0.5, xs[1]), strict=True))


def test_jax_grad_vmap_and_forward_mode(jax: Any) -> None:
    program, params = small_program()
    fn, theta = export().to_jax(program)
    xs = [np.array([0.5, -1.0, 2.0]), np.array([1.5, 0.2, -0.3])]
    # vmap over the batch gives the batch
    per_sample = jax.vmap(fn, in_axes=(None, 0, 0))(theta, *xs)
    assert all(close(a, b) for a, b in zip(per_sample, fn(theta, *xs), strict=True))
    # vmap over parameter vectors: a population of models, each as the Program with those parameters
    population = np.array([[0.7, -0.3], [1.5, 0.25], [-0.4, 2.0]])
    outs = jax.vmap(lambda t: fn(t, *xs)[0])(population)
    for row, got in zip(population, outs, strict=True):
        for p, v in zip(program.parameters, row, strict=True):
            p.data = float(v)
        assert close(got, program(*xs)[0])
    for p, v in zip(program.parameters, theta.tolist(), strict=True):
        p.data = v
    # grad of the first output per sample, through vmap of grad, equals the Program's input gradients
    first = lambda t, x, y: fn(t, x, y)[0]  # noqa: E731
    dx = jax.vmap(jax.grad(first, argnums=1), in_axes=(None, 0, 0))(theta, *xs)
    for p in params:
        p.grad = 0.0
    _, (want_dx, _) = program.value_and_grad(*xs, grad_output=[1.0, None])
    assert close(dx, want_dx)
    # forward mode works too (custom_jvp), and agrees with reverse mode
    scalar = lambda t: first(t, 0.5, 1.5)  # noqa: E731
    assert close(jax.jacfwd(scalar)(theta), jax.jacrev(scalar)(theta))
    hessian = jax.hessian(scalar)(theta)
    assert hessian.shape == (2, 2) and close(hessian, hessian.T)


def test_jax_outside_the_domain_gives_nan_and_check_names_op_and_value(jax: Any) -> None:
    from jax.experimental import checkify

    x = placeholder("x")
    program = cr.compile((x - 1.0).log() + x, [x])
    fn, theta = export().to_jax(program)
    out = jax.jit(fn)(theta, np.array([2.0, 0.5, 3.0]))
    assert math.isnan(float(out[1])) and close(np.asarray(out)[[0, 2]], program(np.array([2.0, 3.0])))
    checked, _ = export().to_jax(program, check=True)
    with pytest.raises(Exception, match=r"log: requires x > 0, got -0\.5 \(at batch index 1\)"):
        checked(theta, np.array([2.0, 0.5, 3.0]))  # called directly: raises at once
    err, out = checkify.checkify(jax.jit(checked))(theta, np.array([2.0, 0.5, 3.0]))
    assert "log: requires x > 0, got -0.5 (at batch index 1)" in err.get()
    err, out = checkify.checkify(jax.jit(checked))(theta, np.array([2.0, 1.5]))
    assert err.get() is None and close(out, program(np.array([2.0, 1.5])))


def test_jax_refuses_bad_inputs_clearly(jax: Any) -> None:
    program, _ = small_program()
    fn, theta = export().to_jax(program)
    with pytest.raises(TypeError, match=r"takes 2 inputs \(x, y\), got 1"):
        fn(theta, 1.0)
    with pytest.raises(ValueError, match=r"input 'x' must be a number or a 1-d array .* shape \(2, 2\)"):
        fn(theta, np.ones((2, 2)), 1.0)
    with pytest.raises(ValueError, match=r"unequal length: 'x' has 3 samples but 'y' has 2"):
        fn(theta, np.ones(3), np.ones(2))
    with pytest.raises(TypeError, match=r"input 'y' must be a number or a 1-d array, got str"):
        fn(theta, 1.0, "2")
    with pytest.raises(ValueError, match=r"params must be a 1-d array of 2 numbers, got shape \(3,\)"):
        fn(np.ones(3), 1.0, 2.0)
    with pytest.raises(TypeError, match=r"expected a chainrule Program .* got str"):
        export().to_jax("x + 1")


def test_missing_engine_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    program, _ = small_program()
    monkeypatch.setitem(sys.modules, "jax", None)  # as if it were not installed
    with pytest.raises(ImportError, match=re.escape('pip install -e ".[jax]"')):
        export().to_jax(program)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=re.escape('pip install -e ".[torch]"')):
        export().to_torch(program)


SHARDED = """
import numpy as np, jax, jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import chainrule as cr
x, y = cr.placeholder("x"), cr.placeholder("y")
w, b = cr.Value(0.7), cr.Value(-0.3)
program = cr.compile(((x * w + b).tanh() * (y * y + 0.5).log()).softplus(), [x, y])
fn, theta = program_to_jax(program)
assert len(jax.devices()) == 4, jax.devices()
mesh = Mesh(np.array(jax.devices()), ("batch",))
rng = np.random.default_rng(0)
xs = [rng.normal(size=64), rng.normal(size=64)]
sharded = [jax.device_put(v, NamedSharding(mesh, P("batch"))) for v in xs]
loss = lambda t, x, y: fn(t, x, y).mean()
step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
(value, (dtheta, dx)), (value1, (dtheta1, dx1)) = step(theta, *sharded), step(theta, *xs)
out = jax.jit(fn)(theta, *sharded)
assert len(out.addressable_shards) == 4 and {s.data.shape for s in out.addressable_shards} == {(16,)}
assert out.sharding.is_equivalent_to(NamedSharding(mesh, P("batch")), 1), out.sharding
assert len(dx.addressable_shards) == 4 and {s.data.shape for s in dx.addressable_shards} == {(16,)}
np.testing.assert_allclose(np.asarray(out), program(*xs), rtol=1e-12)
np.testing.assert_allclose(float(value), float(value1), rtol=1e-12)
np.testing.assert_allclose(np.asarray(dtheta), np.asarray(dtheta1), rtol=1e-12)
np.testing.assert_allclose(np.asarray(dx), np.asarray(dx1), rtol=1e-12)
w.grad = b.grad = 0.0
_, grads = program.value_and_grad(*xs, grad_output=1 / 64)
np.testing.assert_allclose(np.asarray(dtheta), [p.grad for p in program.parameters], rtol=1e-12)
np.testing.assert_allclose(np.asarray(dx), grads[0], rtol=1e-12)
print("sharded OK", out.sharding)
"""


def run_with_devices(code: str, devices: int = 4, timeout: int = 600) -> str:
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "JAX_PLATFORMS": "cpu",
    }
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_jax_sharded_over_four_devices_equals_unsharded(jax: Any) -> None:
    code = "from chainrule.export import to_jax as program_to_jax\n" + textwrap.dedent(SHARDED)
    assert "sharded OK" in run_with_devices(code)


# --- PyTorch -----------------------------------------------------------------------------------
def test_torch_module_returns_what_the_program_returns(torch: Any) -> None:
    program, params = small_program()
    module = export().to_torch(program)
    assert isinstance(module, torch.nn.Module)
    named = dict(module.named_parameters())
    assert list(named) == ["theta"] and named["theta"].dtype == torch.float64
    assert named["theta"].tolist() == [p.data for p in program.parameters]
    got = module(0.5, 1.5)
    assert isinstance(got, tuple) and [g.shape for g in got] == [(), ()]
    assert close([g.item() for g in got], program(0.5, 1.5))
    xs = [np.array([0.5, -1.0, 2.0]), np.array([1.5, 0.2, -0.3])]
    got = module(torch.tensor(xs[0]), torch.tensor(xs[1]))
    assert all(g.dtype == torch.float64 and g.shape == (3,) for g in got)
    assert all(close(a.detach(), b) for a, b in zip(got, program(*xs), strict=True))
    with torch.no_grad():
        assert close(module(0.5, torch.tensor(xs[1]))[0], program(0.5, xs[1])[0])
    assert "instructions=" in repr(module) and set(module.state_dict()) == {"theta", "constants"}


def test_torch_refuses_bad_inputs_and_second_derivatives(torch: Any) -> None:
    program, _ = small_program()
    module = export().to_torch(program)
    with pytest.raises(TypeError, match=r"takes 2 inputs \(x, y\), got 3"):
        module(1.0, 2.0, 3.0)
    with pytest.raises(ValueError, match=r"input 'x' must be a number or a 1-d array .* shape \(2, 2\)"):
        module(torch.ones(2, 2), 1.0)
    with pytest.raises(ValueError, match=r"unequal length: 'x' has 3 samples but 'y' has 2"):
        module(torch.ones(3), torch.ones(2))
    with pytest.raises(TypeError, match=r"input 'x' must be a number or a 1-d tensor, got NoneType"):
        module(None, 1.0)
    x = torch.tensor([0.5, 1.0], dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"gradients of gradients \(create_graph=True\) are not supported"):
        torch.autograd.grad(module(x, 1.0)[0].sum(), x, create_graph=True)


def moons_loss(model: Any, batch: int) -> tuple[cr.Program, list[Value]]:
    """micrograd's demo loss per sample (hinge + L2 share), as in benchmarks/bench_compiled.py."""
    x0, x1, label = (placeholder(name, requires_grad=False) for name in ("x0", "x1", "y"))
    score = model([x0, x1])
    reg = 1e-4 * cr.sum([p * p for p in model.parameters()])
    per_sample = ((1 + -label * score).relu() + reg) * (1.0 / batch)
    return cr.compile(per_sample, [x0, x1, label]), model.parameters()


def test_torch_trains_the_moons_network_as_chainrule_does(torch: Any) -> None:
    need("sklearn")
    import random

    from sklearn.datasets import make_moons

    from chainrule.nn import MLP

    X, y = make_moons(n_samples=60, noise=0.1, random_state=1)
    x0, x1, labels = X[:, 0].copy(), X[:, 1].copy(), (2.0 * y - 1.0)
    random.seed(5)
    model = MLP(2, [8, 8, 1])
    program, params = moons_loss(model, len(X))
    module = export().to_torch(program)
    opt = torch.optim.SGD(module.parameters(), lr=0.5)
    tx = [torch.tensor(v) for v in (x0, x1, labels)]
    losses = []
    for step in range(40):
        opt.zero_grad()
        loss = module(*tx).sum()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step < 5:  # chainrule's own compiled training, step by step, from the same weights
            model.zero_grad()
            value, _ = program.value_and_grad(x0, x1, labels)
            assert close(value.sum(), losses[-1], rel=1e-12)
            for p in params:
                p.data -= 0.5 * p.grad
            assert close(module.theta.detach(), [p.data for p in program.parameters], rel=1e-10)
    assert losses[-1] < 0.6 * losses[0], losses


def test_jax_trains_the_moons_network(jax: Any) -> None:
    need("sklearn")
    import random

    from sklearn.datasets import make_moons

    from chainrule.nn import MLP

    X, y = make_moons(n_samples=60, noise=0.1, random_state=1)
    data = (X[:, 0].copy(), X[:, 1].copy(), 2.0 * y - 1.0)
    random.seed(5)
    program, params = moons_loss(MLP(2, [8, 8, 1]), len(X))
    fn, theta = export().to_jax(program)
    step = jax.jit(jax.value_and_grad(lambda t, *xs: fn(t, *xs).sum()))
    losses = []
    for k in range(40):
        loss, grad = step(theta, *data)
        if k == 0:
            for p in params:
                p.grad = 0.0
            value, _ = program.value_and_grad(*data)
            assert close(loss, value.sum()) and close(grad, [p.grad for p in program.parameters], rel=1e-10)
        theta = theta - 0.5 * grad
        losses.append(float(loss))
    assert losses[-1] < 0.6 * losses[0], losses


# --- docs and benchmark ----------------------------------------------------------------------------
def test_scaling_docs_examples_run() -> None:
    """Every python block of docs/scaling.md, in order, in one process with 4 simulated devices."""
    need("jax")
    need("torch")
    need("sklearn")
    text = (ROOT / "docs" / "scaling.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 3
    out = run_with_devices("\n".join(blocks), timeout=600)
    assert "devices: 4" in out


@pytest.mark.slow
def test_bench_export_runs() -> None:
    need("jax")
    need("torch")
    need("sklearn")
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_export.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for line in ("chainrule compiled", "exported to JAX", "exported to PyTorch", "hand-written JAX"):
        assert line in result.stdout


def test_program_methods_call_the_export_functions() -> None:
    need("jax")
    need("torch")
    x = placeholder("x")
    w = Value(0.5, label="w")
    program = cr.compile((x * w).tanh() + w, [x])
    fn, params = program.to_jax()
    assert float(fn(params, 0.3)) == pytest.approx(program(0.3))
    module = program.to_torch()
    assert module(torch_tensor(0.3)).item() == pytest.approx(program(0.3))


def torch_tensor(x: float) -> Any:
    return need("torch").tensor(x, dtype=need("torch").float64)


def test_a_defop_operation_exports_with_its_own_rules(user_ops_restored: None) -> None:
    """An op added with chainrule.defop is a table row like the others: both engines run its rules."""
    need("jax")
    need("torch")
    softsign = cr.defop(
        "softsign_export",
        lambda m, x: x / (1 + abs(x)),
        lambda m, g, out, x: g / ((1 + abs(x)) * (1 + abs(x))),
    )
    mix = cr.defop(
        "mix_export",
        lambda m, a, b: a * m.exp(b) - b,
        lambda m, g, out, a, b: g * m.exp(b),
        lambda m, g, out, a, b: g * (a * m.exp(b) - 1),
    )
    x0, x1 = placeholder("x0"), placeholder("x1")
    w = Value(0.7, label="w")
    program = cr.compile(mix(softsign(x0 * w), x1 * 0.5) * w + softsign(x1), [x0, x1])
    params = list(program.parameters)
    fn, theta = export().to_jax(program)
    module = export().to_torch(program)
    for xs in ([np.array([0.3, -1.2, 2.0]), np.array([1.5, 0.4, -0.8])], [0.3, 1.5]):
        outs, in_grads, param_grads = reference(program, params, xs)
        for got_outs, got_theta, got_inputs in (
            jax_value_and_grads(fn, theta, xs),
            torch_value_and_grads(module, xs),
        ):
            assert all(close(a, b) for a, b in zip(got_outs, outs, strict=True))
            assert close(got_theta, param_grads)
            assert all(close(a, b) for a, b in zip(got_inputs, in_grads, strict=True))


@pytest.mark.parametrize("engine", ["jax", "torch"])
def test_step_and_sign_at_nan_and_zero_agree_with_the_float_backend(engine: str) -> None:
    """relu's and abs's slopes at NaN and 0 are conventions: every backend must keep the same ones."""
    lib = need(engine)
    backend = getattr(export(), f"{engine}_backend")()
    points = [math.nan, 0.0, -0.0, 2.0, -2.0]
    arr = lib.numpy.asarray(points) if engine == "jax" else lib.tensor(points, dtype=lib.float64)
    for name in ("step", "sign"):
        got = [float(v) for v in np.asarray(getattr(backend, name)(arr))]
        want = [getattr(FLOAT, name)(x) for x in points]
        assert got == want, name


# --- the plan as public data -------------------------------------------------------------------------
def test_program_plan_is_public_data_that_the_exports_accept() -> None:
    """`Program.plan()` is a `chainrule.compiler.plan.Plan`; to_jax and to_torch take it as well as the
    Program, and give the same numbers."""
    need("jax")
    need("torch")
    from chainrule.compiler.plan import MapGroup, Plan, Read, SumsGroup

    program, params = small_program()
    plan = program.plan()
    assert isinstance(plan, Plan)
    assert plan.input_names == ("x", "y") and plan.n_inputs == 2 and plan.n_parameters == 2
    assert plan.parameters == tuple(p.data for p in program.parameters)
    assert plan.n_instructions == len(program.instructions) and plan.single is False
    assert {type(g) for g in plan.groups} == {MapGroup, SumsGroup}
    assert all(isinstance(r, Read) for g in plan.groups for r in g.reads())
    assert len(plan.outputs) == 2
    xs = [np.array([0.5, -1.0, 2.0]), np.array([1.5, 0.2, -0.3])]
    fn, theta = export().to_jax(plan)
    assert all(close(a, b) for a, b in zip(fn(theta, *xs), program(*xs), strict=True))
    module = export().to_torch(plan)
    got = module(*(need("torch").tensor(x) for x in xs))
    assert all(close(a.detach(), b) for a, b in zip(got, program(*xs), strict=True))
    # the plan takes the parameters' values when it is made
    params[0].data = 2.5
    assert program.plan().parameters[program.parameters.index(params[0])] == 2.5


def _export_sources() -> dict[str, Any]:
    import ast

    folder = ROOT / "src" / "chainrule" / "export"
    return {p.name: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.py"))}


def test_export_imports_the_plan_not_the_program() -> None:
    """The export package reads the public plan only: no import of compiler.program (or of the compiler
    package, whose __init__ imports it), not even lazily or for type hints; no `_private` names."""
    import ast

    sources = _export_sources()
    assert set(sources) >= {"__init__.py", "arrays.py", "jax.py", "torch.py"}
    for name, tree in sources.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level >= 1:
                module = node.module or ""
                if node.level == 2 and module.startswith("compiler"):
                    assert module == "compiler.plan", f"export/{name} imports chainrule.{module}"
                if node.level == 2:
                    private = [a.name for a in node.names if a.name.startswith("_")]
                    assert not private, f"export/{name} imports private names {private} from .{module}"
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any("chainrule.compiler" in n for n in names), f"export/{name}: {names}"


def test_export_reads_no_private_attribute() -> None:
    """Every `obj._name` in the export package is one of its own (a dunder, or torch's ctx protocol)."""
    import ast

    for name, tree in _export_sources().items():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                owner = node.value.id if isinstance(node.value, ast.Name) else ""
                assert owner == "self", f"export/{name} reads {owner or '?'}.{node.attr}"


def test_batch_plan_reads_no_private_attribute_of_the_program() -> None:
    """The planner uses the Program's public names (`input_names`, `output_seeds`), not `_names`/`_seeds`."""
    text = (ROOT / "src" / "chainrule" / "compiler" / "batch_plan.py").read_text(encoding="utf-8")
    assert not re.findall(r"program\._\w+", text), re.findall(r"program\._\w+", text)


# --- inf and NaN in sums of products ------------------------------------------------------------------
def _two_neurons() -> tuple[cr.Program, list[Value], Any]:
    """tanh(b1 + w1*x1) + tanh(b2 + w2*x2) + x3 * w3: sums that read different inputs, which batch mode
    runs as one padded W @ X (W[0, 1] = 0.0 pads the first sum's row)."""
    x1, x2, x3 = placeholder("x1"), placeholder("x2"), placeholder("x3")
    w1, w2, w3 = Value(0.5, label="w1"), Value(-0.7, label="w2"), Value(0.3, label="w3")
    b1, b2 = Value(0.1, label="b1"), Value(0.2, label="b2")
    params = [w1, w2, w3, b1, b2]

    def f(a: Any, b: Any, c: Any) -> Any:
        return (b1 + w1 * a).tanh() + (b2 + w2 * b).tanh() + cr.sum([c * w3, a * w3]).sigmoid()

    return cr.compile(f(x1, x2, x3), [x1, x2, x3]), params, f


def _eager_batch(f: Any, params: list[Value], columns: list[Any]) -> tuple[Any, list[Any], list[float]]:
    """Values, input gradients and summed parameter gradients of `f`, one eager backward per sample."""
    for p in params:
        p.grad = 0.0
    values, grads = [], []
    for sample in zip(*columns, strict=True):
        xs = [Value(float(v)) for v in sample]
        out = f(*xs)
        out.backward()
        values.append(out.data)
        grads.append([x.grad for x in xs])
    return np.array(values), [np.array(g) for g in zip(*grads, strict=True)], [p.grad for p in params]


def test_an_infinite_input_poisons_no_sum_that_does_not_read_it() -> None:
    """Batch mode, to_jax and to_torch give eager's values and gradients when inputs are inf or NaN,
    although they run the sums as one padded matrix product (0.0 * inf would be NaN)."""
    need("jax")
    need("torch")
    program, params, f = _two_neurons()
    assert "matmul" in program.schedule()  # the padded dense product is what is tested
    inf, nan = math.inf, math.nan
    columns = [
        np.array([0.3, 0.3, inf, -0.4, nan, 0.2, 1.0]),
        np.array([inf, -inf, 0.5, nan, 0.7, 1.0, -2.0]),
        np.array([1.0, 2.0, 0.5, 0.5, -1.0, inf, 0.1]),
    ]
    want, want_inputs, want_params = _eager_batch(f, params, columns)
    assert math.isfinite(want[0]) and math.isfinite(want_inputs[0][0])  # eager: x2 = inf spoils nothing
    outs, in_grads, param_grads = reference(program, params, columns)
    fn, theta = export().to_jax(program)
    module = export().to_torch(program)
    order = [params.index(p) for p in program.parameters]
    engines = {
        "batch": (outs, param_grads, in_grads),
        "jax": jax_value_and_grads(fn, theta, columns),
        "torch": torch_value_and_grads(module, columns),
    }
    for name, (got_outs, got_params, got_inputs) in engines.items():
        assert close(got_outs[0], want), (name, got_outs[0], want)
        for got, expected in zip(got_inputs, want_inputs, strict=True):
            assert close(got, expected), (name, got, expected)
        assert close(np.asarray(got_params), [want_params[i] for i in order]), (name, got_params)


def test_an_infinite_gradient_reaches_only_the_values_its_sum_reads() -> None:
    """exp(b1 + w1*x1) + exp(b2 + w2*x2) at x1 = 2000: the first sum's gradient is inf; in eager it
    reaches x1 and its weight only, so x2's gradient stays finite (padding * inf would make it NaN)."""
    need("jax")
    need("torch")
    x1, x2 = placeholder("x1"), placeholder("x2")
    w1, w2, b1, b2 = Value(0.5), Value(-0.7), Value(0.1), Value(0.2)
    params = [w1, w2, b1, b2]

    def f(a: Any, b: Any) -> Any:
        return (b1 + w1 * a).exp() + (b2 + w2 * b).exp()

    program = cr.compile(f(x1, x2), [x1, x2])
    assert "matmul" in program.schedule()
    columns = [np.array([2000.0, 0.3, 0.5]), np.array([0.4, -1.0, 2000.0])]
    want, want_inputs, want_params = _eager_batch(f, params, columns)
    assert math.isfinite(want_inputs[1][0]) and want_inputs[0][0] == math.inf
    outs, in_grads, param_grads = reference(program, params, columns)
    fn, theta = export().to_jax(program)
    engines = {
        "batch": (outs, param_grads, in_grads),
        "jax": jax_value_and_grads(fn, theta, columns),
        "torch": torch_value_and_grads(export().to_torch(program), columns),
    }
    order = [params.index(p) for p in program.parameters]
    for name, (got_outs, got_params, got_inputs) in engines.items():
        assert close(got_outs[0], want), (name, got_outs[0], want)
        for got, expected in zip(got_inputs, want_inputs, strict=True):
            assert close(got, expected), (name, got, expected)
        assert close(np.asarray(got_params), [want_params[i] for i in order]), (name, got_params)
