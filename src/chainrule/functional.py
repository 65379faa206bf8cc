"""Derivatives as functions: `grad`, `value_and_grad`, `jacobian`, `hessian`, and gradient checking.

`grad(f)` turns a Python function of scalars into the function computing its derivative. It has two
modes, chosen at every call:

- floats in, floats out: the arguments become fresh leaf `Value`s, `f` runs once, and one backward
  sweep runs on plain floats (first-order speed, no `.grad` is touched);
- `Value`s in (or a call made while another `grad` is evaluating its function), `Value`s out: the
  backward sweep runs on `Value`s, so the result is itself a graph and can be differentiated again.
  That is why `grad(grad(f))` is the second derivative and `grad(grad(grad(f)))` the third.
  Placeholders in (what `jit(grad(f))` passes while tracing) work the same way: the gradient is a
  graph of placeholders, which jit compiles.

`numerical_grad` and `gradcheck` check analytic derivatives against difference quotients, the way
the seed notebooks did by hand.
"""

from __future__ import annotations

import inspect
import math
import numbers
import threading
from collections.abc import Callable, Sequence
from typing import Any

from . import engine
from .engine import Symbolic, Value, constant, gradients
from .errors import BackwardClosureError, GradcheckError, PlaceholderError

Argnums = int | Sequence[int]


class TracedDerivativeError(PlaceholderError):
    """`grad` of a traced function (`jit(grad(f))`) met a derivative that needs its input's value.

    The derivatives of relu, abs and `**` pick a formula by looking at their input (its sign, or
    whether it is 0), which a placeholder does not have until the compiled program runs.
    """


# How many grad/jacobian calls are evaluating their function right now, in this thread. A derivative
# computed while another one is being evaluated must stay a graph (the outer call differentiates it
# again), even when its own arguments are plain floats: `grad(lambda x: grad(lambda y: x * y)(1.0))(2.0)`
# closes over x. The count is per thread (like no_grad): another thread's grad says nothing about ours.
_state = threading.local()


def _recording_depth() -> int:
    """How many grad/jacobian calls of this thread are evaluating their function right now."""
    return getattr(_state, "depth", 0)


# --- helpers ------------------------------------------------------------------------------------
def _argnums(argnums: Argnums, who: str) -> tuple[tuple[int, ...], bool]:
    """`argnums` checked once, when the derivative function is made: (positions, was it an int)."""
    single = isinstance(argnums, numbers.Integral) and not isinstance(argnums, bool)
    items = (argnums,) if single else argnums
    if not isinstance(items, Sequence) or not all(
        isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in items
    ):
        raise TypeError(f"{who}: argnums must be an int or a tuple of ints, got {argnums!r}")
    if not items:
        raise ValueError(f"{who}: argnums must name at least one argument, got {argnums!r}")
    return tuple(int(i) for i in items), single


def _positions(items: tuple[int, ...], nargs: int, who: str) -> tuple[int, ...]:
    """The positions in `items` for a call with `nargs` arguments (negative ones count from the end)."""
    if all(0 <= i < nargs for i in items):
        return items
    for i in items:
        if not -nargs <= i < nargs:
            argnums = items[0] if len(items) == 1 else items
            raise IndexError(
                f"{who}: argnums={argnums!r} but the function was called with {nargs} argument(s)"
            )
    return tuple(i % nargs for i in items)


def _check_scalar_arg(x: Any, i: int, who: str) -> None:
    # type() first: the common case, a float or a Value, skips the slower abstract-class check.
    if type(x) is float or isinstance(x, Value | numbers.Real):
        return
    raise TypeError(f"{who}: argument {i} must be a real number or a Value, got {type(x).__name__}: {x!r}")


def _is_scalar(out: Any) -> bool:
    return isinstance(out, Value | numbers.Real)


def _scalar_output(out: Any, who: str) -> Any:
    """`out` if it is a scalar (a Value or a number), else a TypeError saying what f returned."""
    if _is_scalar(out):
        return out
    hint = " (use chainrule.jacobian for a function returning several values)" if who != "jacobian" else ""
    raise TypeError(f"{who}: f must return a scalar (a Value or a number), got {type(out).__name__}{hint}")


