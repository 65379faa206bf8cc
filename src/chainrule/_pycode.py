"""Float mode for Programs: the tape turned into one straight-line Python function.

Interpreting a tape node by node costs a Python call and some bookkeeping per node. Instead each
rule of the derivative table is *traced once* with symbolic operands (objects whose arithmetic
builds source text), so `lambda m, g, out, a: g * (1 - out * out)` becomes the line
`g5 += g7 * (1 - s7 * s7)`. The generated code performs exactly the operations the rule performs,
in the same order, so float mode gives the eager engine's numbers bit for bit, and there is no
second copy of any derivative. A rule that cannot be traced (it branches on its operands, say) is
called as a function instead.
"""

from __future__ import annotations

import linecache
import math
from typing import TYPE_CHECKING, Any

from .backends import FLOAT
from .errors import DomainError
from .ops import Op

if TYPE_CHECKING:
    from .compiler import Program

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


class _Templates:
    """Source templates for the table's rules, traced once per (op, rule, arity)."""

    def __init__(self) -> None:
        self.backend = _SourceBackend(FLOAT)
        self._cache: dict[tuple[Any, ...], str | None] = {}

    def get(self, op: Op, kind: str, i: int, n_args: int) -> str | None:
        """A `str.format` template over the rule's operands, or None if the rule is not traceable."""
        if op.arity is None and kind == "d":
            i = 0  # an n-ary op has one derivative rule shared by all its inputs
        key = (op.name, kind, i, n_args)
        if key not in self._cache:
            n_rule_args = n_args + (2 if kind == "d" else 0)  # derivative rules also take g and out
            if op.arity is None and kind != "d" and n_args > _INLINE_MAX_ARITY:
                self._cache[key] = None
            else:
                rule = {"f": op.forward, "i": op.invalid, "d": op.derivative(i)}[kind]
                args = [_Src(f"{{{k}}}") for k in range(n_rule_args)]
                try:
                    text = _src(rule(self.backend, *args)).text
                except Exception:  # noqa: BLE001 - any failure just means "call the rule instead"
                    text = None
                # a long expression (a rule that reads all n inputs of an n-ary op) is deeply
                # nested source: call the rule instead
                self._cache[key] = text if text is None or text.count("{") <= _INLINE_MAX_ARITY + 2 else None
        return self._cache[key]


_program_counter = 0


