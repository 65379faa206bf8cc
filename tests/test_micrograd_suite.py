"""micrograd's own test suite, as our tests: its two scenarios (test/test_engine.py in micrograd,
`test_sanity_check` and `test_more_ops`) written three ways, all giving PyTorch float64's numbers:

1. with chainrule's operators and methods, the scenario's text as micrograd writes it;
2. with operations built by hand, micrograd's way: a small micrograd-like set of functions making
   nodes with `Value(data, (a, b), "+")` and a `_backward` closure each;
3. run through micrograd's own backward algorithm (a topological order, then `_backward()` node by
   node), on both kinds of graph.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from chainrule import Value
from conftest import need


# --- the two scenarios, as micrograd's tests write them (Values and torch tensors alike) ---------
def sanity_check(x: Any) -> Any:
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    return y


def more_ops(a: Any, b: Any) -> Any:
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    return g


# --- a micrograd-like set of operations built by hand ----------------------------------------------
def _v(x: Any) -> Value:
    return x if isinstance(x, Value) else Value(x)


def add(a: Any, b: Any) -> Value:
    a, b = _v(a), _v(b)
    out = Value(a.data + b.data, (a, b), "+")

    def _backward() -> None:
        a.grad += out.grad
        b.grad += out.grad

    out._backward = _backward
    return out


def mul(a: Any, b: Any) -> Value:
    a, b = _v(a), _v(b)
    out = Value(a.data * b.data, (a, b), "*")

    def _backward() -> None:
        a.grad += b.data * out.grad
        b.grad += a.data * out.grad

    out._backward = _backward
    return out


def power(a: Value, k: float) -> Value:
    out = Value(a.data**k, (a,), f"**{k}")

    def _backward() -> None:
        a.grad += k * a.data ** (k - 1) * out.grad

    out._backward = _backward
    return out


def div(a: Any, b: Any) -> Value:
    a, b = _v(a), _v(b)
    out = Value(a.data / b.data, (a, b), "/")

    def _backward() -> None:
        a.grad += out.grad / b.data
        b.grad += -out.grad * out.data / b.data

    out._backward = _backward
    return out


def relu(a: Value) -> Value:
    out = Value(0.0 if a.data < 0 else a.data, (a,), "ReLU")

    def _backward() -> None:
        a.grad += (out.data > 0) * out.grad

    out._backward = _backward
    return out


def neg(a: Value) -> Value:
    return mul(a, -1.0)


def sub(a: Any, b: Any) -> Value:
    return add(a, neg(_v(b)))


def sanity_check_by_hand(x: Value) -> Value:
    z = add(add(mul(2, x), 2), x)
    q = add(relu(z), mul(z, x))
    h = relu(mul(z, z))
    y = add(add(h, q), mul(q, x))
    return y


def more_ops_by_hand(a: Value, b: Value) -> Value:
    c = add(a, b)
    d = add(mul(a, b), power(b, 3))
    c = add(c, add(c, 1))
    c = add(c, add(add(1, c), neg(a)))
    d = add(d, add(mul(d, 2), relu(add(b, a))))
    d = add(d, add(mul(3, d), relu(sub(b, a))))
    e = sub(c, d)
    f = power(e, 2)
    g = div(f, 2.0)
    g = add(g, div(10.0, f))
    return g


# --- running them ----------------------------------------------------------------------------------
SCENARIOS: dict[str, tuple[Callable[..., Any], Callable[..., Value], tuple[float, ...]]] = {
    "sanity_check": (sanity_check, sanity_check_by_hand, (-4.0,)),
    "more_ops": (more_ops, more_ops_by_hand, (-4.0, 2.0)),
}


def torch_reference(name: str) -> tuple[float, list[float]]:
    """The output and the input gradients, as PyTorch float64 computes them (micrograd's reference)."""
    torch = need("torch")
    scenario, _, point = SCENARIOS[name]
    xs = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in point]
    out = scenario(*xs)
    out.backward()
    return out.item(), [x.grad.item() for x in xs]


def micrograd_backward(root: Value) -> None:
    """micrograd's Value.backward, written out: a topological order, then `_backward()` node by node."""
    topo: list[Value] = []
    visited: set[Value] = set()

    def build(v: Value) -> None:
        if v not in visited:
            visited.add(v)
            for child in v._prev:
                build(child)
            topo.append(v)

    build(root)
    root.grad = 1.0
    for v in reversed(topo):
        v._backward()


def run(name: str, by_hand: bool, backward: Callable[[Value], None]) -> tuple[float, list[float]]:
    scenario, scenario_by_hand, point = SCENARIOS[name]
    xs = [Value(x) for x in point]
    out = (scenario_by_hand if by_hand else scenario)(*xs)
    backward(out)
    return out.data, [x.grad for x in xs]


def _agree(got: tuple[float, list[float]], want: tuple[float, list[float]]) -> None:
    assert got[0] == pytest.approx(want[0], rel=1e-12, abs=0)
    assert got[1] == pytest.approx(want[1], rel=1e-12, abs=0)


BACKWARDS = {"backward()": Value.backward, "micrograd's loop": micrograd_backward}


@pytest.mark.parametrize("backward", sorted(BACKWARDS))
@pytest.mark.parametrize("by_hand", [False, True], ids=["table ops", "hand-built ops"])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_micrograd_scenarios_agree_with_torch(name: str, by_hand: bool, backward: str) -> None:
    _agree(run(name, by_hand, BACKWARDS[backward]), torch_reference(name))


def test_the_numbers_micrograd_prints() -> None:
    # micrograd's README prints these for test_more_ops' graph: g 24.7041, dg/da 138.8338, dg/db 645.5773
    value, (da, db) = run("more_ops", by_hand=False, backward=Value.backward)
    assert f"{value:.4f} {da:.4f} {db:.4f}" == "24.7041 138.8338 645.5773"
    y, (dx,) = run("sanity_check", by_hand=False, backward=Value.backward)
    assert (y, dx) == (-20.0, 46.0)
    # the sanity check is exact in float64, so every way gives the very same numbers
    for by_hand in (False, True):
        for backward in BACKWARDS.values():
            assert run("sanity_check", by_hand, backward) == (-20.0, [46.0])


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_hand_built_graphs_keep_chainrule_semantics(name: str) -> None:
    # Called twice, backward() doubles every gradient exactly, also through hand-built nodes (whose
    # closures add into .grad, which a naive second sweep would count twice along shared paths).
    _, scenario_by_hand, point = SCENARIOS[name]
    xs = [Value(x) for x in point]
    out = scenario_by_hand(*xs)
    out.backward()
    first = [x.grad for x in xs]
    out.backward()
    assert [x.grad for x in xs] == [2 * g for g in first]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_real_micrograd_agrees(name: str) -> None:
    # micrograd 0.1.0 itself (a test dependency), on the same scenario text.
    engine = need("micrograd.engine")
    scenario, _, point = SCENARIOS[name]
    xs = [engine.Value(x) for x in point]
    out = scenario(*xs)
    out.backward()
    want = (out.data, [x.grad for x in xs])
    for by_hand in (False, True):
        got = run(name, by_hand, Value.backward)
        assert math.isclose(got[0], want[0], rel_tol=1e-12)
        assert got[1] == pytest.approx(want[1], rel=1e-12, abs=0)
