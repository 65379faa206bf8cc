"""The number systems that the derivative table's rules run on.

Every rule in `chainrule.ops` is written once, as a function of a namespace `m` plus its operands.
Arithmetic (`+ - * / **`) works the same on floats, `Value`s and numpy arrays; everything else a
rule needs (`m.exp`, `m.cos`, `m.step`, ...) comes from `m`. This module provides three `m`s:

- `FLOAT`: plain Python floats, for the eager engine's forward pass and first-order backward.
- `VALUE`: `Value`s, so that a backward pass builds a graph that can be differentiated again.
- `numpy_backend()`: numpy arrays, for compiled programs running whole batches at once.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any


# --- floats -------------------------------------------------------------------------------------
def _exp(x: float) -> float:
    # math.exp raises OverflowError past ~709; IEEE arithmetic (and PyTorch) say inf.
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _sigmoid(x: float) -> float:
    # Two branches so that exp() is only ever taken of a non-positive number: no overflow.
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _softplus(x: float) -> float:
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): exact for large |x|, no overflow.
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _relu(x: float) -> float:
    # Written so that a NaN input stays NaN (max-style code would turn it into 0).
    return 0.0 if x < 0.0 else x


def _step(x: float) -> float:
    # relu's slope: 0 up to and at 0, 1 above, and 1 at NaN, as PyTorch's relu backward gives it
    # (it zeroes the gradient only where the output is <= 0, and NaN <= 0 is false).
    return 0.0 if x <= 0.0 else 1.0


def _sign(x: float) -> float:
    return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)


def _is_fractional(x: float) -> bool:
    # A finite non-integer. NaN and inf are not "fractional": they propagate instead of raising.
    return math.isfinite(x) and not x.is_integer()


def _pow(a: float, b: float) -> float:
    try:
        return a**b
    except OverflowError:  # IEEE (and PyTorch) say inf, with the sign of an odd power
        return -math.inf if a < 0 and b % 2 == 1 else math.inf


def _power_rule(a: float, b: float) -> float:
    # d(a**b)/da = b * a**(b-1). For b == 0, a**b is the constant 1 even at a == 0, where the formula
    # would be 0 * inf: the slope is 0 (PyTorch agrees), so that x**0 in a polynomial has a gradient.
    return 0.0 if b == 0.0 else b * _pow(a, b - 1)


def _sin(x: float) -> float:
    try:
        return math.sin(x)
    except ValueError:  # sin(inf): NaN, as IEEE says, rather than math's exception
        return math.nan


def _cos(x: float) -> float:
    try:
        return math.cos(x)
    except ValueError:
        return math.nan


def _xlogy(x: float, y: float) -> float:
    # x * log(y) with the convention 0 * log(0) = 0 (the limit, and PyTorch's choice).
    return 0.0 if x == 0.0 else x * math.log(y)


FLOAT = SimpleNamespace(
    name="float",
    exp=_exp,
    log=math.log,
    tanh=math.tanh,
    sin=_sin,
    cos=_cos,
    sqrt=math.sqrt,
    abs=abs,
    pow=_pow,
    power_rule=_power_rule,
    sigmoid=_sigmoid,
    softplus=_softplus,
    relu=_relu,
    step=_step,
    sign=_sign,
    is_fractional=_is_fractional,
    xlogy=_xlogy,
)


# --- Values (for derivatives of derivatives) ----------------------------------------------------
def _value_xlogy(x: Any, y: Any) -> Any:
    return 0.0 if x.data == 0.0 else x * y.log()


def _value_power_rule(a: Any, b: Any) -> Any:
    # Only the point a == b == 0 needs the constant: elsewhere b * a**(b-1) stays a graph, whose own
    # derivative in b (a**(b-1) * (1 + b log a), nonzero at b == 0) higher-order gradients need.
    return 0.0 if a.data == 0.0 and b.data == 0.0 else b * a ** (b - 1)


VALUE = SimpleNamespace(
    name="value",
    exp=lambda v: v.exp(),
    log=lambda v: v.log(),
    tanh=lambda v: v.tanh(),
    sin=lambda v: v.sin(),
    cos=lambda v: v.cos(),
    sqrt=lambda v: v.sqrt(),
    abs=lambda v: abs(v),
    pow=lambda a, b: a**b,
    power_rule=_value_power_rule,
    sigmoid=lambda v: v.sigmoid(),
    softplus=lambda v: v.softplus(),
    relu=lambda v: v.relu(),
    # The derivatives of step and sign are zero almost everywhere: constants, not graph nodes.
    step=lambda v: _step(v.data),
    sign=lambda v: _sign(v.data),
    is_fractional=lambda v: _is_fractional(v.data),
    xlogy=_value_xlogy,
)


# --- numpy arrays -------------------------------------------------------------------------------
_NUMPY: SimpleNamespace | None = None


def numpy_backend() -> SimpleNamespace:
    """The numpy namespace for rules (numpy is imported on first use: it is an optional extra)."""
    global _NUMPY
    if _NUMPY is None:
        try:
            import numpy as np
        except ImportError as exc:  # pragma: no cover - exercised only without numpy
            raise ImportError("this feature needs numpy, which is not installed: pip install numpy") from exc

        def xlogy(x: Any, y: Any) -> Any:
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(x == 0.0, 0.0, x * np.log(y))

        def power_rule(a: Any, b: Any) -> Any:
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(b == 0.0, 0.0, b * np.power(a, b - 1))

        _NUMPY = SimpleNamespace(
            name="numpy",
            exp=np.exp,
            log=np.log,
            tanh=np.tanh,
            sin=np.sin,
            cos=np.cos,
            sqrt=np.sqrt,
            abs=np.abs,
            pow=np.power,
            power_rule=power_rule,
            sigmoid=lambda x: np.exp(-np.logaddexp(0.0, -x)),
            softplus=lambda x: np.logaddexp(0.0, x),
            relu=lambda x: np.maximum(x, 0.0),
            step=lambda x: (~(x <= 0.0)).astype(np.float64),  # 1 at NaN, as _step
            sign=lambda x: np.where(np.isnan(x), 0.0, np.sign(x)),  # 0 at NaN, as _sign and PyTorch
            is_fractional=lambda x: np.isfinite(x) & (np.mod(x, 1.0) != 0.0),
            xlogy=xlogy,
            # whole-array functions for the tensor-only rules (chainrule.ops.TENSOR_OPS)
            matmul=np.matmul,
            transpose=np.transpose,
            reshape=np.reshape,
            sum=np.sum,
            mean=np.mean,
            expand_dims=np.expand_dims,
            broadcast_to=np.broadcast_to,
        )
    return _NUMPY
