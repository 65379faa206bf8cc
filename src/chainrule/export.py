"""Take a compiled `Program` to JAX or PyTorch: the same table rows, run by engines built for scale.

A `Program` is a list of instructions, each naming a row of the derivative table (`chainrule.ops`).
Those rows are written against a backend namespace `m`; this module gives them two more:
`jax_backend()` (`jax.numpy`) and `torch_backend()` (`torch`). Exporting runs the same rows on JAX
or PyTorch arrays, forward with `op.forward(m, ...)` and backward with the row's derivative rules,
never with a second copy of them:

- `to_jax(program)` returns `(fn, params)`: `fn(params, *inputs)` is a pure JAX function (it works
  under `jax.jit`, `jax.grad`, `jax.vmap` and with inputs sharded over several devices) whose first
  derivatives are the table's rules, handed to JAX as one `jax.custom_jvp` per op.
- `to_torch(program)` returns a `torch.nn.Module` with one float64 `nn.Parameter`, `theta`, whose
  backward pass runs the table's rules over the whole program (one `torch.autograd.Function`).

Both run a *grouped* plan (`_Plan`): instructions are sorted into levels (an instruction's level is
one more than its operands'), and all instructions of one op on one level run as a single array
operation on a (k, B) block, so that a layer of a network is a handful of calls, not hundreds.

JAX and PyTorch are optional: `pip install -e ".[jax]"` or `pip install -e ".[torch]"` from a checkout
of chainrule. docs/scaling.md says when exporting pays and what it costs.
"""

from __future__ import annotations

import importlib
import numbers
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - for type hints only
    from .compiler import Program
    from .ops import Op

__all__ = ["jax_backend", "to_jax", "to_torch", "torch_backend"]

HINTS = {
    "jax": 'pip install -e ".[jax]" in a chainrule checkout (or pip install "jax>=0.4.30")',
    "torch": 'pip install -e ".[torch]" in a chainrule checkout (or pip install torch==2.13.0)',
}
_LOCK = threading.Lock()
_CACHE: dict[str, Any] = {}  # the backends and the torch classes, made once (under _LOCK)
_MAX_PATTERNS = 64  # bound on the cached gradient patterns per exported module


