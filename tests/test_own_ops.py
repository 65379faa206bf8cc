"""Your own operations: micrograd's constructor, `_backward()` by hand, hand-built nodes and `defop`."""

from __future__ import annotations

import math

import pytest

import chainrule
from chainrule import OPS, Value, defop, gradcheck, placeholder
from conftest import need


@pytest.fixture
def fresh_ops(user_ops_restored: None) -> None:
    """Forget the ops a test defines (conftest's `user_ops_restored`), so other tests never see them."""


# --- the constructor ---------------------------------------------------------------------------
def test_micrograd_constructor_makes_a_hand_built_node() -> None:
    a, b = Value(2.0), Value(3.0)
    out = Value(5.0, (a, b), "+")
    assert out._prev == (a, b) and out._op == "+" and out.label == "" and out.requires_grad is True
    assert out.data == 5.0 and out.grad == 0.0


def test_the_lectures_constructor_with_a_label() -> None:
    a = Value(2.0, label="a")
    out = Value(4.0, (a,), "double", "d")
    assert out.label == "d" and out._op == "double" and out._prev == (a,)
    assert Value(1.0, [a], "x")._prev == (a,) and Value(1.0, {a}, "x")._prev == (a,)


def test_seed_000s_label_second_form_and_grad_keyword() -> None:
    a = Value(2.0, "a")
    assert a.label == "a" and a._prev == () and a._op == ""
    b = Value(3.0, "b", grad=1.5)
    assert b.grad == 1.5 and type(b.grad) is float
    c = Value(5.0, label="c", _children=[a, b], _op="+")
    assert c._prev == (a, b) and c._op == "+" and c.label == "c"
    d = Value(1.0, requires_grad=False, label="d")
    assert d.requires_grad is False


@pytest.mark.parametrize(
    ("make", "names"),
    [
        (lambda: Value(1.0, (Value(1.0), 2.0), "+"), r"_children\[1\] must be a Value"),
        (lambda: Value(1.0, 5), "_children must be"),
        (lambda: Value(1.0, (Value(1.0),), 3), "_op must be a str"),
        (lambda: Value(1.0, (), "", 7), "label must be a str"),
        (lambda: Value(1.0, label=None), "label must be a str"),
        (lambda: Value(1.0, requires_grad="+"), "requires_grad must be True or False"),
        (lambda: Value(1.0, "a", "+"), "pass children and op as keywords"),
        (lambda: Value(1.0, "a", label="b"), "label is given twice"),
        (lambda: Value("abc"), "needs a real number, got str"),
        (lambda: Value(1.0, grad="x"), "grad"),
    ],
)
def test_what_does_not_fit_is_a_type_error_naming_the_argument(make, names: str) -> None:
    with pytest.raises(TypeError, match=names):
        make()


def test_data_is_always_a_float() -> None:
    np = need("numpy")
    v = Value(np.float32(0.1))
    assert type(v.data) is float
    v.data = np.float32(0.25)
    assert type(v.data) is float and v.data == 0.25
    assert type((v * 3).data) is float
    v.data = 3
    assert type(v.data) is float
    with pytest.raises(TypeError, match="Value.data needs a real number"):
        v.data = "x"
    assert Value(True).data == 1.0


def test_an_int_too_large_for_a_float_is_a_clear_error() -> None:
    with pytest.raises(OverflowError, match="too large for a float"):
        Value(10**400)
    with pytest.raises(OverflowError, match="too large for a float"):
        Value(1.0) * 10**400


# --- _backward() by hand ------------------------------------------------------------------------
def lecture_neuron() -> dict[str, Value]:
    x1, x2 = Value(2.0, label="x1"), Value(0.0, label="x2")
    w1, w2 = Value(-3.0, label="w1"), Value(1.0, label="w2")
    b = Value(6.8813735870195432, label="b")
    x1w1 = x1 * w1
    x2w2 = x2 * w2
    x1w1x2w2 = x1w1 + x2w2
    n = x1w1x2w2 + b
    o = n.tanh()
    return dict(x1=x1, x2=x2, w1=w1, w2=w2, b=b, x1w1=x1w1, x2w2=x2w2, x1w1x2w2=x1w1x2w2, n=n, o=o)


