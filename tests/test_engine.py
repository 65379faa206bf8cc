"""The eager engine's contract (SPEC §1): graph structure, backward semantics, constants, no_grad, errors."""

from __future__ import annotations

import copy
import gc
import math
import pickle
import sys
import time
from collections.abc import Callable

import pytest

import chainrule
from chainrule import DomainError, Value, no_grad
from chainrule.engine import gradients, topological_order
from conftest import need


# --- building the graph -------------------------------------------------------------------------
def test_data_is_stored_as_float_and_grad_starts_at_zero() -> None:
    for x in (3, 2.5, True, False, -0.0):
        v = Value(x)
        assert type(v.data) is float and v.data == float(x)
        assert v.grad == 0.0 and v.label == "" and v.requires_grad
        assert v._prev == () and v._op == ""


def test_numpy_scalars_are_accepted() -> None:
    np = need("numpy")
    for x, want in (
        (np.float64(1.5), 1.5),
        (np.float32(0.25), 0.25),
        (np.int64(-3), -3.0),
        (np.bool_(True), 1.0),
    ):
        v = Value(x)
        assert type(v.data) is float and v.data == want, (x, v.data)
        assert (Value(1.0) + x).data == 1.0 + want  # and mixed into an operation
    # numpy scalars on the left of an operator, as in micrograd's demo (`-yi * score` with yi from an array)
    out = np.int64(-1) * Value(2.0) + np.float64(0.5)
    assert isinstance(out, Value) and out.data == -1.5


@pytest.mark.parametrize("bad", ["abc", None, [1], (1.0,), {"x": 1}, 1 + 2j, b"1"])
def test_non_numbers_are_a_type_error_naming_the_type(bad: object) -> None:
    with pytest.raises(TypeError, match=type(bad).__name__):
        Value(bad)  # type: ignore[arg-type]


def test_a_value_is_not_data_for_another_value() -> None:
    with pytest.raises(TypeError, match="Value"):
        Value(Value(1.0))  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["abc", None, [1]])
def test_operators_reject_non_numbers_naming_the_type(bad: object) -> None:
    x = Value(2.0)
    # (the reflected forms `bad * x` are left out: for str and list, Python itself answers first)
    for combine in (lambda: x + bad, lambda: x - bad, lambda: x * bad, lambda: x / bad, lambda: x**bad):
        with pytest.raises(TypeError, match=type(bad).__name__):
            combine()


def test_repr_matches_micrograd_and_shows_the_label() -> None:
    assert repr(Value(2.0)) == "Value(data=2.0, grad=0.0)"
    v = Value(-1, label="w1")
    v.grad = 0.5
    assert repr(v) == "Value(data=-1.0, grad=0.5, label='w1')"


def test_prev_is_a_tuple_in_operand_order() -> None:
    a, b = Value(2.0, label="a"), Value(3.0, label="b")
    assert (a * b)._prev == (a, b)
    assert (b * a)._prev == (b, a)
    assert (a - b)._prev == (a, b)
    assert (a**b)._prev == (a, b)
    left, right = (2.0 - a)._prev  # reflected: the number is the left operand
    assert right is a and left.data == 2.0 and not left.requires_grad and left._prev == ()
    assert (a.tanh())._prev == (a,)
    assert chainrule.sum([a, b, a])._prev == (a, b, a)


def test_op_symbols() -> None:
    a, b = Value(2.0), Value(3.0)
    cases = {
        "+": a + b,
        "-": a - b,
        "*": a * b,
        "/": a / b,
        "**": a**2,
        "neg": -a,
        "abs": abs(a),
        "exp": a.exp(),
        "log": a.log(),
        "tanh": a.tanh(),
        "ReLU": a.relu(),  # micrograd's spelling, which drawing code written for micrograd shows
        "sigmoid": a.sigmoid(),
        "softplus": a.softplus(),
        "sin": a.sin(),
        "cos": a.cos(),
        "sqrt": a.sqrt(),
        "sum": chainrule.sum([a, b]),
    }
    for symbol, node in cases.items():
        assert node._op == symbol
        assert node._operation is not None and node._operation.symbol == symbol


