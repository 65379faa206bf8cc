"""A `defop` rule that returns the wrong kind of result is refused in every mode, in one line.

A hand-written rule may return a complex number (`x ** (1 / 3)` at x < 0), None, a string, an array
or a float32 where the engine expects a real number: each mode that runs the rule (eager forward and
backward, grad(grad), float mode's generated code and its interpreter, batch mode, Tensor, to_jax,
to_torch) stops with a TypeError naming the op, the rule and what it returned.
"""

from __future__ import annotations

import math

import pytest

import chainrule
from chainrule import Tensor, Value, defop, placeholder
from conftest import float_runner, need

pytestmark = pytest.mark.usefixtures("user_ops_restored")

RUNNERS = ["generated", "interpreted"]


def define(name: str, derivative, forward=lambda m, x: x * 2.0, invalid=None):  # noqa: ANN001, ANN201
    """A one-input op whose forward (by default 2x) and derivative are given."""
    return defop(name, forward, derivative, invalid=invalid)


def complex_slope(m, g, out, x):  # noqa: ANN001, ANN201
    return g * 1j  # complex on floats and on every array library


# --- eager ------------------------------------------------------------------------------------------
def test_a_complex_forward_is_refused_in_eager_mode() -> None:
    cbrt = defop("my_cbrt", lambda m, x: x ** (1 / 3), lambda m, g, out, x: g / (3 * out * out))
    assert cbrt(Value(8.0)).data == pytest.approx(2.0)
    with pytest.raises(TypeError, match=r"^my_cbrt: its forward rule returned complex \(.*j\) on floats; "):
        cbrt(Value(-8.0))


@pytest.mark.parametrize(
    ("result", "shown"),
    [
        (1 + 2j, r"complex \(1\+2j\)"),
        (None, "None"),
        ("slope", "str 'slope'"),
        ([1.0], r"list \[1\.0\]"),
    ],
)
def test_a_derivative_of_the_wrong_kind_is_refused_in_eager_backward(result: object, shown: str) -> None:
    op = define("wrong", lambda m, g, out, x: result)
    x = Value(3.0)
    y = op(x) * 2.0
    with pytest.raises(TypeError, match=rf"^wrong: its derivative rule for x0 returned {shown} on floats; "):
        y.backward()
    assert x.grad == 0.0  # all or nothing: nothing changed


def test_a_numpy_array_or_float32_derivative_on_floats() -> None:
    np = need("numpy")
    as_array = define("as_array", lambda m, g, out, x: np.array([g * 2.0]))
    with pytest.raises(TypeError, match=r"as_array: its derivative rule for x0 returned ndarray of dtype "):
        as_array(Value(1.0)).backward()
    single = define("single", lambda m, g, out, x: np.float32(2.0) * g, lambda m, x: np.float32(2.0) * x)
    x = Value(1.5)
    y = single(x)
    y.backward()
    assert type(y.data) is float and type(x.grad) is float and x.grad == 2.0  # stays a Python float


def test_a_type_error_inside_a_rule_names_the_op() -> None:
    op = define("bad_text", lambda m, g, out, x: g * "2")
    with pytest.raises(TypeError, match=r"^bad_text: its derivative rule for x0 failed on floats: "):
        op(Value(1.0)).backward()


@pytest.mark.parametrize(
    ("result", "shown"), [(0, "int 0"), (1, "int 1"), (None, "None"), ("no", "str 'no'")]
)
def test_an_invalid_rule_that_returns_no_bool_is_refused(result: object, shown: str) -> None:
    op = define("check_me", lambda m, g, out, x: g, invalid=lambda m, x: result)
    with pytest.raises(TypeError, match=rf"^check_me: its invalid rule returned {shown} on floats; it must "):
        op(Value(1.0))
    x = placeholder("x")
    for runner in RUNNERS:
        with float_runner(runner):
            with pytest.raises(TypeError, match=rf"^check_me: its invalid rule returned {shown} on floats"):
                chainrule.compile(op(x), [x])(1.0)


def test_a_numpy_bool_from_an_invalid_rule_works_everywhere() -> None:
    np = need("numpy")
    op = define("np_bool", lambda m, g, out, x: g, invalid=lambda m, x: np.bool_(bool(np.any(x < 0))))
    assert op(Value(1.0)).data == 2.0
    with pytest.raises(chainrule.DomainError, match="np_bool"):
        op(Value(-1.0))
    x = placeholder("x")
    program = chainrule.compile(op(x), [x])
    assert program(np.array([1.0, 2.0])).tolist() == [2.0, 4.0]
    with pytest.raises(chainrule.DomainError, match="np_bool"):
        program(np.array([1.0, -2.0]))


