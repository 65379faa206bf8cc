"""`jit`: trace a Python function with placeholders on its first call, then run it compiled.

A jit function composes with `chainrule.grad` both ways:

- `jit(grad(f))` traces the gradient function: `grad` builds the gradient of `f` as a graph of
  placeholders, which is compiled like any other function and run as a Program;
- `grad(jit(f))` (or any call with `Value` arguments) runs the traced program on those Values, op by
  op, so the result is a graph that `grad` differentiates, to any order.
"""

from __future__ import annotations

import functools
import inspect
import numbers
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..engine import Value, apply, constant, depends_on, placeholder
from ..errors import PlaceholderError
from ..functional import TracedDerivativeError
from .program import Program, compile  # noqa: A004

__all__ = ["JitFunction", "jit", "run_on_values"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # chainrule/

# The traces running in each thread right now, as (id of the JitFunction, number of arguments) ->
# how many recursive calls it has traced inline so far: a function that calls itself while being
# traced has its recursive call traced inline.
_tracing = threading.local()


class JitFunction:
    """`f` traced with placeholders on its first call, then run as a compiled Program."""

    def __init__(self, f: Callable[..., Any]) -> None:
        self.f = f
        self.programs: dict[int, Program] = {}  # one program per number of arguments
        # per number of arguments, how f's results nest in lists and tuples (None: a single result)
        self._shapes: dict[int, Any] = {}
        # Held only to publish a finished trace, never while f runs: a lock held around user code
        # would deadlock a function that calls itself (or two jit functions calling each other).
        self._lock = threading.Lock()
        functools.update_wrapper(self, f)

    def trace(self, n: int) -> Program:
        """The Program for `n` arguments (traced now if it does not exist yet).

        Threads calling a new jit function at once may each trace it; the first program finished
        is kept and every thread runs that one.
        """
        program = self.programs.get(n)
        if program is None:
            traced, shape = self._trace(n)
            with self._lock:
                if n not in self.programs:
                    self._shapes[n] = shape  # first: a program is run as soon as it is in `programs`
                    self.programs[n] = traced
                program = self.programs[n]
        return program

    def _trace(self, n: int) -> tuple[Program, Any]:
        """A new Program for `n` arguments, and the shape of f's result (see `_flatten`)."""
        xs = [placeholder(label) for label in _arg_names(self.f, n)]
        key = (id(self), n)
        active = _active_traces()
        active[key] = 0
        try:
            out = self.f(*xs)
        except TracedDerivativeError:
            raise  # already says what to do (jit(grad(f)) with a derivative that needs the data)
        except PlaceholderError as exc:
            raise PlaceholderError(
                f"jit: {self._name()} could not be traced: it uses {_what(exc, xs)} in Python control "
                f"flow or as a plain number (if/while, comparisons, float(), math.* functions)"
                f"{_where(exc)}. jit runs the function once on placeholders, so its "
                f"result must come from chainrule operations alone: write a branch as an operation "
                f"(x.relu(), abs(x), a chainrule.defop), or keep that part outside the jit function"
            ) from None
        except RecursionError:
            if not active.get(key):
                raise  # not a recursion through this jit function
            raise RecursionError(
                f"jit: {self._name()} calls itself without end while being traced: its recursive calls "
                f"are traced inline, on placeholders that have no values yet, so the recursion must stop "
                f"on something other than its arguments' values (or keep the recursion outside jit)"
            ) from None
        finally:
            del active[key]
        outputs: list[Value] = []
        shape = _flatten(self._name(), out, outputs)
        return compile(outputs[0] if shape is None else outputs, xs), shape

    def _name(self) -> str:
        return getattr(self.f, "__qualname__", None) or getattr(self.f, "__name__", None) or repr(self.f)

    @property
    def program(self) -> Program | None:
        """The most recently traced Program (None before the first call)."""
        return next(reversed(self.programs.values()), None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise TypeError(f"{self._name()}: a jit-compiled function takes positional arguments only")
        n = len(args)
        active = _active_traces()
        if (id(self), n) in active:  # f calling itself while being traced: the call is traced inline
            active[id(self), n] += 1
            return self.f(*args)
        if any(isinstance(a, Value) for a in args):
            result = run_on_values(self.trace(n), args, self._name())
        else:
            result = self.trace(n)(*args)
        shape = self._shapes[n]
        return result if shape is None else _unflatten(shape, iter(result))

    def value_and_grad(self, *args: Any, grad_output: Any = None) -> tuple[Any, tuple[Any, ...]]:
        """`(value, input_grads)` of the compiled function; adds parameter gradients into `.grad`."""
        return self.trace(len(args)).value_and_grad(*args, grad_output=grad_output)

    def __reduce__(self) -> tuple[Any, ...]:
        # Copies and pickles are the function, traced again on first use: the programs hold locks and
        # generated code, and a deep copy of their parameters would no longer be the ones f reads.
        return (JitFunction, (self.f,))


def _active_traces() -> dict[tuple[int, int], int]:
    """The traces running in this thread, with how many recursive calls each has traced inline."""
    active = getattr(_tracing, "active", None)
    if active is None:
        active = _tracing.active = {}
    return active


def _flatten(name: str, out: Any, outputs: list[Value]) -> Any:
    """Append the results in `out` (nested lists and tuples of them) to `outputs`; return its shape.

    The shape is None for one result, else (list or tuple, the shapes of the items): what
    `_unflatten` needs to give the caller the nesting f returned (e.g. hessian's list of lists).
    Numbers become constants: a result that does not depend on the arguments.
    """
    if isinstance(out, list | tuple):
        return (type(out), [_flatten(name, item, outputs) for item in out])
    if isinstance(out, Value):
        outputs.append(out)
    elif isinstance(out, numbers.Real):
        outputs.append(Value(out, requires_grad=False))
    else:
        raise TypeError(
            f"jit: {name} must return a Value, a number, or lists/tuples of them; got "
            f"{type(out).__name__}: {out!r:.60}"
        )
    return None


def _unflatten(shape: Any, results: Iterator[Any]) -> Any:
    """The flat results of a run, nested again as `shape` (from `_flatten`) says."""
    if shape is None:
        return next(results)
    kind, items = shape
    return kind(_unflatten(item, results) for item in items)


def run_on_values(program: Program, args: Sequence[Any], name: str = "jit") -> Any:
    """Run `program` on `Value`s (numbers allowed), op by op: the graph the traced function builds.

    This is how a jit function is differentiated (`grad(jit(f))`): the result is connected to the
    arguments and to the program's parameters, which are the very Values the function reads.
    """
    n_in = len(program.inputs)
    if len(args) != n_in:
        raise TypeError(f"{name}: this function takes {n_in} arguments, got {len(args)}")
    slots: list[Any] = []
    for label, x in zip((x.label for x in program.inputs), args, strict=True):
        if isinstance(x, Value):
            slots.append(x)
        elif isinstance(x, numbers.Real):
            slots.append(constant(x))
        else:
            raise TypeError(
                f"{name}: called with Values, so argument {label!r} must be a number or a Value too "
                f"(arrays run the compiled program: call it with numbers or arrays only), "
                f"got {type(x).__name__}: {x!r:.60}"
            )
    # The parameters themselves (and the constants): gradients reach them as in eager code.
    slots.extend(program.leaves[n_in:])
    for ins in program.instructions:
        slots.append(apply(ins.op, *(slots[a] for a in ins.args)))
    outs = [slots[s] for s in program.output_slots]
    return outs[0] if program.single else outs


def _what(exc: BaseException, xs: list[Value]) -> str:
    """Which arguments the value that was read depends on, as text."""
    node = getattr(exc, "node", None)
    if not isinstance(node, Value):
        return "a value computed from its arguments"
    if node in xs:
        return f"its argument {node.label!r}"
    found = depends_on(node, xs)  # the engine's walk: each node of the traced graph visited once
    names = ", ".join(repr(x.label) for x in found)
    return f"a value computed from its argument{'s' if len(found) > 1 else ''} {names}"


def _where(exc: BaseException) -> str:
    """' (at file.py:12)': the innermost line outside chainrule where `exc` was raised, if any."""
    tb, where = exc.__traceback__, ""
    while tb is not None:
        filename = os.path.abspath(tb.tb_frame.f_code.co_filename)
        if not filename.startswith(_PACKAGE_DIR + os.sep):
            where = f" (at {os.path.basename(filename)}:{tb.tb_lineno})"
        tb = tb.tb_next
    return where


def _arg_names(f: Callable[..., Any], n: int) -> list[str]:
    """Labels for `n` placeholders: `f`'s parameter names where they exist."""
    try:
        params = list(inspect.signature(f).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = []
    for i in range(n):
        if i < len(params) and params[i].kind in (params[i].POSITIONAL_ONLY, params[i].POSITIONAL_OR_KEYWORD):
            names.append(params[i].name)
        else:
            star = next((p.name for p in params if p.kind is p.VAR_POSITIONAL), "arg")
            names.append(f"{star}[{i}]")
    return names


def jit(f: Callable[..., Any]) -> JitFunction:
    """Decorator: trace `f` with placeholders on the first call, then reuse the compiled Program.

    The program is reused while the number of arguments stays the same (a new count retraces).
    `f` must be written without Python control flow on its arguments (`if x > 0` cannot be
    traced); parameters it closes over are read by reference at every call.
    """
    return JitFunction(f)
