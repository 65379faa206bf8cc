"""A planned Program as a `torch.nn.Module`: `to_torch`.

Each table row is a `torch.autograd.Function` whose backward runs the row's derivative rules on the
torch backend; the sums of products are torch matrix products, differentiated by torch.
"""

from __future__ import annotations

import threading
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..backends import require_module, torch_backend
from .arrays import ArrayEngine, ConvertedArrays, batch_size, check_count, input_error, is_input, plan_of, run

if TYPE_CHECKING:  # pragma: no cover - for type hints only
    from ..ops import Op

__all__ = ["to_torch"]

_LOCK = threading.Lock()
_CLASSES: dict[str, tuple[type, type]] = {}  # the torch classes, made once (torch is optional)


def _sum_to(part: Any, shape: Any) -> Any:
    """`part` (an operand's gradient, as broad as the output) summed down to the operand's `shape`."""
    if part.shape == shape:
        return part
    dims = [d for d, (n, p) in enumerate(zip(shape, part.shape, strict=True)) if n == 1 and p != 1]
    return part.sum(dim=dims, keepdim=True) if dims else part


def _torch_classes(torch: ModuleType) -> tuple[type, type]:
    """The autograd Function and the nn.Module class of exported programs (made once: torch is optional)."""
    with _LOCK:
        if "classes" in _CLASSES:
            return _CLASSES["classes"]
    m = torch_backend()

    class RowFunction(torch.autograd.Function):
        """One row of the table on blocks of operands: forward and backward from the row's rules."""

        @staticmethod
        def forward(ctx: Any, op: Op, *xs: Any) -> Any:
            out = op.forward(m, *xs)
            ctx.op = op
            ctx.save_for_backward(out, *xs)
            return out

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            if torch.is_grad_enabled():  # create_graph=True: the rules below would be invisible to autograd
                raise RuntimeError(
                    "to_torch: gradients of gradients (create_graph=True) are not supported: the backward "
                    "pass runs the table's rules outside autograd; use to_jax for higher derivatives"
                )
            out, *xs = ctx.saved_tensors
            op = ctx.op
            grads = [None] * len(xs)
            for i, wanted in enumerate(ctx.needs_input_grad[1:]):
                if wanted:
                    part = torch.broadcast_to(torch.as_tensor(op.derivative(i)(m, g, out, *xs)), g.shape)
                    grads[i] = _sum_to(part, xs[i].shape)
            return (None, *grads)

    class Tie(torch.autograd.Function):
        """`out` itself, with a zero gradient for the other arguments (leaves no output depends on)."""

        @staticmethod
        def forward(ctx: Any, out: Any, *leaves: Any) -> Any:
            ctx.shapes = [x.shape for x in leaves]
            return out.view_as(out)

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            return (g, *(g.new_zeros(s) for s in ctx.shapes))

    def segment_sum(x: Any, ids: Any, k: int) -> Any:
        return x.new_zeros((k, *x.shape[1:])).index_add(0, ids, x)

    def convert(device: Any) -> Any:
        return lambda a: torch.as_tensor(a, device=device)

    class ExportedProgram(torch.nn.Module):
        """A chainrule Program as a PyTorch module: one float64 parameter `theta`, the table's gradients."""

        def __init__(self, program: Any) -> None:
            super().__init__()
            self.plan = plan_of(program)
            self.converted = ConvertedArrays(self.plan)
            self.theta = torch.nn.Parameter(torch.tensor(self.plan.parameters, dtype=torch.float64))
            self.register_buffer("constants", torch.tensor(self.plan.constants, dtype=torch.float64))

        def extra_repr(self) -> str:
            plan = self.plan
            return (
                f"inputs=({', '.join(plan.input_names)}), parameters={plan.n_parameters}, "
                f"instructions={plan.n_instructions} in {len(plan.groups)} steps"
            )

        def forward(self, *inputs: Any) -> Any:
            """What `program(*inputs)` returns, as float64 tensors (a batch for 1-d tensors)."""
            plan = self.plan
            check_count(plan, inputs)
            theta = self.theta
            xs = []
            for name, x in zip(plan.input_names, inputs, strict=True):
                if not is_input(x):
                    raise input_error(name, x, "tensor")
                xs.append(torch.as_tensor(x, dtype=torch.float64, device=theta.device))
            batch = batch_size(plan, [tuple(x.shape) for x in xs])
            width = 1 if batch is None else batch
            arrays = self.converted.get(("torch", theta.device), convert(theta.device))
            engine = ArrayEngine(
                arrays=arrays,
                cat=torch.cat,
                take=lambda x, index: x[index],
                segment_sum=segment_sum,
                broadcast_to=torch.broadcast_to,
                map=lambda op, operands: RowFunction.apply(op, *operands),
            )
            if plan.theta_order is not None:
                theta = theta[arrays[plan.theta_order]]
            fixed = torch.tensor([0.0, 1.0], dtype=torch.float64, device=theta.device)
            uniform = torch.cat([fixed, theta, self.constants])[:, None]
            varying = (
                torch.stack([torch.broadcast_to(x, (width,)) for x in xs])
                if xs
                else theta.new_zeros((0, width))
            )
            outs = [o if batch is not None else o[0] for o in run(plan, engine, uniform, varying, width)]
            unused = [x for i, x in enumerate(xs) if i in plan.unused_inputs]
            if plan.n_parameters == 0:
                unused.append(self.theta)
            if any(x.requires_grad for x in unused) and torch.is_grad_enabled():
                # leaves no output reads still get a gradient, zeros, as from Program.value_and_grad
                outs = [Tie.apply(o, *unused) for o in outs]
            return outs[0] if plan.single else tuple(outs)

    with _LOCK:
        return _CLASSES.setdefault("classes", (RowFunction, ExportedProgram))


def to_torch(program: Any) -> Any:
    """The program as a `torch.nn.Module` (float64): `module(*inputs)` returns what `program(*inputs)` does.

    `program` is a compiled Program (or its `Program.plan()`). The module's one `nn.Parameter`,
    `theta`, holds the parameters' current `.data` in `program.parameters` order (constants are
    copied into a buffer at export time), so `torch.optim` trains it. Backward runs the table's
    derivative rules (one `torch.autograd.Function` per row) and torch's own for the matrix
    products, so autograd's gradients are `program.value_and_grad`'s; gradients of gradients are
    not supported. Outside an op's domain the module computes NaN or inf, as PyTorch does.
    """
    plan = plan_of(program)
    torch = require_module("torch", "torch", "Program.to_torch()")
    return _torch_classes(torch)[1](plan)