def test_the_lectures_manual_backprop_with_backward_steps() -> None:
    g = lecture_neuron()
    g["o"].grad = 1.0
    for name in ("o", "n", "b", "x1w1x2w2", "x2w2", "x1w1"):
        g[name]._backward()
    for name in ("x1", "x2", "w1", "w2"):  # a leaf's _backward does nothing, as in micrograd
        g[name]._backward()
    assert g["n"].grad == pytest.approx(0.5)
    assert g["x1"].grad == pytest.approx(-1.5)
    assert g["w1"].grad == pytest.approx(1.0)
    assert g["x2"].grad == pytest.approx(0.5)
    assert g["w2"].grad == pytest.approx(0.0)
    fresh = lecture_neuron()
    fresh["o"].backward()
    for name in ("x1", "x2", "w1", "w2", "b", "n"):
        assert g[name].grad == pytest.approx(fresh[name].grad)


def test_backward_step_adds_into_grad_like_micrograd() -> None:
    x = Value(3.0)
    y = x * x
    y.grad = 2.0
    y._backward()
    assert x.grad == 2.0 * 3.0 + 2.0 * 3.0  # both inputs are x: each adds g * (the other)
    y._backward()
    assert x.grad == 24.0


def test_backward_step_of_a_sum_and_on_gradient_values() -> None:
    a, b = Value(1.0), Value(2.0)
    s = chainrule.sum([a, b, a])
    s.grad = 1.5
    s._backward()
    assert (a.grad, b.grad) == (3.0, 1.5)
    x = Value(0.5)
    y = x.tanh()
    y.backward(create_graph=True)
    dy = x.grad  # a Value after create_graph: its own _backward runs the rules on Values
    assert isinstance(dy, Value)
    dy.grad = 1.0
    dy._backward()


def test_backward_step_raises_a_domain_error_naming_the_op() -> None:
    x = Value(0.0)
    y = x.sqrt()
    y.grad = 1.0
    with pytest.raises(chainrule.DomainError, match="sqrt"):
        y._backward()


# --- hand-built nodes ----------------------------------------------------------------------------
def cube(x: Value) -> Value:
    """x ** 3, written the way micrograd and the seeds teach."""
    out = Value(x.data**3, (x,), "cube")

    def _backward() -> None:
        x.grad += 3 * x.data**2 * out.grad

    out._backward = _backward
    return out


def times(a: Value, b: Value) -> Value:
    """a * b by hand, with micrograd's `+=` (so a * a gets both contributions)."""
    out = Value(a.data * b.data, (a, b), "times")

    def _backward() -> None:
        a.grad += b.data * out.grad
        b.grad += a.data * out.grad

    out._backward = _backward
    return out


def test_hand_built_ops_in_shared_use_mixed_with_table_ops() -> None:
    x, y = Value(1.5, label="x"), Value(-0.7, label="y")
    c = cube(x)  # used three times below
    t = times(c, y)
    loss = (c + t).tanh() * c + times(x, x).exp() * y
    loss.backward()

    def f(x, y):
        c = x**3
        return (c + c * y).tanh() * c + (x * x).exp() * y

    expect = chainrule.grad(f, argnums=(0, 1))(1.5, -0.7)
    assert (x.grad, y.grad) == pytest.approx(expect, rel=1e-12)
    # intermediate nodes get d(loss)/d(node) too, and .grad is untouched by the hand steps' tricks
    assert c.grad == pytest.approx(chainrule.grad(lambda c: (c + c * -0.7).tanh() * c)(1.5**3))


def test_backward_twice_doubles_every_gradient_through_hand_built_nodes() -> None:
    x = Value(0.8)
    loss = times(cube(x), x.sin()) + cube(x)
    loss.backward()
    first = x.grad
    loss.backward()
    assert x.grad == 2 * first
    assert first == pytest.approx(chainrule.grad(lambda x: x**3 * x.sin() + x**3)(0.8))


def test_hand_built_node_with_the_same_child_twice() -> None:
    x = Value(3.0)
    sq = times(x, x)  # _prev is (x, x); the closure adds into x.grad twice
    sq.backward()
    assert x.grad == 6.0


def test_hand_built_node_with_a_constant_child() -> None:
    x, k = Value(2.0), Value(5.0, requires_grad=False)
    out = times(x, k)
    out.backward()
    assert (x.grad, k.grad) == (5.0, 0.0)


def test_hand_built_node_without_backward_is_a_clear_error() -> None:
    x = Value(2.0)
    out = Value(x.data * 2, (x,), "double", label="d")
    with pytest.raises(TypeError, match=r"'double'.*no _backward.*node._backward = _backward.*defop"):
        (out + 1).backward()
    with pytest.raises(TypeError, match="no _backward"):
        out._backward()


def test_hand_built_node_error_from_the_closure_propagates_and_grads_are_restored() -> None:
    x = Value(2.0)
    out = Value(4.0, (x,), "bad")

    def _backward() -> None:
        x.grad += 1.0
        raise RuntimeError("my mistake")

    out._backward = _backward
    with pytest.raises(RuntimeError, match="my mistake"):
        (out * 3).backward()
    assert x.grad == 0.0


