"""numpy's elementary functions on Values: `np.<name>(v)` for every row numpy has, math's spellings
as aliases, numpy's `mod` (`%`) and normalised `sinc`, and a function written with them
differentiated to any order on every engine (eager, grad(grad), float and batch programs, Tensor,
JAX and PyTorch exports, drawing).

The per-row checks against PyTorch and finite differences are generated from tests/op_cases.py
(tests/test_ops_table.py and friends); this file checks what is particular to these rows.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

import chainrule as cr
from chainrule import OPS, TABLE, DomainError, Op, Tensor, Value, gradcheck, placeholder
from chainrule.backends import FLOAT, SINC_SERIES_RADIUS, VALUE, jax_backend, numpy_backend, torch_backend
from chainrule.engine import apply
from chainrule.explorer.formulas import local_formula
from chainrule.expr import build
from conftest import need
from op_cases import Fixed, case

np = need("numpy")

# numpy's name -> the row it runs (its own name but for numpy's aliases of deg2rad and rad2deg)
ROWS = {
    name: name
    for name in (
        "tan sinh cosh arcsin arccos arctan arcsinh arccosh arctanh log2 log10 log1p expm1 exp2 "
        "deg2rad rad2deg sinc exp log tanh sin cos sqrt"
    ).split()
} | {"radians": "deg2rad", "degrees": "rad2deg"}
# math's spelling -> numpy's: the same method under two names
MATH_SPELLINGS = {
    "asin": "arcsin",
    "acos": "arccos",
    "atan": "arctan",
    "asinh": "arcsinh",
    "acosh": "arccosh",
    "atanh": "arctanh",
    "radians": "deg2rad",
    "degrees": "rad2deg",
}
POINT = {"arccosh": 1.7, "log2": 1.7, "log10": 1.7, "log": 1.7, "sqrt": 1.7}  # else 0.35


# --- np.<name>(Value) -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ROWS))
def test_numpy_function_on_a_value_runs_the_row(name: str) -> None:
    x = POINT.get(ROWS[name], 0.35)
    v = Value(x)
    y = getattr(np, name)(v)
    assert isinstance(y, Value) and y._operation is OPS[ROWS[name]], (name, y)
    assert y.data == pytest.approx(float(getattr(np, name)(x)), rel=1e-15, abs=1e-300)
    y.backward()
    op = OPS[ROWS[name]]
    assert v.grad == op.derivative(0)(FLOAT, 1.0, y.data, x)


@pytest.mark.parametrize(
    ("name", "value", "slope"),
    [
        ("absolute", 0.35, 1.0),
        ("negative", -0.35, -1.0),
        ("reciprocal", 1 / 0.35, -1 / 0.35**2),
        ("square", 0.1225, 0.7),
    ],
)
def test_numpys_aliases_of_operators_work_on_a_value(name: str, value: float, slope: float) -> None:
    v = Value(0.35)
    y = getattr(np, name)(v)
    assert isinstance(y, Value) and y.data == pytest.approx(value, rel=1e-15)
    y.backward()
    assert v.grad == pytest.approx(slope, rel=1e-15)


def test_numpy_mod_and_remainder_on_values_are_the_mod_row() -> None:
    a, b = Value(7.5), Value(-2.0)
    for y in (np.mod(a, b), np.remainder(a, b), a % b, np.mod(a, -2.0), 7.5 % b):
        assert isinstance(y, Value) and y._operation is OPS["mod"] and y.data == -0.5
    y = a % b
    y.backward()
    assert a.grad == 1.0 and b.grad == 4.0  # -floor(7.5 / -2) = 4


@pytest.mark.parametrize(("math_name", "numpy_name"), sorted(MATH_SPELLINGS.items()))
def test_maths_spelling_is_the_same_method(math_name: str, numpy_name: str) -> None:
    assert getattr(Value, math_name) is getattr(Value, numpy_name)
    assert getattr(Tensor, math_name) is getattr(Tensor, numpy_name)
    x = Value(0.4 if numpy_name != "arccosh" else 1.4)
    assert getattr(x, math_name)()._operation is OPS[numpy_name]
    # and math's function of that spelling gives the same number
    assert getattr(x, math_name)().data == pytest.approx(getattr(math, math_name)(x.data), rel=1e-15)


def test_numpy_functions_that_are_no_row_keep_numpys_behaviour() -> None:
    # Value answers numpy's array functions only for the rows (np.sinc): others run numpy's own code
    v = Value(0.5)
    assert np.where(v > 0, 1, 2) == 1
    assert np.clip(v, 0.0, 1.0) is v
    assert np.sinc(Value(0.0)).data == 1.0


# --- mod: numpy's sign convention, and where its derivative is undefined ---------------------------
MOD_GRID = [-7.5, -3.0, -1e-3, -0.0, 0.0, 0.3, 2.0, 5.25, 1e6 + 0.5, math.inf, math.nan]


@pytest.mark.parametrize("b", [2.0, -2.0, 0.25, -0.7, 3.0, math.inf, -math.inf])
def test_mod_has_numpys_sign_convention_bit_for_bit(b: float) -> None:
    with np.errstate(invalid="ignore"):
        want = [float(np.mod(a, b)) for a in MOD_GRID]
    got = [(Value(a) % b).data for a in MOD_GRID]
    got_reflected = [(a % Value(b)).data for a in MOD_GRID]
    assert np.array_equal(got, want, equal_nan=True) and np.array_equal(got_reflected, want, equal_nan=True)
    with np.errstate(invalid="ignore"):
        batch = OPS["mod"].forward(numpy_backend(), np.array(MOD_GRID), b)
    assert np.array_equal(batch, want, equal_nan=True)


@pytest.mark.parametrize(("a", "b"), [(7.3, 2.0), (-7.3, 2.0), (7.3, -2.0), (-0.3, -0.7), (1e6 + 0.5, 3.0)])
def test_mod_slopes_are_one_and_minus_the_floor_quotient(a: float, b: float) -> None:
    x, y = Value(a), Value(b)
    (x % y).backward()
    assert x.grad == 1.0 and y.grad == -math.floor(a / b)


@pytest.mark.parametrize(("a", "b"), [(4.0, 2.0), (-6.0, 3.0), (0.0, 5.0), (-1.5, -0.5), (0.0, -2.0)])
def test_mod_derivative_is_undefined_where_it_jumps(a: float, b: float) -> None:
    # a a multiple of b: a % b is 0 and jumps as a (or b) moves; backward raises instead of giving 1
    for wrt in ((0,), (1,), (0, 1)):
        xs = [Value(v) if i in wrt else v for i, v in enumerate((a, b))]
        out = xs[0] % xs[1]
        assert out.data == 0.0
        with pytest.raises(DomainError, match=r"mod: the derivative is undefined at"):
            out.backward()
    with pytest.raises(DomainError, match="mod: the derivative is undefined"):
        cr.grad(lambda p, q: p % q)(a, b)
    with pytest.raises(DomainError, match="mod: the derivative is undefined"):  # on the VALUE backend
        cr.grad(cr.grad(lambda p: p % b * p))(a)


def test_mod_by_zero_is_a_zero_division_error_naming_the_op() -> None:
    with pytest.raises(ZeroDivisionError, match=r"mod: requires a non-zero divisor, got 1.5, 0.0"):
        Value(1.5) % 0.0
    with pytest.raises(ZeroDivisionError, match=r"mod: requires a non-zero divisor"):
        1.5 % Value(-0.0)


def test_mod_jumps_raise_in_compiled_programs_naming_the_batch_index() -> None:
    x = placeholder("x")
    program = cr.compile(x % 1.5 * x, [x])
    assert program.value_and_grad(2.0)[1][0] == pytest.approx(2 * 2.0 - 1.5)
    with pytest.raises(DomainError, match="mod: the derivative is undefined"):
        program.value_and_grad(3.0)
    with pytest.raises(DomainError, match=r"mod: the derivative is undefined at .*at batch index 2"):
        program.value_and_grad(np.array([0.5, 2.0, -3.0, 1.0]))


# --- the edges of the domains ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "edge"), [("arcsin", 1.0), ("arcsin", -1.0), ("arccos", 1.0), ("arccos", -1.0), ("arccosh", 1.0)]
)
def test_an_infinite_slope_at_the_edge_raises_in_backward_as_sqrt_at_zero(name: str, edge: float) -> None:
    x = Value(edge)
    y = getattr(x, name)()
    assert y.data == getattr(np, name)(edge)  # the value at the edge is fine
    with pytest.raises(DomainError, match=rf"{name}: the derivative is undefined at \({edge},\)"):
        y.backward()
    h = placeholder("h")
    program = cr.compile(getattr(h, name)(), [h])
    with pytest.raises(DomainError, match=rf"{name}: the derivative is undefined .*at batch index 1"):
        program.value_and_grad(np.array([2.0 if name == "arccosh" else 0.5 * edge, edge]))


@pytest.mark.parametrize(
    ("name", "x", "requirement"),
    [
        ("arcsin", 1.5, "-1 <= x <= 1"),
        ("arccos", -2.0, "-1 <= x <= 1"),
        ("arccosh", 0.5, "x >= 1"),
        ("arctanh", 1.0, "-1 < x < 1"),
        ("log2", 0.0, "x > 0"),
        ("log10", -1.0, "x > 0"),
        ("log1p", -1.0, "x > -1"),
    ],
)
def test_outside_the_domain_is_a_domain_error_naming_op_and_value(
    name: str, x: float, requirement: str
) -> None:
    with pytest.raises(DomainError, match=rf"{name}: requires {re.escape(requirement)}, got {x!r}"):
        getattr(np, name)(Value(x))


def test_nan_given_as_data_propagates_and_does_not_raise() -> None:
    for name in ROWS:
        v = Value(math.nan)
        y = getattr(v, name)()
        assert math.isnan(y.data), name
    assert math.isnan((Value(math.nan) % 2.0).data) and math.isnan((Value(2.0) % math.nan).data)


# --- sinc: numpy's normalised one, smooth at 0 -------------------------------------------------------
def _sinc_derivative_at_zero(order: int) -> float:
    """sinc's Maclaurin series: the 2k-th derivative at 0 is (-1)^k pi^(2k) / (2k + 1), odd ones are 0."""
    if order % 2:
        return 0.0
    k = order // 2
    return (-1) ** k * math.pi**order / (order + 1)


