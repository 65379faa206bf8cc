"""`defop`: add your own operation to the derivative table, at run time.

A row made here is an `Op` like the built-in ones in `chainrule.ops`, written in the same rule form,
so it runs everywhere they do: eager `backward()`, `grad(grad(f))` (its rules run on `Value`s),
compiled programs in float and batch mode (on floats and numpy arrays), `Tensor`, drawings and
`gradcheck`. Every rule's result is checked where it runs, in every mode: a derivative that
returns a complex number, None, a string or an array of the wrong shape stops with one line naming
the op and the rule (see `checked_rule`). The other way to add an operation, the one micrograd
teaches, is a node built by hand with its own `_backward` closure (see `chainrule.engine.HandBuilt`);
that one runs in eager `backward()` only.

    cube = chainrule.defop(
        "cube",
        lambda m, x: x ** 3,                       # forward(m, *xs)
        lambda m, g, out, x: g * 3 * x ** 2,       # one derivative(m, g, out, *xs) per input
    )
    y = cube(Value(2.0))                           # 8.0; y.backward() gives x.grad == 12.0
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

from .backends import FLOAT, Backend
from .engine import Node, Symbolic, Value, apply, is_real, leaf, not_a_number, to_float
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
        forward=checked_rule(forward, name, "forward rule"),
        derivatives=tuple(
            checked_rule(rule, name, f"derivative rule for x{i}") for i, rule in enumerate(derivatives)
        ),
        doc=f"{name}, defined with chainrule.defop",
        invalid=None if invalid is None else checked_test(invalid, name),
        domain_text=domain or f"the domain of {name}",
        error=DomainError,
        fingerprint=fingerprint((forward, *derivatives, invalid)),
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


# --- rule results checked where they run -----------------------------------------------------------
# A built-in row always returns the right kind of number; a rule written by a user may return a complex
# number (`x ** (1 / 3)` at x < 0), None, a string or a float32, which would otherwise end up in `.grad`
# silently or fail far away. So defop wraps each of its rules in a check of the result for the number
# system `m` it ran on. The check runs inside the rule, so every mode that calls the rule (eager forward
# and backward, grad(grad), float and batch programs, Tensor, to_jax, to_torch) refuses alike.
#
# The check also makes the rules untraceable for float mode's source templates (`compiler.rule_source`
# traces rules with symbolic operands, which are no number system): float mode then calls the checked
# rule instead of inlining the user's arithmetic, so its results are checked there too.

_WHERE = {
    "float": "on floats",
    "value": "on Values",
    "numpy": "on numpy arrays",
    "jax": "on JAX arrays",
    "torch": "on torch tensors",
}
_NUMBER = {
    "float": "a real number",
    "value": "a Value or a real number",
    "numpy": "a real number or a numpy array of real numbers",
    "jax": "a real number or a JAX array of real numbers",
    "torch": "a real number or a torch tensor of real numbers",
}
_TRUTH = {
    "float": "True or False",
    "value": "True or False",
    "numpy": "a bool or a numpy array of bools",
    "jax": "a bool or a JAX array of bools",
    "torch": "a bool or a torch tensor of bools",
}


def checked_rule(rule: Rule, name: str, what: str) -> Rule:
    """`rule` (a forward or derivative rule of the op `name`) with its result checked: a real number on
    floats (a numpy scalar becomes a Python float), a Value or a real number on Values, a real array
    broadcastable to the operands on arrays; anything else is a TypeError naming the op and the rule."""

    def checked(m: Any, *args: Any, **params: Any) -> Any:
        try:
            result = rule(m, *args, **params)
        except TypeError as exc:  # an operand or function the rule cannot use here (a complex on Values)
            if str(exc).startswith(f"{name}: "):
                raise  # named already: this op's own check, or its rule calling itself
            raise _failed(exc, m, name, what) from exc
        if type(result) is float:  # the common case, right on every number system
            return result
        return real_result(result, m, args, name, what)

    checked.__name__ = checked.__qualname__ = f"{name}_{what.split()[0]}"
    checked.__doc__ = f"The {what} of {name!r} (defined with chainrule.defop), its result checked."
    checked.__wrapped__ = rule  # type: ignore[attr-defined]
    return checked


def checked_test(rule: Rule, name: str) -> Rule:
    """The `invalid` rule of the op `name` with its result checked: a bool on floats, a bool or an
    array of bools broadcastable to the operands on arrays; anything else is a TypeError naming the op."""

    def checked(m: Any, *args: Any) -> Any:
        try:
            result = rule(m, *args)
        except TypeError as exc:
            if str(exc).startswith(f"{name}: "):
                raise
            raise _failed(exc, m, name, "invalid rule") from exc
        if result is False or result is True:
            # the table's array code asks `bad.any()`: a numpy bool has it, a Python bool does not
            return result if _kind(m) != "numpy" else _numpy().bool_(result)
        return bool_result(result, m, args, name)

    checked.__name__ = checked.__qualname__ = f"{name}_invalid"
    checked.__doc__ = f"The invalid rule of {name!r} (defined with chainrule.defop), its result checked."
    checked.__wrapped__ = rule  # type: ignore[attr-defined]
    return checked


def real_result(result: Any, m: Any, args: tuple[Any, ...], name: str, what: str) -> Any:
    """`result` of a forward or derivative rule if it is the right kind for `m` (converted to what the
    engine stores), or a TypeError naming the op `name`, the rule `what` and what it returned."""
    kind = _kind(m)
    if kind in ("float", "value"):
        if kind == "value" and isinstance(result, Value):
            return result
        if is_real(result):
            return to_float(result, f"{name}: its {what}")  # `.grad` stays a Python float
    elif kind is not None:
        if is_real(result):  # a constant, which broadcasts
            return float(result)
        if _is_real_array(result, kind):
            _check_shape(result, args, name, f"its {what}", kind, _NUMBER[kind])
            if kind == "numpy" and result.dtype != _numpy().float64:
                return result.astype(_numpy().float64)  # float64 throughout, as the built-in rows
            return result
    raise _wrong_kind(result, m, kind, name, f"its {what}", _NUMBER)


def bool_result(result: Any, m: Any, args: tuple[Any, ...], name: str) -> Any:
    """`result` of an `invalid` rule if it is a bool (or an array of bools on arrays) for `m`, or a
    TypeError naming the op `name` and what the rule returned."""
    kind = _kind(m)
    np = sys.modules.get("numpy")
    numpy_bool = np is not None and isinstance(result, np.bool_)
    if kind in ("float", "value") and numpy_bool:
        return bool(result)
    if kind not in (None, "float", "value"):
        if numpy_bool:
            return result
        if _is_bool_array(result, kind):
            _check_shape(result, args, name, "its invalid rule", kind, _TRUTH[kind])
            return result
    raise _wrong_kind(result, m, kind, name, "its invalid rule", _TRUTH)


def _failed(exc: TypeError, m: Any, name: str, what: str) -> TypeError:
    """A TypeError raised inside a rule, as one line naming the op and the rule."""
    where = _WHERE.get(_kind(m) or "", f"on {m!r}")
    return TypeError(f"{name}: its {what} failed {where}: {exc}")


def _kind(m: Any) -> str | None:
    """The name of the number system `m` ('float', 'value', 'numpy', 'jax', 'torch'), None if unknown."""
    return m.name if (m is FLOAT or isinstance(m, Backend)) and m.name in _WHERE else None


def _numpy() -> Any:
    return sys.modules["numpy"]  # imported: a numpy backend exists


def _is_real_array(x: Any, kind: str) -> bool:
    """Whether `x` is an array of real numbers of the library `kind` names."""
    if kind == "torch":
        torch = sys.modules["torch"]
        return isinstance(x, torch.Tensor) and not x.is_complex()
    array_type = _numpy().ndarray if kind == "numpy" else sys.modules["jax"].Array
    return isinstance(x, array_type) and _numpy().dtype(x.dtype).kind in "biuf"


def _is_bool_array(x: Any, kind: str) -> bool:
    """Whether `x` is an array of bools of the library `kind` names."""
    if kind == "torch":
        torch = sys.modules["torch"]
        return isinstance(x, torch.Tensor) and x.dtype == torch.bool
    array_type = _numpy().ndarray if kind == "numpy" else sys.modules["jax"].Array
    return isinstance(x, array_type) and _numpy().dtype(x.dtype).kind == "b"


def _check_shape(result: Any, args: tuple[Any, ...], name: str, what: str, kind: str, wanted: str) -> None:
    """An array result must broadcast to the operands' common shape (it may be smaller: a constant)."""
    np = _numpy()
    shapes = [tuple(getattr(a, "shape", ())) for a in args]
    shape = tuple(result.shape)
    try:
        common = np.broadcast_shapes(*shapes)
        fits = np.broadcast_shapes(shape, common) == common
    except ValueError:
        fits = False
    if not fits:
        raise TypeError(
            f"{name}: {what} returned an array of shape {shape} {_WHERE[kind]} for operands of shapes "
            f"{', '.join(map(str, shapes))}; it must return {wanted} broadcastable to the operands"
        )


