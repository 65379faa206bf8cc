"""The derivative table: every operation chainrule knows, written once.

This is the single source of truth for what an operation computes and how its gradient flows.
The eager `Value` engine, derivatives of derivatives, compiled programs and numpy batches all read
their rules from here, so adding a row to `TABLE` teaches every part of chainrule a new op (and
the test suite generates its checks from the same rows).

Each rule is a function of a backend namespace `m` (see `chainrule.backends`) and plain operands,
so that the same line runs on floats, on `Value`s and on numpy arrays:

    forward(m, *xs)          -> out
    derivatives[i](m, g, out, *xs) -> the contribution of output gradient `g` to input i
    invalid(m, *xs)          -> True (or a mask) where the inputs are outside the op's domain

Domains are written as "invalid" conditions so that a NaN input is never *invalid*: NaN and inf given
as data propagate visibly, as in IEEE arithmetic, while log(-1) or sqrt(-2) raise a `DomainError`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from .errors import DomainError, outside_domain

Rule = Callable[..., Any]


@dataclass(frozen=True, eq=False)
class Op:
    """One row of the table: an operation, its derivative rules and its domain."""

    name: str  # Python-facing name: Value.<name>() / the dunder it backs
    symbol: str  # what `Value._op` shows and drawings print
    arity: int | None  # number of inputs; None for n-ary (sum)
    forward: Rule
    derivatives: tuple[Rule, ...]  # one per input; an n-ary op has one rule shared by all
    doc: str
    invalid: Rule | None = None
    domain_text: str = ""  # the condition that `invalid` rejects the negation of, for messages
    error: type[Exception] = DomainError
    # Declared algebra, read by the batch compiler to fuse sums of products into matrix products
    # (tests/test_ops_table.py checks each declaration against the rules, so it cannot drift):
    linear: tuple[float, ...] | None = None  # out = sum(c_i * x_i): the c_i (an n-ary op: one c for all)
    bilinear: bool = False  # out = a * b, with the product rule as its derivatives
    # The Value/Tensor method a one-input row becomes ("" means its name: `v.tanh()`); two-input rows
    # become the operator `__<name>__` and its reflected form.
    method: str = ""
    # A row made with `defop`: a digest of its rules (see `chainrule.userops.fingerprint`), stored in
    # pickles so that loading a graph checks the op defined then has the same rules. "" for built-in rows.
    fingerprint: str = ""
    hand_built: ClassVar[bool] = False  # a table row, not a node's hand-written `_backward`

    def __post_init__(self) -> None:
        if not self.method:
            object.__setattr__(self, "method", self.name)

    def derivative(self, i: int) -> Rule:
        """The rule for input `i` (n-ary ops share one rule between all inputs)."""
        return self.derivatives[0] if self.arity is None else self.derivatives[i]

    def check(self, m: Any, *xs: Any) -> None:
        """Raise a clear error naming the op and the value if `xs` are outside its domain."""
        if self.invalid is None:
            return
        bad = self.invalid(m, *xs)
        if bad is False or (bad is not True and not bad.any()):
            return
        raise outside_domain(self.name, self.domain_text, _show_offender(xs, bad), xs, self.error)

    def __repr__(self) -> str:
        return f"Op({self.name!r})"

    def __copy__(self) -> Op:
        return self  # a row is immutable: copies of a graph share it, as they share the table

    def __deepcopy__(self, memo: dict[int, Any]) -> Op:
        return self

    def __reduce__(self) -> Any:
        # A table op is pickled by name (its rules are lambdas, which pickle cannot store), so an
        # unpickled graph points at the same rows of the table. A row made with defop also stores
        # the fingerprint of its rules: loading checks the op of that name has the same rules
        # (it may be undefined in the new process, or redefined with replace=True since).
        if self.fingerprint:
            return (op_named, (self.name, self.fingerprint))
        if OPS.get(self.name) is self:
            return (op_named, (self.name,))
        if TENSOR_OPS_BY_NAME.get(self.name) is self:
            return (tensor_op_named, (self.name,))
        fields = (self.name, self.symbol, self.arity, self.forward, self.derivatives, self.doc)
        extra = (self.invalid, self.domain_text, self.error, self.linear, self.bilinear, self.method, "")
        return (Op, (*fields, *extra))


def _show_offender(xs: tuple[Any, ...], bad: Any) -> str:
    """The operands as text: scalars as they are, arrays by their first entry that failed."""
    if isinstance(bad, bool):
        return ", ".join(repr(float(x)) for x in xs)
    import numpy as np

    # The mask may have the shape of one operand only (b == 0 for a / b): broadcast everything alike.
    shape = np.broadcast_shapes(np.shape(bad), *(np.shape(x) for x in xs))
    i = int(np.flatnonzero(np.broadcast_to(bad, shape))[0])
    parts = [repr(float(np.broadcast_to(x, shape).flat[i])) for x in xs]
    return f"{', '.join(parts)} (at batch index {i})"


def _op(
    name: str,
    symbol: str,
    arity: int | None,
    forward: Rule,
    *derivatives: Rule,
    doc: str,
    invalid: Rule | None = None,
    domain_text: str = "",
    error: type[Exception] = DomainError,
    linear: tuple[float, ...] | None = None,
    bilinear: bool = False,
    method: str = "",
) -> Op:
    return Op(
        name, symbol, arity, forward, derivatives, doc, invalid, domain_text, error, linear, bilinear, method
    )


_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
# The constants numpy and PyTorch multiply by (pi / 180 rounded once), so the rows give their numbers.
_RADIANS_PER_DEGREE = math.pi / 180.0
_DEGREES_PER_RADIAN = 180.0 / math.pi


def _off_the_jumps(m: Any, d: Any, out: Any) -> Any:
    """`d` where `a % b` is continuous, and `d / 0` where the result is 0, which is where it jumps.

    a % b is 0 exactly where a is a multiple of b, and there it jumps (by b, as a crosses the
    multiple, and by a / n as b crosses a / n). The slope there is undefined: the division by zero
    raises on floats and on Values and gives inf on arrays, which the batch check turns into the same
    error. `m.step(m.abs(out))` is 1 elsewhere (and at NaN), and a constant on Values, so it adds no
    graph nodes to derivatives of derivatives. (At a = 0 the slope in b alone would be 0, but the
    point is a jump in a: it is undefined as a whole.)
    """
    return d / m.step(m.abs(out))


# fmt: off
TABLE: tuple[Op, ...] = (
    _op("add", "+", 2, lambda m, a, b: a + b,
        lambda m, g, out, a, b: g,
        lambda m, g, out, a, b: g,
        doc="a + b", linear=(1.0, 1.0)),
    _op("sub", "-", 2, lambda m, a, b: a - b,
        lambda m, g, out, a, b: g,
        lambda m, g, out, a, b: -g,
        doc="a - b", linear=(1.0, -1.0)),
    _op("mul", "*", 2, lambda m, a, b: a * b,
        lambda m, g, out, a, b: g * b,
        lambda m, g, out, a, b: g * a,
        doc="a * b", bilinear=True),
    _op("truediv", "/", 2, lambda m, a, b: a / b,
        lambda m, g, out, a, b: g / b,
        lambda m, g, out, a, b: -g * out / b,
        doc="a / b",
        invalid=lambda m, a, b: b == 0, domain_text="a non-zero divisor", error=ZeroDivisionError),
    _op("neg", "neg", 1, lambda m, a: -a,
        lambda m, g, out, a: -g,
        doc="-a", linear=(-1.0,), method="__neg__"),
    _op("pow", "**", 2, lambda m, a, b: m.pow(a, b),
        lambda m, g, out, a, b: g * m.power_rule(a, b),
        lambda m, g, out, a, b: g * m.xlogy(out, a),
        doc="a ** b, for a number or a Value exponent (and a number base)",
        invalid=lambda m, a, b: ((a < 0) & m.is_fractional(b)) | ((a == 0) & (b < 0)),
        domain_text="an integer exponent for a negative base and a non-negative one for a zero base"),
    _op("exp", "exp", 1, lambda m, a: m.exp(a),
        lambda m, g, out, a: g * out,
        doc="e ** a"),
    _op("log", "log", 1, lambda m, a: m.log(a),
        lambda m, g, out, a: g / a,
        doc="natural logarithm",
        invalid=lambda m, a: a <= 0, domain_text="x > 0"),
    _op("tanh", "tanh", 1, lambda m, a: m.tanh(a),
        lambda m, g, out, a: g * (1 - out * out),
        doc="hyperbolic tangent"),
    _op("relu", "ReLU", 1, lambda m, a: m.relu(a),
        lambda m, g, out, a: g * m.step(a),
        doc="max(a, 0); its derivative at 0 is taken as 0, as PyTorch does"),
    _op("sigmoid", "sigmoid", 1, lambda m, a: m.sigmoid(a),
        lambda m, g, out, a: g * out * (1 - out),
        doc="1 / (1 + e ** -a), computed without overflow for large |a|"),
    _op("softplus", "softplus", 1, lambda m, a: m.softplus(a),
        lambda m, g, out, a: g * m.sigmoid(a),
        doc="log(1 + e ** a), computed without overflow: the stable core of cross-entropy losses"),
    _op("sin", "sin", 1, lambda m, a: m.sin(a),
        lambda m, g, out, a: g * m.cos(a),
        doc="sine"),
    _op("cos", "cos", 1, lambda m, a: m.cos(a),
        lambda m, g, out, a: -g * m.sin(a),
        doc="cosine"),
    _op("sqrt", "sqrt", 1, lambda m, a: m.sqrt(a),
        lambda m, g, out, a: g / (2 * out),
        doc="square root",
        invalid=lambda m, a: a < 0, domain_text="x >= 0"),
    _op("abs", "abs", 1, lambda m, a: m.abs(a),
        lambda m, g, out, a: g * m.sign(a),
        doc="|a|; its derivative at 0 is taken as 0, as PyTorch does", method="__abs__"),
    _op("sum", "sum", None, lambda m, *xs: sum(xs),
        lambda m, g, out, *xs: g,
        doc="a + b + c + ... as one node (not a chain of additions)", linear=(1.0,)),
    # numpy's elementary functions, by numpy's names (math's spellings, such as atan, are aliases of
    # the same rows: `attach_table_methods` adds them). Where a derivative is infinite at the edge of
    # the domain (arcsin at 1), the rule divides by zero there: backward() raises, as for sqrt at 0.
    _op("tan", "tan", 1, lambda m, a: m.tan(a),
        lambda m, g, out, a: g * (1 + out * out),
        doc="tangent"),
    _op("sinh", "sinh", 1, lambda m, a: m.sinh(a),
        lambda m, g, out, a: g * m.cosh(a),
        doc="hyperbolic sine"),
    _op("cosh", "cosh", 1, lambda m, a: m.cosh(a),
        lambda m, g, out, a: g * m.sinh(a),
        doc="hyperbolic cosine"),
    _op("arcsin", "arcsin", 1, lambda m, a: m.arcsin(a),
        lambda m, g, out, a: g / m.sqrt(1 - a * a),
        doc="inverse sine, in [-pi/2, pi/2]; its derivative is infinite at -1 and 1",
        invalid=lambda m, a: (a < -1) | (a > 1), domain_text="-1 <= x <= 1"),
    _op("arccos", "arccos", 1, lambda m, a: m.arccos(a),
        lambda m, g, out, a: -g / m.sqrt(1 - a * a),
        doc="inverse cosine, in [0, pi]; its derivative is infinite at -1 and 1",
        invalid=lambda m, a: (a < -1) | (a > 1), domain_text="-1 <= x <= 1"),
    _op("arctan", "arctan", 1, lambda m, a: m.arctan(a),
        lambda m, g, out, a: g / (1 + a * a),
        doc="inverse tangent, in (-pi/2, pi/2)"),
    _op("arcsinh", "arcsinh", 1, lambda m, a: m.arcsinh(a),
        lambda m, g, out, a: g / m.sqrt(a * a + 1),
        doc="inverse hyperbolic sine"),
    _op("arccosh", "arccosh", 1, lambda m, a: m.arccosh(a),
        lambda m, g, out, a: g / m.sqrt((a - 1) * (a + 1)),  # (a-1)(a+1), exact near 1 unlike a*a - 1
        doc="inverse hyperbolic cosine, >= 0; its derivative is infinite at 1",
        invalid=lambda m, a: a < 1, domain_text="x >= 1"),
    _op("arctanh", "arctanh", 1, lambda m, a: m.arctanh(a),
        lambda m, g, out, a: g / (1 - a * a),
        doc="inverse hyperbolic tangent (infinite at -1 and 1, which are outside its domain)",
        invalid=lambda m, a: (a <= -1) | (a >= 1), domain_text="-1 < x < 1"),
    _op("log2", "log2", 1, lambda m, a: m.log2(a),
        lambda m, g, out, a: g / (a * _LN2),
        doc="base-2 logarithm",
        invalid=lambda m, a: a <= 0, domain_text="x > 0"),
    _op("log10", "log10", 1, lambda m, a: m.log10(a),
        lambda m, g, out, a: g / (a * _LN10),
        doc="base-10 logarithm",
        invalid=lambda m, a: a <= 0, domain_text="x > 0"),
    _op("log1p", "log1p", 1, lambda m, a: m.log1p(a),
        lambda m, g, out, a: g / (1 + a),
        doc="log(1 + a), exact for tiny a",
        invalid=lambda m, a: a <= -1, domain_text="x > -1"),
    _op("expm1", "expm1", 1, lambda m, a: m.expm1(a),
        lambda m, g, out, a: g * m.exp(a),  # not out + 1, which loses e ** a for a < -37
        doc="e ** a - 1, exact for tiny a"),
    _op("exp2", "exp2", 1, lambda m, a: m.exp2(a),
        lambda m, g, out, a: g * out * _LN2,
        doc="2 ** a"),
    _op("deg2rad", "deg2rad", 1, lambda m, a: a * _RADIANS_PER_DEGREE,
        lambda m, g, out, a: g * _RADIANS_PER_DEGREE,
        doc="degrees to radians: a * pi / 180", linear=(_RADIANS_PER_DEGREE,)),
    _op("rad2deg", "rad2deg", 1, lambda m, a: a * _DEGREES_PER_RADIAN,
        lambda m, g, out, a: g * _DEGREES_PER_RADIAN,
        doc="radians to degrees: a * 180 / pi", linear=(_DEGREES_PER_RADIAN,)),
    _op("mod", "%", 2, lambda m, a, b: a % b,
        lambda m, g, out, a, b: _off_the_jumps(m, g, out),
        lambda m, g, out, a, b: _off_the_jumps(m, -g * m.floor_divide(a, b), out),
        doc="a % b, numpy's mod: a - floor(a / b) * b, with the sign of b; its derivative is undefined "
            "where a is a multiple of b (the result is 0 there), where it jumps",
        invalid=lambda m, a, b: b == 0, domain_text="a non-zero divisor", error=ZeroDivisionError),
    _op("sinc", "sinc", 1, lambda m, a: m.sinc(a),
        lambda m, g, out, a: g * m.sinc_slope(a),
        doc="numpy's normalised sinc: sin(pi a) / (pi a), and 1 at 0"),
)
# fmt: on

OPS: dict[str, Op] = {op.name: op for op in TABLE}


def op_named(name: str, fingerprint: str = "") -> Op:
    """The table's op called `name` (how ops are unpickled), whose rules have `fingerprint` ("" for a
    built-in row); a LookupError or ValueError saying what to do if there is no such op here."""
    op = OPS.get(name)
    if op is None:
        raise LookupError(
            f"unpickling: the graph uses the op {name!r}, which is not defined in this process: define "
            f"it first (chainrule.defop({name!r}, ...) with the rules the graph was built with), then load"
        )
    if op.fingerprint != fingerprint:
        if not fingerprint:  # a defop op pickled by name alone (an older chainrule): say it is unchecked
            warnings.warn(
                f"unpickling: the graph names the op {name!r} without a fingerprint of its rules (it was "
                f"pickled by an older chainrule): it runs the rules of the {name!r} defined now, unchecked",
                stacklevel=2,
            )
            return op
        raise ValueError(
            f"unpickling: the op {name!r} defined now has other rules than the graph was built with "
            f"(redefined with defop(..., replace=True)?): define {name!r} with its original rules, then load"
        )
    return op


# --- tensor-only operations ---------------------------------------------------------------------
# Operations on whole arrays that no scalar row can express, for `chainrule.tensor.Tensor`. They are
# rows of the same kind as `TABLE`'s (rules with `m` first, one derivative per input) but run on the
# numpy backend only. An op with a parameter (an axis, a shape) takes it as a keyword argument, in its
# forward rule and in each derivative rule alike: a Tensor node keeps those keywords and passes them to
# both. They live in their own tuple because everything that iterates `TABLE` expects scalar rules.


def _matrices(m: Any, a: Any, b: Any) -> tuple[Any, Any]:
    """a as a row and b as a column when they are vectors, so one matmul formula covers all four cases."""
    return (m.reshape(a, (1, -1)) if a.ndim == 1 else a, m.reshape(b, (-1, 1)) if b.ndim == 1 else b)


def _matmul_grad_a(m: Any, g: Any, out: Any, a: Any, b: Any) -> Any:
    # out = A @ B gives dA = G @ B^T, where G is g seen as the matrix A @ B (a vector operand dropped
    # one of its axes, which the reshape puts back); the result takes a's own shape again.
    a2, b2 = _matrices(m, a, b)
    g2 = m.reshape(g, (a2.shape[0], b2.shape[1]))
    return m.reshape(m.matmul(g2, m.transpose(b2)), a.shape)


def _matmul_grad_b(m: Any, g: Any, out: Any, a: Any, b: Any) -> Any:
    # dB = A^T @ G, the same way round.
    a2, b2 = _matrices(m, a, b)
    g2 = m.reshape(g, (a2.shape[0], b2.shape[1]))
    return m.reshape(m.matmul(m.transpose(a2), g2), b.shape)


def _unreduce(m: Any, g: Any, a: Any, axis: tuple[int, ...] | None, keepdims: bool) -> Any:
    """The gradient of a sum over `axis`, copied back to a's shape: every summed entry gets all of it."""
    if axis is not None and not keepdims:
        g = m.expand_dims(g, axis)  # put back the summed axes (as length 1) so that it broadcasts
    return m.broadcast_to(g, a.shape)