def _nth_grad(f: Any, order: int) -> Any:
    for _ in range(order):
        f = cr.grad(f)
    return f


@pytest.mark.parametrize("order", range(7))
def test_sinc_derivatives_of_every_order_at_zero(order: int) -> None:
    got = _nth_grad(lambda x: x.sinc(), order)(0.0) if order else Value(0.0).sinc().data
    assert got == pytest.approx(_sinc_derivative_at_zero(order), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("x", [1e-3, -2e-5, 0.05])
def test_sinc_derivatives_near_zero_are_its_taylor_series(x: float) -> None:
    # where the formula cancels (JAX's third derivative at 1e-3 is off in the fifth digit)
    for order in range(1, 5):
        want = sum(_sinc_derivative_at_zero(order + j) * x**j / math.factorial(j) for j in range(12))
        assert _nth_grad(lambda v: v.sinc(), order)(x) == pytest.approx(want, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("x", [0.0, 0.3, SINC_SERIES_RADIUS, -0.7, 1.7, 25.5])
def test_sinc_derivatives_match_jax_to_third_order(x: float) -> None:
    jax = need("jax")
    jax_backend()  # float64 mode
    f = jax.numpy.sinc
    for order in range(1, 4):
        f = jax.grad(f)
        got = _nth_grad(lambda v: v.sinc(), order)(x)
        assert got == pytest.approx(float(f(x)), rel=1e-9, abs=1e-12), (x, order)


def test_sinc_slope_is_continuous_where_the_series_hands_over_to_the_formula() -> None:
    below = math.nextafter(SINC_SERIES_RADIUS, 0.0)
    for m in (FLOAT, numpy_backend()):
        assert float(m.sinc_slope(below)) == pytest.approx(float(m.sinc_slope(SINC_SERIES_RADIUS)), rel=1e-14)
    slopes = [cr.grad(cr.grad(lambda v: v.sinc()))(x) for x in (below, SINC_SERIES_RADIUS)]
    assert slopes[0] == pytest.approx(slopes[1], rel=1e-12)


@pytest.mark.parametrize("engine", ["numpy", "jax", "torch"])
def test_sinc_slope_on_arrays_is_the_float_one(engine: str) -> None:
    xs = [0.0, 1e-8, -0.2, 0.4999, 0.5, -1.5, 30.25, math.nan]
    want = [FLOAT.sinc_slope(x) for x in xs]
    if engine == "numpy":
        got = numpy_backend().sinc_slope(np.array(xs))
    elif engine == "jax":
        jnp = need("jax").numpy
        got = jax_backend().sinc_slope(jnp.asarray(xs, dtype=jnp.float64))
    else:
        torch = need("torch")
        got = torch_backend().sinc_slope(torch.tensor(xs, dtype=torch.float64))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-14, atol=1e-300)
    assert VALUE.sinc_slope(Value(0.0)).data == 0.0


# --- one function written with numpy's functions, on every engine -----------------------------------
def f_with(ns: Any, x: Any) -> Any:
    """A scalar function written with the elementary functions of `ns` (numpy: on Values, each a row)."""
    return (
        ns.sinc(x) * ns.arctan(x)
        + ns.log1p(x * x) * ns.cosh(x)
        - ns.expm1(ns.sin(x)) / ns.exp2(x)
        + ns.arcsinh(x) * ns.tan(x)
        + ns.mod(3 * x + 0.1, 0.7) * ns.deg2rad(ns.rad2deg(x))
        + ns.arccos(x * 0.5) * ns.log2(x * x + 1)
        + ns.arctanh(x * 0.3) * ns.log10(x * x + 2)
        + ns.sinh(ns.arcsin(x * 0.4)) * ns.arccosh(x * x + 1.5)
    )


def f_numpy(x: Any) -> Any:
    """The function with numpy's functions."""
    return f_with(np, x)


def f_methods(x: Any) -> Any:
    """The same function with Value's (and Tensor's, and torch's) methods."""
    return (
        x.sinc() * x.arctan()
        + (x * x).log1p() * x.cosh()
        - x.sin().expm1() / x.exp2()
        + x.arcsinh() * x.tan()
        + (3 * x + 0.1) % 0.7 * x.rad2deg().deg2rad()
        + (x * 0.5).arccos() * (x * x + 1).log2()
        + (x * 0.3).arctanh() * (x * x + 2).log10()
        + (x * 0.4).arcsin().sinh() * (x * x + 1.5).arccosh()
    )


POINTS = [0.3, -0.45, 1.1, 0.0]


def f_jax(x: Any) -> Any:
    """The function with jax.numpy's functions (the reference for derivatives of any order)."""
    return f_with(need("jax").numpy, x)


def test_the_numpy_and_method_spellings_are_the_same_graph() -> None:
    for x in POINTS:
        a, b = Value(x), Value(x)
        ya, yb = f_numpy(a), f_methods(b)
        ya.backward()
        yb.backward()
        assert ya.data == yb.data and a.grad == b.grad


def test_a_numpy_function_differentiates_to_the_fourth_order_as_jax_does() -> None:
    jax = need("jax")
    jax_backend()
    xs = np.array(POINTS)
    ref = f_jax
    values = jax.jit(jax.vmap(ref))(xs)  # one compiled run for all points: JAX traces slowly
    assert [f_numpy(Value(x)).data for x in POINTS] == pytest.approx(list(map(float, values)), rel=1e-13)
    for order in range(1, 5):
        ref = jax.grad(ref)
        want = jax.jit(jax.vmap(ref))(xs)
        for x, w in zip(POINTS, want, strict=True):
            assert _nth_grad(f_numpy, order)(x) == pytest.approx(float(w), rel=1e-9, abs=1e-9), (x, order)


def test_a_numpy_function_passes_gradcheck_at_order_two() -> None:
    for x in (0.3, -0.45, 1.1):
        assert gradcheck(f_numpy, x, order=2) is True


def _eager(x: float) -> tuple[float, float]:
    v = Value(x)
    y = f_numpy(v)
    y.backward()
    return y.data, v.grad


def test_compiled_float_and_batch_programs_give_eagers_numbers() -> None:
    h = placeholder("x")
    program = cr.compile(f_numpy(h), [h])  # placeholders take numpy's functions too
    for x in POINTS:
        value, (slope,) = program.value_and_grad(x)
        assert (value, slope) == _eager(x)  # float mode: the same operations in the same order
    values, (slopes,) = program.value_and_grad(np.array(POINTS))
    for k, x in enumerate(POINTS):
        want_value, want_slope = _eager(x)
        assert values[k] == pytest.approx(want_value, rel=1e-13)
        assert slopes[k] == pytest.approx(want_slope, rel=1e-12)


def test_tensor_gives_eagers_numbers_entry_by_entry() -> None:
    t = Tensor(POINTS)
    y = f_methods(t)
    y.backward(grad=np.ones(len(POINTS)))
    for k, x in enumerate(POINTS):
        want_value, want_slope = _eager(x)
        assert y.data[k] == pytest.approx(want_value, rel=1e-13)
        assert t.grad[k] == pytest.approx(want_slope, rel=1e-12)


def test_exports_give_eagers_numbers() -> None:
    jax = need("jax")
    torch = need("torch")
    h = placeholder("x")
    program = cr.compile(f_numpy(h), [h])
    fn, theta = program.to_jax()
    xs = np.array(POINTS)
    jax_value = fn(theta, jax.numpy.asarray(xs))
    jax_slopes = jax.grad(lambda v: fn(theta, v).sum())(jax.numpy.asarray(xs))
    module = program.to_torch()
    tx = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    torch_value = module(tx)
    torch_value.sum().backward()
    for k, x in enumerate(POINTS):
        want_value, want_slope = _eager(x)
        for value, slope in ((jax_value[k], jax_slopes[k]), (torch_value[k].item(), tx.grad[k])):
            assert float(value) == pytest.approx(want_value, rel=1e-13)
            assert float(slope) == pytest.approx(want_slope, rel=1e-12)
    # and JAX differentiates the exported rules again: second order, as eager grad(grad)
    second = jax.grad(jax.grad(lambda v: fn(theta, v)))
    for x in POINTS:
        assert float(second(x)) == pytest.approx(_nth_grad(f_numpy, 2)(x), rel=1e-9, abs=1e-9)


def test_against_torch_knows_every_spelling() -> None:
    from chainrule.check import against_torch

    need("torch")
    for x in (0.3, -0.45, 1.1):
        assert against_torch(f_methods, x)
    assert against_torch(lambda x: x.atan() + x.radians().asinh() * x.degrees().acos(), 0.01)


def test_draw_expressions_call_the_new_functions() -> None:
    built = build("y = sinc(x) * arctan(x) + arcsin(x * 0.4); L = y * expm1(x) + deg2rad(x)", {"x": 0.3})
    out = built.output
    out.backward()
    x = built.inputs["x"]
    want = Value(0.3)
    ((want.sinc() * want.arctan() + (want * 0.4).arcsin()) * want.expm1() + want.radians()).backward()
    assert x.grad == want.grad
    dot = cr.drawing.to_dot(out)
    assert "sinc" in dot and "arctan" in dot and "deg2rad" in dot


def test_the_linear_rows_convert_exactly_as_numpy_does() -> None:
    xs = np.array([-720.0, -1.0, 0.0, 33.3, 90.0, 1e300])
    assert np.array_equal(OPS["deg2rad"].forward(numpy_backend(), xs), np.deg2rad(xs))
    assert np.array_equal(OPS["rad2deg"].forward(numpy_backend(), xs / 1e3), np.rad2deg(xs / 1e3))
    assert [Value(x).deg2rad().data for x in xs] == list(np.deg2rad(xs))
    assert apply(OPS["deg2rad"], Value(180.0)).data == math.pi


@pytest.mark.parametrize("op", TABLE, ids=lambda op: op.name)
def test_the_explorers_formula_of_every_row_evaluates_to_its_rule(op: Op) -> None:
    # the explorer writes each local derivative as a formula read off the rule (nested helper calls,
    # such as mod's step(abs(out)), included): evaluated, it gives the rule's number
    xs = [p.x if isinstance(p, Fixed) else p for p in case(op).gradcheck[0]]
    names = ["a", "b", "c", "d"][: len(xs)]
    out = op.forward(FLOAT, *xs)
    scope: dict[str, Any] = dict(zip(names, xs, strict=True)) | {"o": out}
    for i in range(len(xs)):
        formula = local_formula(op, i, "o", names)
        assert formula is not None and "M_" not in formula, (op.name, formula)
        for name in set(re.findall(r"[a-z_]\w*", formula)) - set(scope) - {"if", "else"}:
            scope[name] = getattr(FLOAT, name)
        got = eval(formula, {"__builtins__": {}}, scope)  # noqa: S307 - the formula chainrule wrote
        assert got == pytest.approx(op.derivative(i)(FLOAT, 1.0, out, *xs), rel=1e-12), (op.name, formula)


def test_draw_expressions_take_percent_as_numpys_mod() -> None:
    built = build("r = a % b; L = r * a", {"a": 5.5, "b": 2.0})
    out = built.output
    out.backward()
    a, b = Value(5.5), Value(2.0)
    want = (a % b) * a
    want.backward()
    assert out.data == want.data == 1.5 * 5.5
    assert built.inputs["a"].grad == a.grad and built.inputs["b"].grad == b.grad == -2.0 * 5.5
    assert "%" in cr.drawing.to_dot(out)
