"""Take a compiled `Program` to JAX or PyTorch: the same table rows, run by engines built for scale.

A `Program` is a list of instructions, each naming a row of the derivative table (`chainrule.ops`).
Those rows are written against a backend namespace `m`; this module gives them two more:
`jax_backend()` (`jax.numpy`) and `torch_backend()` (`torch`). Exporting runs the same rows on JAX
or PyTorch arrays, forward with `op.forward(m, ...)` and backward with the row's derivative rules,
never with a second copy of them:

- `to_jax(program)` returns `(fn, params)`: `fn(params, *inputs)` is a pure JAX function (it works
  under `jax.jit`, `jax.grad`, `jax.vmap` and with inputs sharded over several devices) whose first
  derivatives are the table's rules, handed to JAX as one `jax.custom_jvp` per op.
- `to_torch(program)` returns a `torch.nn.Module` with one float64 `nn.Parameter`, `theta`; each row
  is a `torch.autograd.Function` whose backward runs the row's derivative rules.

Both run chainrule's own batch plan (`compiler.batch_plan`, see `_Plan`): values the same for every
sample are computed once, sums of `weight * value` terms at one depth (rows the table declares linear
or bilinear) are one matrix product `W @ X` plus a bias, differentiated by JAX or PyTorch, and other
instructions of one op at one depth are one call of the row on a (k, B) block that reads the block
before it, so that a layer of a network is a matrix product and a call, not hundreds.

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


def _require(module: str, extra: str, what: str) -> ModuleType:
    """Import `module`, or raise an ImportError that says how to install chainrule's `extra`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{what} needs {extra}, which is not installed: {HINTS[extra]}") from exc


# --- the plan, shared by both engines -------------------------------------------------------------
UNIFORM_BUF, VARYING_BUF = 0, 1  # chainrule's batch buffers (compiler.batch_steps): per run, per sample


@dataclass(frozen=True)
class _Read:
    """Rows of one buffer as a step reads them: a slice of one block, or a gather over a few blocks.

    A buffer is a list of blocks (the leaves', then one per step), so most reads (a layer reading the
    layer below) are a slice of one block, which costs nothing; `index` is None then."""

    buffer: int
    blocks: tuple[int, ...]
    start: int
    stop: int
    index: int | None  # an entry of `_Plan.arrays`: rows of the concatenation of `blocks`


@dataclass(frozen=True)
class _MapStep:
    """k instructions of one op, run as one call of the row's rule on (k, width) blocks."""

    buffer: int
    k: int
    op: Op
    operands: tuple[_Read, ...]


@dataclass(frozen=True)
class _SumsStep:
    """k sums of `coefficient * weight * value` terms: a matrix product W @ X (or gathered sparse sums)
    plus a bias from the terms whose value is the same for every sample."""

    buffer: int
    k: int
    layout: str | None  # "dense", "sparse" or None (bias only)
    weights: _Read | None  # dense: W's entries, row-major; sparse: each term's weight
    shape: tuple[int, int]  # dense: W's shape
    scale: int | None  # an entry of `_Plan.arrays`: coefficients multiplying W (or the terms' weights)
    values: _Read | None  # dense: the rows of X; sparse: each term's value
    segments: int | None  # sparse: which sum each term is in (an entry of `_Plan.arrays`)
    bias: _Read | None  # the bias terms' values (None: no bias)
    bias_weights: _Read | None  # their weights (None: all 1)
    bias_scale: int | None  # their coefficients (None: all 1)
    bias_segments: int | None  # which sum each bias term is in (None: one term per sum, in order)


