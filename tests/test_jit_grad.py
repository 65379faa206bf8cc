"""`jit` and `grad` compose both ways, and a jit function is safe to recurse, copy and share.

`jit(grad(f))` traces the gradient function (grad builds the gradient of f as a graph of
placeholders) and runs it compiled; `grad(jit(f))` differentiates through the traced program. Each is
checked against the eager derivative on random scalar functions.
"""

from __future__ import annotations

import copy
import math
import pickle
import random
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import chainrule
from chainrule import Value, grad, jit, value_and_grad
from chainrule.functional import TracedDerivativeError

SRC = str(Path(__file__).resolve().parents[1] / "src")

# --- random scalar functions ------------------------------------------------------------------------
# Ops whose derivatives are formulas in their inputs: jit(grad(f)) traces them. relu, abs and `**`
# choose their derivative by looking at the input, so only grad(jit(f)) (and eager grad) take them.
SMOOTH_UNARY = ["tanh", "sin", "cos", "sigmoid", "softplus", "exp_small", "log_pos", "sqrt_pos", "neg"]
KINKED_UNARY = ["relu", "abs", "square", "cube"]
BINARY = ["+", "-", "*", "/"]


def _unary(name: str, x: Value) -> Value:
    if name == "exp_small":
        return (x * 0.3).tanh().exp()  # bounded, so products of exps cannot overflow
    if name == "log_pos":
        return (x * x + 1.0).log()
    if name == "sqrt_pos":
        return (x * x + 0.5).sqrt()
    if name == "neg":
        return -x
    if name == "abs":
        return abs(x)
    if name == "square":
        return x**2
    if name == "cube":
        return x**3
    return getattr(x, name)()


def _binary(name: str, a: Value, b: Value) -> Value:
    if name == "/":
        return a / (b * b + 1.0)  # a denominator that is never 0
    return {"+": a + b, "-": a - b, "*": a * b}[name]


def random_function(rng: random.Random, n_args: int, unary: list[str], size: int = 8) -> Callable[..., Value]:
    """A random expression of `n_args` arguments, as a Python function of Values."""
    steps = []
    for k in range(size):
        if rng.random() < 0.5:
            steps.append(("u", rng.choice(unary), rng.randrange(n_args + k)))
        else:
            steps.append(("b", rng.choice(BINARY), rng.randrange(n_args + k), rng.randrange(n_args + k)))

    def f(*xs: Value) -> Value:
        values = list(xs)
        for step in steps:
            if step[0] == "u":
                values.append(_unary(step[1], values[step[2]]))
            else:
                values.append(_binary(step[1], values[step[2]], values[step[3]]))
        return chainrule.sum(values[n_args:]) + values[-1]  # every argument may matter

    return f


def _point(rng: random.Random, n: int) -> list[float]:
    # away from 0, where abs and relu have their kink
    return [rng.choice([-1, 1]) * rng.uniform(0.1, 1.5) for _ in range(n)]


@pytest.mark.parametrize("seed", range(40))
def test_jit_of_grad_equals_the_eager_derivative_on_random_functions(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 3)
    f = random_function(rng, n, SMOOTH_UNARY)
    every = tuple(range(n))
    compiled = jit(grad(f, argnums=every))
    for _ in range(3):
        xs = _point(rng, n)
        assert compiled(*xs) == pytest.approx(grad(f, argnums=every)(*xs), rel=1e-12, abs=1e-12)
    assert compiled.program is not None and len(compiled.programs) == 1  # traced once, then run compiled


@pytest.mark.parametrize("seed", range(40))
def test_grad_of_jit_equals_the_eager_derivative_on_random_functions(seed: int) -> None:
    rng = random.Random(1000 + seed)
    n = rng.randint(1, 3)
    f = random_function(rng, n, SMOOTH_UNARY + KINKED_UNARY)
    every = tuple(range(n))
    through = grad(jit(f), argnums=every)
    for _ in range(3):
        xs = _point(rng, n)
        assert through(*xs) == pytest.approx(grad(f, argnums=every)(*xs), rel=1e-12, abs=1e-12)
        assert all(type(g) is float for g in through(*xs))