def test_grad_of_grad_refuses_a_derivative_of_the_wrong_kind_on_values() -> None:
    op = define("const_c", lambda m, g, out, x: 2j if isinstance(g, Value) else 2.0 * g)
    assert chainrule.grad(lambda x: op(x))(1.0) == 2.0  # on floats it is fine
    with pytest.raises(
        TypeError, match=r"^const_c: its derivative rule for x0 returned complex 2j on Values"
    ):
        chainrule.grad(chainrule.grad(lambda x: op(x) * x))(1.0)
    failing = define("value_times_complex", complex_slope)
    with pytest.raises(
        TypeError, match=r"^value_times_complex: its derivative rule for x0 failed on Values: "
    ):
        chainrule.grad(chainrule.grad(lambda x: failing(x) * x))(1.0)


# --- compiled programs ----------------------------------------------------------------------------
@pytest.mark.parametrize("runner", RUNNERS)
def test_float_mode_refuses_a_derivative_of_the_wrong_kind(runner: str) -> None:
    op = define("cplx", complex_slope)
    x = placeholder("x")
    with float_runner(runner):
        program = chainrule.compile(op(x) * x, [x])
        assert program(1.5) == 4.5  # the forward rule is fine
        with pytest.raises(
            TypeError, match=r"^cplx: its derivative rule for x0 returned complex 1\.5j on floats"
        ):
            program.value_and_grad(1.5)


@pytest.mark.parametrize("runner", RUNNERS)
def test_float_mode_refuses_a_complex_forward_that_it_would_otherwise_inline(runner: str) -> None:
    # `x ** (1 / 3)` is straight-line arithmetic, the kind float mode writes into its generated code:
    # the check must hold there as well, not only where the rule is called.
    cbrt = defop("cbrt_inline", lambda m, x: x ** (1 / 3), lambda m, g, out, x: g / (3 * out * out))
    x = placeholder("x")
    with float_runner(runner):
        program = chainrule.compile(cbrt(x), [x])
        assert program(8.0) == pytest.approx(2.0)
        with pytest.raises(TypeError, match=r"^cbrt_inline: its forward rule returned complex"):
            program(-8.0)


def test_float_mode_gives_python_floats_for_numpy_scalar_rules() -> None:
    np = need("numpy")
    op = define("f32_rules", lambda m, g, out, x: np.float32(3.0) * g, lambda m, x: np.float32(2.0) * x)
    x = placeholder("x")
    for runner in RUNNERS:
        with float_runner(runner):
            value, (dx,) = chainrule.compile(op(x), [x]).value_and_grad(1.0)
            assert (type(value), type(dx), value, dx) == (float, float, 2.0, 3.0)


def test_batch_mode_refuses_a_forward_returning_none_instead_of_giving_nan() -> None:
    np = need("numpy")
    nothing = defop("nothing", lambda m, x: None, lambda m, g, out, x: g)
    x = placeholder("x")
    program = chainrule.compile(nothing(x) + x, [x])
    with pytest.raises(TypeError, match=r"^nothing: its forward rule returned None on numpy arrays; it must"):
        program(np.array([1.0, 2.0]))


def test_batch_mode_refuses_a_complex_or_misshapen_derivative() -> None:
    np = need("numpy")
    x = placeholder("x")
    cplx = define("cplx_batch", complex_slope)
    program = chainrule.compile(cplx(x) * x, [x])
    with pytest.raises(
        TypeError, match=r"^cplx_batch: its derivative rule for x0 returned ndarray of dtype "
    ):
        program.value_and_grad(np.array([1.0, 2.0]))
    misshapen = define("misshapen", lambda m, g, out, x: np.ones(7))
    program = chainrule.compile(misshapen(x) * x, [x])
    with pytest.raises(TypeError, match=r"^misshapen: its derivative rule for x0 returned an array of shape"):
        program.value_and_grad(np.array([1.0, 2.0]))


def test_batch_mode_takes_constants_and_float32_from_a_rule_and_computes_in_float64() -> None:
    np = need("numpy")
    op = define("f32_batch", lambda m, g, out, x: (3.0 * g).astype(np.float32), lambda m, x: 2.0 * x)
    x = placeholder("x")
    values, (dx,) = chainrule.compile(op(x), [x]).value_and_grad(np.array([1.0, 2.0]))
    assert values.tolist() == [2.0, 4.0] and dx.dtype == np.float64 and dx.tolist() == [3.0, 3.0]
    constant = defop("constant_one", lambda m, x: 1.0 + 0.0 * x, lambda m, g, out, x: 0.0)
    values, (dx,) = chainrule.compile(constant(x) * x, [x]).value_and_grad(np.array([1.0, 2.0]))
    assert values.tolist() == [1.0, 2.0] and dx.tolist() == [1.0, 1.0]


