"""Losses: values and gradients against PyTorch (float64), stability, and clear errors."""

from __future__ import annotations

import math

import pytest

import chainrule
from chainrule import Value
from chainrule.losses import (
    bce_with_logits,
    binary_cross_entropy_with_logits,
    cross_entropy,
    hinge_loss,
    l2_regularization,
    mse_loss,
    svm_loss,
)
from chainrule.nn import MLP
from conftest import need

PREDS = [0.3, -1.2, 2.5, 0.0, -0.7]


def _values(xs: list[float]) -> list[Value]:
    return [Value(x) for x in xs]


def _torch_leaf(torch, xs):
    return torch.tensor(xs, dtype=torch.float64, requires_grad=True)


def _check(ours: Value, params: list[Value], theirs, leaf) -> None:
    """Same loss value and the same gradient for every input, to float64 precision."""
    ours.backward()
    theirs.backward()
    assert ours.data == pytest.approx(theirs.item(), rel=1e-12, abs=1e-12)
    assert [p.grad for p in params] == pytest.approx(leaf.grad.tolist(), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_matches_torch(reduction):
    torch = need("torch")
    targets = [0.5, -1.0, 2.0, 1.0, 0.25]
    xs = _values(PREDS)
    leaf = _torch_leaf(torch, PREDS)
    theirs = torch.nn.functional.mse_loss(
        leaf, torch.tensor(targets, dtype=torch.float64), reduction=reduction
    )
    _check(mse_loss(xs, targets, reduction=reduction), xs, theirs, leaf)


def test_mse_with_value_targets_gives_both_sides_gradients():
    p, t = Value(3.0), Value(1.0)
    loss = mse_loss(p, t)
    loss.backward()
    assert loss.data == 4.0
    assert (p.grad, t.grad) == (4.0, -4.0)


def test_svm_loss_matches_torch_hinge():
    torch = need("torch")
    labels = [1, -1, -1, 1, 1]
    xs = _values(PREDS)
    leaf = _torch_leaf(torch, PREDS)
    y = torch.tensor(labels, dtype=torch.float64)
    theirs = torch.relu(1 - y * leaf).mean()
    _check(svm_loss(xs, labels), xs, theirs, leaf)
    assert hinge_loss is svm_loss


def test_svm_loss_is_micrograds_loss_expression():
    # micrograd's demo: sum((1 + -yi*scorei).relu()) * (1.0 / len(losses))
    scores, labels = [0.5, -2.0, 3.0], [1, 1, -1]
    expected = sum(max(0.0, 1 - y * s) for s, y in zip(scores, labels, strict=True)) / 3
    assert svm_loss(_values(scores), labels).data == pytest.approx(expected)


@pytest.mark.parametrize("targets", [[1, 0, 1, 0, 1], [0.2, 0.9, 0.5, 0.0, 1.0]])
def test_bce_with_logits_matches_torch(targets):
    torch = need("torch")
    xs = _values(PREDS)
    leaf = _torch_leaf(torch, PREDS)
    t = torch.tensor(targets, dtype=torch.float64)
    theirs = torch.nn.functional.binary_cross_entropy_with_logits(leaf, t)
    _check(binary_cross_entropy_with_logits(xs, targets), xs, theirs, leaf)
    assert bce_with_logits is binary_cross_entropy_with_logits


def test_bce_with_logits_is_stable_for_confident_predictions():
    torch = need("torch")
    logits = [800.0, -800.0, 40.0, -40.0]
    targets = [0, 1, 1, 0]  # two confidently wrong, two confidently right
    xs = _values(logits)
    loss = bce_with_logits(xs, targets, reduction="sum")
    loss.backward()
    leaf = _torch_leaf(torch, logits)
    theirs = torch.nn.functional.binary_cross_entropy_with_logits(
        leaf, torch.tensor(targets, dtype=torch.float64), reduction="sum"
    )
    theirs.backward()
    assert math.isfinite(loss.data)
    assert loss.data == pytest.approx(1600.0)  # a wrong prediction costs |z|, never inf
    assert loss.data == pytest.approx(theirs.item(), rel=1e-12)
    assert [x.grad for x in xs] == pytest.approx(leaf.grad.tolist(), abs=1e-15)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_matches_torch(reduction):
    torch = need("torch")
    rows = [[0.1, 2.0, -1.0], [1.5, 0.3, 0.2], [-0.5, -0.5, 3.0], [0.0, 0.0, 0.0]]
    targets = [1, 0, 2, 1]
    xs = [_values(r) for r in rows]
    leaf = _torch_leaf(torch, rows)
    theirs = torch.nn.functional.cross_entropy(leaf, torch.tensor(targets), reduction=reduction)
    ours = cross_entropy(xs, targets, reduction=reduction)
    ours.backward()
    theirs.backward()
    assert ours.data == pytest.approx(theirs.item(), rel=1e-12)
    for row, grads in zip(xs, leaf.grad.tolist(), strict=True):
        assert [x.grad for x in row] == pytest.approx(grads, rel=1e-12, abs=1e-14)


def test_cross_entropy_with_probability_targets_matches_torch():
    torch = need("torch")
    rows = [[0.1, 2.0, -1.0], [1.5, 0.3, 0.2]]
    probs = [[0.2, 0.5, 0.3], [0.0, 0.0, 1.0]]
    xs = [_values(r) for r in rows]
    leaf = _torch_leaf(torch, rows)
    theirs = torch.nn.functional.cross_entropy(leaf, torch.tensor(probs, dtype=torch.float64))
    ours = cross_entropy(xs, probs)
    ours.backward()
    theirs.backward()
    assert ours.data == pytest.approx(theirs.item(), rel=1e-12)
    assert [x.grad for r in xs for x in r] == pytest.approx(sum(leaf.grad.tolist(), []), rel=1e-12, abs=1e-14)


def test_cross_entropy_single_sample_and_huge_logits():
    # log-sum-exp shifts by the largest logit, so exp() never overflows.
    row = _values([1000.0, 0.0, -1000.0])
    loss = cross_entropy(row, 1)
    loss.backward()
    assert loss.data == pytest.approx(1000.0)
    assert [x.grad for x in row] == pytest.approx([1.0, -1.0, 0.0])


def test_cross_entropy_traced_on_placeholders_compiles_and_stays_stable():
    # A traced graph has no data to shift by, so log-sum-exp is folded pairwise from table ops.
    torch = need("torch")
    np = need("numpy")
    logits = [chainrule.placeholder(f"l{i}") for i in range(4)]
    onehot = [chainrule.placeholder(f"y{i}") for i in range(4)]
    traced = cross_entropy(logits, onehot)
    with pytest.raises(chainrule.PlaceholderError):
        _ = traced.data
    program = chainrule.compile(traced, [*logits, *onehot])
    rows = np.array(
        [[0.1, 2.0, -1.0, 0.5], [1000.0, 0.0, -1000.0, 3.0], [1.0, 1.0, 1.0, 1.0], [800, 799, 5, 800]]
    )
    classes = [1, 0, 2, 3]
    values, grads = program.value_and_grad(*rows.T, *np.eye(4)[classes].T)
    leaf = torch.tensor(rows, requires_grad=True)
    theirs = torch.nn.functional.cross_entropy(leaf, torch.tensor(classes), reduction="none")
    theirs.sum().backward()
    assert np.allclose(values, theirs.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert np.allclose(np.stack(grads[:4], axis=1), leaf.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_l2_regularization_matches_torch():
    torch = need("torch")
    ws = [0.5, -1.5, 2.0]
    xs = _values(ws)
    leaf = _torch_leaf(torch, ws)
    _check(l2_regularization(xs, 1e-4), xs, 1e-4 * (leaf * leaf).sum(), leaf)


def test_l2_regularization_accepts_a_module():
    model = MLP(2, [3, 1])
    expected = 0.5 * sum(p.data**2 for p in model.parameters())
    assert l2_regularization(model, 0.5).data == pytest.approx(expected)


def test_reduction_none_gives_one_loss_per_sample():
    losses = mse_loss(_values([1.0, 2.0]), [0.0, 0.0], reduction="none")
    assert [x.data for x in losses] == [1.0, 4.0]


def test_losses_are_single_sum_nodes():
    loss = mse_loss(_values(PREDS), [0.0] * 5, reduction="sum")
    assert loss._op == "sum" and len(loss._prev) == 5


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (
            lambda: mse_loss(_values([1.0, 2.0]), [1.0]),
            ValueError,
            "mse_loss: got 2 predictions but 1 targets",
        ),
        (lambda: mse_loss([], []), ValueError, "mse_loss: the batch is empty"),
        (lambda: mse_loss([Value(1.0)], ["1"]), TypeError, "mse_loss: a target must be a number"),
        (lambda: mse_loss([Value(1.0)], [True]), TypeError, "True"),
        (lambda: mse_loss([Value(1.0)], [math.nan]), ValueError, "finite"),
        (lambda: svm_loss([Value(1.0)], [0]), ValueError, "svm_loss: labels must be -1 or +1, got 0"),
        (lambda: bce_with_logits([Value(1.0)], [2.0]), ValueError, "[0, 1], got 2.0"),
        (lambda: cross_entropy([Value(1.0), Value(2.0)], 2), ValueError, "class index 2 is out of range"),
        (lambda: cross_entropy([Value(1.0)], "a"), TypeError, "class index or a row of probabilities"),
        (lambda: cross_entropy([[Value(1.0)]], [[0.5, 0.5]]), ValueError, "2 probabilities for 1 classes"),
        (lambda: mse_loss([Value(1.0)], [1.0], reduction="avg"), ValueError, "reduction must be one of"),
        (lambda: l2_regularization([Value(1.0)], -1), ValueError, "alpha must be a non-negative"),
    ],
)
def test_bad_input_is_refused_clearly(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)