def test_the_issue_example_composes_both_ways() -> None:
    f = lambda x: (x * x).tanh()  # noqa: E731
    eager = grad(f)(0.7)
    assert jit(grad(f))(0.7) == pytest.approx(eager, rel=1e-15)
    assert grad(jit(f))(0.7) == pytest.approx(eager, rel=1e-15)
    assert type(jit(grad(f))(0.7)) is float and type(grad(jit(f))(0.7)) is float


def test_jit_of_grad_runs_as_a_compiled_program_on_batches() -> None:
    f = lambda x, y: (x * y).sin() + x.exp()  # noqa: E731
    df = jit(grad(f, argnums=(0, 1)))
    xs, ys = np.array([0.1, 0.5, -1.2]), np.array([2.0, -0.3, 0.4])
    gx, gy = df(xs, ys)
    for i in range(3):
        assert (gx[i], gy[i]) == pytest.approx(grad(f, argnums=(0, 1))(xs[i], ys[i]), rel=1e-12)
    assert isinstance(df(0.1, 2.0), tuple)  # tuple argnums give a tuple, as grad itself does


def test_higher_orders_compose_too() -> None:
    f = lambda x: x.sin() * x.exp()  # noqa: E731
    x = 0.8
    second = math.exp(x) * 2 * math.cos(x)  # (e^x sin x)'' = 2 e^x cos x
    assert jit(grad(grad(f)))(x) == pytest.approx(second, rel=1e-12)
    assert grad(grad(jit(f)))(x) == pytest.approx(second, rel=1e-12)
    assert grad(jit(grad(f)))(x) == pytest.approx(second, rel=1e-12)
    h = jit(chainrule.hessian(lambda a, b: a * a * b.sin(), argnums=(0, 1)))(1.5, 0.3)
    assert isinstance(h, list) and all(isinstance(row, list) for row in h)  # nested as hessian nests
    expected = [2 * math.sin(0.3), 3 * math.cos(0.3), 3 * math.cos(0.3), -2.25 * math.sin(0.3)]
    assert h[0] + h[1] == pytest.approx(expected, rel=1e-12)


def test_a_derivative_that_needs_the_data_refuses_jit_of_grad_in_one_line_naming_grad_of_jit() -> None:
    f = lambda x: (x * 3.0 - 1.0).relu() * x  # noqa: E731
    with pytest.raises(TracedDerivativeError) as info:
        jit(grad(f))(0.5)
    message = str(info.value)
    assert "\n" not in message and "'ReLU'" in message and "grad(jit(f))" in message
    assert isinstance(info.value, chainrule.PlaceholderError)  # what jit's tracing errors are
    assert grad(jit(f))(0.5) == pytest.approx(grad(f)(0.5)) == pytest.approx(6 * 0.5 - 1)


def test_parameters_closed_over_are_read_but_their_grad_is_untouched() -> None:
    w = Value(1.5, label="w")
    w.grad = 0.25
    f = lambda x: (w * x).tanh()  # noqa: E731
    df = jit(grad(f))
    assert df(0.4) == pytest.approx(1.5 * (1 - math.tanh(0.6) ** 2), rel=1e-12)
    w.data = 2.0  # read by reference at every run, like any compiled parameter
    assert df(0.4) == pytest.approx(2.0 * (1 - math.tanh(0.8) ** 2), rel=1e-12)
    assert grad(jit(f))(0.4) == pytest.approx(2.0 * (1 - math.tanh(0.8) ** 2), rel=1e-12)
    assert w.grad == 0.25  # grad touches no .grad, also when composed with jit


