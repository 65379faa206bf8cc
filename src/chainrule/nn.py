"""Neural networks on the scalar engine, with micrograd's public API: Module, Neuron, Layer, MLP.

Beyond micrograd: `activation="tanh"` (the lecture's neurons; ReLU stays the default), parameters
labelled by position (`L0.n1.w2`, `L0.n1.b`: the drawings and pages name them),
`state_dict()` / `load_state_dict()` (as in PyTorch; `chainrule.save` and
`chainrule.load` write them to JSON files), `config()` (the arguments that rebuild a module), and the
losses of `chainrule.losses`, re-exported here.
"""

from __future__ import annotations

import math
import numbers
import random
from collections.abc import Mapping, Sequence
from operator import mul
from typing import Any

from .engine import Value, zero_gradients
from .engine import sum as value_sum
from .losses import (  # noqa: F401 - re-exported: chainrule.nn.mse_loss etc.
    bce_with_logits,
    binary_cross_entropy_with_logits,
    cross_entropy,
    hinge_loss,
    l2_regularization,
    mse_loss,
    svm_loss,
)

# A state_dict maps a parameter's dotted name to its number, or a list of numbers for a list of
# parameters (a neuron's weights): {"layers.0.neurons.0.w": [0.1, -0.4], "layers.0.neurons.0.b": 0.0}.
StateDict = dict[str, float | list[float]]