class _Plan:
    """A program as a few array operations, from chainrule's own batch plan (`compiler.batch_plan`).

    The batch plan sorts values into a *uniform* buffer (one value for the whole batch: parameters,
    constants, everything computed from them only) and a *varying* one (one value per sample), groups
    the instructions into steps (k instructions of one op at one depth; or k sums of products, which the
    table declares through `Op.linear`/`Op.bilinear`, as one matrix product `W @ X`) and lays the rows
    out so that each step writes one block and each layer's weights are one block. This records that
    plan without numpy objects of chainrule's, so that JAX and PyTorch run it: a buffer is a list of
    blocks, the leaves' and then one per step.
    """

    def __init__(self, program: Program) -> None:
        from .compiler import Program

        if not isinstance(program, Program):
            raise TypeError(
                f"expected a chainrule Program (from chainrule.compile), got {type(program).__name__}: "
                f"{program!r:.80}"
            )
        import numpy as np

        from .compiler.batch_steps import SumsOfProductsStep

        batch = program._plan()
        self.names = [x.label or f"input {i}" for i, x in enumerate(program.inputs)]
        self.n_in, self.n_par = len(program.inputs), len(program.parameters)
        self.parameters = [float(p.data) for p in program.parameters]
        self.constants = [float(c.data) for c in batch.const_values]  # in the uniform buffer's order
        self.single = program.single
        self.n_instructions = len(program.instructions)
        order = batch.theta_order
        self.arrays: list[Any] = []  # index and coefficient arrays (numpy), which the engines convert
        # theta (Program.parameters order) in the uniform buffer's order: None if it is the same
        self.theta_order = None if batch.theta_in_order else self._array(np.asarray(order, dtype=np.int64))
        leaf_rows = 2 + len(order) + len(self.constants)  # the uniform buffer's fixed rows 0.0 and 1.0 first
        self._starts: list[list[int]] = [[0], [0]]  # per buffer, the first row of each block
        self._ends = [leaf_rows, self.n_in]
        steps: list[_MapStep | _SumsStep] = []
        for step in batch.steps:
            if step.start != self._ends[step.buffer]:  # pragma: no cover - the batch plan's layout
                raise AssertionError("chainrule.export: a batch step does not follow the one before it")
            if isinstance(step, SumsOfProductsStep):
                steps.append(self._sums(step, np))
            else:
                reads = tuple(self._read(r.buffer, r.indices, np) for r in step.operands)
                steps.append(_MapStep(step.buffer, step.stop - step.start, step.op, reads))
            self._starts[step.buffer].append(step.start)
            self._ends[step.buffer] = step.stop
        self.steps = tuple(steps)
        self.outputs = tuple(self._read(b, [r], np) for b, r in batch.out_rows)
        read = [False] * self.n_in  # which inputs some step or output reads
        for r in [o for s in steps for o in _reads(s)] + list(self.outputs):
            if r.buffer == VARYING_BUF and r.blocks[0] == 0:
                rows = range(r.start, r.stop) if r.index is None else self.arrays[r.index].tolist()
                for i in rows:
                    if i < self.n_in:
                        read[i] = True
        self.unused_inputs = frozenset(i for i, used in enumerate(read) if not used)
        self.cache: dict[Any, Any] = {}  # per engine and device: the arrays converted (under _lock)
        self._lock = threading.Lock()

    def _array(self, values: Any) -> int:
        self.arrays.append(values)
        return len(self.arrays) - 1

    def _read(self, buffer: int, rows: Any, np: Any, exact: bool = False) -> _Read:
        """How to read `rows` of `buffer` from its blocks so far: one row (broadcast, unless `exact`),
        a slice of one block, or a gather from the blocks concerned."""
        rows = np.asarray(rows, dtype=np.int64)
        starts = np.asarray(self._starts[buffer])
        block = np.searchsorted(starts, rows, side="right") - 1
        first = int(rows[0])
        b0 = int(block[0])
        if not exact and (rows == first).all():
            local = first - int(starts[b0])
            return _Read(buffer, (b0,), local, local + 1, None)
        if (block == b0).all() and (rows == np.arange(first, first + len(rows))).all():
            local = first - int(starts[b0])
            return _Read(buffer, (b0,), local, local + len(rows), None)
        blocks = tuple(int(b) for b in np.unique(block))
        ends = [*starts[1:].tolist(), self._ends[buffer]]
        base, at = {}, 0
        for b in blocks:
            base[b] = at
            at += ends[b] - int(starts[b])
        local_rows = np.array([base[int(b)] for b in block]) + rows - starts[block]
        return _Read(buffer, blocks, 0, 0, self._array(local_rows.astype(np.int64)))

    def _sums(self, step: Any, np: Any) -> _SumsStep:
        """A sums-of-products step of the batch plan as a `_SumsStep`."""
        k = step.stop - step.start
        weights = values = None
        shape, scale, segments = (0, 0), None, None
        if step.layout == "dense":
            shape = step.weight_rows.shape
            weights = self._read(UNIFORM_BUF, step.weight_rows.ravel(), np, exact=True)
            values = self._read(VARYING_BUF, step.inputs.indices, np)
            if step.scaled:
                scale = self._array(np.asarray(step.coefficients, dtype=np.float64))
        elif step.layout == "sparse":
            weights = self._read(UNIFORM_BUF, step.term_weights, np, exact=True)
            values = self._read(VARYING_BUF, step.term_values.indices, np, exact=True)
            scale = self._array(np.asarray(step.term_coefficients, dtype=np.float64)[:, None])
            segments = self._array(np.asarray(step.term_sum, dtype=np.int64))
        bias = bias_weights = None
        bias_scale = bias_segments = None
        if step.has_bias:
            bias = self._read(UNIFORM_BUF, step.bias_value_rows, np, exact=True)
            if not step.bias_unweighted:
                bias_weights = self._read(UNIFORM_BUF, step.bias_weight_rows, np, exact=True)
            if step.bias_scaled:
                bias_scale = self._array(np.asarray(step.bias_coefficients, dtype=np.float64)[:, None])
            if not step.one_term_per_sum:
                bias_segments = self._array(np.asarray(step.bias_sum, dtype=np.int64))
        return _SumsStep(
            step.buffer, k, step.layout, weights, tuple(shape), scale, values, segments,
            bias, bias_weights, bias_scale, bias_segments,
        )  # fmt: skip

    def converted(self, key: Any, convert: Callable[[Any], Any]) -> list[Any]:
        """`arrays` converted by `convert` (made once per `key`, e.g. per engine and device)."""
        with self._lock:
            got = self.cache.get(key)
            if got is None:
                got = self.cache[key] = [convert(a) for a in self.arrays]
            return got

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