def test_grad_of_jit_reaches_the_parameters_through_values() -> None:
    w = Value(0.7)
    g = jit(lambda x: (w * x).sin())
    out = g(Value(2.0))  # a Value in: the traced program runs op by op on Values
    out.backward()
    assert out.data == pytest.approx(math.sin(1.4)) and w.grad == pytest.approx(2.0 * math.cos(1.4))
    value, slope = value_and_grad(g)(2.0)
    assert (value, slope) == pytest.approx((math.sin(1.4), 0.7 * math.cos(1.4)))


def test_a_jit_function_called_with_values_and_arrays_refuses_in_one_line() -> None:
    g = jit(lambda x, y: x * y)
    with pytest.raises(TypeError, match="called with Values, so argument 'y' must be a number or a Value"):
        g(Value(1.0), np.array([1.0, 2.0]))


def test_a_jit_function_returning_something_else_is_one_line() -> None:
    with pytest.raises(
        TypeError, match=r"<lambda> must return a Value, a number, or lists/tuples of them; got str"
    ):
        jit(lambda x: "x")(1.0)


# --- recursion, locks, threads ----------------------------------------------------------------------
RECURSIVE = """
import sys
import chainrule

sys.setrecursionlimit(400)
depth = [0]

@chainrule.jit
def bounded(x):
    # recursion that stops on Python state, not on the argument's value: traced inline
    depth[0] += 1
    if depth[0] > 3:
        return x
    return bounded(x * 2.0) + 1.0

print(bounded(1.5), bounded(2.0))

@chainrule.jit
def endless(x):
    return endless(x * 0.5)

try:
    endless(1.0)
except RecursionError as exc:
    print(str(exc))

def helper(x):
    return helper(x)

try:
    chainrule.jit(lambda x: helper(x))(1.0)  # a recursion that does not go through jit: as Python says
except RecursionError as exc:
    print(str(exc))
"""


def test_a_jit_function_calling_itself_while_traced_never_hangs() -> None:
    # It used to deadlock on the tracing lock (not re-entrant): the test runs in a subprocess so
    # that a hang fails it instead of the suite.
    out = subprocess.run(
        [sys.executable, "-c", RECURSIVE],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": SRC},
    )
    assert out.returncode == 0, out.stderr
    first, second, third = out.stdout.splitlines()
    assert first == "15.0 19.0"  # ((x*2)*2)*2 + 3, traced once
    assert second.startswith("jit: endless calls itself without end while being traced")
    assert third.startswith("maximum recursion depth exceeded")


def test_no_lock_is_held_while_the_function_runs() -> None:
    # One thread is inside a first trace (blocked in user code); another thread's first call must
    # not wait for it: chainrule holds no lock around user code.
    inside, release = threading.Event(), threading.Event()
    calls = []

    @jit
    def f(x: Value) -> Value:
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            inside.set()
            release.wait(30)
        return x * 3.0

    first = threading.Thread(target=f, args=(1.0,), name="first", daemon=True)
    first.start()
    try:
        assert inside.wait(30)
        results = []
        second = threading.Thread(target=lambda: results.append(f(2.0)), name="second", daemon=True)
        second.start()
        second.join(30)
        assert results == [6.0], "the second thread waited for the first one's trace"
    finally:
        release.set()
        first.join(30)
    assert f(4.0) == 12.0 and len(f.programs) == 1


def test_deepcopy_copy_and_pickle_of_a_jit_function() -> None:
    f = jit(math_free)
    assert f(0.5) == pytest.approx(math.tanh(0.25))
    for twin in (copy.deepcopy(f), copy.copy(f), pickle.loads(pickle.dumps(f))):
        assert isinstance(twin, chainrule.compiler.JitFunction) and twin.programs == {}
        assert twin(0.5) == pytest.approx(math.tanh(0.25)) and twin.__name__ == "math_free"


def math_free(x: Value) -> Value:
    """A module-level function, so that pickle can name it."""
    return (x * x).tanh()