@pytest.mark.slow
def test_a_deep_chain_of_hand_built_nodes() -> None:
    x = Value(1.0)
    y = x
    for _ in range(10**6):
        prev = y
        y = Value(prev.data + 1.0, (prev,), "inc")
        y._backward = _pass_through(prev, y)
    y.backward()
    assert x.grad == 1.0 and y.data == 10**6 + 1


def _pass_through(prev: Value, out: Value):  # noqa: ANN202 - a closure, as micrograd writes them
    def _backward() -> None:
        prev.grad += out.grad

    return _backward


def test_hand_built_is_linear_in_shared_paths() -> None:
    # y = y + y sixty times, by hand: 2**60 paths, each counted once, without visiting them all
    x = Value(1.0)
    y = x
    for _ in range(60):
        y = _plus(y, y)
    y.backward()
    assert x.grad == 2.0**60


def _plus(a: Value, b: Value) -> Value:
    out = Value(a.data + b.data, (a, b), "+")

    def _backward() -> None:
        a.grad += out.grad
        b.grad += out.grad

    out._backward = _backward
    return out


def test_assigning_backward_to_an_operation_node_makes_it_hand_built() -> None:
    x = Value(2.0)
    y = x * 3.0
    k = y._prev[1]

    def _backward() -> None:
        x.grad += 100.0 * y.grad

    y._backward = _backward
    y.backward()
    assert x.grad == 100.0 and y._op == "*" and y._prev == (x, k)
    with pytest.raises(TypeError, match="function of no arguments"):
        y._backward = 5


def test_hand_built_nodes_in_drawings_gradcheck_and_compile() -> None:
    x = Value(1.2, label="x")
    out = cube(x)
    out.label = "c"
    assert "cube" in chainrule.to_dot(out)
    assert gradcheck(lambda a: cube(a).tanh(), 0.4) is True
    with pytest.raises(TypeError, match=r"compile: node 'c' \(op 'cube'\) was built by hand.*defop"):
        chainrule.compile(out * 2, [])
    with pytest.raises(TypeError, match="cube.*defop"):
        chainrule.grad(chainrule.grad(lambda a: cube(a)))(0.4)


def test_gradcheck_catches_a_wrong_hand_written_backward() -> None:
    def wrong_cube(x: Value) -> Value:
        out = Value(x.data**3, (x,), "cube")

        def _backward() -> None:
            x.grad += 2 * x.data**2 * out.grad  # the power rule misremembered

        out._backward = _backward
        return out

    def square_with_assignment(x: Value) -> Value:
        out = Value(x.data * x.data, (x, x), "*")

        def _backward() -> None:
            x.grad = x.data * out.grad  # `=` instead of `+=`, as one seed writes it: the second
            x.grad = x.data * out.grad  # input's contribution overwrites the first's

        out._backward = _backward
        return out

    with pytest.raises(chainrule.GradcheckError):
        gradcheck(lambda a: wrong_cube(a) * a, 0.7)
    with pytest.raises(chainrule.GradcheckError):
        gradcheck(square_with_assignment, 0.7)
    # backward() itself stops at the `=` (issue "The learner's path": the seeds' bug is caught the first
    # time it is made), naming the node, the input and the fix, and changes no .grad.
    x = Value(0.7, label="x")
    with pytest.raises(
        chainrule.errors.BackwardClosureError, match=r"overwrote the \.grad of its input 'x'.*'\+='"
    ):
        (square_with_assignment(x) + x * 5).backward()
    assert x.grad == 0.0


def test_hand_built_nodes_deepcopy_and_keep_their_closure() -> None:
    import copy

    x = Value(2.0)
    y = cube(x) + x
    z = copy.deepcopy(y)
    assert z.data == y.data and z._prev[0]._op == "cube"


# --- defop ----------------------------------------------------------------------------------------
def define_softsign() -> object:
    return defop(
        "softsign",
        lambda m, x: x / (1 + abs(x)),
        lambda m, g, out, x: g / ((1 + abs(x)) * (1 + abs(x))),
        symbol="softsign",
    )


def define_logaddexp() -> object:
    # log(e^a + e^b), written stably; a two-input op with one rule per input
    return defop(
        "logaddexp",
        lambda m, a, b: m.log(m.exp(a) + m.exp(b)),
        lambda m, g, out, a, b: g * m.exp(a - out),
        lambda m, g, out, a, b: g * m.exp(b - out),
    )