class _Engine:
    """What `_run` needs of JAX or PyTorch: array operations, and `map` running a row on blocks."""

    def __init__(self, arrays: list[Any], **ops: Callable[..., Any]) -> None:
        self.arrays = arrays
        self.cat: Callable[[list[Any]], Any] = ops["cat"]  # concatenate along the rows
        self.take: Callable[[Any, Any], Any] = ops["take"]  # rows by an index array
        self.segment_sum: Callable[[Any, Any, int], Any] = ops["segment_sum"]  # rows summed per segment
        self.broadcast_to: Callable[[Any, tuple[int, ...]], Any] = ops["broadcast_to"]
        self.map: Callable[[Op, list[Any]], Any] = ops["map"]  # a row's forward, with its derivatives


def _reads(step: _MapStep | _SumsStep) -> list[_Read]:
    """Everything `step` reads."""
    if isinstance(step, _MapStep):
        return list(step.operands)
    return [r for r in (step.weights, step.values, step.bias, step.bias_weights) if r is not None]


def _get(blocks: list[list[Any]], read: _Read, e: _Engine) -> Any:
    """The rows `read` names, from the blocks computed so far."""
    if read.index is None:
        block = blocks[read.buffer][read.blocks[0]]
        if read.start == 0 and read.stop == block.shape[0]:
            return block  # the whole block: no slice, whose gradient would be a copy into zeros
        return block[read.start : read.stop]
    parts = [blocks[read.buffer][b] for b in read.blocks]
    return e.take(parts[0] if len(parts) == 1 else e.cat(parts), e.arrays[read.index])


def _run(plan: _Plan, e: _Engine, uniform: Any, varying: Any, width: int) -> list[Any]:
    """The plan's steps on the leaves' blocks (uniform: (rows, 1); varying: (inputs, width)); returns
    the outputs as rows of `width` entries."""
    blocks: list[list[Any]] = [[uniform], [varying]]
    widths = (1, width)
    for step in plan.steps:
        shape = (step.k, widths[step.buffer])
        if isinstance(step, _MapStep):
            out = e.map(step.op, [_get(blocks, r, e) for r in step.operands])
        else:
            out = None
            if step.layout is not None:
                w = _get(blocks, step.weights, e)  # type: ignore[arg-type]
                x = _get(blocks, step.values, e)  # type: ignore[arg-type]
                if step.layout == "dense":
                    w = w.reshape(step.shape)
                    if step.scale is not None:
                        w = w * e.arrays[step.scale]
                    out = w @ x
                else:
                    terms = x * (w * e.arrays[step.scale])
                    out = e.segment_sum(terms, e.arrays[step.segments], step.k)
            if step.bias is not None:
                bias = _get(blocks, step.bias, e)
                if step.bias_weights is not None:
                    bias = bias * _get(blocks, step.bias_weights, e)
                if step.bias_scale is not None:
                    bias = bias * e.arrays[step.bias_scale]
                if step.bias_segments is not None:
                    bias = e.segment_sum(bias, e.arrays[step.bias_segments], step.k)
                out = bias if out is None else out + bias
        blocks[step.buffer].append(out if tuple(out.shape) == shape else e.broadcast_to(out, shape))
    return [e.broadcast_to(_get(blocks, r, e)[0], (width,)) for r in plan.outputs]


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
            step=lambda x: jnp.where(x <= 0.0, 0.0, 1.0),  # 1 at NaN, as the float backend's step
            sign=lambda x: jnp.where(jnp.isnan(x), 0.0, jnp.sign(x)),  # 0 at NaN, as the float backend
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
    for step in plan.steps:
        if isinstance(step, _MapStep) and step.op not in rules:
            rules[step.op] = _jax_rule(step.op, m, jax)

    def run_map(op: Op, xs: list[Any]) -> Any:
        if check and op.invalid is not None:
            _jax_domain_check(op, m, jax, xs)
        return rules[op](*xs)

    def segment_sum(x: Any, ids: Any, k: int) -> Any:
        return jax.ops.segment_sum(x, ids, num_segments=k, indices_are_sorted=True)

    # index arrays stay numpy: inside jit they become constants of the compiled program
    engine = _Engine(
        plan.arrays,
        cat=jnp.concatenate,
        take=lambda x, index: x[index],
        segment_sum=segment_sum,
        broadcast_to=jnp.broadcast_to,
        map=run_map,
    )
    fixed = jnp.asarray([0.0, 1.0], dtype=f64)  # the uniform buffer's rows 0.0 and 1.0
    constants = jnp.asarray(plan.constants, dtype=f64)
    params = jnp.asarray(plan.parameters, dtype=f64)

    def run(theta: Any, *xs: Any) -> Any:
        """The program on float64 arrays already checked by `fn`."""
        batch = next((x.shape[0] for x in xs if x.ndim == 1), None)
        width = 1 if batch is None else batch
        ordered = theta if plan.theta_order is None else theta[plan.arrays[plan.theta_order]]
        uniform = jnp.concatenate([fixed, ordered, constants])[:, None]
        varying = jnp.stack([jnp.broadcast_to(x, (width,)) for x in xs]) if xs else jnp.zeros((0, width), f64)
        outs = tuple(o if batch is not None else o[0] for o in _run(plan, engine, uniform, varying, width))
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
            step=lambda x: (~(x <= 0.0)).to(x.dtype),  # 1 at NaN, as the float backend's step
            sign=lambda x: torch.where(torch.isnan(x), torch.zeros_like(x), torch.sign(x)),  # 0 at NaN
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


