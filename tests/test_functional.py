"""grad, value_and_grad, jacobian, hessian: first-order floats, higher orders through Value graphs."""

from __future__ import annotations

import math

import pytest

import chainrule
from chainrule import Value, grad, hessian, jacobian, no_grad, value_and_grad


# --- closed forms: f, f', f'', f''' ---------------------------------------------------------------
def _tanh_parts(x: float) -> tuple[float, float, float]:
    t = math.tanh(x)
    return t, 1 - t * t, math.exp(t)


CLOSED_FORMS = {
    "x**3*sin(x)": (
        lambda x: x**3 * x.sin(),
        lambda x: 3 * x**2 * math.sin(x) + x**3 * math.cos(x),
        lambda x: 6 * x * math.sin(x) + 6 * x**2 * math.cos(x) - x**3 * math.sin(x),
        lambda x: 6 * math.sin(x) + 18 * x * math.cos(x) - 9 * x**2 * math.sin(x) - x**3 * math.cos(x),
    ),
    "exp(tanh(x))": (
        lambda x: x.tanh().exp(),
        lambda x: (lambda t, s, e: e * s)(*_tanh_parts(x)),
        lambda x: (lambda t, s, e: e * (s * s - 2 * t * s))(*_tanh_parts(x)),
        lambda x: (lambda t, s, e: e * (s**3 - 6 * t * s * s - 2 * s * s + 4 * t * t * s))(*_tanh_parts(x)),
    ),
    "log(1+x*x)": (
        lambda x: (1 + x * x).log(),
        lambda x: 2 * x / (1 + x * x),
        lambda x: 2 * (1 - x * x) / (1 + x * x) ** 2,
        lambda x: 4 * x * (x * x - 3) / (1 + x * x) ** 3,
    ),
}
POINTS = [-1.7, -0.3, 0.4, 1.3, 2.5]


@pytest.mark.parametrize("name", CLOSED_FORMS)
@pytest.mark.parametrize("x", POINTS)
def test_first_second_and_third_derivatives_match_closed_forms(name: str, x: float) -> None:
    f, d1, d2, d3 = CLOSED_FORMS[name]
    assert grad(f)(x) == pytest.approx(d1(x), rel=1e-12, abs=1e-12)
    assert grad(grad(f))(x) == pytest.approx(d2(x), rel=1e-11, abs=1e-11)
    assert grad(grad(grad(f)))(x) == pytest.approx(d3(x), rel=1e-10, abs=1e-10)


def test_floats_in_floats_out_and_values_in_values_out() -> None:
    f = CLOSED_FORMS["x**3*sin(x)"][0]
    assert type(grad(f)(1.3)) is float
    v = Value(1.3)
    g = grad(f)(v)
    assert isinstance(g, Value) and g.requires_grad
    assert g.data == pytest.approx(CLOSED_FORMS["x**3*sin(x)"][1](1.3))
    # connected to the caller's graph: backward through the derivative gives f''
    g.backward()
    assert v.grad == pytest.approx(CLOSED_FORMS["x**3*sin(x)"][2](1.3))


def test_value_and_grad_returns_value_and_gradient_of_seed_000() -> None:
    value, grads = value_and_grad(lambda a, b, e: e / (b + a**2), argnums=(0, 1, 2))(2.0, 4.0, 3.0)
    assert value == 0.375
    assert grads == (-0.1875, -0.046875, 0.125)
    assert value_and_grad(lambda x: x * x)(3.0) == (9.0, 6.0)


def test_argnums_int_tuple_and_negative() -> None:
    f = lambda x, y, z: x * y * y + z  # noqa: E731
    assert grad(f)(2.0, 3.0, 1.0) == 9.0
    assert grad(f, argnums=1)(2.0, 3.0, 1.0) == 12.0
    assert grad(f, argnums=-1)(2.0, 3.0, 1.0) == 1.0
    assert grad(f, argnums=(2, 0))(2.0, 3.0, 1.0) == (1.0, 9.0)
    assert grad(f, argnums=(1,))(2.0, 3.0, 1.0) == (12.0,)


