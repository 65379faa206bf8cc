"""numerical_grad and gradcheck, and every op of the derivative table checked at order 1 and 2."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from chainrule import OPS, TABLE, GradcheckError, Op, Value, constant, gradcheck, numerical_grad
from chainrule.backends import VALUE
from chainrule.engine import apply
from op_cases import Fixed, case


def _op_function(op: Op, point: tuple[Any, ...]) -> tuple[Any, list[float]]:
    """f(*checked args) applying the op, with Fixed operands closed over as constants."""
    free = [x for x in point if not isinstance(x, Fixed)]

    def f(*xs: Value) -> Value:
        it = iter(xs)
        return apply(op, *(constant(p.x) if isinstance(p, Fixed) else next(it) for p in point))

    f.__name__ = op.name
    return f, free


# Every row of the table at its gradcheck points (tests/op_cases.py; a row without them fails there).
@pytest.mark.parametrize("op", TABLE, ids=lambda op: op.name)
@pytest.mark.parametrize("order", [1, 2])
def test_every_op_passes_gradcheck(op: Op, order: int) -> None:
    points = case(op).gradcheck
    assert points, f"no gradcheck points for op {op.name!r}: add them to tests/op_cases.py"
    for point in points:
        f, free = _op_function(op, point)
        assert gradcheck(f, *free, order=order) is True


# --- numerical_grad -------------------------------------------------------------------------------
def test_numerical_grad_central_and_forward() -> None:
    f = lambda x, y: x * y.tanh()  # noqa: E731 - one function written with Value methods serves all
    exact = (math.tanh(2.0), 1.0 * (1 - math.tanh(2.0) ** 2))
    central = numerical_grad(f, 1.0, 2.0)
    forward = numerical_grad(f, 1.0, 2.0, method="forward")
    assert isinstance(central, tuple) and len(central) == 2
    assert central == pytest.approx(exact, abs=1e-9)
    assert forward == pytest.approx(exact, abs=1e-5)
    # forward differences have an O(h) error that central ones do not
    coarse = numerical_grad(lambda x: x.exp(), 1.0, h=1e-3, method="forward")[0]
    assert abs(coarse - math.e) > 1e-4
    assert numerical_grad(lambda x: x.exp(), 1.0, h=1e-3)[0] == pytest.approx(math.e, abs=1e-5)


def test_numerical_grad_accepts_number_outputs_and_value_arguments() -> None:
    assert numerical_grad(lambda x: 5.0, 1.0) == (0.0,)
    assert numerical_grad(lambda x, y: x * 3, Value(2.0), 1.0) == pytest.approx((3.0, 0.0))


def test_numerical_grad_rejects_bad_method_step_and_output() -> None:
    with pytest.raises(ValueError, match="numerical_grad: unknown method 'backward'"):
        numerical_grad(lambda x: x, 1.0, method="backward")
    with pytest.raises(ValueError, match="step h must be a positive number"):
        numerical_grad(lambda x: x, 1.0, h=0.0)
    with pytest.raises(TypeError, match="numerical_grad: f must return a scalar"):
        numerical_grad(lambda x: [x], 1.0)


# --- gradcheck --------------------------------------------------------------------------------------
def test_gradcheck_passes_on_a_composite_function() -> None:
    f = lambda a, b, c: (a * b + c.exp()).tanh() / (1 + b * b) + (a**2 + 1).log() * c.sigmoid()  # noqa: E731
    assert gradcheck(f, 0.3, -0.8, 0.5, order=2)


def _wrong_sin() -> Any:
    """sin with the derivative of cos: a deliberately wrong rule."""
    return dataclasses.replace(OPS["sin"], derivatives=(lambda m, g, out, a: -g * m.sin(a),))


def test_gradcheck_reports_a_wrong_derivative_as_a_readable_table() -> None:
    wrong = _wrong_sin()

    def f(x: Value, y: Value) -> Value:
        return apply(wrong, x) * y

    with pytest.raises(GradcheckError) as info:
        gradcheck(f, 0.5, 2.0)
    message = str(info.value)
    lines = message.splitlines()
    assert lines[0].startswith("gradcheck: 1 of 2 derivatives of f disagree at x=0.5, y=2.0")
    assert lines[1].split() == ["argument", "analytic", "numerical", "difference"]
    # the row for x holds both numbers and is marked; the row for y is right and is not
    x_row = next(line for line in lines if line.split()[0] == "x")
    analytic, numerical = -2.0 * math.sin(0.5), 2.0 * math.cos(0.5)
    assert x_row.split()[1:4] == [
        f"{analytic:.10g}",
        f"{numerical:.10g}",
        f"{abs(analytic - numerical):.10g}",
    ]
    assert x_row.endswith("<- mismatch")
    y_row = next(line for line in lines if line.split()[0] == "y")
    assert "mismatch" not in y_row
    # the columns line up
    assert lines[1].index("analytic") == x_row.index(x_row.split()[1])


def test_gradcheck_order_2_catches_a_rule_that_is_right_only_at_first_order() -> None:
    # Right numbers, but on Values it detaches (uses .data), so second derivatives come out 0.
    detached = dataclasses.replace(
        OPS["sin"],
        derivatives=(lambda m, g, out, a: g * math.cos(a.data) if m is VALUE else g * m.cos(a),),
    )
    f = lambda x: apply(detached, x)  # noqa: E731
    assert gradcheck(f, 0.5)
    with pytest.raises(GradcheckError, match=r"(?s)1 of 2 derivatives.*d2/dx dx .*<- mismatch"):
        gradcheck(f, 0.5, order=2)


def test_gradcheck_tolerances_and_argument_errors() -> None:
    f = lambda x: x * x  # noqa: E731
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        gradcheck(f, 1.0, order=3)
    with pytest.raises(ValueError, match="give the point"):
        gradcheck(f)
    with pytest.raises(TypeError, match="gradcheck: argument 0 must be a real number or a Value, got list"):
        gradcheck(f, [1.0])
    # a tiny absolute error passes or fails depending on the tolerance
    off = lambda x: x * x + 1e-4 * (x * 1e3).sin() * 1e-3  # noqa: E731 - slope error ~1e-4
    assert gradcheck(off, 1.0, atol=1e-6, rtol=1e-4)  # same function analytically and numerically
    wrong = dataclasses.replace(OPS["sin"], derivatives=(lambda m, g, out, a: g * m.cos(a) * 1.001,))
    assert gradcheck(lambda x: apply(wrong, x), 0.5, rtol=1e-2)
    with pytest.raises(GradcheckError):
        gradcheck(lambda x: apply(wrong, x), 0.5)


def test_gradcheck_names_arguments_of_varargs_functions() -> None:
    wrong = _wrong_sin()
    with pytest.raises(GradcheckError, match=r"xs\[1\]"):
        gradcheck(lambda *xs: apply(wrong, xs[1]) + xs[0], 1.0, 0.5)