# --- Tensor and exports ---------------------------------------------------------------------------
def test_tensor_refuses_a_derivative_of_the_wrong_kind() -> None:
    np = need("numpy")
    cplx = define("cplx_tensor", complex_slope)
    t = Tensor(np.ones((2, 3)))
    with pytest.raises(
        TypeError, match=r"^cplx_tensor: its derivative rule for x0 returned ndarray of dtype"
    ):
        cplx(t).sum().backward()
    assert not t.grad.any()
    misshapen = define("misshapen_tensor", lambda m, g, out, x: np.ones(4))
    with pytest.raises(TypeError, match=r"returned an array of shape \(4,\) on numpy arrays for operands"):
        misshapen(t).sum().backward()
    nothing = defop("nothing_tensor", lambda m, x: None, lambda m, g, out, x: g)
    with pytest.raises(TypeError, match=r"^nothing_tensor: its forward rule returned None on numpy arrays"):
        nothing(t)
    single = define("single_tensor", lambda m, g, out, x: g, lambda m, x: (2.0 * x).astype(np.float32))
    assert single(t).data.dtype == np.float64


def test_to_jax_refuses_a_derivative_of_the_wrong_kind() -> None:
    np, jax = need("numpy"), need("jax")
    x = placeholder("x")
    program = chainrule.compile(define("cplx_jax", complex_slope)(x) * x, [x])
    fn, params = program.to_jax()
    assert np.allclose(np.asarray(fn(params, np.array([1.0, 2.0]))), [2.0, 8.0])
    with pytest.raises(TypeError, match=r"cplx_jax: its derivative rule for x0 returned .* on JAX arrays"):
        jax.grad(lambda v: fn(params, v).sum())(np.array([1.0, 2.0]))


def test_to_torch_refuses_a_derivative_of_the_wrong_kind() -> None:
    torch = need("torch")
    x = placeholder("x")
    module = chainrule.compile(define("cplx_torch", complex_slope)(x) * x, [x]).to_torch()
    v = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    out = module(v).sum()
    with pytest.raises(
        TypeError, match=r"cplx_torch: its derivative rule for x0 returned .* on torch tensors"
    ):
        out.backward()


def test_rules_of_the_right_kind_give_the_same_numbers_in_every_mode() -> None:
    np, torch = need("numpy"), need("torch")
    cube = defop("cube_ok", lambda m, x: x**3, lambda m, g, out, x: g * 3 * x**2)
    assert chainrule.grad(lambda x: cube(x))(2.0) == 12.0
    assert chainrule.grad(chainrule.grad(lambda x: cube(x)))(2.0) == 12.0
    x = placeholder("x")
    program = chainrule.compile(cube(x), [x])
    for runner in RUNNERS:
        with float_runner(runner):
            assert chainrule.compile(cube(x), [x]).value_and_grad(2.0) == (8.0, (12.0,))
    values, (dx,) = program.value_and_grad(np.array([2.0, -1.0]))
    assert values.tolist() == [8.0, -1.0] and dx.tolist() == [12.0, 3.0]
    t = Tensor(np.array([2.0, -1.0]))
    cube(t).sum().backward()
    assert t.grad.tolist() == [12.0, 3.0]
    v = torch.tensor([2.0, -1.0], dtype=torch.float64, requires_grad=True)
    program.to_torch()(v).sum().backward()
    assert v.grad.tolist() == [12.0, 3.0]
    assert math.isnan(chainrule.compile(cube(x), [x])(math.nan))  # NaN data propagates, as IEEE says


def test_the_explorer_writes_a_defop_ops_own_rule_as_its_local_derivative() -> None:
    from chainrule.explorer.formulas import local_formula

    cube = defop("cube_page", lambda m, x: x**3, lambda m, g, out, x: g * 3 * x**2)
    assert local_formula(cube.op, 0, "y", ["x"]) == "3 * x ** 2"  # the rule, not its result check
    page = chainrule.explore(cube(Value(2.0, label="x")))
    assert "3 * x ** 2 = 12" in page.html and "own _backward" not in page.html
    again = defop("cube_page", lambda m, x: x**3, lambda m, g, out, x: g * x * x * 3, replace=True)
    assert local_formula(again.op, 0, "y", ["x"]) == "x * x * 3"  # the rules defined now
