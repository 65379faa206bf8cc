"""Copying and pickling graphs: long chains without recursion, shared nodes kept shared."""

from __future__ import annotations

import copy
import math
import pickle

import pytest

import chainrule
from chainrule import Value, placeholder
from conftest import need


def chain(n: int) -> tuple[Value, Value]:
    x = Value(0.5, label="x")
    y = x
    for i in range(n):
        y = (y * 1.0001 + 0.001) if i % 2 else y.tanh()
    return x, y


@pytest.mark.parametrize("n", [250, 20_000])
def test_deepcopy_and_pickle_of_a_long_chain(n: int) -> None:
    x, y = chain(n)
    for twin in (copy.deepcopy(y), pickle.loads(pickle.dumps(y))):
        assert twin is not y and twin.data == y.data
        twin.backward()
        y.backward()
        assert twin.data == y.data
    assert x.grad != 0.0


def test_deepcopy_keeps_shared_nodes_shared() -> None:
    a = Value(2.0, label="a")
    b = a * 3.0
    c = b + a
    a2, b2, c2 = copy.deepcopy([a, b, c])
    assert b2._prev[0] is a2 and c2._prev == (b2, a2)
    c2.backward()
    assert a2.grad == 4.0 and a.grad == 0.0  # the copy's gradients are its own


def test_pickled_graph_is_the_same_graph() -> None:
    a, b = Value(1.5, label="a"), Value(-2.0, label="b", requires_grad=False)
    y = (a * b).sigmoid() + chainrule.sum([a, a.exp(), b])
    y.grad = 0.25
    z = pickle.loads(pickle.dumps(y))
    assert z.grad == 0.25 and z._op == "+" and z.label == y.label
    leaves = {n.label: n for n in chainrule.engine.topological_order(z) if n.label}
    assert leaves["b"].requires_grad is False
    z.backward()
    y.backward()
    assert leaves["a"].grad == a.grad


def test_placeholders_copy_and_pickle() -> None:
    x = placeholder("x")
    y = (x * 2).tanh()
    for twin in (copy.deepcopy(y), pickle.loads(pickle.dumps(y))):
        (x2,) = [n for n in chainrule.engine.topological_order(twin) if n.label == "x"]
        assert isinstance(x2, chainrule.engine.Symbolic)
        program = chainrule.compile(twin, [x2])
        assert program(0.25) == pytest.approx(math.tanh(0.5))
    assert pickle.loads(pickle.dumps(x)).label == "x"


def test_relu_and_abs_at_nan_match_pytorch() -> None:
    torch = need("torch")
    for name in ("relu", "abs"):
        v = Value(math.nan)
        getattr(v, name)().backward() if name == "relu" else abs(v).backward()
        t = torch.tensor([math.nan], dtype=torch.float64, requires_grad=True)
        getattr(torch, name)(t).sum().backward()
        assert v.grad == t.grad.item(), name


def test_a_program_pickles_and_deep_copies_by_compiling_again() -> None:
    np = need("numpy")
    x = placeholder("x")
    w = Value(0.5, label="w")
    program = chainrule.compile((x * w).tanh() + w, [x])
    for twin in (pickle.loads(pickle.dumps(program)), copy.deepcopy(program)):
        assert twin(0.3) == program(0.3)
        assert np.array_equal(twin(np.array([0.1, 0.2])), program(np.array([0.1, 0.2])))
        (w2,) = twin.parameters
        assert w2 is not w and w2.data == 0.5  # the copy has its own parameter


def test_graphs_pickled_together_share_their_leaves() -> None:
    w = Value(2.0, label="w")
    a, b = w * 3.0, (w + 1.0).tanh()
    a2, b2 = pickle.loads(pickle.dumps([a, b]))
    assert a2._prev[0] is b2._prev[0]._prev[0]  # one w, as before pickling


def test_copy_is_shallow() -> None:
    a = Value(2.0, label="a")
    y = a * 3.0 + a
    z = copy.copy(y)
    assert z is not y and z.data == y.data and z._prev == y._prev and z._prev[1] is a
    p = copy.copy(placeholder("p"))
    assert p.label == "p" and isinstance(p, chainrule.engine.Symbolic)
