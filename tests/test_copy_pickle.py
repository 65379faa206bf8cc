"""Copying and pickling graphs: long chains without recursion, shared nodes kept shared."""

from __future__ import annotations

import copy
import math
import pickle
import sys

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


# --- Tensor graphs ---------------------------------------------------------------------------------
def tensor_graph() -> tuple[object, object, object]:
    """A Tensor graph with every kind of row: table rows, @, an axis sum, a mean, reshape and transpose."""
    np = need("numpy")
    w = chainrule.Tensor(np.arange(6.0).reshape(2, 3) / 10, label="w")
    x = chainrule.Tensor(np.array([1.0, -2.0, 0.5]), label="x", requires_grad=False)
    h = (w @ x).tanh() + w.sum(axis=1) * w.mean()
    loss = (h.reshape(2, 1).T * 2.0).sum()
    loss.label = "loss"
    return w, x, loss


def test_a_tensor_graph_pickles_and_deep_copies_with_everything_it_holds() -> None:
    np = need("numpy")
    w, x, loss = tensor_graph()
    loss.backward()
    for twin in (pickle.loads(pickle.dumps(loss)), copy.deepcopy(loss)):
        nodes = {n.label: n for n in chainrule.engine.topological_order(twin) if n.label}
        w2, x2 = nodes["w"], nodes["x"]
        assert twin is not loss and twin.label == "loss" and twin.data == loss.data
        assert w2 is not w and np.array_equal(w2.data, w.data) and np.array_equal(w2.grad, w.grad)
        assert x2.requires_grad is False and np.array_equal(x2.data, x.data)
        kws = [n._kw for n in chainrule.engine.topological_order(twin) if n._operation is not None]
        assert {"axis": (1,), "keepdims": False} in kws and {"shape": (2, 1)} in kws
        assert [n._op for n in chainrule.engine.topological_order(twin)] == [
            n._op for n in chainrule.engine.topological_order(loss)
        ]
        twin.backward()  # the copy's gradients are its own, and the same numbers again
        assert np.array_equal(w2.grad, 2 * w.grad)
    w.data[0, 0] = 99.0
    assert w2.data[0, 0] != 99.0  # the copy has its own arrays


@pytest.mark.parametrize("copier", ["deepcopy", "pickle"])
def test_a_long_tensor_chain_copies_without_recursion(copier: str) -> None:
    np = need("numpy")
    assert sys.getrecursionlimit() <= 1000  # Python's default: nothing raised it
    t = chainrule.Tensor(np.ones(3), label="t")
    y = t
    for i in range(10_000):
        y = y * 1.0001 if i % 2 else y + 0.001
    y = y.sum()
    twin = copy.deepcopy(y) if copier == "deepcopy" else pickle.loads(pickle.dumps(y))
    assert twin.data == y.data
    twin.backward()
    y.backward()
    (t2,) = [n for n in chainrule.engine.topological_order(twin) if n.label == "t"]
    assert np.array_equal(t2.grad, t.grad) and t2 is not t


def test_tensor_graphs_pickled_together_share_their_leaves() -> None:
    np = need("numpy")
    w = chainrule.Tensor(np.ones(2), label="w")
    a, b = (w * 3.0).sum(), (w + 1.0).tanh().mean()
    a2, b2 = pickle.loads(pickle.dumps([a, b]))
    assert a2._prev[0]._prev[0] is b2._prev[0]._prev[0]._prev[0]  # one w, as before pickling
    c, d = copy.deepcopy([a, b])
    assert c._prev[0]._prev[0] is d._prev[0]._prev[0]._prev[0]


def test_a_tensor_copy_is_shallow() -> None:
    np = need("numpy")
    w = chainrule.Tensor(np.ones(2), label="w")
    y = (w * 2.0).sum()
    z = copy.copy(y)
    assert z is not y and z.data is y.data and z._prev == y._prev and z._kw == y._kw and z.label == y.label
