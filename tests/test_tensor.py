"""Tests of `chainrule.Tensor`: every elementwise op of the table and every tensor-only op, on arrays,
against PyTorch float64 values and gradients; then a small MLP, the error messages and the engine's
habits (accumulating gradients, `no_grad`).

The elementwise cases are generated from `chainrule.TABLE`, with each op's PyTorch twin, spelling and
input ranges from tests/op_cases.py (where a row without an entry fails).
"""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Callable
from typing import Any

import pytest

import chainrule
from chainrule import TABLE, DomainError, Value, no_grad
from chainrule.ops import OPS, TENSOR_OPS, TENSOR_OPS_BY_NAME
from conftest import need
from op_cases import case

np = need("numpy")
Tensor = chainrule.Tensor

RTOL, ATOL = 1e-9, 1e-12


# --- references and sample data (tests/op_cases.py) ------------------------------------------------
ELEMENTWISE = [op for op in TABLE if op.arity in (1, 2)]  # the n-ary `sum` of Values is not elementwise


def _sample(op: Any, i: int, shape: tuple[int, ...], rng: Any) -> Any:
    """Input i of `op` drawn uniformly from its range in tests/op_cases.py ((-2, 2) by default)."""
    low, high = (case(op).ranges or ((-2.0, 2.0),) * op.arity)[i]
    return rng.uniform(low, high, size=shape)


def _torch(x: Any, requires_grad: bool = False) -> Any:
    torch = need("torch")
    return torch.tensor(x, dtype=torch.float64, requires_grad=requires_grad)


def _close(got: Any, want: Any, what: str) -> None:
    if hasattr(want, "detach"):
        want = want.detach().numpy()
    np.testing.assert_allclose(np.asarray(got), want, rtol=RTOL, atol=ATOL, err_msg=what)


# --- the table's elementwise ops on tensors --------------------------------------------------------
def test_tensor_has_every_value_method() -> None:
    for op in ELEMENTWISE:
        if hasattr(Value, op.name):
            assert callable(getattr(Tensor, op.name)), f"Value.{op.name} has no Tensor twin"
    for dunder in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__"):
        assert hasattr(Tensor, dunder), dunder
    assert hasattr(Tensor, "__rtruediv__") and hasattr(Tensor, "__pow__") and hasattr(Tensor, "__rpow__")


UNARY_SHAPES = [(), (5,), (2, 3)]
# (kind of a, kind of b, shape of a, shape of b): "tensor" takes a gradient; "number" and "array" are
# constants mixed in, which exercise the reflected operators (2 * t, array / t) as well.
BINARY_CASES = [
    ("tensor", "tensor", (3, 1), (1, 4)),
    ("tensor", "tensor", (2, 3), ()),
    ("tensor", "tensor", (), (4,)),
    ("tensor", "tensor", (3, 4), (4,)),
    ("tensor", "tensor", (2, 3, 4), (3, 1)),
    ("tensor", "tensor", (2, 3), (2, 3)),
    ("tensor", "number", (2, 3), ()),
    ("number", "tensor", (), (2, 3)),
    ("tensor", "array", (3, 1), (1, 4)),
    ("array", "tensor", (3, 4), (4,)),
]


def _elementwise_params() -> list[Any]:
    params = []
    for op in ELEMENTWISE:
        if op.arity == 1:
            params += [pytest.param(op, ("tensor",), (s,), id=f"{op.name}-{s}") for s in UNARY_SHAPES]
        else:
            params += [
                pytest.param(op, (ka, kb), (sa, sb), id=f"{op.name}-{ka}{sa}-{kb}{sb}")
                for ka, kb, sa, sb in BINARY_CASES
            ]
    return params


@pytest.mark.parametrize(("op", "kinds", "shapes"), _elementwise_params())
def test_elementwise_op_matches_torch(op: Any, kinds: tuple[str, ...], shapes: tuple[Any, ...]) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{op.name}{kinds}{shapes}".encode()))  # the same every run
    arrays = [_sample(op, i, s, rng) for i, s in enumerate(shapes)]
    given = {"tensor": Tensor, "number": float, "array": np.asarray}
    inputs = [given[k](a) for k, a in zip(kinds, arrays, strict=True)]
    out = case(op).spell(*inputs)  # the op as users write it: t.exp(), a / b, 2 * t, abs(t)
    assert isinstance(out, Tensor) and out.data.dtype == np.float64

    ts = [_torch(a, requires_grad=k == "tensor") for k, a in zip(kinds, arrays, strict=True)]
    want = case(op).torch(*ts)
    assert out.shape == tuple(want.shape)
    _close(out.data, want, f"{op.name}: value")

    upstream = rng.normal(size=out.shape)  # a gradient that differs entry by entry
    out.backward(grad=upstream)
    want.backward(_torch(upstream))
    for k, x, t in zip(kinds, inputs, ts, strict=True):
        if k == "tensor":
            assert x.grad.shape == x.shape
            _close(x.grad, t.grad, f"{op.name}: gradient")


