"""Rules of the derivative table turned into Python source text, for float mode.

Each rule of `chainrule.ops` is *traced once* with symbolic operands: objects whose arithmetic
builds source text instead of numbers. `lambda m, g, out, a: g * (1 - out * out)` traced with the
operands `{0}`, `{1}`, `{2}` gives the template `{0} * (1 - {1} * {1})`, which float mode fills in
with variable names (`g7 * (1 - s7 * s7)`). The text performs exactly the operations the rule
performs, in the same order, so generated code gives the rule's numbers bit for bit. A rule that
cannot be traced (it branches on its operands, say) has no template: float mode calls it instead.
"""

from __future__ import annotations

import math
from typing import Any

from ..backends import FLOAT
from ..ops import Op

# The three kinds of rule a table row has, as the compiler names them (in keys and generated names).
FORWARD = "forward"  # forward(m, *xs)
DOMAIN_TEST = "invalid"  # invalid(m, *xs): true outside the domain
DERIVATIVE = "derivative"  # derivatives[i](m, g, out, *xs)

# Python operator precedence, lowest first (comparisons bind more loosely than | & ^)
_CMP, _BOR, _BXOR, _BAND, _ADD, _MUL, _NEG, _POW, _ATOM = range(9)
_INLINE_MAX_ARITY = 32  # longer sums are called, not inlined: deep expressions strain the parser


class _Untraceable(Exception):
    """A rule did something that cannot be turned into straight-line code."""


class _Src:
    """A piece of Python source with its precedence; arithmetic on it builds bigger pieces."""

    __slots__ = ("text", "prec")

    def __init__(self, text: str, prec: int = _ATOM) -> None:
        self.text = text
        self.prec = prec

    def __bool__(self) -> bool:
        raise _Untraceable("a rule branches on its operands")

    def __float__(self) -> float:
        raise _Untraceable("a rule converts an operand to float")

    __hash__ = None  # type: ignore[assignment]

    def __neg__(self) -> _Src:
        return _Src("-" + _paren(self, self.prec < _NEG), _NEG)

    def __pos__(self) -> _Src:
        return _Src("+" + _paren(self, self.prec < _NEG), _NEG)

    def __abs__(self) -> _Src:
        return _Src(f"abs({self.text})")


def _src(x: Any) -> _Src:
    """`x` (a piece of source or a number written in a rule) as source."""
    if isinstance(x, _Src):
        return x
    if type(x) in (int, float) and math.isfinite(x):
        return _Src(repr(x), _NEG if x < 0 or repr(x).startswith("-") else _ATOM)
    raise _Untraceable(f"cannot write {x!r} as source")


def _paren(x: _Src, needed: bool) -> str:
    return f"({x.text})" if needed else x.text


def _binary(symbol: str, prec: int) -> tuple[Any, Any]:
    """The forward and reflected methods for a left-associative binary operator."""

    def make(a: Any, b: Any) -> _Src:
        a, b = _src(a), _src(b)
        # equal precedence on the left needs no parentheses ((a - b) - c == a - b - c), except
        # for comparisons, which Python would chain
        left = _paren(a, a.prec < prec or (prec == _CMP and a.prec == _CMP))
        return _Src(f"{left} {symbol} {_paren(b, b.prec <= prec)}", prec)

    return (lambda a, b: make(a, b)), (lambda a, b: make(b, a))


def _power(a: Any, b: Any) -> _Src:
    a, b = _src(a), _src(b)
    # ** is right-associative and its left operand must be a primary (no unary minus)
    return _Src(f"{_paren(a, a.prec < _ATOM)} ** {_paren(b, b.prec < _NEG)}", _POW)


