"""`activation="relu"` (micrograd's) or `activation="tanh"` (the lecture's), and the lecture's network."""

from __future__ import annotations

import math
import random

import pytest

import chainrule
from chainrule import Value
from chainrule.nn import MLP, Layer, Neuron

# Karpathy's micrograd lecture: four samples, three inputs, targets +-1, MLP(3, [4, 4, 1]).
XS = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
YS = [1.0, -1.0, -1.0, 1.0]


def lecture_training(seed: int, activation: str, steps: int, lr: float = 0.05) -> list[float]:
    """The lecture's loop (squared error summed over the samples, zero_grad, backward, SGD); the losses."""
    random.seed(seed)
    model = MLP(3, [4, 4, 1], activation=activation)
    losses = []
    for _ in range(steps):
        loss = sum((model(x) - y) ** 2 for x, y in zip(XS, YS, strict=True))
        losses.append(loss.data)
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data -= lr * p.grad
    return losses


def test_the_lectures_network_trains_to_a_small_loss_with_tanh() -> None:
    losses = lecture_training(seed=1, activation="tanh", steps=20)
    assert losses[0] > 1.0  # it starts far off
    assert losses[-1] < 0.01


@pytest.mark.parametrize("seed", range(10))
def test_tanh_trains_the_lectures_data_from_every_seed(seed: int) -> None:
    # with ReLU, 4 of these 10 seeds end at a constant output (loss exactly 4.0): dead units
    assert lecture_training(seed, "tanh", steps=50)[-1] < 0.01


def test_tanh_neuron_by_hand() -> None:
    n = Neuron(2, activation="tanh")
    n.w[0].data, n.w[1].data, n.b.data = 2.0, -1.0, 0.5
    x = [Value(1.0), Value(4.0)]
    out = n(x)
    assert out.data == pytest.approx(math.tanh(-1.5), rel=1e-15)
    out.backward()
    slope = 1 - math.tanh(-1.5) ** 2
    assert [w.grad for w in n.w] == pytest.approx([slope * 1.0, slope * 4.0], rel=1e-12)
    assert n.b.grad == pytest.approx(slope, rel=1e-12)
    assert x[0].grad == pytest.approx(slope * 2.0, rel=1e-12)


def test_relu_stays_the_default_and_nonlin_false_means_none() -> None:
    assert Neuron(2).activation == "relu" and repr(Neuron(2)) == "ReLUNeuron(2)"
    assert repr(Neuron(2, activation="tanh")) == "TanhNeuron(2)"
    linear = Neuron(2, nonlin=False, activation="tanh")
    linear.w[0].data, linear.w[1].data, linear.b.data = 2.0, -1.0, 0.5
    assert linear([1.0, 4.0]).data == -1.5 and repr(linear) == "LinearNeuron(2)"
    assert repr(Layer(2, 2, activation="tanh")) == "Layer of [TanhNeuron(2), TanhNeuron(2)]"


def test_the_last_layer_of_an_mlp_stays_linear() -> None:
    model = MLP(3, [4, 4, 1], activation="tanh")
    assert repr(model) == (
        "MLP of [Layer of [TanhNeuron(3), TanhNeuron(3), TanhNeuron(3), TanhNeuron(3)], "
        "Layer of [TanhNeuron(4), TanhNeuron(4), TanhNeuron(4), TanhNeuron(4)], Layer of [LinearNeuron(4)]]"
    )
    for p in model.parameters():
        p.data = 3.0  # big weights: a tanh output layer could not pass 1.0
    assert model([1.0, 1.0, 1.0]).data > 1.0


def test_the_same_seed_draws_the_same_weights_for_both_activations() -> None:
    random.seed(3)
    relu = MLP(2, [3, 1])
    random.seed(3)
    tanh = MLP(2, [3, 1], activation="tanh")
    assert [p.data for p in relu.parameters()] == [p.data for p in tanh.parameters()]


@pytest.mark.parametrize(
    "make",
    [
        lambda: Neuron(2, activation="sigmoid"),
        lambda: Layer(2, 2, activation="sigmoid"),
        lambda: MLP(2, [2, 1], activation="sigmoid"),
    ],
)
def test_an_unknown_activation_is_a_clear_error(make) -> None:
    with pytest.raises(
        ValueError, match=r"^(Neuron|Layer|MLP): unknown activation 'sigmoid'; expected 'relu' "
    ):
        make()
    with pytest.raises(ValueError, match=r"^Layer: unknown activation"):
        Layer(2, 2, activation="sigmoid")