# --- the tensor-only ops ---------------------------------------------------------------------------
def test_tensor_ops_are_rows_of_their_own() -> None:
    assert [op.name for op in TENSOR_OPS] == ["matmul", "axis_sum", "mean", "reshape", "transpose"]
    assert TENSOR_OPS_BY_NAME == {op.name: op for op in TENSOR_OPS}
    assert not set(TENSOR_OPS_BY_NAME) & set(OPS)  # the axis sum is not the n-ary sum: two names
    for op in TENSOR_OPS:
        assert op.doc and op.symbol and len(op.derivatives) == op.arity, op.name
        assert op not in TABLE and OPS.get(op.name) is not op  # the scalar table is untouched
        assert pickle.loads(pickle.dumps(op)) is op  # every row pickles by name


def _check_unary(shape: tuple[int, ...], ours: Callable[[Any], Any], theirs: Callable[[Any], Any]) -> None:
    """Run `ours` on a Tensor and `theirs` on a torch tensor; compare values and gradients."""
    rng = np.random.default_rng(len(shape))
    a = rng.normal(size=shape)
    x, t = Tensor(a), _torch(a, requires_grad=True)
    out, want = ours(x), theirs(t)
    assert out.shape == tuple(want.shape)
    _close(out.data, want, "value")
    upstream = rng.normal(size=out.shape)
    out.backward(grad=upstream)
    want.backward(_torch(upstream))
    _close(x.grad, t.grad, "gradient")


@pytest.mark.parametrize(("sa", "sb"), [((2, 3), (3, 4)), ((3,), (3, 4)), ((2, 3), (3,)), ((3,), (3,))])
@pytest.mark.parametrize("left", ["tensor", "array"])
def test_matmul_matches_torch(sa: tuple[int, ...], sb: tuple[int, ...], left: str) -> None:
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    x = Tensor(a) if left == "tensor" else a  # an array on the left goes through Tensor.__rmatmul__
    y = Tensor(b)
    out = x @ y
    ta, tb = _torch(a, requires_grad=True), _torch(b, requires_grad=True)
    want = ta @ tb
    _close(out.data, want, "value")
    upstream = rng.normal(size=out.shape)
    out.backward(grad=upstream)
    want.backward(_torch(upstream))
    _close(y.grad, tb.grad, "gradient of the right operand")
    if left == "tensor":
        _close(x.grad, ta.grad, "gradient of the left operand")


@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("name", ["sum", "mean"])
def test_reductions_match_torch(name: str, axis: Any, keepdims: bool) -> None:
    def theirs(t: Any) -> Any:
        if axis is None:  # torch's sum(dim=None) has no keepdim spelling that keeps every axis
            out = getattr(t, name)()
            return out.reshape((1, 1, 1)) if keepdims else out
        return getattr(t, name)(dim=axis, keepdim=keepdims)

    _check_unary((2, 3, 4), lambda x: getattr(x, name)(axis=axis, keepdims=keepdims), theirs)


@pytest.mark.parametrize(
    ("shape", "new"), [((2, 3, 4), (6, 4)), ((2, 3, 4), (-1,)), ((2, 3, 4), (4, -1, 2)), ((6,), (2, 3))]
)
def test_reshape_matches_torch(shape: tuple[int, ...], new: tuple[int, ...]) -> None:
    _check_unary(shape, lambda x: x.reshape(*new), lambda t: t.reshape(new))
    _check_unary(shape, lambda x: x.reshape(new), lambda t: t.reshape(new))  # a tuple works too


def test_transpose_matches_torch() -> None:
    _check_unary((2, 3), lambda x: x.T, lambda t: t.T)
    _check_unary((2, 3, 4), lambda x: x.transpose(2, 0, 1), lambda t: t.permute(2, 0, 1))
    _check_unary((2, 3, 4), lambda x: x.transpose((1, -1, 0)), lambda t: t.permute(1, 2, 0))
    _check_unary((2, 3, 4), lambda x: x.transpose(), lambda t: t.permute(2, 1, 0))


