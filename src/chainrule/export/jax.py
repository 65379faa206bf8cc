"""A planned Program as a pure JAX function: `to_jax`.

Each table row becomes one `jax.custom_jvp` whose derivative is the row's own rules, so JAX's grad,
jit, vmap and sharding all see chainrule's gradients; the sums of products are JAX matrix products,
differentiated by JAX.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..backends import Backend, jax_backend, require_module
from ..compiler.plan import MapGroup
from ..errors import outside_domain
from .arrays import ArrayEngine, batch_size, check_count, input_error, is_input, plan_of, run

if TYPE_CHECKING:  # pragma: no cover - for type hints only
    from ..ops import Op

__all__ = ["to_jax"]


def _jax_rule(op: Op, m: Backend, jax: ModuleType) -> Callable[..., Any]:
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


def _jax_domain_check(op: Op, m: Backend, jax: ModuleType, xs: Sequence[Any]) -> None:
    """A `checkify.check` that the operands (k, B blocks) are in `op`'s domain, naming op and values."""
    from jax.experimental import checkify

    jnp = jax.numpy
    bad = op.invalid(m, *xs)
    shape = jnp.broadcast_shapes(jnp.shape(bad), *(jnp.shape(x) for x in xs))
    flat = jnp.ravel(jnp.broadcast_to(bad, shape))
    index = jnp.argmax(flat)  # the first offending entry (0 if there is none)
    values = [jnp.ravel(jnp.broadcast_to(x, shape))[index] for x in xs]
    # the engine's own wording (errors.outside_domain), with checkify's "{}" where the values go
    message = str(outside_domain(op.name, op.domain_text, ", ".join("{}" for _ in xs), None, ValueError))
    checkify.check(
        jnp.logical_not(jnp.any(flat)), message + " (at batch index {})", *values, index % shape[-1]
    )


def to_jax(program: Any, *, check: bool = False) -> tuple[Callable[..., Any], Any]:
    """`(fn, params)`: the program as a pure JAX function `fn(params, *inputs)`, and its parameters.

    `program` is a compiled Program (or its `Program.plan()`). `params` is a 1-d float64 JAX array
    of the parameters' current `.data`, in `program.parameters` order; constants are copied in at
    export time. `fn` returns what `program(*inputs)` returns: for numbers (or 0-d arrays) a 0-d
    array, for 1-d arrays of length B an array of B; a tuple for a program of several outputs.
    Exporting turns on JAX's float64 mode (`jax_enable_x64`, a global JAX setting) because
    chainrule computes in float64.

    Outside an op's domain (log of a negative number, ...) JAX computes NaN or inf instead of
    raising, as it must under `jit`. With `check=True` each domain-limited op adds a
    `jax.experimental.checkify.check` naming the op and the offending value: calling `fn` without
    `jit` then raises, and `checkify.checkify(jax.jit(fn))` returns `(error, out)`; `error.throw()`.
    """
    plan = plan_of(program)
    jax = require_module("jax", "jax", "Program.to_jax()")
    m = jax_backend()  # also turns on float64 mode
    jnp = jax.numpy
    f64 = jnp.float64
    rules: dict[Op, Callable[..., Any]] = {}
    for group in plan.groups:
        if isinstance(group, MapGroup) and group.op not in rules:
            rules[group.op] = _jax_rule(group.op, m, jax)

    def run_map(op: Op, xs: list[Any]) -> Any:
        if check and op.invalid is not None:
            _jax_domain_check(op, m, jax, xs)
        return rules[op](*xs)

    def segment_sum(x: Any, ids: Any, k: int) -> Any:
        # a scatter-add into zeros: behind the barrier, because XLA would otherwise start it from
        # the next node's other operand (scatter(y, ...) for scatter(0, ...) + y), adding across nodes
        sums = jax.ops.segment_sum(x, ids, num_segments=k, indices_are_sorted=True)
        return jax.lax.optimization_barrier(sums)

    # index arrays stay numpy: inside jit they become constants of the compiled program
    engine = ArrayEngine(
        arrays=plan.arrays,
        cat=jnp.concatenate,
        take=lambda x, index: x[index],
        segment_sum=segment_sum,
        broadcast_to=jnp.broadcast_to,
        map=run_map,
    )
    fixed = jnp.asarray([0.0, 1.0], dtype=f64)  # the uniform buffer's rows 0.0 and 1.0
    constants = jnp.asarray(plan.constants, dtype=f64)
    params = jnp.asarray(plan.parameters, dtype=f64)

    def run_plan(theta: Any, *xs: Any) -> Any:
        """The program on float64 arrays already checked by `fn`."""
        batch = next((x.shape[0] for x in xs if x.ndim == 1), None)
        width = 1 if batch is None else batch
        ordered = theta if plan.theta_order is None else theta[plan.arrays[plan.theta_order]]
        # behind a barrier XLA sees no constant: it would otherwise fold (x + 1e300) - 1e300 into
        # x + (1e300 - 1e300), adding in another order than the graph (and give x, not 0.0)
        uniform = jax.lax.optimization_barrier(jnp.concatenate([fixed, ordered, constants]))[:, None]
        varying = jnp.stack([jnp.broadcast_to(x, (width,)) for x in xs]) if xs else jnp.zeros((0, width), f64)
        outs = tuple(o if batch is not None else o[0] for o in run(plan, engine, uniform, varying, width))
        return outs[0] if plan.single else outs

    # Compiled once per input shapes, so that calling fn directly is fast too; with checks it stays
    # uncompiled, so that a direct call raises (checkify's checks need checkify.checkify under jit).
    core = run_plan if check else jax.jit(run_plan)

    def fn(params: Any, *inputs: Any) -> Any:
        """The exported program: pure, for jit, grad, vmap and sharded inputs."""
        check_count(plan, inputs)
        for name, x in zip(plan.input_names, inputs, strict=True):
            if not is_input(x):
                raise input_error(name, x, "array")
        xs = [jnp.asarray(x, dtype=f64) for x in inputs]
        batch_size(plan, [jnp.shape(x) for x in xs])  # refuses 2-d inputs and unequal lengths
        theta = jnp.asarray(params, dtype=f64)
        if jnp.shape(theta) != (plan.n_parameters,):
            raise ValueError(
                f"params must be a 1-d array of {plan.n_parameters} numbers, got shape {jnp.shape(theta)}"
            )
        return core(theta, *xs)

    return fn, params