class Module:
    """Something with parameters: `parameters()` lists them, `zero_grad()` clears their grads."""

    def zero_grad(self) -> None:
        """Set the gradient of every parameter to 0.0 (do this before each backward pass)."""
        zero_gradients(self.parameters())

    def parameters(self) -> list[Value]:
        """Every trainable Value of this module, in a fixed order."""
        return []

    def named_parameters(self) -> list[tuple[str, Value | list[Value]]]:
        """The parameters grouped and named by the attributes that hold them, as in `state_dict()`.

        Found by walking the module's attributes (Values, lists of Values, sub-modules and lists of
        them). A module whose attributes do not account for exactly `parameters()`, in order, gets
        one group named "parameters" instead, so every module can be saved and loaded.
        """
        groups = list(_walk_attributes(self, ""))
        flat = [v for _, group in groups for v in (group if isinstance(group, list) else [group])]
        params = self.parameters()
        if len(flat) != len(params) or any(a is not b for a, b in zip(flat, params, strict=True)):
            return [("parameters", params)]
        return groups

    def state_dict(self) -> StateDict:
        """The parameters' values by name: a plain dict of floats (and lists of floats), a copy."""
        return {
            name: [v.data for v in group] if isinstance(group, list) else group.data
            for name, group in self.named_parameters()
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Set the parameters from a `state_dict()`, checking all of it first: a bad dict changes nothing."""
        name = type(self).__name__
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict: expected a dict of parameters, got {type(state).__name__}")
        groups = self.named_parameters()
        known = {key for key, _ in groups}  # built once: a check per key stays O(1), the load linear
        missing = [key for key, _ in groups if key not in state]
        unexpected = [key for key in state if key not in known]
        if missing or unexpected:
            raise ValueError(
                f"load_state_dict: the dict does not fit this {name}: "
                f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}, "
                f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}"
            )
        updates: list[tuple[Value, float]] = []
        for key, group in groups:
            value = state[key]
            if isinstance(group, list):
                if not isinstance(value, list | tuple) or len(value) != len(group):
                    size = len(value) if isinstance(value, list | tuple) else type(value).__name__
                    raise ValueError(
                        f"load_state_dict: {key!r} must be a list of {len(group)} numbers, got {size}"
                    )
                updates += [
                    (p, _finite(f"{key}[{i}]", x)) for i, (p, x) in enumerate(zip(group, value, strict=True))
                ]
            else:
                updates.append((group, _finite(key, value)))
        for p, x in updates:  # only now that everything checked out
            p.data = x

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this module's architecture (for `chainrule.save`)."""
        raise NotImplementedError(f"{type(self).__name__} does not define config(), so it cannot be saved")


def _walk_attributes(obj: Module, prefix: str) -> Any:
    """(dotted name, Value or list of Values) for the parameters held in obj's attributes, in order."""
    for attr, value in vars(obj).items():
        name = f"{prefix}{attr}"
        if isinstance(value, Value):
            yield name, value
        elif isinstance(value, Module):
            yield from _walk_attributes(value, f"{name}.")
        elif isinstance(value, list | tuple) and value:
            if all(isinstance(v, Value) for v in value):
                yield name, list(value)
            elif all(isinstance(v, Module) for v in value):
                for i, sub in enumerate(value):
                    yield from _walk_attributes(sub, f"{name}.{i}.")


def _finite(key: str, x: Any) -> float:
    """x as a float if it is a finite real number (not a bool, a string or a list)."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"load_state_dict: {key!r} must be a number, got {type(x).__name__}: {x!r:.60}")
    try:
        value = float(x)
    except OverflowError:  # a huge JSON integer
        raise ValueError(f"load_state_dict: {key!r} is too large for a float") from None
    if not math.isfinite(value):
        raise ValueError(f"load_state_dict: {key!r} must be finite, got {value!r}")
    return value


# The activations a hidden neuron may apply: micrograd's ReLU (the default) or the lecture's tanh.
ACTIVATIONS = ("relu", "tanh")
_REPR_NAMES = {"relu": "ReLU", "tanh": "Tanh"}


def check_activation(owner: str, activation: Any) -> str:
    """`activation` if it is one of ACTIVATIONS, else a ValueError naming it and what is allowed."""
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(
            f"{owner}: unknown activation {activation!r}; expected 'relu' (micrograd's default) "
            "or 'tanh' (the lecture's)"
        )
    return activation


class Neuron(Module):
    """w . x + b, followed by the activation (ReLU, or tanh with `activation="tanh"`) unless `nonlin=False`.

    Its parameters are labelled `w0`, `w1`, ... and `b`; inside a Layer or an MLP the label says
    where the neuron is (`L0.n1.w2`). A label you set yourself afterwards stays.
    """

    def __init__(self, nin: int, nonlin: bool = True, *, activation: str = "relu") -> None:
        self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0.0)
        self.nonlin = nonlin
        self.activation = check_activation("Neuron", activation)
        self.position = ""  # where a Layer or an MLP put this neuron ("L0.n1"), for error messages
        self.label_parameters()

    def label_parameters(self, prefix: str = "") -> None:
        """Label the weights `{prefix}w0`, `{prefix}w1`, ... and the bias `{prefix}b`.

        Called when the neuron is built (by its Layer, with the neuron's place as the prefix); the
        labels are plain `.label`s, so the graph's drawings and pages show them.
        """
        self.position = prefix.rstrip(".")
        for i, w in enumerate(self.w):
            w.label = f"{prefix}w{i}"
        self.b.label = f"{prefix}b"

    def __call__(self, x: Sequence[Any]) -> Value:
        if len(x) != len(self.w):
            where = f" at {self.position}" if self.position else ""
            raise ValueError(f"{self!r}{where} takes {len(self.w)} inputs, got {len(x)}: {list(x)!r}")
        # One n-ary sum node instead of a chain of nin additions: a shallower, cheaper graph.
        # `map(mul, ...)` makes the products from C, without a generator frame per neuron.
        act = value_sum([self.b, *map(mul, self.w, x)])
        if not self.nonlin:
            return act
        return act.relu() if self.activation == "relu" else act.tanh()

    def parameters(self) -> list[Value]:
        return [*self.w, self.b]

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"nin": len(self.w), "nonlin": self.nonlin}
        if self.activation != "relu":  # the default is left out: older files and readers stay valid
            config["activation"] = self.activation
        return config

    def __repr__(self) -> str:
        kind = _REPR_NAMES[self.activation] if self.nonlin else "Linear"
        return f"{kind}Neuron({len(self.w)})"


class Layer(Module):
    """`nout` neurons that all read the same `nin` inputs (`**kwargs` go to each Neuron)."""

    def __init__(self, nin: int, nout: int, **kwargs: Any) -> None:
        check_activation("Layer", kwargs.get("activation", "relu"))  # named as the Layer's error
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]
        self.label_parameters()

    def label_parameters(self, prefix: str = "") -> None:
        """Label neuron j's parameters `{prefix}n{j}.w0`, ..., `{prefix}n{j}.b`."""
        for j, neuron in enumerate(self.neurons):
            neuron.label_parameters(f"{prefix}n{j}.")

    def __call__(self, x: Sequence[Any]) -> Value | list[Value]:
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self) -> list[Value]:
        return [p for n in self.neurons for p in n.parameters()]

    def config(self) -> dict[str, Any]:
        first = self.neurons[0]
        config: dict[str, Any] = {"nin": len(first.w), "nout": len(self.neurons), "nonlin": first.nonlin}
        if first.activation != "relu":
            config["activation"] = first.activation
        return config

    def __repr__(self) -> str:
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """A multi-layer perceptron: layers of the sizes `nouts`, ReLU or tanh, the last one linear.

    Parameters are labelled by position: `L{layer}.n{neuron}.w{input}` and `L{layer}.n{neuron}.b`,
    counted from 0 (`L0.n1.w2` is `model.layers[0].neurons[1].w[2]`).
    """

    def __init__(self, nin: int, nouts: Sequence[int], *, activation: str = "relu") -> None:
        check_activation("MLP", activation)
        sizes = [nin, *nouts]
        self.layers = [
            Layer(sizes[i], sizes[i + 1], nonlin=i != len(nouts) - 1, activation=activation)
            for i in range(len(nouts))
        ]
        self.activation = activation
        self.label_parameters()

    def label_parameters(self, prefix: str = "") -> None:
        """Label every parameter by its place: `{prefix}L{i}.n{j}.w{k}` and `{prefix}L{i}.n{j}.b`."""
        for i, layer in enumerate(self.layers):
            layer.label_parameters(f"{prefix}L{i}.")

    def __call__(self, x: Sequence[Any]) -> Any:
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "nin": len(self.layers[0].neurons[0].w),
            "nouts": [len(layer.neurons) for layer in self.layers],
        }
        if self.activation != "relu":
            config["activation"] = self.activation
        return config

    def __repr__(self) -> str:
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
