"""Optimizers (`SGD`, `Adam`, `AdamW`) and learning-rate schedules, used as in PyTorch.

    opt = chainrule.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(100):
        loss = ...
        opt.zero_grad()
        loss.backward()
        opt.step()

or, for training at scale, on a 1-d numpy parameter array updated in place (see
`Program.loss_and_grad`):

    opt = chainrule.optim.Adam(theta, lr=1e-3)
    loss, dtheta = program.loss_and_grad(theta, *batch)
    opt.step(dtheta)

The update rules are PyTorch's (the tests compare them step by step with `torch.optim`). A learning
rate is a number or a schedule: any callable that maps the step index (0 for the first `step()`) to
a learning rate, e.g. `lambda k: 1.0 - 0.9 * k / 100` (micrograd's demo) or `linear(1.0, 0.1, 100)`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

from .engine import Value, zero_gradients

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
    """The common part of every optimizer: what it updates, the step count and the learning rate.

    It updates either parameter `Value`s (from their `.grad`, by `step()`), or a 1-d float64 numpy
    array in place (from a gradient array of the same shape, by `step(dtheta)`): the array form
    runs each update rule once on whole arrays, with the same numbers as the per-Value form.
    """

    def __init__(self, params: Iterable[Value] | Any, lr: LearningRate) -> None:
        name = type(self).__name__
        if hasattr(params, "parameters"):  # a Module given directly: take its parameters
            params = params.parameters()
        self.theta: Any = _parameter_array(name, params)  # the array updated in place, or None
        if self.theta is not None:
            self.params: list[Value] = []
        else:
            # each parameter once, however often it is listed (a weight shared between layers):
            # updating it twice per step would apply its gradient twice
            self.params = list(dict.fromkeys(params))
            if not self.params:
                raise ValueError(f"{name}: got an empty parameter list")
            for p in self.params:
                if not isinstance(p, Value):
                    raise TypeError(f"{name}: parameters must be Values, got {type(p).__name__}: {p!r:.80}")
        if not callable(lr):
            _check_number(name, "lr", lr)
        self._lr = lr
        self.steps = 0  # how many times step() has run
        self._states: list[Any] = [self._initial_state()] * len(self.params)
        self._array_state: Any = self._initial_state(self.theta) if self.theta is not None else None

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
        """Set every parameter's gradient to 0.0 (call it before each backward pass); nothing to do
        for an optimizer on a parameter array, whose gradient is passed to `step`."""
        zero_gradients(self.params)

    def step(self, dtheta: Any = None) -> None:
        """Update the parameters, then count the step: parameter Values from their `.grad`
        (`step()`), or the parameter array from the gradient array `dtheta` (`step(dtheta)`)."""
        name = type(self).__name__
        lr = self.lr
        self._begin_step()
        if self.theta is None:
            if dtheta is not None:
                raise TypeError(
                    f"{name}.step: this optimizer updates Values from their .grad, so it takes no "
                    f"gradient array (make it on a parameter array to pass one: {name}(theta, lr=...))"
                )
            for i, p in enumerate(self.params):
                if p.requires_grad:
                    delta, self._states[i] = self._update(p.data, float(p.grad), lr, self._states[i], math)
                    p.data -= delta
        else:
            g = _check_gradient(name, self.theta, dtheta)
            import numpy as np

            delta, self._array_state = self._update(self.theta, g, lr, self._array_state, np)
            self.theta -= delta
        self.steps += 1

    # --- what each optimizer defines -------------------------------------------------------------
    def _initial_state(self, theta: Any = None) -> Any:
        """The per-parameter state before the first step (for the array form, `theta` gives the shape)."""
        return None

    def _begin_step(self) -> None:
        """Whatever depends only on the step number, computed once per step."""

    def _update(self, x: Any, g: Any, lr: float, state: Any, m: Any) -> tuple[Any, Any]:
        """`(how much to subtract from x, the new state)` for parameter value(s) `x` with gradient `g`.

        Written once for both forms: `x`, `g` and the state are floats or numpy arrays alike, and `m`
        (`math` or `numpy`) supplies `sqrt`."""
        raise NotImplementedError


def _parameter_array(owner: str, params: Any) -> Any:
    """`params` if it is a numpy parameter array (checked), None if it is something else (Values)."""
    if isinstance(params, list | tuple) or not (hasattr(params, "__array__") and hasattr(params, "ndim")):
        return None
    import numpy as np

    if not isinstance(params, np.ndarray):
        raise TypeError(f"{owner}: a parameter array must be a numpy array, got {type(params).__name__}")
    if params.ndim != 1 or params.dtype != np.float64:
        raise ValueError(
            f"{owner}: a parameter array must be 1-d float64 (it is updated in place), "
            f"got shape {params.shape} and dtype {params.dtype}"
        )
    if params.size == 0:
        raise ValueError(f"{owner}: got an empty parameter array")
    if not params.flags.writeable:
        raise ValueError(f"{owner}: the parameter array is read-only; it is updated in place")
    return params


def _check_gradient(owner: str, theta: Any, dtheta: Any) -> Any:
    """`dtheta` as a float64 array of theta's shape, or a clear error."""
    import numpy as np

    if dtheta is None:
        raise TypeError(
            f"{owner}.step: this optimizer updates a parameter array: pass its gradient, step(dtheta)"
        )
    g = np.asarray(dtheta)
    if g.dtype.kind not in "biuf":
        raise TypeError(f"{owner}.step: dtheta must hold real numbers, got an array of dtype {g.dtype}")
    if g.shape != theta.shape:
        raise ValueError(
            f"{owner}.step: dtheta must have the parameter array's shape {theta.shape}, got {g.shape}"
        )
    return g.astype(np.float64, copy=False)


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
        self.momentum = _check_number("SGD", "momentum", momentum)
        self.weight_decay = _check_number("SGD", "weight_decay", weight_decay)
        self.dampening = _check_number("SGD", "dampening", dampening, high=1.0 + 1e-12)
        if nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError("SGD: nesterov momentum needs momentum > 0 and dampening = 0")
        self.nesterov = nesterov
        super().__init__(params, lr)

    def _update(self, x: Any, g: Any, lr: float, state: Any, m: Any) -> tuple[Any, Any]:
        if self.weight_decay:
            g = g + self.weight_decay * x
        if self.momentum:
            # PyTorch starts the buffer at the first gradient itself (no dampening on step one).
            state = g if state is None else self.momentum * state + (1.0 - self.dampening) * g
            g = g + self.momentum * state if self.nesterov else state
        return lr * g, state


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
        name = type(self).__name__
        if not isinstance(betas, tuple | list) or len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair of numbers in [0, 1), got {betas!r}")
        self.betas = (
            _check_number(name, "betas[0]", betas[0], high=1.0),
            _check_number(name, "betas[1]", betas[1], high=1.0),
        )
        self.eps = _check_number(name, "eps", eps)
        if self.eps == 0.0:  # the update divides by sqrt(v) + eps, and v is 0 where the gradient is
            raise ValueError(
                f"{name}: eps must be a number > 0 (the update divides by sqrt(v) + eps), got {eps!r}"
            )
        self.weight_decay = _check_number(name, "weight_decay", weight_decay)
        super().__init__(params, lr)

    def _initial_state(self, theta: Any = None) -> Any:
        if theta is None:
            return (0.0, 0.0)  # running means of the gradient and of its square
        import numpy as np

        return (np.zeros_like(theta), np.zeros_like(theta))

    def _begin_step(self) -> None:
        # The bias corrections depend only on the step number: compute them once per step.
        t = self.steps + 1
        self._c1 = 1.0 - self.betas[0] ** t
        self._c2_sqrt = math.sqrt(1.0 - self.betas[1] ** t)

    def _update(self, x: Any, g: Any, lr: float, state: Any, m: Any) -> tuple[Any, Any]:
        b1, b2 = self.betas
        decay = 0.0
        if self.weight_decay:
            if self._decoupled:
                decay = lr * self.weight_decay * x
            else:
                g = g + self.weight_decay * x
        mean, square = state
        mean = b1 * mean + (1.0 - b1) * g
        square = b2 * square + (1.0 - b2) * g * g
        return decay + (lr / self._c1) * mean / (m.sqrt(square) / self._c2_sqrt + self.eps), (mean, square)


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
