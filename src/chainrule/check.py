"""Checking chainrule against PyTorch: the seed notebook 000's comparison as one call.

    >>> from chainrule.check import against_torch
    >>> against_torch(lambda a, b, e: e / (b + a**2), 2.0, 4.0, 3.0).ok
    True

PyTorch is optional and imported only when `against_torch` runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .backends import spellings, torch_backend
from .engine import Value
from .functional import argument_names, format_table, value_and_grad
from .ops import TABLE

_TORCH_MISSING = (
    "chainrule.check.against_torch needs PyTorch, which is not installed: "
    "pip install torch==2.13.0 (the CPU build; in a chainrule checkout, pip install -e '.[test]' brings it)"
)


@dataclass(frozen=True)
class TorchComparison:
    """The value and gradients of one function from chainrule and from PyTorch, side by side."""

    names: tuple[str, ...]
    value: float
    torch_value: float
    grads: tuple[float, ...]
    torch_grads: tuple[float, ...]
    atol: float
    rtol: float

    @property
    def differences(self) -> tuple[float, ...]:
        """|chainrule - torch| for the value, then for each gradient (0 where both are NaN)."""
        pairs = zip((self.value, *self.grads), (self.torch_value, *self.torch_grads), strict=True)
        return tuple(_difference(a, b) for a, b in pairs)

    @property
    def max_difference(self) -> float:
        """The largest of `differences`."""
        return max(self.differences)

    @property
    def ok(self) -> bool:
        """Whether every number agrees within atol + rtol * |torch's number|."""
        pairs = zip((self.value, *self.grads), (self.torch_value, *self.torch_grads), strict=True)
        return all(_agree(a, b, self.atol, self.rtol) for a, b in pairs)

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        verdict = "agree" if self.ok else "DISAGREE"
        labels = ["value", *(f"d/d{n}" for n in self.names)]
        rows = [
            [label, a, b, d]
            for label, a, b, d in zip(
                labels,
                (self.value, *self.grads),
                (self.torch_value, *self.torch_grads),
                self.differences,
                strict=True,
            )
        ]
        table = format_table(["", "chainrule", "torch", "difference"], rows)
        return f"against_torch: {verdict} (max difference {self.max_difference:.3g})\n{table}"


def _difference(a: float, b: float) -> float:
    if math.isnan(a) and math.isnan(b):
        return 0.0  # both implementations say "undefined": that is agreement
    if a == b:
        return 0.0  # also equal infinities, whose difference would be NaN
    return abs(a - b)


def _agree(a: float, b: float, atol: float, rtol: float) -> bool:
    return _difference(a, b) <= atol + rtol * abs(b)


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ImportError(_TORCH_MISSING) from exc
    return torch


def _tensor_class(torch: Any) -> type:
    """A float64 tensor type that also has every one-input Value method of the derivative table that
    torch.Tensor lacks (`softplus`, math's spellings such as `radians`, ...), each the torch backend's
    function of that name."""
    # Subclass instances stay subclass instances through every torch operation, so a function
    # written with Value methods finds them on intermediate results too.
    backend = torch_backend()
    methods = {}
    for op in TABLE:
        if op.arity != 1 or op.method.startswith("_"):
            continue
        for name in spellings(op.method):  # Value's names for the row: numpy's, and math's alias
            if not hasattr(torch.Tensor, name):
                methods[name] = _method(backend, name)
    return type("ValueLikeTensor", (torch.Tensor,), methods)


def _method(backend: Any, name: str) -> Callable[[Any], Any]:
    """`tensor.<name>()` as the torch backend's `name` (found by name, with math's and numpy's spellings)."""

    def method(self: Any) -> Any:
        return getattr(backend, name)(self)

    method.__name__ = method.__qualname__ = name
    return method


def against_torch(
    f: Callable[..., Any],
    *args: Any,
    torch_f: Callable[..., Any] | None = None,
    atol: float = 1e-9,
    rtol: float = 1e-7,
) -> TorchComparison:
    """Run `f` on chainrule Values and on PyTorch float64 tensors and compare value and gradients.

    `f` is written with Value methods (`.tanh()`, `.exp()`, `**`, ...), which tensors share; give
    `torch_f` when the PyTorch version has to be spelled differently. The result is true when
    everything agrees; its repr is a table.
    """
    torch = _import_torch()
    xs = [a.data if isinstance(a, Value) else float(a) for a in args]
    if not xs:
        raise ValueError("against_torch: give the point to compare at, e.g. against_torch(f, 1.0, 2.0)")
    every = tuple(range(len(xs)))
    value, grads = value_and_grad(f, argnums=every)(*xs)

    cls = _tensor_class(torch)
    tensors = [torch.tensor(x, dtype=torch.float64).as_subclass(cls).requires_grad_() for x in xs]
    out = (torch_f or f)(*tensors)
    if isinstance(out, torch.Tensor):
        if out.numel() != 1:
            raise TypeError(f"against_torch: f must return a scalar, PyTorch gave shape {tuple(out.shape)}")
        torch_value = float(out.item())
        if out.requires_grad:
            found = torch.autograd.grad(out, tensors, allow_unused=True)
            # An argument the output does not use has gradient None in PyTorch, 0 in chainrule.
            torch_grads = tuple(0.0 if g is None else float(g.item()) for g in found)
        else:
            torch_grads = (0.0,) * len(xs)
    else:
        torch_value, torch_grads = float(out), (0.0,) * len(xs)

    return TorchComparison(
        names=tuple(argument_names(torch_f or f, len(xs))),
        value=float(value),
        torch_value=torch_value,
        grads=tuple(float(g) for g in grads),
        torch_grads=torch_grads,
        atol=atol,
        rtol=rtol,
    )