def _sum_to(torch: ModuleType, part: Any, shape: Any) -> Any:
    """`part` (an operand's gradient, as broad as the output) summed down to the operand's `shape`."""
    if part.shape == shape:
        return part
    dims = [d for d, (n, p) in enumerate(zip(shape, part.shape, strict=True)) if n == 1 and p != 1]
    return part.sum(dim=dims, keepdim=True) if dims else part


def _torch_classes(torch: ModuleType) -> tuple[type, type]:
    """The autograd Function and the nn.Module class of exported programs (made once: torch is optional)."""
    with _LOCK:
        if "torch_classes" in _CACHE:
            return _CACHE["torch_classes"]
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
                    grads[i] = _sum_to(torch, part, xs[i].shape)
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

    def convert(device: Any) -> Callable[[Any], Any]:
        return lambda a: torch.as_tensor(a, device=device)

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
                f"instructions={plan.n_instructions} in {len(plan.steps)} steps"
            )

        def forward(self, *inputs: Any) -> Any:
            """What `program(*inputs)` returns, as float64 tensors (a batch for 1-d tensors)."""
            plan = self.plan
            plan.check_count(inputs)
            theta = self.theta
            xs = []
            for name, x in zip(plan.names, inputs, strict=True):
                if not _is_input(x):
                    raise _input_error(name, x, "tensor")
                xs.append(torch.as_tensor(x, dtype=torch.float64, device=theta.device))
            batch = plan.batch([tuple(x.shape) for x in xs])
            width = 1 if batch is None else batch
            arrays = plan.converted(("torch", theta.device), convert(theta.device))
            engine = _Engine(
                arrays,
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
            outs = [o if batch is not None else o[0] for o in _run(plan, engine, uniform, varying, width)]
            unused = [x for i, x in enumerate(xs) if i in plan.unused_inputs]
            if plan.n_par == 0:
                unused.append(self.theta)
            if any(x.requires_grad for x in unused) and torch.is_grad_enabled():
                # leaves no output reads still get a gradient, zeros, as from Program.value_and_grad
                outs = [Tie.apply(o, *unused) for o in outs]
            return outs[0] if plan.single else tuple(outs)

    with _LOCK:
        return _CACHE.setdefault("torch_classes", (RowFunction, ExportedProgram))


def to_torch(program: Program) -> Any:
    """The program as a `torch.nn.Module` (float64): `module(*inputs)` returns what `program(*inputs)` does.

    Its one `nn.Parameter`, `theta`, holds the parameters' current `.data` in `program.parameters`
    order (constants are copied into a buffer at export time), so `torch.optim` trains it. Backward
    runs the table's derivative rules (one `torch.autograd.Function` per row) and torch's own for the
    matrix products, so autograd's gradients are `program.value_and_grad`'s; gradients of gradients
    are not supported.
    Outside an op's domain the module computes NaN or inf, as PyTorch does.
    """
    torch = _require("torch", "torch", "Program.to_torch()")
    return _torch_classes(torch)[1](program)
