"""detect_anomaly(): the first op turning finite numbers into NaN/inf, forward and backward."""

from __future__ import annotations

import inspect
import math

import pytest

import chainrule
import chainrule.engine as engine
from chainrule import AnomalyError, DomainError, Value, detect_anomaly, grad
from chainrule.anomaly import is_anomaly_enabled


def _engine_functions() -> tuple[object, ...]:
    """The engine's seam and sweeps: detect_anomaly fills the seam and never replaces a function."""
    return (engine.mode.STATE.observer, engine.fast_sweep.sweep_floats, engine.chain_rule.sweep)


def test_forward_overflow_names_the_op_inputs_and_line() -> None:
    x = Value(1e308)
    with detect_anomaly(), pytest.raises(AnomalyError) as info:
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        x * 10 - x * 10
    err = info.value
    # x * 10 is already inf (from finite inputs), so the mul is the first anomaly, not the sub
    assert err.op == "mul" and err.phase == "forward"
    assert err.inputs == (1e308, 10.0) and err.output == math.inf
    assert err.site is not None and err.site[:2] == (__file__, line)
    message = str(err)
    assert "mul produced inf from finite inputs (1e+308, 10.0)" in message
    assert f"{__file__}:{line}" in message and "x * 10 - x * 10" in message
    assert isinstance(err, FloatingPointError)


def test_forward_anomaly_of_unary_ops() -> None:
    with detect_anomaly():
        with pytest.raises(AnomalyError, match="exp produced inf from finite input 1000.0"):
            Value(1000.0).exp()
        with pytest.raises(AnomalyError, match=r"pow produced inf"):
            Value(10.0) ** 400


def test_nan_or_inf_given_as_data_is_not_an_anomaly() -> None:
    with detect_anomaly():
        y = Value(math.nan) * 2 + 1
        z = Value(math.inf) - Value(math.inf)
    assert math.isnan(y.data) and math.isnan(z.data)


def test_domain_errors_stay_domain_errors() -> None:
    with detect_anomaly(), pytest.raises(DomainError, match="log"):
        Value(-1.0).log()


def test_backward_anomaly_names_the_op_and_where_the_node_was_made() -> None:
    x = Value(1e-310)  # subnormal: log(x) is finite, but d log(x)/dx = 1/x overflows
    with detect_anomaly():
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        y = x.log() * 2
        with pytest.raises(AnomalyError) as info:
            y.backward()
    err = info.value
    assert err.op == "log" and err.phase == "backward" and err.inputs == (1e-310,)
    assert err.output == math.inf
    assert err.site is not None and err.site[:2] == (__file__, line)
    assert "the backward of log produced inf in the gradient of input 0" in str(err)
    assert "finite incoming gradient 2.0" in str(err) and "y = x.log() * 2" in str(err)


def test_backward_anomaly_for_a_node_made_before_the_block() -> None:
    y = Value(1e-310).log()
    with detect_anomaly(), pytest.raises(AnomalyError, match="created before detect_anomaly"):
        y.backward()


def test_backward_anomaly_when_contributions_overflow_as_they_are_summed() -> None:
    x = Value(1e-10)
    with detect_anomaly():
        y = x * 1e308 + x * 1e308  # forward: 2e298, fine; dy/dx = 1e308 + 1e308 = inf
        with pytest.raises(AnomalyError, match="summing its contribution") as info:
            y.backward()
    assert info.value.op == "mul" and info.value.phase == "backward"


def test_backward_anomaly_in_higher_order_derivatives() -> None:
    # d/dx log(x) = 1/x is fine at 1e-160; its derivative -1/x**2 overflows in the backward of the
    # truediv node that the first derivative built.
    with detect_anomaly(), pytest.raises(AnomalyError) as info:
        grad(grad(lambda x: x.log()))(1e-160)
    assert info.value.op == "truediv" and info.value.phase == "backward"
    assert "grad(grad(lambda x: x.log()))(1e-160)" in str(info.value)


def test_results_inside_the_block_equal_results_outside() -> None:
    def f(a: Value, b: Value) -> Value:
        h = (a * b + b.sin()).tanh()
        return h * h + (a * a + 1).log() * b.sigmoid() + chainrule.sum([a, b, h])

    expected = [grad(f, (0, 1))(0.3, -1.2), grad(grad(f), (0, 1))(0.3, -1.2)]
    a, b = Value(0.3), Value(-1.2)
    f(a, b).backward()
    with detect_anomaly():
        got = [grad(f, (0, 1))(0.3, -1.2), grad(grad(f), (0, 1))(0.3, -1.2)]
        a2, b2 = Value(0.3), Value(-1.2)
        f(a2, b2).backward()
        f(a2, b2).backward()  # accumulates, as outside
    assert got == expected
    assert (a2.grad, b2.grad) == (2 * a.grad, 2 * b.grad)
    # create_graph backward inside the block accumulates Values, as the engine does
    with detect_anomaly():
        c = Value(2.0)
        (c**3).backward(create_graph=True)
        assert isinstance(c.grad, Value) and c.grad.data == 12.0


def test_everything_is_restored_after_the_block_and_after_an_exception() -> None:
    before = _engine_functions()
    assert not is_anomaly_enabled()
    with detect_anomaly():
        assert is_anomaly_enabled()
        assert engine.mode.STATE.observer is not None  # the seam holds the observer while a block is open
        assert _engine_functions()[1:] == before[1:]
        with detect_anomaly():  # nested: leaving the inner block keeps checking on
            pass
        assert is_anomaly_enabled()
        with pytest.raises(AnomalyError):
            Value(1e308) * 10
    assert _engine_functions() == before and not is_anomaly_enabled()
    with pytest.raises(ZeroDivisionError), detect_anomaly():
        Value(1.0) / 0
    assert _engine_functions() == before and not is_anomaly_enabled()
    assert chainrule.anomaly._sites == {}
    # off again: overflow passes silently, as IEEE arithmetic says
    assert (Value(1e308) * 10).data == math.inf


def test_usable_as_a_decorator() -> None:
    @detect_anomaly()
    def step() -> Value:
        return Value(800.0).exp()

    with pytest.raises(AnomalyError, match="exp"):
        step()
    assert not is_anomaly_enabled()


def test_data_changed_between_forward_and_backward_is_named_inside_detect_anomaly() -> None:
    from chainrule.anomaly import DataChangedError

    with detect_anomaly():
        w = Value(1.0, label="w")
        y = (w * 2.0).sin()  # dy/dw = 2 cos(2 w): at w = 1 that is -0.832, at w = 0.5 it is 1.081
        w.data = 0.5  # changed after the forward pass
        with pytest.raises(
            DataChangedError, match=r"the data of mul node .* changed .*input 0 from 1.0 to 0.5"
        ):
            y.backward()
    assert w.grad == 0.0  # nothing was added


def test_unchanged_data_passes_and_nan_equals_nan() -> None:
    with detect_anomaly():
        w = Value(float("nan"))
        y = w * 2.0 + Value(1.0)
        y.backward()
    assert w.grad == 2.0  # a NaN that stays NaN is no change