# --- a network ------------------------------------------------------------------------------------
def test_mlp_loss_gradients_match_torch() -> None:
    torch = need("torch")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 2))
    y = np.where(rng.normal(size=16) > 0, 1.0, -1.0)
    params = {
        "W1": rng.normal(size=(2, 8)),
        "b1": rng.normal(size=8),
        "W2": rng.normal(size=(8, 8)),
        "b2": rng.normal(size=8),
        "W3": rng.normal(size=(8, 1)),
        "b3": rng.normal(size=1),
    }

    def loss(p: dict[str, Any], X: Any, y: Any) -> Any:
        # micrograd's demo: ReLU MLP, SVM max-margin loss, L2 regularisation
        h = (X @ p["W1"] + p["b1"]).relu()
        h = (h @ p["W2"] + p["b2"]).tanh()
        scores = (h @ p["W3"] + p["b3"]).reshape(-1)
        margin = (1 + -y * scores).relu().mean()
        return margin + 1e-3 * sum((p[k] * p[k]).sum() for k in ("W1", "W2", "W3"))

    ours = {k: Tensor(v, label=k) for k, v in params.items()}
    theirs = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    out = loss(ours, X, y)
    want = loss(theirs, torch.tensor(X), torch.tensor(y))
    assert out.shape == ()
    _close(out.data, want, "loss")
    out.backward()  # a one-entry output: the sweep starts from 1
    want.backward()
    for k in params:
        _close(ours[k].grad, theirs[k].grad, f"gradient of {k}")


def test_training_lowers_the_loss() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(32, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3
    W, b = Tensor(rng.normal(size=3) * 0.1), Tensor(0.0)
    losses = []
    for _ in range(50):
        loss = ((X @ W + b - y) ** 2).mean()
        W.zero_grad()
        b.zero_grad()
        loss.backward()
        W.data -= 0.1 * W.grad
        b.data -= 0.1 * b.grad
        losses.append(loss.item())
    assert losses[-1] < 0.01 * losses[0]


# --- errors ---------------------------------------------------------------------------------------
def test_matmul_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"matmul.*\(2, 3\).*\(2, 3\)"):
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"matmul.*1-D and 2-D.*\(2, 2, 2\)"):
        Tensor(np.ones((2, 2, 2))) @ Tensor(np.ones(2))


def test_broadcast_mismatch_names_the_op_and_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(2,\) cannot be broadcast"):
        Tensor(np.ones((2, 3))) + Tensor([1.0, 2.0])
    with pytest.raises(ValueError, match=r"mul: shapes \(3,\) and \(4,\)"):
        np.ones(3) * Tensor(np.ones(4))  # reflected (Tensor.__rmul__): the shapes in operand order


def test_domain_errors_name_the_op_and_the_entry() -> None:
    with pytest.raises(DomainError, match=r"log: requires x > 0, got -2\.0 \(at batch index 2\)") as info:
        Tensor([1.0, 3.0, -2.0, -5.0]).log()
    assert info.value.op == "log"
    with pytest.raises(DomainError, match=r"sqrt.*-1\.0.*entry \(1, 0\) of shape \(2, 2\)"):
        Tensor([[1.0, 2.0], [-1.0, 4.0]]).sqrt()
    with pytest.raises(ZeroDivisionError, match=r"truediv.*entry \(0, 1\)"):
        Tensor(np.ones((2, 2))) / np.array([1.0, 0.0])
    with pytest.raises(DomainError, match="pow"):
        Tensor([-8.0]) ** 0.5
    assert np.isnan(Tensor([1.0, np.nan]).log().data[1])  # NaN given as data propagates, as for Value


def test_non_numbers_are_type_errors_naming_the_type() -> None:
    with pytest.raises(TypeError, match=r"Tensor needs real numbers, got str"):
        Tensor("1.5")
    with pytest.raises(TypeError, match=r"got list"):
        Tensor([1.0, "a"])
    with pytest.raises(TypeError, match=r"got NoneType"):
        Tensor(None)
    with pytest.raises(TypeError, match=r"got complex"):
        Tensor(1j)
    with pytest.raises(TypeError, match=r"mul: a Tensor combines with .* not str"):
        Tensor([1.0]) * "ab"
    with pytest.raises(TypeError, match=r"add: .* not Value"):
        Tensor([1.0]) + Value(2.0)
    with pytest.raises(ValueError, match=r"rectangular"):
        Tensor([[1.0], [2.0, 3.0]])


def test_shape_errors_of_the_tensor_ops() -> None:
    x = Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"reshape: cannot give a Tensor of shape \(2, 3\) the shape \(4,\)"):
        x.reshape(4)
    with pytest.raises(ValueError, match=r"sum: axis 2 is out of range for a Tensor of shape \(2, 3\)"):
        x.sum(axis=2)
    with pytest.raises(ValueError, match=r"mean: axis \(0, -2\) names an axis twice"):
        x.mean(axis=(0, -2))
    with pytest.raises(TypeError, match=r"sum: an axis is an int, got float"):
        x.sum(axis=1.0)
    with pytest.raises(ValueError, match=r"transpose: axes \(0,\) are not a permutation"):
        x.transpose(0)


