"""Optimizers (`SGD`, `Adam`, `AdamW`) and learning-rate schedules, used as in PyTorch.

    opt = chainrule.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(100):
        loss = ...
        opt.zero_grad()
        loss.backward()
        opt.step()

The update rules are PyTorch's (the tests compare them step by step with `torch.optim`). A learning
rate is a number or a schedule: any callable that maps the step index (0 for the first `step()`) to
a learning rate, e.g. `lambda k: 1.0 - 0.9 * k / 100` (micrograd's demo) or `linear(1.0, 0.1, 100)`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

from .engine import Value

Schedule = Callable[[int], float]
LearningRate = float | Schedule

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "constant", "cosine", "exponential", "linear"]


def _check_number(owner: str, name: str, x: Any, low: float = 0.0, high: float = math.inf) -> float:
    """x as a float if it is a real number in [low, high), else a ValueError naming the setting."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not low <= x < high:
        bound = f"[{low}, {high})" if high != math.inf else f">= {low}"
        raise ValueError(f"{owner}: {name} must be a number {bound}, got {x!r}")
    return float(x)


class Optimizer:
    """The common part of every optimizer: the parameter list, the step count and the learning rate."""

    def __init__(self, params: Iterable[Value] | Any, lr: LearningRate) -> None:
        name = type(self).__name__
        if hasattr(params, "parameters"):  # a Module given directly: take its parameters
            params = params.parameters()
        self.params: list[Value] = list(params)
        if not self.params:
            raise ValueError(f"{name}: got an empty parameter list")
        for p in self.params:
            if not isinstance(p, Value):
                raise TypeError(f"{name}: parameters must be Values, got {type(p).__name__}: {p!r}")
        if not callable(lr):
            _check_number(name, "lr", lr)
        self._lr = lr
        self.steps = 0  # how many times step() has run

    @property
    def lr(self) -> float:
        """The learning rate the next `step()` will use (the schedule's value at this step)."""
        if not callable(self._lr):
            return float(self._lr)
        return _check_number(type(self).__name__, f"lr at step {self.steps}", self._lr(self.steps))

    @lr.setter
    def lr(self, value: LearningRate) -> None:
        if not callable(value):
            _check_number(type(self).__name__, "lr", value)
        self._lr = value

    def zero_grad(self) -> None:
        """Set every parameter's gradient to 0.0 (call it before each backward pass)."""
        for p in self.params:
            p.grad = 0.0

    def step(self) -> None:
        """Update every parameter from its `.grad`, then count the step."""
        lr = self.lr
        for i, p in enumerate(self.params):
            if p.requires_grad:
                p.data -= self._update(i, p.data, float(p.grad), lr)
        self.steps += 1

    def _update(self, i: int, x: float, g: float, lr: float) -> float:
        """How much to subtract from parameter `i` (value `x`, gradient `g`)."""
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay."""

    def __init__(
        self,
        params: Iterable[Value] | Any,
        lr: LearningRate = 0.01,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, lr)
        self.momentum = _check_number("SGD", "momentum", momentum)
        self.weight_decay = _check_number("SGD", "weight_decay", weight_decay)
        self.dampening = _check_number("SGD", "dampening", dampening, high=1.0 + 1e-12)
        if nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError("SGD: nesterov momentum needs momentum > 0 and dampening = 0")
        self.nesterov = nesterov
        self.buffers: list[float | None] = [None] * len(self.params)

    def _update(self, i: int, x: float, g: float, lr: float) -> float:
        if self.weight_decay:
            g += self.weight_decay * x
        if self.momentum:
            buf = self.buffers[i]
            # PyTorch starts the buffer at the first gradient itself (no dampening on step one).
            buf = g if buf is None else self.momentum * buf + (1.0 - self.dampening) * g
            self.buffers[i] = buf
            g = g + self.momentum * buf if self.nesterov else buf
        return lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba), with PyTorch's bias correction; `weight_decay` is added to the gradient."""

    _decoupled = False

    def __init__(
        self,
        params: Iterable[Value] | Any,
        lr: LearningRate = 0.001,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        name = type(self).__name__
        if not isinstance(betas, tuple | list) or len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair of numbers in [0, 1), got {betas!r}")
        self.betas = (
            _check_number(name, "betas[0]", betas[0], high=1.0),
            _check_number(name, "betas[1]", betas[1], high=1.0),
        )
        self.eps = _check_number(name, "eps", eps)
        self.weight_decay = _check_number(name, "weight_decay", weight_decay)
        self.m = [0.0] * len(self.params)  # running mean of the gradient
        self.v = [0.0] * len(self.params)  # running mean of its square

    def step(self) -> None:
        """Update every parameter from its `.grad`, then count the step."""
        # The bias corrections depend only on the step number: compute them once per step.
        t = self.steps + 1
        self._c1 = 1.0 - self.betas[0] ** t
        self._c2_sqrt = math.sqrt(1.0 - self.betas[1] ** t)
        super().step()

    def _update(self, i: int, x: float, g: float, lr: float) -> float:
        b1, b2 = self.betas
        decay = 0.0
        if self.weight_decay:
            if self._decoupled:
                decay = lr * self.weight_decay * x
            else:
                g += self.weight_decay * x
        m = self.m[i] = b1 * self.m[i] + (1.0 - b1) * g
        v = self.v[i] = b2 * self.v[i] + (1.0 - b2) * g * g
        return decay + (lr / self._c1) * m / (math.sqrt(v) / self._c2_sqrt + self.eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): parameters shrink by lr * weight_decay."""

    _decoupled = True

    def __init__(
        self,
        params: Iterable[Value] | Any,
        lr: LearningRate = 0.001,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)


# --- learning-rate schedules: plain callables step -> lr ------------------------------------------
def constant(lr: float) -> Schedule:
    """The same learning rate at every step."""
    return lambda step: lr


def linear(start: float, end: float, steps: int) -> Schedule:
    """From `start` at step 0 towards `end` at step `steps` in equal decrements, then `end`."""
    return lambda step: start + (end - start) * min(step, steps) / steps


def exponential(start: float, gamma: float) -> Schedule:
    """`start * gamma ** step`: multiply the learning rate by `gamma` after every step."""
    return lambda step: start * gamma**step


def cosine(start: float, end: float, steps: int) -> Schedule:
    """Cosine annealing from `start` at step 0 to `end` at step `steps`, then `end`."""
    return lambda step: end + (start - end) * (1 + math.cos(math.pi * min(step, steps) / steps)) / 2
