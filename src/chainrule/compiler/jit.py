"""`jit`: trace a Python function with placeholders on its first call, then run it compiled."""

from __future__ import annotations

import functools
import inspect
import os
import threading
from collections.abc import Callable
from typing import Any

from ..engine import Value, placeholder
from ..errors import PlaceholderError
from .program import Program, compile  # noqa: A004

__all__ = ["JitFunction", "jit"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # chainrule/


class JitFunction:
    """`f` traced with placeholders on its first call, then run as a compiled Program."""

    def __init__(self, f: Callable[..., Any]) -> None:
        self.f = f
        self.programs: dict[int, Program] = {}  # one program per number of arguments
        self._lock = threading.Lock()
        functools.update_wrapper(self, f)

    def trace(self, n: int) -> Program:
        """The Program for `n` arguments (traced now if it does not exist yet)."""
        program = self.programs.get(n)
        if program is None:
            with self._lock:  # threads calling a new jit function at once trace it once
                program = self.programs.get(n)
                if program is None:
                    program = self.programs[n] = self._trace(n)
        return program

    def _trace(self, n: int) -> Program:
        xs = [placeholder(label) for label in _arg_names(self.f, n)]
        try:
            out = self.f(*xs)
        except PlaceholderError as exc:
            raise PlaceholderError(
                f"jit: {self._name()} could not be traced: it uses {_what(exc, xs)} in Python control "
                f"flow or as a plain number (if/while, comparisons, float(), math.* functions)"
                f"{_where(exc)}. jit runs the function once on placeholders, so its "
                f"result must come from chainrule operations alone: write a branch as an operation "
                f"(x.relu(), abs(x), a chainrule.defop), or keep that part outside the jit function"
            ) from None
        if isinstance(out, list | tuple):
            out = [o if isinstance(o, Value) else Value(o, requires_grad=False) for o in out]
        elif not isinstance(out, Value):
            out = Value(out, requires_grad=False)  # a function that ignores its arguments
        return compile(out, xs)

    def _name(self) -> str:
        return getattr(self.f, "__qualname__", None) or getattr(self.f, "__name__", None) or repr(self.f)

    @property
    def program(self) -> Program | None:
        """The most recently traced Program (None before the first call)."""
        return next(reversed(self.programs.values()), None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise TypeError(f"{self._name()}: a jit-compiled function takes positional arguments only")
        return self.trace(len(args))(*args)

    def value_and_grad(self, *args: Any, grad_output: Any = None) -> tuple[Any, tuple[Any, ...]]:
        """`(value, input_grads)` of the compiled function; adds parameter gradients into `.grad`."""
        return self.trace(len(args)).value_and_grad(*args, grad_output=grad_output)


def _what(exc: BaseException, xs: list[Value]) -> str:
    """Which arguments the value that was read depends on, as text."""
    node = getattr(exc, "node", None)
    if not isinstance(node, Value):
        return "a value computed from its arguments"
    if node in xs:
        return f"its argument {node.label!r}"
    found, seen, stack = [], {node}, [node]
    while stack:  # bounded: each node of the traced graph is visited once
        for child in stack.pop()._prev:
            if child not in seen:
                seen.add(child)
                stack.append(child)
                if child in xs:
                    found.append(child)
    names = ", ".join(repr(x.label) for x in xs if x in found)
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