def _require(module: str, extra: str, what: str) -> ModuleType:
    """Import `module`, or raise an ImportError that says how to install chainrule's `extra`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{what} needs {extra}, which is not installed: {HINTS[extra]}") from exc


# --- the plan, shared by both engines -------------------------------------------------------------
@dataclass(frozen=True)
class _Group:
    """Instructions of one op (and arity) on one level: rows start..stop of the slot buffer."""

    op: Op
    level: int
    start: int
    stop: int
    rows: tuple[tuple[int, ...], ...]  # per operand position, the operand rows of each instruction
    blocks: tuple[int, ...]  # the blocks (0 = the leaves, g + 1 = group g's outputs) the operands are in
    local: tuple[tuple[int, ...], ...]  # `rows` renumbered into the concatenation of `blocks`
    coefficient: float | None  # an n-ary op declared linear (sum): out = coefficient * (x1 + x2 + ...)


class _Plan:
    """A program's instructions grouped into array operations, with rows numbered group by group.

    Rows 0..n_leaves-1 are the leaves (inputs, parameters, constants, as the program's slots); each
    group's outputs then take the next rows, so that a group writes one contiguous block.
    """

    def __init__(self, program: Program) -> None:
        from .compiler import Program

        if not isinstance(program, Program):
            raise TypeError(
                f"expected a chainrule Program (from chainrule.compile), got {type(program).__name__}: "
                f"{program!r:.80}"
            )
        self.names = [x.label or f"input {i}" for i, x in enumerate(program.inputs)]
        self.n_in, self.n_par = len(program.inputs), len(program.parameters)
        self.n_leaves = len(program.leaves)
        self.parameters = [float(p.data) for p in program.parameters]
        self.constants = [float(c.data) for c in program.constants]
        self.single = program._single
        self.n_instructions = len(program.instructions)
        level = [0] * (self.n_leaves + self.n_instructions)
        members: dict[tuple[int, int, int], list[Any]] = {}
        for ins in program.instructions:
            level[ins.slot] = 1 + max((level[a] for a in ins.args), default=0)
            members.setdefault((level[ins.slot], id(ins.op), len(ins.args)), []).append(ins)
        row = list(range(self.n_leaves)) + [0] * self.n_instructions
        block = [0] * len(row)  # which block each slot's row lives in
        offset = [0]  # the first row of each block
        groups: list[_Group] = []
        for key in sorted(members, key=lambda k: k[0]):  # by level; stable, so first appearance next
            group = members[key]
            start = self.n_leaves if not groups else groups[-1].stop
            offset.append(start)
            rows = tuple(tuple(row[ins.args[i]] for ins in group) for i in range(key[2]))
            blocks = tuple(sorted({block[ins.args[i]] for ins in group for i in range(key[2])}))
            base, at = {}, 0
            for b in blocks:
                base[b] = at
                at += (groups[b - 1].stop - groups[b - 1].start) if b else self.n_leaves
            local = tuple(
                tuple(base[block[a]] + row[a] - offset[block[a]] for a in (ins.args[i] for ins in group))
                for i in range(key[2])
            )
            op = group[0].op
            linear = op.arity is None and op.linear is not None
            groups.append(
                _Group(
                    op,
                    key[0],
                    start,
                    start + len(group),
                    rows,
                    blocks,
                    local,
                    op.linear[0] if linear else None,
                )
            )
            for k, ins in enumerate(group):
                row[ins.slot], block[ins.slot] = start + k, len(groups)
        self.groups = tuple(groups)
        self.n_rows = self.n_leaves + self.n_instructions
        self.output_rows = tuple(row[s] for s in program.output_slots)
        self._needs: dict[tuple[bool, ...], tuple[list[bool], list[tuple[bool, ...]]]] = {}
        self.cache: dict[Any, Any] = {}  # per engine and device: the index arrays (under _lock)
        self._lock = threading.Lock()

    def check_count(self, inputs: Sequence[Any]) -> None:
        if len(inputs) != self.n_in:
            raise TypeError(
                f"this exported program takes {self.n_in} inputs ({', '.join(self.names)}), got {len(inputs)}"
            )

    def batch(self, shapes: Sequence[tuple[int, ...]]) -> int | None:
        """The batch size B of inputs of these shapes (None if all are numbers); refuses bad shapes."""
        batch, first = None, ""
        for name, shape in zip(self.names, shapes, strict=True):
            if len(shape) > 1:
                raise ValueError(
                    f"input {name!r} must be a number or a 1-d array (one entry per sample), got shape "
                    f"{tuple(shape)}"
                )
            if len(shape) == 1:
                if batch is not None and shape[0] != batch:
                    raise ValueError(
                        f"inputs of unequal length: {first!r} has {batch} samples but {name!r} has {shape[0]}"
                    )
                batch, first = int(shape[0]), name
        return batch

    def needs(self, inputs: tuple[bool, ...], theta: bool) -> tuple[list[bool], list[tuple[bool, ...]]]:
        """Which rows receive a gradient, and per group which operand positions do, given the leaves'."""
        key = (*inputs, theta)
        with self._lock:
            got = self._needs.get(key)
        if got is None:
            rows = [*inputs, *(theta,) * self.n_par] + [False] * (self.n_rows - self.n_in - self.n_par)
            positions = []
            for g in self.groups:
                pos = tuple(any(rows[r] for r in rs) for rs in g.rows)
                rows[g.start : g.stop] = [any(rows[rs[k]] for rs in g.rows) for k in range(g.stop - g.start)]
                positions.append(pos)
            got = (rows, positions)
            with self._lock:
                if len(self._needs) < _MAX_PATTERNS:
                    self._needs[key] = got
        return got


def _is_input(x: Any) -> bool:
    return not isinstance(x, str | bytes) and (isinstance(x, numbers.Real) or hasattr(x, "shape"))


def _input_error(name: str, x: Any, kind: str) -> TypeError:
    return TypeError(f"input {name!r} must be a number or a 1-d {kind}, got {type(x).__name__}: {x!r:.80}")


# --- JAX --------------------------------------------------------------------------------------
def jax_backend() -> SimpleNamespace:
    """The table's backend namespace `m` on `jax.numpy`. Turns on JAX's float64 mode (see to_jax)."""
    jax = _require("jax", "jax", "chainrule's JAX backend")
    jax.config.update("jax_enable_x64", True)
    with _LOCK:
        if "jax" in _CACHE:
            return _CACHE["jax"]
        jnp = jax.numpy

        def power_rule(a: Any, b: Any) -> Any:
            # b * a**(b-1), and 0 where b == 0 (as the float backend). The base is replaced where the
            # branch is not taken so that JAX's own derivative of this rule (second order) has no NaN.
            safe = jnp.where(b == 0.0, 1.0, a)
            return jnp.where(b == 0.0, 0.0, b * jnp.power(safe, b - 1))

        def xlogy(x: Any, y: Any) -> Any:
            # x * log(y) with 0 * log(anything) = 0, the float backend's convention.
            return jnp.where(x == 0.0, 0.0, x * jnp.log(jnp.where(x == 0.0, 1.0, y)))

        def transpose(a: Any, axes: Any = None) -> Any:
            return jnp.transpose(a, axes)

        _CACHE["jax"] = SimpleNamespace(
            name="jax",
            exp=jnp.exp,
            log=jnp.log,
            tanh=jnp.tanh,
            sin=jnp.sin,
            cos=jnp.cos,
            sqrt=jnp.sqrt,
            abs=jnp.abs,
            pow=jnp.power,
            power_rule=power_rule,
            sigmoid=jax.nn.sigmoid,
            softplus=lambda x: jnp.logaddexp(0.0, x),
            relu=lambda x: jnp.where(x < 0.0, 0.0, x),  # NaN stays NaN, as in the float backend
            step=lambda x: jnp.where(x > 0.0, 1.0, 0.0),
            sign=jnp.sign,
            is_fractional=lambda x: jnp.isfinite(x) & (jnp.mod(x, 1.0) != 0.0),
            xlogy=xlogy,
            matmul=jnp.matmul,
            transpose=transpose,
            reshape=jnp.reshape,
            sum=jnp.sum,
            mean=jnp.mean,
            expand_dims=jnp.expand_dims,
            broadcast_to=jnp.broadcast_to,
        )
        return _CACHE["jax"]


def _jax_rule(op: Op, m: SimpleNamespace, jax: ModuleType) -> Callable[..., Any]:
    """`op` as a JAX function whose derivative is the table's: one `jax.custom_jvp`.

    A derivative rule gives the contribution of an output gradient g to input i; for these
    elementwise ops that is g times the partial derivative, so the same rule applied to a tangent
    t_i is the forward-mode term, and JAX obtains reverse mode (grad) by transposing it.
    """
    jnp = jax.numpy
    zero = jax.custom_derivatives.SymbolicZero

    @jax.custom_jvp
    def rule(*xs: Any) -> Any:
        return op.forward(m, *xs)

    def jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> tuple[Any, Any]:
        out = op.forward(m, *primals)
        terms = [
            op.derivative(i)(m, t, out, *primals)
            for i, t in enumerate(tangents)
            if not isinstance(t, zero)  # an operand nothing is differentiated through
        ]
        tangent = sum(terms[1:], terms[0]) if terms else jnp.zeros_like(out)
        return out, jnp.broadcast_to(tangent, jnp.shape(out)).astype(jnp.result_type(out))

    rule.defjvp(jvp, symbolic_zeros=True)
    return rule


def _jax_domain_check(op: Op, m: SimpleNamespace, jax: ModuleType, xs: Sequence[Any]) -> None:
    """A `checkify.check` that the operands (k, B blocks) are in `op`'s domain, naming op and values."""
    from jax.experimental import checkify

    jnp = jax.numpy
    bad = op.invalid(m, *xs)
    shape = jnp.broadcast_shapes(jnp.shape(bad), *(jnp.shape(x) for x in xs))
    flat = jnp.ravel(jnp.broadcast_to(bad, shape))
    index = jnp.argmax(flat)  # the first offending entry (0 if there is none)
    values = [jnp.ravel(jnp.broadcast_to(x, shape))[index] for x in xs]
    message = f"{op.name}: requires {op.domain_text}, got " + ", ".join("{}" for _ in xs)
    checkify.check(
        jnp.logical_not(jnp.any(flat)), message + " (at batch index {})", *values, index % shape[-1]
    )


def to_jax(program: Program, *, check: bool = False) -> tuple[Callable[..., Any], Any]:
    """`(fn, params)`: the program as a pure JAX function `fn(params, *inputs)`, and its parameters.

    `params` is a 1-d float64 JAX array of the parameters' current `.data`, in `program.parameters`
    order; constants are copied in at export time. `fn` returns what `program(*inputs)` returns: for
    numbers (or 0-d arrays) a 0-d array, for 1-d arrays of length B an array of B; a tuple for a
    program of several outputs. Exporting turns on JAX's float64 mode (`jax_enable_x64`, a global
    JAX setting) because chainrule computes in float64.

    Outside an op's domain (log of a negative number, ...) JAX computes NaN or inf instead of
    raising, as it must under `jit`. With `check=True` each domain-limited op adds a
    `jax.experimental.checkify.check` naming the op and the offending value: calling `fn` without
    `jit` then raises, and `checkify.checkify(jax.jit(fn))` returns `(error, out)`; `error.throw()`.
    """
    plan = _Plan(program)
    jax = _require("jax", "jax", "Program.to_jax()")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    f64 = jnp.float64
    m = jax_backend()
    rules: dict[Op, Callable[..., Any]] = {}
    for g in plan.groups:
        if g.coefficient is None and g.op not in rules:
            rules[g.op] = _jax_rule(g.op, m, jax)
    indices = [
        jnp.asarray(g.local, dtype=jnp.int32).reshape(len(g.rows), g.stop - g.start) for g in plan.groups
    ]
    constants = jnp.asarray(plan.constants, dtype=f64)
    params = jnp.asarray(plan.parameters, dtype=f64)

    def run(theta: Any, *xs: Any) -> Any:
        """The program on float64 arrays already checked by `fn`."""
        batch = next((x.shape[0] for x in xs if x.ndim == 1), None)
        width = 1 if batch is None else batch
        leaves = [jnp.broadcast_to(x, (1, width)) for x in xs]
        leaves.append(jnp.broadcast_to(theta[:, None], (plan.n_par, width)))
        leaves.append(jnp.broadcast_to(constants[:, None], (len(plan.constants), width)))
        blocks = [jnp.concatenate(leaves)]
        for g, index in zip(plan.groups, indices, strict=True):
            source = (
                blocks[g.blocks[0]] if len(g.blocks) == 1 else jnp.concatenate([blocks[b] for b in g.blocks])
            )
            operands = source[index]  # (arity, k, B)
            if check and g.op.invalid is not None:
                _jax_domain_check(g.op, m, jax, list(operands))
            if g.coefficient is not None:  # a linear n-ary op (sum): one reduction over the operands
                out = g.coefficient * jnp.sum(operands, axis=0)
            else:
                out = rules[g.op](*operands)
            blocks.append(jnp.broadcast_to(out, (g.stop - g.start, width)))
        outs = tuple(_jax_row(blocks, plan, r, batch) for r in plan.output_rows)
        return outs[0] if plan.single else outs

    # Compiled once per input shapes, so that calling fn directly is fast too; with checks it stays
    # uncompiled, so that a direct call raises (checkify's checks need checkify.checkify under jit).
    core = run if check else jax.jit(run)

    def fn(params: Any, *inputs: Any) -> Any:
        """The exported program: pure, for jit, grad, vmap and sharded inputs."""
        plan.check_count(inputs)
        for name, x in zip(plan.names, inputs, strict=True):
            if not _is_input(x):
                raise _input_error(name, x, "array")
        xs = [jnp.asarray(x, dtype=f64) for x in inputs]
        plan.batch([jnp.shape(x) for x in xs])  # refuses 2-d inputs and unequal lengths
        theta = jnp.asarray(params, dtype=f64)
        if jnp.shape(theta) != (plan.n_par,):
            raise ValueError(
                f"params must be a 1-d array of {plan.n_par} numbers, got shape {jnp.shape(theta)}"
            )
        return core(theta, *xs)

    return fn, params


def _jax_row(blocks: list[Any], plan: _Plan, row: int, batch: int | None) -> Any:
    """Row `row` of the slot buffer (a number unless there is a batch)."""
    if row < plan.n_leaves:
        values = blocks[0][row]
    else:
        g = next(i for i, g in enumerate(plan.groups) if g.start <= row < g.stop)
        values = blocks[g + 1][row - plan.groups[g].start]
    return values if batch is not None else values[0]


# --- PyTorch ----------------------------------------------------------------------------------
def torch_backend() -> SimpleNamespace:
    """The table's backend namespace `m` on `torch` tensors."""
    with _LOCK:
        if "torch" in _CACHE:
            return _CACHE["torch"]
        torch = _require("torch", "torch", "chainrule's PyTorch backend")

        def power_rule(a: Any, b: Any) -> Any:
            return torch.where(b == 0.0, 0.0, b * torch.pow(a, b - 1))

        def xlogy(x: Any, y: Any) -> Any:
            return torch.where(x == 0.0, 0.0, x * torch.log(y))

        def softplus(x: Any) -> Any:
            # log(1 + e^x) exactly (torch.nn.functional.softplus switches to x above x = 20)
            return torch.logaddexp(x, torch.zeros((), dtype=x.dtype, device=x.device))

        def axes_of(axis: Any) -> Any:
            return (axis,) if isinstance(axis, int) else axis

        def reduce(fn: Callable[..., Any]) -> Callable[..., Any]:
            def run(a: Any, axis: Any = None, keepdims: bool = False) -> Any:
                dims = tuple(range(a.ndim)) if axis is None else axes_of(axis)
                return fn(a, dim=dims, keepdim=keepdims) if dims else a.clone()

            return run

        def transpose(a: Any, axes: Any = None) -> Any:
            return a.permute(*(reversed(range(a.ndim)) if axes is None else axes))

        def expand_dims(a: Any, axis: Any) -> Any:
            # numpy's rule: each new axis is numbered in the result, so insert them in increasing order
            ndim = a.ndim + len(axes_of(axis))
            for ax in sorted(x % ndim for x in axes_of(axis)):
                a = a.unsqueeze(ax)
            return a

        _CACHE["torch"] = SimpleNamespace(
            name="torch",
            exp=torch.exp,
            log=torch.log,
            tanh=torch.tanh,
            sin=torch.sin,
            cos=torch.cos,
            sqrt=torch.sqrt,
            abs=torch.abs,
            pow=torch.pow,
            power_rule=power_rule,
            sigmoid=torch.sigmoid,
            softplus=softplus,
            relu=torch.relu,
            step=lambda x: (x > 0.0).to(x.dtype),
            sign=torch.sign,
            is_fractional=lambda x: torch.isfinite(x) & (torch.remainder(x, 1.0) != 0.0),
            xlogy=xlogy,
            matmul=torch.matmul,
            transpose=transpose,
            reshape=torch.reshape,
            sum=reduce(torch.sum),
            mean=reduce(torch.mean),
            expand_dims=expand_dims,
            broadcast_to=torch.broadcast_to,
        )
        return _CACHE["torch"]


def _torch_classes(torch: ModuleType) -> tuple[type, type]:
    """The autograd Function and the nn.Module class of exported programs (made once: torch is optional)."""
    with _LOCK:
        if "torch_classes" in _CACHE:
            return _CACHE["torch_classes"]
    m = torch_backend()

    def index(plan: _Plan, device: Any) -> list[Any]:
        """The groups' operand rows as index tensors on `device` (made once per device)."""
        with plan._lock:
            key = ("torch index", device)
            if key not in plan.cache:
                plan.cache[key] = [torch.tensor(g.rows, dtype=torch.long, device=device) for g in plan.groups]
            return plan.cache[key]

    class ProgramFunction(torch.autograd.Function):
        """The whole program as one autograd node: forward and backward from the table's rows."""

        @staticmethod
        def forward(ctx: Any, plan: _Plan, batch: int | None, theta: Any, constants: Any, *xs: Any) -> Any:
            width = 1 if batch is None else batch
            buf = theta.new_empty((plan.n_rows, width))
            for i, x in enumerate(xs):
                buf[i] = x
            buf[plan.n_in : plan.n_in + plan.n_par] = theta[:, None]
            buf[plan.n_in + plan.n_par : plan.n_leaves] = constants[:, None]
            rows = index(plan, buf.device)
            for g, r in zip(plan.groups, rows, strict=True):
                operands = buf[r].reshape(len(g.rows), g.stop - g.start, width)
                if g.coefficient is not None:  # a linear n-ary op (sum): one reduction over the operands
                    buf[g.start : g.stop] = g.coefficient * operands.sum(0)
                else:
                    buf[g.start : g.stop] = g.op.forward(m, *operands)
            ctx.plan, ctx.buf, ctx.ndims = plan, buf, [x.ndim for x in xs]
            return tuple(buf[r].clone() if batch is not None else buf[r, 0].clone() for r in plan.output_rows)

        @staticmethod
        def backward(ctx: Any, *grad_outputs: Any) -> Any:
            if torch.is_grad_enabled():  # create_graph=True: the rules below would be invisible to autograd
                raise RuntimeError(
                    "to_torch: gradients of gradients (create_graph=True) are not supported: the backward "
                    "pass runs the table's rules outside autograd; use to_jax for higher derivatives"
                )
            plan, buf = ctx.plan, ctx.buf
            wants = ctx.needs_input_grad
            needs, positions = plan.needs(tuple(wants[4:]), wants[2])
            grad = torch.zeros_like(buf)
            for r, g in zip(plan.output_rows, grad_outputs, strict=True):
                grad[r] += g
            rows = index(plan, buf.device)
            for g, r, pos in zip(reversed(plan.groups), reversed(rows), reversed(positions), strict=True):
                if not any(pos):
                    continue
                k = g.stop - g.start
                gout = grad[g.start : g.stop].clone()  # a rule may return g itself: no aliasing
                if g.coefficient is not None:  # d(c * sum)/dx_i = c, for every operand
                    grad.index_add_(0, r.reshape(-1), (g.coefficient * gout).repeat(len(g.rows), 1))
                    continue
                operands = buf[r].reshape(len(g.rows), k, buf.shape[1])
                out = buf[g.start : g.stop]
                for i, wanted in enumerate(pos):
                    if wanted:
                        part = g.op.derivative(i)(m, gout, out, *operands)
                        grad.index_add_(0, r[i], torch.broadcast_to(torch.as_tensor(part), gout.shape))
            theta_grad = grad[plan.n_in : plan.n_in + plan.n_par].sum(1) if wants[2] else None
            input_grads = [
                (grad[i] if ndim else grad[i].sum()) if want else None
                for i, (ndim, want) in enumerate(zip(ctx.ndims, wants[4:], strict=True))
            ]
            return (None, None, theta_grad, None, *input_grads)

    class ExportedProgram(torch.nn.Module):
        """A chainrule Program as a PyTorch module: one float64 parameter `theta`, the table's gradients."""

        def __init__(self, program: Program) -> None:
            super().__init__()
            self.plan = _Plan(program)
            self.theta = torch.nn.Parameter(torch.tensor(self.plan.parameters, dtype=torch.float64))
            self.register_buffer("constants", torch.tensor(self.plan.constants, dtype=torch.float64))

        def extra_repr(self) -> str:
            plan = self.plan
            return (
                f"inputs=({', '.join(plan.names)}), parameters={plan.n_par}, "
                f"instructions={plan.n_instructions} in {len(plan.groups)} groups"
            )

        def forward(self, *inputs: Any) -> Any:
            """What `program(*inputs)` returns, as float64 tensors (a batch for 1-d tensors)."""
            plan = self.plan
            plan.check_count(inputs)
            xs = []
            for name, x in zip(plan.names, inputs, strict=True):
                if not _is_input(x):
                    raise _input_error(name, x, "tensor")
                xs.append(torch.as_tensor(x, dtype=torch.float64, device=self.theta.device))
            batch = plan.batch([tuple(x.shape) for x in xs])
            outs = ProgramFunction.apply(plan, batch, self.theta, self.constants, *xs)
            return outs[0] if plan.single else outs

    with _LOCK:
        return _CACHE.setdefault("torch_classes", (ProgramFunction, ExportedProgram))


def to_torch(program: Program) -> Any:
    """The program as a `torch.nn.Module` (float64): `module(*inputs)` returns what `program(*inputs)` does.

    Its one `nn.Parameter`, `theta`, holds the parameters' current `.data` in `program.parameters`
    order (constants are copied into a buffer at export time), so `torch.optim` trains it. Backward
    runs the table's derivative rules over the whole program (one `torch.autograd.Function`), so
    autograd's gradients are `program.value_and_grad`'s; gradients of gradients are not supported.
    Outside an op's domain the module computes NaN or inf, as PyTorch does.
    """
    torch = _require("torch", "torch", "Program.to_torch()")
    return _torch_classes(torch)[1](program)