for _name, _symbol, _prec in [
    ("add", "+", _ADD), ("sub", "-", _ADD), ("mul", "*", _MUL), ("truediv", "/", _MUL),
    ("floordiv", "//", _MUL), ("mod", "%", _MUL), ("and", "&", _BAND), ("or", "|", _BOR),
    ("xor", "^", _BXOR),
]:  # fmt: skip
    _forward, _reflected = _binary(_symbol, _prec)
    setattr(_Src, f"__{_name}__", _forward)
    setattr(_Src, f"__r{_name}__", _reflected)
for _name, _symbol in [("lt", "<"), ("le", "<="), ("gt", ">"), ("ge", ">="), ("eq", "=="), ("ne", "!=")]:
    setattr(_Src, f"__{_name}__", _binary(_symbol, _CMP)[0])
_Src.__pow__ = lambda a, b: _power(a, b)  # type: ignore[attr-defined]
_Src.__rpow__ = lambda a, b: _power(b, a)  # type: ignore[attr-defined]


class _SourceBackend:
    """Stands in for a backend while tracing: `m.exp(x)` becomes the source `M_exp(x)`."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.used: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or not callable(getattr(self._backend, name, None)):
            raise _Untraceable(f"the backend has no function {name!r}")
        self.used.add(name)
        return lambda *args: _Src(f"M_{name}(" + ", ".join(_src(a).text for a in args) + ")")


def rule_of(op: Op, kind: str, i: int = 0) -> Any:
    """The table rule of `op` that `kind` names: FORWARD, DOMAIN_TEST, or DERIVATIVE for input `i`."""
    return {FORWARD: op.forward, DOMAIN_TEST: op.invalid, DERIVATIVE: op.derivative(i)}[kind]


class RuleTemplates:
    """Source templates for the table's rules, traced once per (op, rule, arity)."""

    def __init__(self) -> None:
        self.backend = _SourceBackend(FLOAT)
        self._cache: dict[tuple[Any, ...], str | None] = {}

    def get(self, op: Op, kind: str, i: int, n_args: int) -> str | None:
        """A `str.format` template over the rule's operands, or None if the rule is not traceable."""
        if op.arity is None and kind == DERIVATIVE:
            i = 0  # an n-ary op has one derivative rule shared by all its inputs
        key = (op, kind, i, n_args)  # the row itself: a name may be given other rules (defop, replace=True)
        if key not in self._cache:
            n_rule_args = n_args + (2 if kind == DERIVATIVE else 0)  # derivative rules also take g and out
            if op.arity is None and kind != DERIVATIVE and n_args > _INLINE_MAX_ARITY:
                self._cache[key] = None
            else:
                rule = rule_of(op, kind, i)
                args = [_Src(f"{{{k}}}") for k in range(n_rule_args)]
                try:
                    text = _src(rule(self.backend, *args)).text
                except Exception:  # noqa: BLE001 - any failure just means "call the rule instead"
                    text = None
                # a long expression (a rule that reads all n inputs of an n-ary op) is deeply
                # nested source: call the rule instead
                self._cache[key] = text if text is None or text.count("{") <= _INLINE_MAX_ARITY + 2 else None
        return self._cache[key]

    def expression(self, op: Op, kind: str, i: int, operands: list[str], namespace: dict[str, Any]) -> str:
        """Source applying a rule to `operands` (variable names): the traced template filled in,
        or a call of the rule itself (bound into `namespace`) if it has no template.

        `kind` is FORWARD, DOMAIN_TEST or DERIVATIVE (the derivative for input `i`, whose
        operands start with the output gradient and the output)."""
        template = self.get(op, kind, i, len(operands) - (2 if kind == DERIVATIVE else 0))
        if template is not None:
            return template.format(*operands)
        name = f"R_{kind}{i}_{op.name}"
        namespace[name] = rule_of(op, kind, i)
        return f"{name}(M, {', '.join(operands)})"

    def bind(self, namespace: dict[str, Any]) -> None:
        """Put the float backend's functions that templates call (`M_exp`, ...) into `namespace`."""
        namespace["M"] = FLOAT
        for name in self.backend.used:
            namespace[f"M_{name}"] = getattr(FLOAT, name)
