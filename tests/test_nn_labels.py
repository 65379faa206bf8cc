"""chainrule.nn labels its parameters by position (L0.n1.w2, L0.n1.b), and a user's label wins."""

from __future__ import annotations

import json
import random
import re

import pytest

import chainrule
from chainrule import Value
from chainrule.drawing import to_dot
from chainrule.explorer import explore
from chainrule.nn import MLP, Layer, Neuron
from chainrule.optim import SGD


def test_a_neuron_labels_its_weights_and_bias() -> None:
    n = Neuron(3)
    assert [p.label for p in n.parameters()] == ["w0", "w1", "w2", "b"]


def test_a_layer_labels_each_neuron_by_its_place() -> None:
    layer = Layer(2, 3)
    assert [p.label for p in layer.neurons[2].parameters()] == ["n2.w0", "n2.w1", "n2.b"]


def test_an_mlp_labels_layer_neuron_and_weight() -> None:
    model = MLP(3, [4, 4, 1])
    labels = [p.label for p in model.parameters()]
    assert labels[:5] == ["L0.n0.w0", "L0.n0.w1", "L0.n0.w2", "L0.n0.b", "L0.n1.w0"]
    assert labels[-5:] == ["L2.n0.w0", "L2.n0.w1", "L2.n0.w2", "L2.n0.w3", "L2.n0.b"]
    assert len(set(labels)) == len(labels) == 41  # every parameter has its own name
    # the label is where the parameter lives: L1.n2.w3 is model.layers[1].neurons[2].w[3]
    for p in model.parameters():
        layer, neuron, kind = re.fullmatch(r"L(\d+)\.n(\d+)\.(w\d+|b)", p.label).groups()
        owner = model.layers[int(layer)].neurons[int(neuron)]
        assert (owner.b if kind == "b" else owner.w[int(kind[1:])]) is p


def test_labels_do_not_change_the_weights_or_the_random_sequence() -> None:
    # labelling draws nothing: the same seed gives micrograd's weights and leaves `random` where it was
    random.seed(5)
    model = MLP(2, [3, 1])
    after = random.random()
    random.seed(5)
    expected = [random.uniform(-1, 1) for _ in range(2)]
    assert [w.data for w in model.layers[0].neurons[0].w] == expected
    random.seed(5)
    [random.uniform(-1, 1) for _ in range(2 * 3 + 3)]
    assert random.random() == after


def test_drawings_and_pages_name_the_parameters() -> None:
    model = MLP(2, [2, 1])
    out = model([Value(0.5, label="x0"), Value(-1.0, label="x1")])
    out.label = "out"
    dot = to_dot(out, max_nodes=None)
    for p in model.parameters():
        assert f"{{ {p.label} |" in dot, p.label
    page = explore(out)
    assert {page.names[p] for p in model.parameters()} == {p.label for p in model.parameters()}
    # the page's chain rule names them too: dout/d(L0.n0.w0), where an unlabelled MLP said dout/dn3
    assert "dout/d(L0.n0.w0) = dout/dn" in page.html and "dout/d(L1.n0.b) = " in page.html


def test_error_messages_name_the_parameter_and_the_neuron() -> None:
    model = MLP(3, [2, 1])
    assert "label='L0.n1.b'" in repr(model.layers[0].neurons[1].b)
    with pytest.raises(ValueError, match=r"^ReLUNeuron\(3\) at L0\.n0 takes 3 inputs, got 2"):
        model([1.0, 2.0])
    with pytest.raises(ValueError, match=r"^LinearNeuron\(2\) at L1\.n0 takes 2 inputs, got 3"):
        model.layers[1]([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"^ReLUNeuron\(3\) takes 3 inputs, got 1"):  # on its own
        Neuron(3)([1.0])


def test_a_users_own_label_wins() -> None:
    model = MLP(2, [2, 1])
    gain = model.layers[0].neurons[0].w[0]
    gain.label = "gain"
    # training, zero_grad, load_state_dict and the drawings leave the user's label as it is
    opt = SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        loss = (model([1.0, -2.0]) - 1.0) ** 2
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.load_state_dict(model.state_dict())
    assert gain.label == "gain"
    assert "{ gain |" in to_dot(loss, max_nodes=None)
    assert explore(loss).names[gain] == "gain"
    assert model.layers[0].neurons[0].w[1].label == "L0.n0.w1"  # the others keep their places


def test_labels_are_not_saved_and_come_back_by_position(tmp_path) -> None:
    model = MLP(2, [3, 1], activation="tanh")
    model.layers[0].neurons[0].b.label = "mine"
    path = chainrule.save(model, tmp_path / "m.json")
    assert "L0.n0" not in path.read_text() and "mine" not in path.read_text()
    assert list(json.loads(path.read_text())["parameters"])[0] == "layers.0.neurons.0.w"
    loaded = chainrule.load(path)
    assert [p.label for p in loaded.parameters()][:4] == ["L0.n0.w0", "L0.n0.w1", "L0.n0.b", "L0.n1.w0"]


def test_label_parameters_relabels_with_a_prefix() -> None:
    model = MLP(2, [1])
    model.label_parameters("encoder.")
    assert [p.label for p in model.parameters()] == [
        "encoder.L0.n0.w0",
        "encoder.L0.n0.w1",
        "encoder.L0.n0.b",
    ]
