"""Take a compiled `Program` to JAX or PyTorch: the same table rows, run by engines built for scale.

A `Program` is a list of instructions, each naming a row of the derivative table (`chainrule.ops`).
Those rows are written against a backend `m` (`chainrule.backends`); exporting runs the same rows on
`jax_backend()` or `torch_backend()`, forward with `op.forward(m, ...)` and backward with the row's
derivative rules, never with a second copy of them:

- `to_jax(program)` returns `(fn, params)`: `fn(params, *inputs)` is a pure JAX function (it works
  under `jax.jit`, `jax.grad`, `jax.vmap` and with inputs sharded over several devices) whose first
  derivatives are the table's rules, handed to JAX as one `jax.custom_jvp` per op.
- `to_torch(program)` returns a `torch.nn.Module` with one float64 `nn.Parameter`, `theta`; each row
  is a `torch.autograd.Function` whose backward runs the row's derivative rules.

Both run chainrule's own batch plan, which `Program.plan()` gives as public data
(`chainrule.compiler.plan.Plan`): values the same for every sample are computed once, sums of
`weight * value` terms at one depth (rows the table declares linear or bilinear) are one matrix
product `W @ X` plus a bias, differentiated by JAX or PyTorch, and other instructions of one op at
one depth are one call of the row on a (k, B) block, so that a layer of a network is a matrix
product and a call, not hundreds. The package has one module per part: `arrays` (running a plan on
any array engine), `jax` and `torch`.

JAX and PyTorch are optional: `pip install -e ".[jax]"` or `pip install -e ".[torch]"` from a checkout
of chainrule. docs/scaling.md says when exporting pays and what it costs.
"""

from __future__ import annotations

from ..backends import jax_backend, torch_backend
from .jax import to_jax
from .torch import to_torch

__all__ = ["jax_backend", "to_jax", "to_torch", "torch_backend"]
