"""chainrule.nn against micrograd.nn: same parameter counts and order, reprs, forward values and gradients."""

from __future__ import annotations

import random
from typing import Any

import pytest

from chainrule import Value
from chainrule.nn import MLP, Layer, Module, Neuron
from conftest import need

SHAPES = [(2, [16, 16, 1]), (3, [4, 4, 1]), (1, [1]), (4, [3, 2])]


def micrograd_nn() -> Any:
    return need("micrograd.nn")


def twins(nin: int, nouts: list[int], seed: int = 0) -> tuple[MLP, Any]:
    """chainrule's and micrograd's MLP(nin, nouts), both made after random.seed(seed)."""
    random.seed(seed)
    theirs = micrograd_nn().MLP(nin, nouts)
    random.seed(seed)
    ours = MLP(nin, nouts)
    return ours, theirs


@pytest.mark.parametrize(("nin", "nouts"), SHAPES)
def test_parameter_counts_reprs_and_initial_weights_match_micrograd(nin: int, nouts: list[int]) -> None:
    ours, theirs = twins(nin, nouts, seed=1337)
    assert repr(ours) == repr(theirs)
    assert len(ours.parameters()) == len(theirs.parameters())
    # the same calls to random.uniform, in the same order: the same initial weights for the same seed
    assert [p.data for p in ours.parameters()] == [float(q.data) for q in theirs.parameters()]


def test_reprs() -> None:
    assert repr(MLP(2, [16, 16, 1])).startswith("MLP of [Layer of [ReLUNeuron(2), ReLUNeuron(2), ")
    assert repr(MLP(2, [16, 16, 1])).endswith("Layer of [LinearNeuron(16)]]")
    assert repr(Layer(3, 2, nonlin=False)) == "Layer of [LinearNeuron(3), LinearNeuron(3)]"
    assert repr(Neuron(5)) == "ReLUNeuron(5)"


def test_counts_by_hand() -> None:
    assert len(MLP(2, [16, 16, 1]).parameters()) == 2 * 16 + 16 + 16 * 16 + 16 + 16 + 1 == 337
    assert len(Layer(3, 4).parameters()) == 16 and len(Neuron(3).parameters()) == 4
    assert Module().parameters() == []


def test_parameter_order_is_weights_then_bias_per_neuron() -> None:
    n = Neuron(3)
    assert n.parameters() == [*n.w, n.b]
    layer = Layer(2, 2)
    assert layer.parameters() == [*layer.neurons[0].parameters(), *layer.neurons[1].parameters()]


def test_layer_with_one_output_returns_a_value() -> None:
    assert isinstance(Layer(2, 1)([1.0, 2.0]), Value)
    out = Layer(2, 3)([1.0, 2.0])
    assert isinstance(out, list) and len(out) == 3


def _copy_weights(ours: MLP, theirs: Any) -> None:
    """Fresh random weights in micrograd's model, copied into ours (biases too, nonzero)."""
    rng = random.Random(7)
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        q.data = rng.uniform(-1, 1)
        p.data = q.data


INPUTS = [[0.5, -1.25], [2.0, 0.75], [-1.5, -0.5], [0.0, 0.0], [3.0, -2.0]]


def test_forward_values_match_micrograd_with_the_same_weights() -> None:
    ours, theirs = twins(2, [16, 16, 1])
    _copy_weights(ours, theirs)
    for x in INPUTS:
        # same arithmetic, but micrograd folds the neuron sum left to right while chainrule uses one
        # n-ary sum node (whose float sum may be compensated): equal to the last bits
        assert ours(x).data == pytest.approx(theirs(x).data, rel=1e-12, abs=1e-15)
        assert ours([Value(v) for v in x]).data == pytest.approx(theirs(x).data, rel=1e-12, abs=1e-15)


def test_gradients_match_micrograd_after_one_backward() -> None:
    # One backward on a fresh graph, where micrograd's gradients are right (a second one would double
    # count its intermediate nodes), on a loss over several samples that reuses every parameter.
    mg = need("micrograd.engine")
    ours, theirs = twins(2, [4, 4, 1])
    _copy_weights(ours, theirs)
    targets = [1.0, -1.0, 1.0, -1.0, 1.0]
    xs_ours = [[Value(v) for v in x] for x in INPUTS]
    xs_theirs = [[mg.Value(v) for v in x] for x in INPUTS]
    loss_ours = sum((ours(x) - t) ** 2 for x, t in zip(xs_ours, targets, strict=True)) * (1 / 5)
    loss_theirs = sum((theirs(x) - t) ** 2 for x, t in zip(xs_theirs, targets, strict=True)) * (1 / 5)
    ours.zero_grad()
    theirs.zero_grad()
    loss_ours.backward()
    loss_theirs.backward()
    assert loss_ours.data == pytest.approx(loss_theirs.data, rel=1e-12)
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert p.grad == pytest.approx(q.grad, rel=1e-12, abs=1e-15)
    for x, y in zip(xs_ours, xs_theirs, strict=True):  # and the inputs' gradients
        assert [v.grad for v in x] == pytest.approx([v.grad for v in y], rel=1e-12, abs=1e-15)
    assert any(p.grad != 0.0 for p in ours.parameters())


def test_training_steps_follow_micrograd() -> None:
    # micrograd's demo loop (SVM loss, L2 penalty, zero_grad, backward, SGD) in both: same losses.
    mg = need("micrograd.engine")
    ours, theirs = twins(2, [8, 8, 1], seed=3)
    labels = [1, -1, 1, -1, -1]
    history = []
    for k, (model, cls) in enumerate([(ours, Value), (theirs, mg.Value)] * 3):
        scores = [model([cls(v) for v in x]) for x in INPUTS]
        losses = [(1 + -yi * si).relu() for yi, si in zip(labels, scores, strict=True)]
        total = sum(losses) * (1.0 / len(losses)) + 1e-4 * sum(p * p for p in model.parameters())
        model.zero_grad()
        total.backward()
        for p in model.parameters():
            p.data -= (1.0 - 0.9 * (k // 2) / 100) * p.grad
        history.append(total.data)
    assert history[0::2] == pytest.approx(history[1::2], rel=1e-12)
    assert history[4] != history[0]  # the models did move


def test_zero_grad_clears_every_parameter() -> None:
    model = MLP(2, [3, 1])
    model([1.0, -2.0]).backward()
    assert any(p.grad != 0.0 for p in model.parameters())
    model.zero_grad()
    assert all(p.grad == 0.0 and type(p.grad) is float for p in model.parameters())


def test_neuron_output_is_relu_of_affine_unless_linear() -> None:
    n = Neuron(2)
    n.w[0].data, n.w[1].data, n.b.data = 2.0, -1.0, 0.5
    assert n([1.0, 4.0]).data == 0.0 and n([1.0, 1.0]).data == 1.5
    linear = Neuron(2, nonlin=False)
    linear.w[0].data, linear.w[1].data, linear.b.data = 2.0, -1.0, 0.5
    assert linear([1.0, 4.0]).data == -1.5