def define_safe_log() -> object:
    return defop(
        "mylog",
        lambda m, x: m.log(x),
        lambda m, g, out, x: g / x,
        invalid=lambda m, x: x <= 0,
        domain="x > 0",
        symbol="ln",
    )


@pytest.mark.usefixtures("fresh_ops")
def test_defop_in_the_eager_engine_and_against_numerical_derivatives() -> None:
    softsign, lae = define_softsign(), define_logaddexp()
    assert softsign.op is OPS["softsign"] and softsign.op.arity == 1
    x, y = Value(0.7), Value(-1.3)
    out = lae(softsign(x) * 2, y)
    out.backward()
    f = lambda a, b: lae(softsign(a) * 2, b)  # noqa: E731
    numeric = chainrule.numerical_grad(f, 0.7, -1.3)
    assert (x.grad, y.grad) == pytest.approx(numeric, rel=1e-6)
    assert gradcheck(f, 0.7, -1.3, order=2) is True
    assert out._op == "logaddexp" and softsign(x)._op == "softsign"
    assert lae(1.0, 2.0).data == pytest.approx(math.log(math.e + math.e**2))  # numbers too
    with pytest.raises(TypeError, match="takes 2 argument"):
        lae(x)
    with pytest.raises(TypeError, match="logaddexp: a Value combines with real numbers"):
        lae(x, "a")


@pytest.mark.usefixtures("fresh_ops")
def test_defop_higher_order_derivatives() -> None:
    softsign = define_softsign()
    d2 = chainrule.grad(chainrule.grad(lambda x: softsign(x) * x))(0.5)
    numeric = chainrule.numerical_grad(lambda x: chainrule.grad(lambda t: softsign(t) * t)(x), 0.5)[0]
    assert d2 == pytest.approx(numeric, rel=1e-6)


@pytest.mark.usefixtures("fresh_ops")
def test_defop_domain_errors_name_the_op_and_value() -> None:
    mylog = define_safe_log()
    with pytest.raises(chainrule.DomainError, match=r"mylog: requires x > 0, got -1.0"):
        mylog(Value(-1.0))
    assert "ln" in chainrule.to_dot(mylog(Value(2.0)))


@pytest.mark.usefixtures("fresh_ops")
def test_defop_in_compiled_programs_float_and_batch() -> None:
    np = need("numpy")
    softsign, lae = define_softsign(), define_logaddexp()
    x, y = placeholder("x"), placeholder("y")
    w = Value(0.3, label="w")
    program = chainrule.compile(lae(softsign(x * w), y) * w, [x, y])
    xs, ys = np.array([0.5, -2.0, 3.0]), np.array([1.0, 0.0, -1.0])
    values, (dx, dy) = program.value_and_grad(xs, ys)
    batch_w = w.grad
    w.grad = 0.0
    for i in range(3):
        a, b = Value(xs[i]), Value(ys[i])
        out = lae(softsign(a * w), b) * w
        out.backward()
        assert values[i] == pytest.approx(out.data, rel=1e-12)
        assert (dx[i], dy[i]) == pytest.approx((a.grad, b.grad), rel=1e-12)
        value, (fx, fy) = program.value_and_grad(float(xs[i]), float(ys[i]))  # float mode
        assert value == pytest.approx(out.data, rel=1e-12) and fx == pytest.approx(a.grad, rel=1e-12)
    assert batch_w == pytest.approx(w.grad / 2, rel=1e-12)  # the float runs added into w.grad again
    mylog = define_safe_log()
    p = chainrule.compile(mylog(x), [x])
    with pytest.raises(chainrule.DomainError, match="mylog"):
        p(np.array([1.0, -1.0]))


@pytest.mark.usefixtures("fresh_ops")
def test_defop_on_tensors_against_torch() -> None:
    np, torch = need("numpy"), need("torch")
    softsign = define_softsign()
    data = np.array([[0.5, -2.0], [3.0, 0.1]])
    t = chainrule.Tensor(data)
    out = (softsign(t) * t).sum()
    out.backward()
    tt = torch.tensor(data, requires_grad=True)
    (torch.nn.functional.softsign(tt) * tt).sum().backward()
    assert np.allclose(t.grad, tt.grad.numpy(), rtol=1e-12)


@pytest.mark.usefixtures("fresh_ops")
def test_defop_with_three_inputs() -> None:
    fma = defop(
        "fma",
        lambda m, a, b, c: a * b + c,
        lambda m, g, out, a, b, c: g * b,
        lambda m, g, out, a, b, c: g * a,
        lambda m, g, out, a, b, c: g,
    )
    a, b, c = Value(2.0), Value(3.0), Value(4.0)
    fma(a, b, c).backward()
    assert (a.grad, b.grad, c.grad) == (3.0, 2.0, 1.0)
    pa, pb, pc = placeholder("a"), placeholder("b"), placeholder("c")
    program = chainrule.compile(fma(pa, pb, pc) * fma(pa, pa, pc), [pa, pb, pc])
    eager = chainrule.grad(lambda a, b, c: fma(a, b, c) * fma(a, a, c), argnums=(0, 1, 2))(2.0, 3.0, 4.0)
    assert program.value_and_grad(2.0, 3.0, 4.0)[1] == pytest.approx(eager)