def _mean_grad(m: Any, g: Any, out: Any, a: Any, *, axis: Any, keepdims: bool) -> Any:
    # Each entry of out averages a.size / out.size entries of a, so each of those gets that share of g.
    # Sizes from shapes (not `.size`, which is a method on torch tensors), so the rule runs on any m.
    share = math.prod(out.shape) / max(math.prod(a.shape), 1)  # max: an empty a gives an empty grad
    return _unreduce(m, g, a, axis, keepdims) * share


def _inverse(axes: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """The permutation that undoes `axes` (None, reversing all axes, undoes itself)."""
    return None if axes is None else tuple(sorted(range(len(axes)), key=axes.__getitem__))


# fmt: off
TENSOR_OPS: tuple[Op, ...] = (
    _op("matmul", "@", 2, lambda m, a, b: m.matmul(a, b),
        _matmul_grad_a,
        _matmul_grad_b,
        doc="a @ b, the matrix product (a vector operand is a row on the left, a column on the right)"),
    _op("axis_sum", "sum", 1, lambda m, a, *, axis, keepdims: m.sum(a, axis=axis, keepdims=keepdims),
        lambda m, g, out, a, *, axis, keepdims: _unreduce(m, g, a, axis, keepdims),
        doc="the sum of the entries, over all axes or the given ones"),
    _op("mean", "mean", 1, lambda m, a, *, axis, keepdims: m.mean(a, axis=axis, keepdims=keepdims),
        _mean_grad,
        doc="the mean of the entries, over all axes or the given ones"),
    _op("reshape", "reshape", 1, lambda m, a, *, shape: m.reshape(a, shape),
        lambda m, g, out, a, *, shape: m.reshape(g, a.shape),
        doc="the same entries in a new shape"),
    _op("transpose", "T", 1, lambda m, a, *, axes: m.transpose(a, axes),
        lambda m, g, out, a, *, axes: m.transpose(g, _inverse(axes)),
        doc="the axes permuted (reversed by default: the matrix transpose)"),
)
# fmt: on

TENSOR_OPS_BY_NAME: dict[str, Op] = {op.name: op for op in TENSOR_OPS}


def tensor_op_named(name: str) -> Op:
    """The tensor-only op called `name` (how they are unpickled)."""
    return TENSOR_OPS_BY_NAME[name]