def test_every_operator_and_reflected_form_mixes_numbers() -> None:
    x = Value(3.0)
    assert (x + 2).data == 5.0 and (2 + x).data == 5.0
    assert (x - 2).data == 1.0 and (2 - x).data == -1.0
    assert (x * 2).data == 6.0 and (2 * x).data == 6.0
    assert (x / 2).data == 1.5 and (6 / x).data == 2.0
    assert (x**2).data == 9.0 and (2**x).data == 8.0 and (x ** Value(2.0)).data == 9.0
    assert (-x).data == -3.0 and (+x) is x and abs(-x).data == 3.0
    assert x.item() == 3.0 and x.data == 3.0


def test_equality_and_hash_are_identity_and_comparisons_look_at_data() -> None:
    a, b = Value(1.0), Value(1.0)
    assert a != b and a == a and len({a, b, a}) == 2 and {a: 1}[a] == 1
    assert a < 2 and a <= b and Value(3.0) > a and a >= 1.0
    assert 2 > a and not (0.5 > a)  # reflected: 2 > a is a < 2


def test_graphs_survive_deepcopy_and_pickle() -> None:
    a, b, c = Value(1.0), Value(2.0), Value(-3.0)
    out = (chainrule.sum([a, b, c]) * a).tanh() + b
    for copy_of in (copy.deepcopy(out), pickle.loads(pickle.dumps(out))):
        nodes = topological_order(copy_of)
        assert [n._op for n in nodes] == [n._op for n in topological_order(out)]
        assert all(
            n._operation is None or n._operation is chainrule.OPS[n._operation.name] for n in nodes
        )  # same table rows
        copy_of.backward()
        assert [n.grad for n in nodes if not n._prev] != [0.0] * 3
    out.backward()
    assert [n.grad for n in topological_order(out)] == [n.grad for n in nodes]


def test_nodes_make_no_reference_cycles() -> None:
    # Graph nodes hold their op and inputs, never closures over themselves, so a graph (and its
    # gradients) is freed by reference counting alone: the cyclic collector finds nothing.
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        x = Value(0.5)
        y = x
        for _ in range(1000):
            y = (y * 1.5 + x).tanh() - x.exp() / 7
        y.backward()
        del x, y
        assert gc.collect() == 0
    finally:
        if was_enabled:
            gc.enable()


# --- backward -----------------------------------------------------------------------------------
def test_backward_of_a_leaf_is_one() -> None:
    x = Value(4.0)
    x.backward()
    assert x.grad == 1.0


def test_diamond_a_plus_a() -> None:
    a = Value(3.0)
    b = a + a
    b.backward()
    assert b.data == 6.0 and a.grad == 2.0 and b.grad == 1.0


def test_nested_reuse() -> None:
    a = Value(3.0)
    b = a + a
    c = b + b
    c.backward()
    assert c.data == 12.0 and (a.grad, b.grad, c.grad) == (4.0, 2.0, 1.0)


def test_input_reached_at_two_depths() -> None:
    # x is both a direct input of y and an input of x*2: it must come after both users in the sweep.
    x = Value(5.0)
    y = x + x * 2
    y.backward()
    assert x.grad == 3.0
    z = Value(2.0)
    w = z * (z + (z * z).exp()).log() + z
    w.backward()
    want = math.log(2 + math.exp(4)) + 2 * (1 + 4 * math.exp(4)) / (2 + math.exp(4)) + 1
    assert z.grad == pytest.approx(want, rel=1e-12)


def test_prev_can_be_assigned_as_a_tuple() -> None:
    # Code that builds nodes by hand (the define-then-run tracer does) sets `_prev` directly.
    a, b, c = Value(1.0), Value(2.0), Value(3.0)
    node = Value(0.0)
    for children in ((a,), (a, b), (a, b, c), ()):
        node._prev = children
        assert node._prev == children


def test_reused_node_times_itself() -> None:
    a = Value(3.0)
    b = a * a
    c = b * a  # a ** 3 through shared nodes
    c.backward()
    assert c.data == 27.0 and a.grad == 27.0 and b.grad == 3.0