def test_bad_argnums_and_arguments_are_clear_errors() -> None:
    f = lambda x, y: x * y  # noqa: E731
    with pytest.raises(IndexError, match="argnums=2 but the function was called with 2"):
        grad(f, argnums=2)(1.0, 2.0)
    with pytest.raises(TypeError, match="argnums must be an int or a tuple of ints"):
        grad(f, argnums="x")(1.0, 2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one argument"):
        grad(f, argnums=())(1.0, 2.0)
    with pytest.raises(TypeError, match="grad: argument 0 must be a real number or a Value, got str"):
        grad(f)("a", 2.0)


def test_unused_argument_and_constant_output_have_zero_gradient() -> None:
    assert grad(lambda x, y: x * x, argnums=(0, 1))(3.0, 5.0) == (6.0, 0.0)
    assert grad(lambda x: 7)(3.0) == 0.0
    assert value_and_grad(lambda x: 7)(3.0) == (7.0, 0.0)
    # an output built only from constants, and a constant Value output
    assert grad(lambda x: chainrule.constant(2.0) * 3)(1.0) == 0.0
    # on graphs, the zero is a constant Value
    zero = grad(lambda x, y: x * x, argnums=1)(Value(3.0), Value(5.0))
    assert isinstance(zero, Value) and zero.data == 0.0 and not zero.requires_grad
    assert grad(grad(lambda x: x * 5))(2.0) == 0.0


def test_non_scalar_output_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"grad: f must return a scalar .*got list.*jacobian"):
        grad(lambda x: [x, x])(1.0)
    with pytest.raises(TypeError, match="value_and_grad: f must return a scalar"):
        value_and_grad(lambda x: "x")(1.0)


def test_no_grad_side_effects_on_user_values() -> None:
    w = Value(3.0)
    v = Value(2.0)
    assert grad(lambda x: x * w + v)(5.0) == 3.0
    assert w.grad == 0.0 and v.grad == 0.0
    assert grad(grad(lambda x: x * x * w))(v).data == 6.0
    assert w.grad == 0.0 and v.grad == 0.0


def test_grad_works_inside_no_grad() -> None:
    with no_grad():
        assert grad(lambda x: x.sin())(0.0) == 1.0
        assert grad(grad(lambda x: x**3))(2.0) == 12.0


def test_mixed_partials_and_closures() -> None:
    f = lambda x, y: x * x * y.sin()  # noqa: E731
    # d2f/dx dy = 2x cos(y)
    assert grad(grad(f, argnums=1), argnums=0)(1.5, 0.3) == pytest.approx(3.0 * math.cos(0.3))
    # the inner grad closes over the outer variable and gets only floats: still differentiable
    assert grad(lambda x: grad(lambda y: x * y * y)(1.0))(2.0) == 2.0


def test_shared_subexpressions_at_different_depths() -> None:
    # x*3 is used directly by the root and again one level down: its gradient must be complete
    # before it is passed on (a topological-order bug once gave 3 here instead of 9).
    assert grad(lambda a: a * 3 + (a * 3) * 2)(2.0) == 9.0
    assert grad(lambda a: (lambda x: x + x * 2)(a * 3))(2.0) == 9.0
    assert grad(lambda a, b: b * a ** (b - 1), argnums=1)(1.5, 2.0) == pytest.approx(1.5 + 3 * math.log(1.5))


def test_same_value_passed_twice_gets_a_gradient_per_position() -> None:
    v = Value(2.0)
    assert tuple(g.data for g in grad(lambda x, y: x * y * y, argnums=(0, 1))(v, v)) == (4.0, 8.0)


def test_a_constant_value_argument_still_gets_its_gradient() -> None:
    c = Value(2.0, requires_grad=False)
    assert grad(lambda x: x * x)(c).data == 4.0