class FloatCode:
    """A Program as two generated Python functions: `forward(*xs)` and `value_and_grad(xs, seeds)`."""

    def __init__(self, program: Program) -> None:
        global _program_counter
        _program_counter += 1
        self.program = program
        self._checked: Exception | None = None  # the last error _fail raised (already explained)
        self.filename = f"<chainrule program {_program_counter}>"
        templates = _Templates()
        ns: dict[str, Any] = {"M": FLOAT, "_fail": self._fail}
        lines: list[str] = []
        self.line_slots: dict[int, tuple[int, str]] = {}  # source line -> (slot, "f" or "d")
        n_in = len(program.inputs)
        rg = program.requires_grad

        def rule_call(op: Op, kind: str, i: int, operands: list[str]) -> str:
            template = templates.get(op, kind, i, len(operands) - (2 if kind == "d" else 0))
            if template is not None:
                return template.format(*operands)
            rule = {"f": op.forward, "i": op.invalid, "d": op.derivative(i)}[kind]
            name = f"R_{kind}{i}_{op.name}"
            ns[name] = rule
            return f"{name}(M, {', '.join(operands)})"

        # --- forward: read leaves by reference, then one line per instruction ----------------
        body: list[tuple[str, int, str]] = []  # (line, slot, phase)
        for slot in range(n_in, len(program.leaves)):
            ns[f"L{slot}"] = program.leaves[slot]
            body.append((f"s{slot} = L{slot}.data", slot, "f"))
        for ins in program.instructions:
            xs = [f"s{a}" for a in ins.args]
            if ins.op.invalid is not None:
                cond = rule_call(ins.op, "i", 0, xs)
                body.append((f"if {cond}: _fail({ins.slot}, {', '.join(xs)})", ins.slot, "f"))
            body.append((f"s{ins.slot} = {rule_call(ins.op, 'f', 0, xs)}", ins.slot, "f"))
        outs = [f"s{s}" for s in program.output_slots]
        result = outs[0] if program._single else "[" + ", ".join(outs) + "]"

        args = ", ".join(f"s{i}" for i in range(n_in))
        lines.append(f"def forward({args}):")
        first = len(lines) + 1
        lines.extend("    " + text for text, _, _ in body)
        for k, (_, slot, phase) in enumerate(body):
            self.line_slots[first + k] = (slot, phase)
        lines.append(f"    return {result}")

        # --- value_and_grad: the same forward, then the backward sweep in eager order ---------
        seeds = [f"go{k}" for k in range(len(outs))]
        lines.append(f"def value_and_grad({args}{', ' if args else ''}{', '.join(seeds)}):")
        first = len(lines) + 1
        lines.extend("    " + text for text, _, _ in body)
        for k, (_, slot, phase) in enumerate(body):
            self.line_slots[first + k] = (slot, phase)
        started: set[int] = set()
        back: list[tuple[str, int]] = []

        def accumulate(slot: int, expr: str, at: int) -> None:
            if slot in started:
                back.append((f"g{slot} += {expr}", at))
            else:
                started.add(slot)
                back.append((f"g{slot} = {expr}", at))

        for k, slot in enumerate(program.output_slots):
            if rg[slot]:
                accumulate(slot, seeds[k], slot)
        instruction_at = {ins.slot: ins for ins in program.instructions}
        for slot in reversed(program.grad_order):
            ins = instruction_at.get(slot)
            if ins is None or slot not in started:
                continue
            xs = [f"s{a}" for a in ins.args]
            for i, a in enumerate(ins.args):
                if rg[a]:
                    accumulate(a, rule_call(ins.op, "d", i, [f"g{slot}", f"s{slot}", *xs]), slot)
        first = len(lines) + 1
        for k, (text, slot) in enumerate(back):
            lines.append("    " + text)
            self.line_slots[first + k] = (slot, "d")
        # parameters receive their gradients only once the whole sweep has succeeded
        n_leaves = len(program.leaves)
        for slot in range(n_in, n_leaves):
            if slot in started:
                lines.append(f"    L{slot}.grad += g{slot}")
        grads = ", ".join(f"g{i}" if i in started else ("0.0" if rg[i] else "None") for i in range(n_in))
        lines.append(f"    return {result}, ({grads}{',' if n_in == 1 else ''})")

        for name in templates.backend.used:
            ns[f"M_{name}"] = getattr(FLOAT, name)
        self.source = "\n".join(lines) + "\n"
        # registered with linecache so tracebacks through generated code show its lines
        linecache.cache[self.filename] = (len(self.source), None, self.source.splitlines(True), self.filename)
        exec(builtins_compile(self.source, self.filename, "exec"), ns)  # noqa: S102 - our own generated code
        self._forward = ns["forward"]
        self._value_and_grad = ns["value_and_grad"]

    def forward(self, *xs: float) -> Any:
        """The output(s) for float inputs."""
        try:
            return self._forward(*xs)
        except (ArithmeticError, ValueError) as exc:
            raise self._explain(exc) from exc

    def value_and_grad(self, xs: list[float], seeds: tuple[float, ...]) -> tuple[Any, tuple[float, ...]]:
        """Forward and backward for float inputs; adds parameter gradients into `.grad`."""
        try:
            return self._value_and_grad(*xs, *seeds)
        except (ArithmeticError, ValueError) as exc:
            raise self._explain(exc) from exc

    def _fail(self, slot: int, *xs: float) -> None:
        """Raise the op's own domain error for the instruction at `slot`, naming the instruction."""
        ins = self.program.instructions[slot - len(self.program.leaves)]
        try:
            ins.op.check(FLOAT, *xs)
        except (ArithmeticError, ValueError) as exc:
            from .compiler import with_context

            self._checked = with_context(exc, f"in {ins}")
            raise self._checked from None

    def _explain(self, exc: Exception) -> Exception:
        """An arithmetic failure inside generated code as a DomainError naming the instruction."""
        if exc is self._checked or isinstance(exc, DomainError):
            return exc
        tb = exc.__traceback__
        frame, line = None, None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == self.filename:
                frame, line = tb.tb_frame, tb.tb_lineno
            tb = tb.tb_next
        if frame is None or line not in self.line_slots:
            return exc
        slot, phase = self.line_slots[line]
        n_leaves = len(self.program.leaves)
        if slot < n_leaves:
            return exc
        ins = self.program.instructions[slot - n_leaves]
        inputs = tuple(frame.f_locals.get(f"s{a}") for a in ins.args)
        what = "the derivative is undefined" if phase == "d" else "failed"
        return DomainError(
            f"{ins.op.name}: {what} at {inputs}: {exc} (in {ins})", op=ins.op.name, value=inputs
        )


builtins_compile = compile  # the builtin, kept under a name that chainrule.compile cannot shadow