def test_sixty_doublings_are_linear_time() -> None:
    # Without visiting each shared node once, this graph has 2**60 paths.
    x = Value(1.0)
    y = x
    for _ in range(60):
        y = y + y
    start = time.perf_counter()
    y.backward()
    assert time.perf_counter() - start < 1.0
    assert y.data == 2.0**60 and x.grad == 2.0**60


def test_backward_twice_doubles_every_grad_exactly() -> None:
    a, b, c = Value(2.0), Value(-3.0), Value(10.0)
    e = a * b
    d = e + c
    f = Value(-2.0)
    loss = (d * f).tanh() + a.exp() * d
    nodes = topological_order(loss)
    loss.backward()
    first = {node: node.grad for node in nodes}
    assert all(g != 0.0 for g in first.values())
    loss.backward()
    for node in nodes:  # leaves and intermediates alike (micrograd double counts intermediates)
        assert node.grad == 2 * first[node], node


def test_zero_grad_clears_the_whole_graph_below() -> None:
    a, b = Value(2.0), Value(-3.0)
    c = a * b
    d = c.relu() + a
    other = Value(5.0)
    other.grad = 7.0
    d.backward()
    d.zero_grad()
    assert all(n.grad == 0.0 for n in (a, b, c, d))
    assert other.grad == 7.0  # not below d
    d.backward()
    assert (a.grad, b.grad) == (1.0, 0.0)  # relu of -6 passes nothing back


def test_requires_grad_false_is_a_constant() -> None:
    x = Value(3.0)
    c = Value(2.0, requires_grad=False)
    y = c * x + c**2
    y.backward()
    assert x.grad == 2.0
    assert c.grad == 0.0 and type(c.grad) is float
    assert not (c**2).requires_grad and y.requires_grad


def test_a_graph_of_constants_cannot_be_backpropagated() -> None:
    c = Value(2.0, requires_grad=False)
    y = c * 3
    assert not y.requires_grad
    with pytest.raises(ValueError, match="does not require grad"):
        y.backward()


def test_requires_grad_switched_off_after_building() -> None:
    # Freezing a parameter after its graph was built: no gradient flows into it, and no crash.
    x, w = Value(0.5), Value(2.0)
    y = (w * x).tanh() + x.exp() + w.sigmoid()
    x.requires_grad = False
    y.backward()
    assert x.grad == 0.0 and w.grad != 0.0


def test_no_grad_records_no_graph() -> None:
    x = Value(2.0)
    with no_grad():
        assert not chainrule.is_grad_enabled()
        y = (x * 3).exp() + chainrule.sum([x, x])
        assert y._prev == () and y._op == "" and not y.requires_grad
        assert y.data == pytest.approx(math.exp(6) + 4)
        with no_grad():
            pass
        assert not chainrule.is_grad_enabled()  # nesting restores the outer state
    assert chainrule.is_grad_enabled()
    z = x * 3
    assert z._prev == (x, z._prev[1]) and z.requires_grad


def test_no_grad_is_restored_after_an_exception() -> None:
    with pytest.raises(DomainError), no_grad():
        Value(-1.0).log()
    assert chainrule.is_grad_enabled()


def test_topological_order_puts_inputs_before_users() -> None:
    a, b = Value(1.0), Value(2.0)
    c = a * b
    d = c + a
    e = d * c
    order = topological_order(e)
    assert len(order) == len(set(order)) == 5  # each node once
    position = {node: i for i, node in enumerate(order)}
    for node in order:
        for child in node._prev:
            assert position[child] < position[node]
    assert order[-1] is e


def test_gradients_gives_fresh_gradients_without_touching_grad() -> None:
    x = Value(3.0)
    y = x * x
    y.grad = 5.0
    grads = gradients(y)
    assert grads[x] == 6.0 and grads[y] == 1.0 and x.grad == 0.0 and y.grad == 5.0
    assert list(grads)[-1] is y


# --- deep graphs ---------------------------------------------------------------------------------
def test_a_million_node_chain_at_the_default_recursion_limit() -> None:
    assert sys.getrecursionlimit() <= 10_000  # nobody raised it for us
    x = Value(3.0)
    y = x
    for _ in range(10**6):
        y = -y  # (one object per step, where `y + 1.0` would add a constant: the test runs faster)
    y.backward()
    assert y.data == 3.0 and x.grad == 1.0
    y.zero_grad()
    assert x.grad == 0.0 and y.grad == 0.0
    assert len(topological_order(y)) == 10**6 + 1
    del y  # freeing a deep chain must not overflow the C stack either