def test_jacobian_shapes_and_values() -> None:
    f = lambda x, y: [x * y, x + y, 3.0, (x * 2).exp()]  # noqa: E731
    J = jacobian(f, argnums=(0, 1))(2.0, 3.0)
    assert J == [[3.0, 2.0], [1.0, 1.0], [0.0, 0.0], [pytest.approx(2 * math.exp(4.0)), 0.0]]
    assert jacobian(f)(2.0, 3.0) == [3.0, 1.0, 0.0, pytest.approx(2 * math.exp(4.0))]
    assert jacobian(lambda x: x * x)(3.0) == 6.0  # a scalar output has no row dimension
    with pytest.raises(TypeError, match="jacobian: output 1 of f must be a scalar"):
        jacobian(lambda x: [x, [x]])(1.0)
    with pytest.raises(TypeError, match="jacobian: f must return a scalar or a list/tuple"):
        jacobian(lambda x: {"a": x})(1.0)


def test_hessian_nested_lists_symmetric_and_int_argnums() -> None:
    f = lambda x, y, z: x * x * y + (y * z).sin() + z.exp() * x  # noqa: E731
    x, y, z = 0.7, -1.1, 0.4
    H = hessian(f, argnums=(0, 1, 2))(x, y, z)
    expected = [
        [2 * y, 2 * x, math.exp(z)],
        [2 * x, -z * z * math.sin(y * z), math.cos(y * z) - y * z * math.sin(y * z)],
        [math.exp(z), math.cos(y * z) - y * z * math.sin(y * z), -y * y * math.sin(y * z) + x * math.exp(z)],
    ]
    assert isinstance(H, list) and all(isinstance(row, list) for row in H)
    for row, want in zip(H, expected, strict=True):
        assert row == pytest.approx(want, rel=1e-12)
    # arguments outside argnums are passed through unchanged (here: made constants by the caller)
    assert hessian(lambda t: f(t, chainrule.constant(y), chainrule.constant(z)))(x) == pytest.approx(2 * y)
    c = chainrule.constant
    assert hessian(f, argnums=1)(c(x), y, c(z)).data == pytest.approx(expected[1][1])
    assert hessian(lambda t: t**4)(2.0) == pytest.approx(48.0)


def test_wrappers_have_readable_names() -> None:
    def loss(x: Value) -> Value:
        return x * x

    assert grad(loss).__name__ == "grad(loss)"
    assert grad(grad(loss)).__name__ == "grad(grad(loss))"


def test_public_names_are_exported() -> None:
    for name in ("grad", "value_and_grad", "jacobian", "hessian", "numerical_grad", "gradcheck"):
        assert callable(getattr(chainrule, name))


def test_higher_order_grad_leaves_no_reference_cycles():
    # Gradient Values point back into the graph they came from; grad() must not leave them in the
    # nodes' `_g` slots, or every call would leave garbage only the cyclic collector can free.
    import gc

    f = lambda x: (x * x).tanh() * x.sin()  # noqa: E731
    df = grad(f)
    df(Value(0.3))  # a Value in: the gradient is a graph, as grad(grad(f)) needs
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            df(Value(0.3))
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_grad_gives_floats_in_every_thread_while_others_are_inside_grad() -> None:
    # The recording depth used to be one module global: while one thread was inside grad(f), another
    # thread's grad(g)(3.0) saw a depth > 0 and returned a Value instead of a float.
    import threading

    inside = threading.Event()
    release = threading.Event()

    def slow(x: Value) -> Value:
        inside.set()
        assert release.wait(30), "the main thread never released the slow grad"
        return x * x

    results: list[object] = []
    worker = threading.Thread(target=lambda: results.append(grad(slow)(2.0)))
    worker.start()
    try:
        assert inside.wait(30)
        # the other thread is inside grad(slow) right now
        answers = [grad(lambda x: x * x * x)(3.0) for _ in range(50)]
    finally:
        release.set()
        worker.join(30)
    assert all(type(a) is float and a == 27.0 for a in answers)
    assert results == [4.0] and type(results[0]) is float