@pytest.mark.usefixtures("fresh_ops")
def test_defop_refusals_at_definition() -> None:
    ok = (lambda m, x: x, lambda m, g, out, x: g)
    with pytest.raises(ValueError, match="'tanh' is taken by a built-in op"):
        defop("tanh", *ok)
    with pytest.raises(ValueError, match="'matmul' is taken"):
        defop("matmul", *ok)
    defop("ident", *ok)
    with pytest.raises(ValueError, match="'ident' is taken by an op defined earlier.*replace=True"):
        defop("ident", *ok)
    assert defop("ident", *ok, replace=True).op is OPS["ident"]
    with pytest.raises(ValueError, match="'tanh' is taken"):
        defop("tanh", *ok, replace=True)  # built-ins cannot be replaced
    with pytest.raises(ValueError, match="identifier"):
        defop("my op", *ok)
    with pytest.raises(TypeError, match="one derivative rule per input"):
        defop("nod", lambda m, x: x)
    with pytest.raises(TypeError, match=r"forward rule takes the wrong number.*forward\(m, x0\)"):
        defop("bad1", lambda m, a, b: a, lambda m, g, out, x: g)
    with pytest.raises(TypeError, match=r"derivative 1 rule.*derivative\(m, g, out, x0, x1\)"):
        defop("bad2", lambda m, a, b: a, lambda m, g, out, a, b: g, lambda m, g, a, b: g)
    with pytest.raises(TypeError, match="invalid rule"):
        defop("bad3", *ok, invalid=lambda m: True)
    with pytest.raises(TypeError, match="must be a function"):
        defop("bad4", "x", lambda m, g, out, x: g)
    assert not {"bad1", "bad2", "bad3", "bad4", "nod"} & set(OPS)  # nothing half-registered


@pytest.mark.usefixtures("fresh_ops")
def test_defop_ops_pickle_by_name() -> None:
    import pickle

    softsign = define_softsign()
    y = softsign(Value(0.5))
    z = pickle.loads(pickle.dumps(y))
    assert z._operation is softsign.op and z.data == y.data


# --- the package's names ---------------------------------------------------------------------------
def test_import_star_does_not_shadow_sum_and_compile() -> None:
    namespace: dict[str, object] = {}
    exec("from chainrule import *", namespace)
    assert "sum" not in namespace and "compile" not in namespace
    assert "Value" in namespace and "defop" in namespace


def test_dir_lists_only_chainrules_own_names() -> None:
    names = dir(chainrule)
    assert "Any" not in names and "import_module" not in names
    assert {"Value", "defop", "sum", "compile", "grad", "Tensor"} <= set(names)


def test_tracing_a_hand_built_node_points_to_defop() -> None:
    x = placeholder("x")
    with pytest.raises(chainrule.PlaceholderError, match="defop"):
        cube(x)


def test_create_graph_backward_leaves_no_cycles_through_scratch_slots() -> None:
    import gc

    gc.collect()
    gc.disable()
    try:
        x = Value(0.3)
        for _ in range(50):
            y = (x * x).tanh()
            y.backward(create_graph=True)
            scratch = [getattr(node, "_g", None) for node in chainrule.engine.topological_order(y)]
            assert not any(isinstance(g, Value) for g in scratch)  # a float or nothing: no cycle
            x.grad = 0.0  # drop the gradient graph that .grad held
        del y
    finally:
        gc.enable()


def test_tensor_without_numpy_is_a_clear_import_error() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['numpy'] = None\n"
        "import chainrule\n"
        "try:\n"
        "    chainrule.Tensor\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "ImportError chainrule.Tensor needs numpy, which is not installed: pip install numpy" in out.stdout


def test_empty_children_make_a_leaf_and_odd_children_are_refused() -> None:
    np = need("numpy")
    for empty in ([], set(), ()):
        v = Value(1.0, empty)
        assert v._prev == () and v._op == "" and v._operation is None
    with pytest.raises(TypeError, match="_children must be a tuple, list or set"):
        Value(1.0, np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match=r"Value\(grad=...\) needs a real number"):
        Value(1.0, grad=np.array([0.0, 1.0]))
