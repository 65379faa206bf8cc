"""`defop`: add your own operation to the derivative table, at run time.

A row made here is an `Op` like the built-in ones in `chainrule.ops`, written in the same rule form,
so it runs everywhere they do: eager `backward()`, `grad(grad(f))` (its rules run on `Value`s),
compiled programs in float and batch mode (on floats and numpy arrays), `Tensor`, drawings and
`gradcheck`. The other way to add an operation, the one micrograd teaches, is a node built by hand
with its own `_backward` closure (see `chainrule.engine.HandBuilt`); that one runs in eager
`backward()` only.

    cube = chainrule.defop(
        "cube",
        lambda m, x: x ** 3,                       # forward(m, *xs)
        lambda m, g, out, x: g * 3 * x ** 2,       # one derivative(m, g, out, *xs) per input
    )
    y = cube(Value(2.0))                           # 8.0; y.backward() gives x.grad == 12.0
"""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import Callable
from typing import Any

from .engine import Symbolic, Value, apply, leaf, not_a_number
from .errors import DomainError
from .ops import OPS, TENSOR_OPS_BY_NAME, Op, Rule

__all__ = ["defop"]

_registry_lock = threading.Lock()
_defined_here: set[str] = set()  # names of the ops this module made (only those may be replaced)


def defop(
    name: str,
    forward: Rule,
    *derivatives: Rule,
    symbol: str | None = None,
    invalid: Rule | None = None,
    domain: str = "",
    replace: bool = False,
) -> Callable[..., Any]:
    """Define a new operation as a row of the derivative table; returns the function that applies it.

    `forward(m, *xs)` computes it, one `derivative(m, g, out, *xs)` per input gives the contribution
    of the output gradient `g` to that input, and `invalid(m, *xs)` (optional) is true outside the
    domain, which `domain` describes for error messages. `m` is the number system the rule runs on
    (floats, `Value`s or numpy arrays): use `m.exp`, `m.log`, ... and arithmetic, never `math`.
    `replace=True` redefines an op defined earlier with `defop` (handy when a notebook cell runs twice).
    """
    _check_definition(name, forward, derivatives, symbol, invalid, domain, replace)
    op = Op(
        name=name,
        symbol=symbol if symbol is not None else name,
        arity=len(derivatives),
        forward=forward,
        derivatives=tuple(derivatives),
        doc=f"{name}, defined with chainrule.defop",
        invalid=invalid,
        domain_text=domain or f"the domain of {name}",
        error=DomainError,
    )
    with _registry_lock:
        if name in OPS and not (replace and name in _defined_here):
            raise ValueError(f"defop: the name {name!r} is taken by {_owner(name)}; choose another")
        OPS[name] = op
        _defined_here.add(name)
    return _applier(op)


def _owner(name: str) -> str:
    return (
        "an op defined earlier with defop (pass replace=True)" if name in _defined_here else "a built-in op"
    )


def _check_definition(
    name: Any,
    forward: Any,
    derivatives: tuple[Any, ...],
    symbol: Any,
    invalid: Any,
    domain: Any,
    replace: bool,
) -> None:
    """Refuse a definition that could not work, naming what is wrong, before anything is registered."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"defop: the name must be a Python identifier such as 'cube', got {name!r}")
    if name in TENSOR_OPS_BY_NAME or (name in OPS and not (replace and name in _defined_here)):
        raise ValueError(f"defop: the name {name!r} is taken by {_owner(name)}; choose another")
    if not derivatives:
        raise TypeError(f"defop {name!r}: give one derivative rule per input (none given)")
    n = len(derivatives)
    _check_rule(name, "forward", forward, 1 + n, "forward(m, " + _xs(n) + ")")
    for i, rule in enumerate(derivatives):
        _check_rule(name, f"derivative {i}", rule, 3 + n, "derivative(m, g, out, " + _xs(n) + ")")
    if invalid is not None:
        _check_rule(name, "invalid", invalid, 1 + n, "invalid(m, " + _xs(n) + ")")
    if symbol is not None and not isinstance(symbol, str):
        raise TypeError(f"defop {name!r}: symbol must be a str, got {type(symbol).__name__}")
    if not isinstance(domain, str):
        raise TypeError(f"defop {name!r}: domain must be a str (its text for messages), got {domain!r}")


def _xs(n: int) -> str:
    return ", ".join(f"x{i}" for i in range(n))


def _check_rule(name: str, what: str, rule: Any, wanted: int, form: str) -> None:
    """A rule must be callable with `wanted` positional arguments (the table's rule form)."""
    if not callable(rule):
        raise TypeError(f"defop {name!r}: the {what} rule must be a function {form}, got {rule!r}")
    try:
        inspect.signature(rule).bind(*range(wanted))
    except TypeError:
        raise TypeError(
            f"defop {name!r}: the {what} rule takes the wrong number of parameters: an op with "
            f"{wanted - (3 if what.startswith('derivative') else 1)} input(s) needs {form}"
        ) from None
    except ValueError:  # a builtin whose signature Python cannot tell: trust it
        return


def _applier(op: Op) -> Callable[..., Any]:
    """The public function of a defined op: Values, numbers, placeholders or Tensors in, a node out."""

    def apply_op(*args: Any) -> Any:
        if len(args) != op.arity:
            raise TypeError(f"{op.name}() takes {op.arity} argument(s), got {len(args)}")
        tensor = sys.modules.get("chainrule.tensor")
        if tensor is not None and any(isinstance(a, tensor.Tensor) for a in args):
            if any(isinstance(a, Symbolic) for a in args):
                raise TypeError(f"{op.name}: cannot mix placeholders and Tensors")
            return tensor.apply(op, *args)
        children = []
        for a in args:
            if isinstance(a, Value):
                children.append(a)
                continue
            number = leaf(a)
            if number is None:
                not_a_number(op, a)  # raises for strings and the like
                raise TypeError(f"{op.name}: takes Values, real numbers and Tensors, not {type(a).__name__}")
            children.append(number)
        return apply(op, *children)

    apply_op.__name__ = apply_op.__qualname__ = op.name
    apply_op.__doc__ = f"Apply the operation {op.name!r} (defined with chainrule.defop)."
    apply_op.op = op  # type: ignore[attr-defined]
    return apply_op