def _wrong_kind(
    result: Any, m: Any, kind: str | None, name: str, what: str, wanted: dict[str, str]
) -> TypeError:
    """The one-line error for a rule result of the wrong kind."""
    if kind is None:  # symbolic operands (float mode's tracer, which then calls the rule instead)
        return TypeError(f"{name}: {what} ran on {m!r}, which is not one of chainrule's number systems")
    return TypeError(
        f"{name}: {what} returned {_describe(result)} {_WHERE[kind]}; it must return {wanted[kind]}"
    )


def _describe(x: Any) -> str:
    """What a rule returned, in a few words: `complex (1+2j)`, `None`, `ndarray of dtype ... and shape ..`."""
    if x is None:
        return "None"
    shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", None)
    if shape is not None and dtype is not None and not isinstance(x, Node):
        return f"{type(x).__name__} of dtype {dtype} and shape {tuple(shape)}"
    text = repr(x)
    return f"{type(x).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


# --- a fingerprint of the rules, so that an unpickled graph runs the rules it was built with --------
def fingerprint(rules: tuple[Any, ...]) -> str:
    """A short digest of `rules`' code (and the numbers and functions they capture): the same for the
    same rules in any process (of the same Python version), another one when a rule changes."""
    digest = hashlib.sha256()
    for rule in rules:
        digest.update(_rule_text(rule, depth=0).encode())
        digest.update(b"\x00")
    return digest.hexdigest()[:16]


