"""Neural networks on the scalar engine, with micrograd's public API: Module, Neuron, Layer, MLP."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from .engine import Value
from .engine import sum as value_sum


class Module:
    """Something with parameters: `parameters()` lists them, `zero_grad()` clears their grads."""

    def zero_grad(self) -> None:
        """Set the gradient of every parameter to 0.0 (do this before each backward pass)."""
        for p in self.parameters():
            p.grad = 0.0

    def parameters(self) -> list[Value]:
        """Every trainable Value of this module, in a fixed order."""
        return []


class Neuron(Module):
    """w . x + b, followed by ReLU unless `nonlin=False`."""

    def __init__(self, nin: int, nonlin: bool = True) -> None:
        self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0.0)
        self.nonlin = nonlin

    def __call__(self, x: Sequence[Any]) -> Value:
        # One n-ary sum node instead of a chain of nin additions: a shallower, cheaper graph.
        act = value_sum([self.b, *(wi * xi for wi, xi in zip(self.w, x, strict=True))])
        return act.relu() if self.nonlin else act

    def parameters(self) -> list[Value]:
        return [*self.w, self.b]

    def __repr__(self) -> str:
        return f"{'ReLU' if self.nonlin else 'Linear'}Neuron({len(self.w)})"


class Layer(Module):
    """`nout` neurons that all read the same `nin` inputs."""

    def __init__(self, nin: int, nout: int, **kwargs: Any) -> None:
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x: Sequence[Any]) -> Value | list[Value]:
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self) -> list[Value]:
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self) -> str:
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """A multi-layer perceptron: ReLU layers of the sizes `nouts`, the last one linear."""

    def __init__(self, nin: int, nouts: Sequence[int]) -> None:
        sizes = [nin, *nouts]
        self.layers = [
            Layer(sizes[i], sizes[i + 1], nonlin=i != len(nouts) - 1) for i in range(len(nouts))
        ]

    def __call__(self, x: Sequence[Any]) -> Any:
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self) -> str:
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