def test_the_activation_is_a_keyword() -> None:
    with pytest.raises(TypeError):
        Neuron(2, True, "tanh")  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"^MLP: unknown activation 'TANH'"):
        MLP(2, [1], activation="TANH")


@pytest.mark.parametrize(
    "make",
    [
        lambda: MLP(3, [4, 4, 1], activation="tanh"),
        lambda: Layer(2, 3, activation="tanh"),
        lambda: Neuron(5, activation="tanh"),
    ],
)
def test_saving_and_loading_keep_the_activation(tmp_path, make) -> None:
    module = make()
    assert module.config()["activation"] == "tanh"
    loaded = chainrule.load(chainrule.save(module, tmp_path / "m.json"))
    assert repr(loaded) == repr(module) and loaded.config() == module.config()
    x = [0.3 * (i + 1) for i in range(module.config()["nin"])]
    assert _data(loaded(x)) == _data(module(x))


def _data(out) -> list[float]:
    return [o.data for o in out] if isinstance(out, list) else [out.data]


def test_a_trained_lecture_network_survives_a_round_trip(tmp_path) -> None:
    random.seed(1)
    model = MLP(3, [4, 4, 1], activation="tanh")
    for _ in range(20):
        loss = sum((model(x) - y) ** 2 for x, y in zip(XS, YS, strict=True))
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data -= 0.05 * p.grad
    loaded = chainrule.load(chainrule.save(model, tmp_path / "lecture.json"))
    assert [loaded(x).data for x in XS] == [model(x).data for x in XS]
    assert sum((loaded(x).data - y) ** 2 for x, y in zip(XS, YS, strict=True)) < 0.01


def _file(module: str, config: dict) -> dict:
    """A model file's dict for a fresh module of that type and config (parameters included)."""
    cls = {"MLP": MLP, "Layer": Layer, "Neuron": Neuron}[module]
    return chainrule.serialize.to_dict(cls(**config))


@pytest.mark.parametrize("module", ["MLP", "Layer", "Neuron"])
@pytest.mark.parametrize(
    ("value", "words"),
    [("sigmoid", "got 'sigmoid'"), (["tanh"], "got ['tanh']"), (None, "got None"), (1, "got 1")],
)
def test_a_file_with_an_unknown_activation_is_refused(module, value, words) -> None:
    config = {"MLP": {"nin": 2, "nouts": [2, 1]}, "Layer": {"nin": 2, "nout": 2}, "Neuron": {"nin": 2}}[
        module
    ]
    data = _file(module, config)
    data["config"]["activation"] = value
    with pytest.raises(chainrule.serialize.ModelFileError) as info:
        chainrule.serialize.from_dict(data)
    assert str(info.value) == f"{module} config: 'activation' must be one of ['relu', 'tanh'], {words}"


def test_files_without_an_activation_are_relu_and_relu_files_do_not_name_it(tmp_path) -> None:
    # files written before tanh existed hold no "activation": they still load, as ReLU models
    data = _file("MLP", {"nin": 2, "nouts": [3, 1]})
    assert data["config"] == {"nin": 2, "nouts": [3, 1]}
    assert repr(chainrule.serialize.from_dict(data)).startswith("MLP of [Layer of [ReLUNeuron(2)")
    data["config"]["activation"] = "relu"  # naming the default is fine too
    assert chainrule.serialize.from_dict(data).config() == {"nin": 2, "nouts": [3, 1]}
    tanh = _file("MLP", {"nin": 2, "nouts": [3, 1], "activation": "tanh"})
    assert tanh["config"] == {"nin": 2, "nouts": [3, 1], "activation": "tanh"}


def test_relu_often_dies_on_the_lectures_data() -> None:
    # why the lecture's tanh matters here (docs/training.md and notebook 03 say so): with ReLU, 4 of
    # these 10 seeds end with every hidden unit off: the output stuck at 0, the loss 4.0 (to rounding)
    finals = [lecture_training(seed, "relu", steps=50)[-1] for seed in range(10)]
    assert sum(loss == pytest.approx(4.0, abs=1e-12) for loss in finals) == 4