def _rule_text(rule: Any, depth: int) -> str:
    """The parts of a rule that decide what it computes, as text for the digest."""
    if rule is None:
        return "None"
    if isinstance(rule, Op):  # a rule that captured a row: by name, not by its (wrapped) rules
        return f"op {rule.name}"
    plain = isinstance(rule, types.FunctionType)
    function = rule if plain else type(rule).__dict__.get("__call__")  # a callable object: its method
    code = getattr(function, "__code__", None)
    if code is None or depth > 3:  # a builtin or a deep chain of helpers: known by its name
        qualname = getattr(rule, "__qualname__", type(rule).__qualname__)
        return f"{getattr(rule, '__module__', '')}.{qualname}"
    parts = [_code_text(code)]
    if plain:
        # what it captured, its defaults, and the functions of its module it calls (a helper)
        helpers = [rule.__globals__.get(name) for name in code.co_names]
        helpers = [h for h in helpers if isinstance(h, types.FunctionType) and h is not rule]
        for value in (*(rule.__defaults__ or ()), *_captured(rule), *helpers):
            parts.append(_rule_text(value, depth + 1) if callable(value) else _value_text(value))
    return "|".join(parts)


def _code_text(code: types.CodeType) -> str:
    consts = [_code_text(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts]
    return f"{code.co_code.hex()}:{consts}:{code.co_names}"


def _captured(rule: types.FunctionType) -> list[Any]:
    values = []
    for cell in rule.__closure__ or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:  # a variable not assigned yet
            values.append(None)
    return values


def _value_text(value: Any) -> str:
    """A captured value: numbers and text by value (a changed constant changes the rule), the rest by type."""
    if isinstance(value, int | float | complex | str) and not isinstance(value, Node):
        return repr(value)
    return type(value).__qualname__


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