# --- bad input and special values ------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "op", "value"),
    [
        (lambda: Value(0.0).log(), "log", "0.0"),
        (lambda: Value(-1.0).log(), "log", "-1.0"),
        (lambda: Value(-1.0).sqrt(), "sqrt", "-1.0"),
        (lambda: Value(-8.0) ** 0.5, "pow", "-8.0"),
        (lambda: (-8) ** Value(0.5), "pow", "-8.0"),
        (lambda: Value(0.0) ** -1, "pow", "-1.0"),
        (lambda: 0 ** Value(-1.0), "pow", "-1.0"),
    ],
)
def test_domain_errors_name_the_op_and_the_value(make: Callable[[], object], op: str, value: str) -> None:
    with pytest.raises(DomainError) as info:
        make()
    assert isinstance(info.value, ValueError) and chainrule.DomainError is DomainError
    assert info.value.op == op
    assert str(info.value).startswith(f"{op}:") and value in str(info.value)


def test_division_by_zero() -> None:
    x = Value(1.0)
    for divide in (lambda: x / 0, lambda: x / Value(0.0), lambda: 1 / Value(0.0), lambda: x / -0.0):
        with pytest.raises(ZeroDivisionError, match="truediv"):
            divide()


def test_nan_and_inf_data_propagate_visibly() -> None:
    nan = Value(math.nan)
    y = (nan * 2).log().sqrt().tanh() + 1
    assert math.isnan(y.data)
    y.backward()
    assert math.isnan(nan.grad)
    inf = Value(math.inf)
    assert (inf + 1).data == math.inf and (inf * -1).data == -math.inf
    assert inf.log().data == math.inf and inf.exp().data == math.inf and inf.tanh().data == 1.0
    assert math.isnan((inf - inf).data) and math.isnan(inf.sin().data)
    assert Value(-math.inf).exp().data == 0.0 and Value(-math.inf).sigmoid().data == 0.0


def test_overflow_gives_inf_as_ieee_says() -> None:
    assert Value(1000.0).exp().data == math.inf
    assert (Value(10.0) ** 400).data == math.inf and (Value(-10.0) ** 401).data == -math.inf
    assert Value(1e6).softplus().data == 1e6 and Value(-1e6).sigmoid().data == 0.0


def test_float_and_math_functions_refuse_to_detach_silently():
    # math.tanh(v) would call float(v) and return a plain number: the gradient would quietly never
    # arrive. It is an error that says what to use instead.
    import math

    x = Value(0.5)
    with pytest.raises(TypeError, match=r"use \.data"):
        float(x)
    with pytest.raises(TypeError, match="Value methods"):
        math.tanh(x)


def test_neuron_names_itself_and_sizes_on_wrong_input_length():
    from chainrule.nn import Neuron

    with pytest.raises(ValueError, match=r"ReLUNeuron\(3\) takes 3 inputs, got 2"):
        Neuron(3)([1.0, 2.0])


@pytest.mark.parametrize(
    ("build", "op", "point"),
    [
        (lambda x: x.sqrt(), "sqrt", r"\(0\.0,\)"),
        (lambda x: x**0.5, "pow", r"\(0\.0, 0\.5\)"),
    ],
)
def test_backward_at_an_infinite_derivative_names_op_and_point(build, op, point):
    # PyTorch hands back inf here; chainrule says where the derivative stops existing instead.
    x = Value(0.0)
    y = build(x)
    assert y.data == 0.0  # the forward value is fine
    with pytest.raises(DomainError, match=rf"{op}: the derivative is undefined at {point}"):
        y.backward()


def test_value_exponent_on_a_negative_base_has_no_derivative_in_the_exponent():
    base, exponent = Value(-2.0), Value(3.0)
    y = base**exponent
    assert y.data == -8.0
    with pytest.raises(DomainError, match="pow: the derivative is undefined"):
        y.backward()