def test_backward_needs_a_seed_for_a_non_scalar_output() -> None:
    x = Tensor([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"backward: a Tensor of shape \(3,\) .* grad="):
        (x * 2).backward()
    with pytest.raises(ValueError, match=r"backward: grad has shape \(2,\) but the Tensor has shape \(3,\)"):
        (x * 2).backward(grad=[1.0, 1.0])
    with pytest.raises(ValueError, match="does not require grad"):
        Tensor([1.0], requires_grad=False).exp().sum().backward()
    (x * 2).backward(grad=[1.0, 0.0, -1.0])
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, -2.0])


# --- the engine's habits --------------------------------------------------------------------------
def test_construction_and_repr() -> None:
    source = np.array([[1, 2], [3, 4]])
    x = Tensor(source, label="x")
    source[0, 0] = 100  # the Tensor holds its own copy
    assert x.data.dtype == np.float64 and x.data[0, 0] == 1.0
    assert (x.shape, x.ndim, x.label, x.requires_grad) == ((2, 2), 2, "x", True)
    np.testing.assert_array_equal(x.grad, np.zeros((2, 2)))
    assert repr(x) == "Tensor([[1., 2.],\n        [3., 4.]], label='x')"
    assert repr(Tensor(2.5, requires_grad=False)) == "Tensor(2.5, requires_grad=False)"
    assert Tensor(3).shape == () and Tensor(3).item() == 3.0
    assert Tensor([True, False]).data.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match=r"item: .* shape \(2, 2\) holds 4 numbers"):
        x.item()
    y = x * 2 + 1
    assert y._op == "+" and y._prev[1].data == 1.0 and y._prev[0]._prev[0] is x
    assert chainrule.tensor.Tensor is Tensor
    copied = Tensor(x)  # the numbers of another Tensor, as a new leaf
    assert copied._prev == () and copied.data is not x.data and copied.data.tolist() == x.data.tolist()


def test_grad_can_be_set_and_numpy_functions_refuse_a_tensor() -> None:
    x = Tensor([1.0, 2.0])
    mine = np.array([10.0, 20.0])
    x.grad = mine
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [13.0, 23.0])
    np.testing.assert_array_equal(mine, [10.0, 20.0])  # backward added into a copy
    x.grad = None
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])
    with pytest.raises(
        ValueError, match=r"Tensor.grad: shape \(3,\) does not match the Tensor's shape \(2,\)"
    ):
        x.grad = [1.0, 2.0, 3.0]
    with pytest.raises(TypeError):  # no array without a graph behind it, by accident
        np.exp(x)


def test_backward_twice_doubles_and_zero_grad_resets() -> None:
    x = Tensor([1.0, -2.0, 3.0])
    y = (x * x + x.sin()).sum()
    y.backward()
    first = x.grad.copy()
    np.testing.assert_allclose(first, 2 * x.data + np.cos(x.data), rtol=RTOL)
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * first, rtol=RTOL)
    y.zero_grad()
    np.testing.assert_array_equal(x.grad, np.zeros(3))
    y.backward()
    np.testing.assert_allclose(x.grad, first, rtol=RTOL)


def test_a_tensor_used_twice_gets_both_gradients() -> None:
    x = Tensor([[1.0, 2.0]])
    z = x + x.T  # broadcast (1, 2) + (2, 1): both uses of x broadcast, both sum back
    z.sum().backward()
    np.testing.assert_allclose(x.grad, [[4.0, 4.0]])


def test_no_grad_records_nothing() -> None:
    x = Tensor([1.0, 2.0])
    with no_grad():
        assert not chainrule.is_grad_enabled()
        y = (x * 3).exp().sum()
    assert not y.requires_grad and y._prev == ()
    with pytest.raises(ValueError, match="does not require grad"):
        y.backward()
    z = (x * 3).sum()  # recorded again outside the block
    z.backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_constants_and_frozen_leaves_take_no_gradient() -> None:
    w = Tensor([1.0, 2.0], requires_grad=False)
    x = Tensor([3.0, 4.0])
    (w * x).sum().backward()
    np.testing.assert_array_equal(w.grad, [0.0, 0.0])
    np.testing.assert_array_equal(x.grad, [1.0, 2.0])
    d = x.detach()
    assert not d.requires_grad and d._prev == () and d.data is not x.data


def test_a_long_chain_needs_no_recursion() -> None:
    x = Tensor(np.full(3, 0.5))
    y = x
    for _ in range(20_000):
        y = y * 1.0 + 0.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones(3))


def test_overflow_is_inf_without_warnings() -> None:
    import warnings

    x = Tensor([1000.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = x.exp()
        y.sum().backward()
    assert y.data[0] == np.inf and x.grad[0] == np.inf