class _Call:
    """One evaluation of `f` on differentiable stand-ins for the chosen arguments."""

    def __init__(
        self,
        f: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        spec: tuple[tuple[int, ...], bool],
        who: str,
    ) -> None:
        self.who = who
        self.positions = _positions(spec[0], len(args), who)
        self.single = spec[1]
        for i in self.positions:
            _check_scalar_arg(args[i], i, who)
        depth = _recording_depth()
        self.graph = depth > 0 or any(isinstance(a, Value) for a in args)
        call_args = list(args)
        # grad() asks for gradients, so it records a graph even inside no_grad() (as torch.func does).
        _state.depth = depth + 1
        try:
            with engine.enable_grad():
                self.leaves: dict[int, Value] = {}
                for i in self.positions:
                    if i not in self.leaves:
                        self.leaves[i] = self._stand_in(args[i])
                    call_args[i] = self.leaves[i]
                self.out = f(*call_args, **kwargs)
        finally:
            _state.depth = depth

    def _stand_in(self, x: Any) -> Value:
        if not isinstance(x, Value):
            return Value(float(x))
        # A Value argument is wrapped in an identity node (x + 0) that always requires grad, so
        # its gradient is this argument's alone (even when the same Value is passed twice, or is a
        # constant) while the result stays connected to the caller's graph through x.
        wrapper = x + 0.0
        wrapper.requires_grad = True
        return wrapper

    def value(self, out: Any) -> Any:
        """The output as the caller expects it: a float, or a Value when working on graphs."""
        if self.graph:
            return out if isinstance(out, Value) else constant(out)
        return out.data if isinstance(out, Value) else float(out)

    def gradients(self, out: Any) -> Any:
        """d(out)/d(each chosen argument): a float/Value, or a tuple of them for tuple argnums."""
        found: dict[Value, Any] = {}
        if isinstance(out, Symbolic) and out.requires_grad:
            # f was traced on placeholders (jit(grad(f))): its gradient is a graph of them.
            found = _traced_gradients(out, self.who)
        elif isinstance(out, Value) and out.requires_grad:
            found = gradients(out, create_graph=self.graph)
        # Arguments the output does not depend on are not reached by the sweep: their gradient is 0.
        grads = tuple(self._read(found.get(self.leaves[i])) for i in self.positions)
        return grads[0] if self.single else grads

    def _read(self, g: Any) -> Any:
        if g is None:
            return constant(0.0) if self.graph else 0.0
        return g if self.graph else float(g)


class _TracedCheck:
    """The reference sweep's hook for a traced graph: a rule that needs its input's number is named."""

    def __init__(self, who: str) -> None:
        self.who = who

    def visiting(self, node: Value, g: Any) -> None:
        """A traced node has no data that could have changed: nothing to check."""

    def contribution(self, node: Value, i: int, g: Any, d: Any, before: Any, total: Any) -> None:
        """Every contribution of a traced graph is a graph itself: nothing to check."""

    def failed(self, node: Value, g: Any, exc: BaseException) -> None:
        if isinstance(exc, PlaceholderError):
            raise TracedDerivativeError(
                f"{self.who}: the derivative of {node._op!r} picks its formula by looking at "
                f"its input, which a traced function (jit(grad(f))) does not have until it "
                f"runs; differentiate the compiled function instead: grad(jit(f))"
            ) from None


def _traced_gradients(out: Value, who: str) -> dict[Value, Any]:
    """d(out)/d(node) as graphs for every node below `out`, a Value traced on placeholders.

    The engine's reference sweep with its rules on Values: each gradient is itself a traced graph,
    which `jit` then compiles. It touches no node's `.grad`.
    """
    order = engine.gradient_order(out)
    return engine.sweep(out, constant(1.0), order, graph=True, check=_TracedCheck(who))


# --- the functional API -------------------------------------------------------------------------
def value_and_grad(f: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., tuple[Any, Any]]:
    """Make a function returning `(f(*args), gradient of f)` from one forward and one backward pass."""

    spec = _argnums(argnums, "value_and_grad")

    def value_and_grad_f(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        call = _Call(f, args, kwargs, spec, "value_and_grad")
        out = _scalar_output(call.out, "value_and_grad")
        return call.value(out), call.gradients(out)

    _name(value_and_grad_f, "value_and_grad", f)
    return value_and_grad_f


def grad(f: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """Make a function computing the derivative of scalar-valued `f` with respect to `argnums`."""

    spec = _argnums(argnums, "grad")

    def grad_f(*args: Any, **kwargs: Any) -> Any:
        call = _Call(f, args, kwargs, spec, "grad")
        return call.gradients(_scalar_output(call.out, "grad"))

    _name(grad_f, "grad", f)
    return grad_f


def jacobian(f: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """Make a function computing d(outputs)/d(arguments) of `f`, which returns a list of scalars.

    Rows follow the outputs and columns the arguments: `J[i][j]` is d f_i / d args[argnums[j]].
    As in JAX, an int `argnums` drops the column dimension and a scalar output the row dimension.
    """

    spec = _argnums(argnums, "jacobian")

    def jacobian_f(*args: Any, **kwargs: Any) -> Any:
        call = _Call(f, args, kwargs, spec, "jacobian")
        out = call.out
        if _is_scalar(out):
            return call.gradients(out)
        if not isinstance(out, list | tuple):
            raise TypeError(
                f"jacobian: f must return a scalar or a list/tuple of scalars, got {type(out).__name__}"
            )
        rows = []
        for k, item in enumerate(out):
            if not _is_scalar(item):
                raise TypeError(
                    f"jacobian: output {k} of f must be a scalar (a Value or a number), "
                    f"got {type(item).__name__}"
                )
            g = call.gradients(item)
            rows.append(g if call.single else list(g))
        return rows

    _name(jacobian_f, "jacobian", f)
    return jacobian_f


def hessian(f: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """Make a function computing the matrix of second derivatives of scalar-valued `f`.

    `H[j][k]` is d2f / d args[argnums[j]] d args[argnums[k]], as nested lists; an int `argnums`
    gives the single number f'' instead.
    """
    hessian_f = jacobian(grad(f, argnums), argnums)
    _name(hessian_f, "hessian", f)
    return hessian_f


def _name(wrapper: Callable[..., Any], what: str, f: Callable[..., Any]) -> None:
    # Readable reprs and tracebacks: <function grad(my_loss)>.
    inner = getattr(f, "__name__", type(f).__name__)
    wrapper.__name__ = wrapper.__qualname__ = f"{what}({inner})"
    wrapper.__doc__ = f"The {what.replace('_', ' ')} of {inner}."


# --- finite differences and gradient checking ---------------------------------------------------
_METHODS = ("central", "forward")


def _data(x: Any, i: int, who: str) -> float:
    _check_scalar_arg(x, i, who)
    return x.data if isinstance(x, Value) else float(x)


def _as_float(out: Any, who: str) -> float:
    out = _scalar_output(out, who)
    return out.data if isinstance(out, Value) else float(out)


def _difference(
    fn: Callable[[list[float]], Any], xs: list[float], i: int, h: float, method: str, at: Any = None
) -> Any:
    """The difference quotient of `fn` in argument i (fn returns a float or a tuple of floats)."""

    def shifted(dx: float) -> Any:
        ys = list(xs)
        ys[i] += dx
        return fn(ys)

    if method == "central":
        hi, lo, width = shifted(h), shifted(-h), 2 * h
    else:
        hi, lo, width = shifted(h), (at if at is not None else fn(xs)), h
    if isinstance(hi, tuple):
        return tuple((a - b) / width for a, b in zip(hi, lo, strict=True))
    return (hi - lo) / width


def _check_method(h: float, method: str, who: str) -> None:
    if method not in _METHODS:
        raise ValueError(f"{who}: unknown method {method!r}; use 'central' or 'forward'")
    if not (isinstance(h, numbers.Real) and h > 0 and math.isfinite(h)):
        raise ValueError(f"{who}: the step h must be a positive number, got {h!r}")


def numerical_grad(
    f: Callable[..., Any], *args: Any, h: float = 1e-6, method: str = "central"
) -> tuple[float, ...]:
    """Estimate the gradient of `f` with respect to every argument by finite differences.

    `f` is called with `Value`s (so the function you give `grad` serves here too) and may return a
    Value or a number. `method="central"` uses (f(x+h) - f(x-h)) / 2h, error O(h^2);
    `method="forward"` uses (f(x+h) - f(x)) / h, error O(h), as the seed notebooks did.
    """
    _check_method(h, method, "numerical_grad")
    xs = [_data(x, i, "numerical_grad") for i, x in enumerate(args)]

    def at(ys: list[float]) -> float:
        # No graph is needed to evaluate f; no_grad() keeps each evaluation cheap.
        with engine.no_grad():
            return _as_float(f(*(Value(y) for y in ys)), "numerical_grad")

    base = at(xs) if method == "forward" else None
    return tuple(_difference(at, xs, i, h, method, base) for i in range(len(xs)))


def gradcheck(
    f: Callable[..., Any], *args: Any, atol: float = 1e-6, rtol: float = 1e-4, order: int = 1, h: float = 1e-6
) -> bool:
    """Check `grad(f)` against central differences at `args`: True, or a GradcheckError with a table.

    A derivative passes when |analytic - numerical| <= atol + rtol * |numerical|. With `order=2`
    the second derivatives are checked too: the analytic Hessian against central differences of
    the analytic gradient (as PyTorch's gradgradcheck does).
    """
    if order not in (1, 2):
        raise ValueError(f"gradcheck: order must be 1 or 2, got {order!r}")
    _check_method(h, "central", "gradcheck")
    if not args:
        raise ValueError("gradcheck: give the point to check at, e.g. gradcheck(f, 1.0, 2.0)")
    xs = [_data(x, i, "gradcheck") for i, x in enumerate(args)]
    names = argument_names(f, len(xs))
    every = tuple(range(len(xs)))
    first = grad(f, argnums=every)

    try:
        analytic = first(*xs)
    except BackwardClosureError as exc:  # a hand-built _backward that overwrote a .grad: say so here
        raise GradcheckError(f"gradcheck: {exc}") from exc
    rows = list(zip(names, analytic, numerical_grad(f, *xs, h=h), strict=True))
    if order == 2:
        hess = hessian(f, argnums=every)(*xs)
        gradient = lambda ys: first(*ys)  # noqa: E731 - the analytic gradient, as floats
        for j in every:
            column = _difference(gradient, xs, j, h, "central")
            for i in every:
                rows.append((f"d2/d{names[i]} d{names[j]}", hess[i][j], column[i]))

    bad = [not _close(a, n, atol, rtol) for _, a, n in rows]
    if any(bad):
        where = ", ".join(f"{n}={x!r}" for n, x in zip(names, xs, strict=True))
        table = format_table(
            ["argument", "analytic", "numerical", "difference", ""],
            [
                [name, a, n, abs(a - n), "<- mismatch" if b else ""]
                for (name, a, n), b in zip(rows, bad, strict=True)
            ],
        )
        raise GradcheckError(
            f"gradcheck: {sum(bad)} of {len(rows)} derivatives of {getattr(f, '__name__', 'f')} "
            f"disagree at {where} "
            f"(atol={atol:g}, rtol={rtol:g}, central differences with h={h:g})\n{table}"
        )
    return True


def _close(a: float, n: float, atol: float, rtol: float) -> bool:
    # a == n lets equal infinities pass; NaN is never close to anything.
    return a == n or abs(a - n) <= atol + rtol * abs(n)


def argument_names(f: Callable[..., Any], n: int) -> list[str]:
    """Names for the first `n` positional arguments of `f` (from its signature), for tables."""
    names: list[str] = []
    try:
        params = list(inspect.signature(f).parameters.values())
    except (TypeError, ValueError):  # builtins and some callables have no signature
        params = []
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            names += [f"{p.name}[{k}]" for k in range(n - len(names))]
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
        if len(names) >= n:
            break
    names += [f"args[{k}]" for k in range(len(names), n)]
    return names[:n]


def format_table(header: list[str], rows: list[list[Any]]) -> str:
    """A small left-aligned text table; floats printed with 10 significant digits."""
    cells = [header] + [[f"{c:.10g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(row[k]) for row in cells) for k in range(len(header))]
    return "\n".join(
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )
