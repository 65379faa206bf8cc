"""The per-op test data, in one place: one entry per row of `chainrule.TABLE`.

Adding a built-in operation means one row in `src/chainrule/ops.py` and one entry in `CASES` here.
Every table-driven test reads its per-op data from this module through `case(op)`:

- tests/test_ops_table.py: `torch`, `spell`, `points`, `invalid` (every rule against PyTorch float64,
  finite differences and the three backends; the domain errors);
- tests/test_gradcheck.py: `gradcheck` (order 1 and 2);
- tests/test_tensor.py: `torch`, `spell`, `ranges` (the elementwise ops on arrays);
- tests/test_random_graphs.py: `torch`, `spell`, `safe`, `numbers` (random graphs against PyTorch);
- tests/test_compiler_props.py: `recipe` (random graphs, compiled against eager);
- tests/test_check_torch.py: `spell`, `gradcheck` (`against_torch` knows every method).

The tests iterate `chainrule.TABLE` (the built-in rows), never `chainrule.OPS`, which `defop` extends at
run time. A row without an entry here, or an entry without a row, fails
`test_every_table_row_has_an_entry_and_every_entry_a_row` in tests/test_ops_table.py, and every test
that needs the missing entry fails naming this file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

import chainrule
from chainrule import TABLE, Op
from conftest import need

__all__ = ["CASES", "Fixed", "OpCase", "Point", "case", "cases_for_table"]


@dataclass(frozen=True)
class Point:
    """Inputs of one op, which of them are `Value`s (the others are plain numbers) and how to check."""

    xs: tuple[float, ...]
    wrt: tuple[int, ...] | None = None  # inputs given as Values; None means all of them
    fd: bool = True  # also compare with a finite difference (off at kinks and at overflow)

    def inputs(self) -> tuple[int, ...]:
        return tuple(range(len(self.xs))) if self.wrt is None else self.wrt


@dataclass(frozen=True)
class Fixed:
    """A gradcheck operand passed as a constant, not checked (e.g. pow's exponent for a negative base)."""

    x: float


def _always(xs: Sequence[float], is_node: Sequence[bool]) -> bool:
    return True


@dataclass(frozen=True)
class OpCase:
    """How to test one op of the table."""

    # The PyTorch function computing the same thing, called with float64 tensors (of any shape;
    # plain numbers among the operands are turned into constant tensors first).
    torch: Callable[..., Any]
    # The op through the public API, as users write it (operators, methods, abs(), chainrule.sum):
    # called with Values, Tensors and numbers mixed.
    spell: Callable[..., Any]
    # Sample points checked against PyTorch and finite differences, including points near the edge
    # of the domain, at overflow and at kinks (those with fd=False).
    points: tuple[Point, ...]
    # Inputs outside the domain: each must raise the row's error, naming the op and the values.
    invalid: tuple[tuple[float, ...], ...] = ()
    # gradcheck points (order 1 and 2): inside the domain and away from kinks. `Fixed` marks a constant.
    gradcheck: tuple[tuple[Any, ...], ...] = ()
    # Where Tensor tests draw each input from (uniformly); None means (-2, 2) for every input.
    ranges: tuple[tuple[float, float], ...] | None = None
    # Random graphs (against PyTorch): whether operands `xs` are well inside the domain, no kink or pole
    # within reach of rounding; `is_node[i]` tells whether input i is a graph node or a plain number.
    safe: Callable[[Sequence[float], Sequence[bool]], bool] = _always
    # Random graphs: the numbers an input may be when it is a plain number (None: any in [-3, 3]).
    numbers: tuple[tuple[float, ...] | None, ...] | None = None
    # Compiled-vs-eager random graphs: the op applied to earlier nodes a, b, c (any real values) and a
    # number k in [-2, 2], with its operands moved into its domain. None: the op on (a, b, c)[:arity].
    recipe: Callable[[Any, Any, Any, float], Any] | None = None

    def build(self, op: Op, a: Any, b: Any, c: Any, k: float) -> Any:
        """The `recipe` node (or the plain spelling on as many of a, b, c as the op takes)."""
        if self.recipe is not None:
            return self.recipe(a, b, c, k)
        return self.spell(*(a, b, c)[: 3 if op.arity is None else op.arity])


def _torch(name: str) -> Callable[..., Any]:
    """A torch function looked up by name only when a test runs (torch is an optional component)."""

    def call(*xs: Any) -> Any:
        torch = need("torch")
        xs = tuple(x if isinstance(x, torch.Tensor) else torch.tensor(x, dtype=torch.float64) for x in xs)
        if name == "softplus":  # log(1 + e^x) without torch's linear cut-off above x = 20
            return torch.logaddexp(xs[0], torch.zeros_like(xs[0]))
        if name == "sum":
            return torch.stack(xs).sum()
        return getattr(torch, name)(*xs)

    return call


def _positive(xs: Sequence[float], is_node: Sequence[bool]) -> bool:
    return xs[0] > 1e-2


def _mod_safe(xs: Sequence[float], is_node: Sequence[bool]) -> bool:
    a, b = xs
    # a divisor away from 0, and a well away from a multiple of it (where a % b jumps)
    if abs(b) < 1e-1:
        return False
    quotient = a / b
    return abs(quotient - round(quotient)) > 1e-6


def _pow_safe(xs: Sequence[float], is_node: Sequence[bool]) -> bool:
    base, exponent = xs
    # a Value exponent needs log(base); a fractional or negative one needs a base away from 0
    if is_node[1] or exponent != int(exponent) or exponent < 0:
        return base > 1e-1
    return True


P = Point
# fmt: off
CASES: dict[str, OpCase] = {
    "add": OpCase(
        _torch("add"), lambda a, b: a + b,
        (P((1.5, -2.25)), P((0.0, 3.0)), P((1e300, 1e300)), P((2.0, 5.0), wrt=(0,)), P((2.0, 5.0), wrt=(1,))),
        gradcheck=((1.5, -2.0), (0.3, 0.7)),
    ),
    "sub": OpCase(
        _torch("sub"), lambda a, b: a - b,
        (P((1.5, -2.25)), P((-7.0, -7.0)), P((2.0, 5.0), wrt=(0,)), P((2.0, 5.0), wrt=(1,))),
        gradcheck=((1.5, -2.0), (0.3, 0.7)),
    ),
    "mul": OpCase(
        _torch("mul"), lambda a, b: a * b,
        (
            P((1.5, -2.25)), P((0.0, 3.0)), P((-1e-200, 1e-200)), P((2.0, 5.0), wrt=(0,)),
            P((2.0, 5.0), wrt=(1,)),
        ),
        gradcheck=((1.5, -2.0), (-0.3, 0.7)),
    ),
    "truediv": OpCase(
        _torch("div"), lambda a, b: a / b,
        (
            P((1.5, -2.25)), P((0.0, 3.0)), P((1.0, 1e-3)), P((-3.0, -1e-150)),
            P((2.0, 5.0), wrt=(0,)), P((2.0, 5.0), wrt=(1,)),
        ),
        invalid=((1.0, 0.0), (0.0, 0.0), (-2.0, -0.0)),
        gradcheck=((1.5, -2.0), (0.3, 0.7), (-2.0, 0.5)),
        ranges=((-2.0, 2.0), (0.5, 2.0)),  # a divisor away from zero
        safe=lambda xs, is_node: abs(xs[1]) > 1e-1,
        recipe=lambda a, b, c, k: a / (b * b + 1.0),
    ),
    "neg": OpCase(
        _torch("neg"), lambda a: -a, (P((1.5,)), P((0.0,)), P((-1e300,))),
        gradcheck=((1.5,), (-0.4,)),
    ),
    "pow": OpCase(
        _torch("pow"), lambda a, b: a**b,
        (
            P((2.0, 3.0)), P((2.5, 0.5)), P((0.7, -1.5)), P((1e-3, 0.5)), P((3.0, 0.0)), P((1.0, 7.5)),
            P((0.0, 2.0)), P((0.0, 1.0)), P((0.0, 0.5), wrt=(1,)),
            # a number exponent: Value ** 3 (a negative base is fine with an integer exponent)
            P((-2.0, 3.0), wrt=(0,)), P((-1.5, -2.0), wrt=(0,)), P((4.0, 0.5), wrt=(0,)),
            P((0.0, 0.0), wrt=(0,)), P((-3.0, 0.0), wrt=(0,)), P((0.0, 3.0), wrt=(0,)),
            # a number base: 2 ** Value
            P((2.0, 3.0), wrt=(1,)), P((0.5, -4.0), wrt=(1,)), P((0.0, 2.0), wrt=(1,)),
            P((10.0, 400.0), wrt=(1,), fd=False),
        ),
        invalid=((-8.0, 0.5), (-1.0, 1e-9), (0.0, -1.0), (0.0, -0.5)),
        gradcheck=((1.5, 2.0), (0.7, 2.5), (2.0, -1.5), (-1.5, Fixed(3.0)), (-0.5, Fixed(-2.0))),
        ranges=((0.3, 2.0), (-2.0, 2.0)),  # a positive base: any real exponent is allowed
        safe=_pow_safe,
        numbers=((2.0, 0.5, 3.0), (2.0, 3.0, -1.0, 0.5, 1.5, 0.0)),
        recipe=lambda a, b, c, k: a ** (2 if k > 0 else 3),
    ),
    "exp": OpCase(
        _torch("exp"), lambda a: a.exp(),
        (P((0.0,)), P((1.5,)), P((-3.0,)), P((700.0,)), P((-745.0,), fd=False), P((710.0,), fd=False)),
        gradcheck=((0.5,), (-1.2,), (2.0,)),
        safe=lambda xs, is_node: xs[0] < 6.0,
        recipe=lambda a, b, c, k: a.tanh().exp(),
    ),
    "log": OpCase(
        _torch("log"), lambda a: a.log(),
        (P((1.0,)), P((2.5,)), P((1e-3,)), P((1e-300,), fd=False), P((1e300,))),
        invalid=((0.0,), (-1.0,), (-0.0,), (-1e-300,), (-math.inf,)),
        gradcheck=((0.5,), (2.0,), (10.0,)),
        ranges=((0.2, 3.0),),
        safe=_positive,
        recipe=lambda a, b, c, k: (a * a + 0.5).log(),
    ),
    "tanh": OpCase(
        _torch("tanh"), lambda a: a.tanh(), (P((0.0,)), P((0.5,)), P((-2.0,)), P((20.0,)), P((-400.0,))),
        gradcheck=((-1.0,), (0.3,), (2.0,)),
    ),
    "relu": OpCase(
        _torch("relu"), lambda a: a.relu(),
        (P((1.5,)), P((-1.5,)), P((1e-300,), fd=False), P((0.0,), fd=False)),
        gradcheck=((-1.0,), (0.7,), (2.5,)),
    ),
    "sigmoid": OpCase(
        _torch("sigmoid"), lambda a: a.sigmoid(),
        (
            P((0.0,)), P((1.5,)), P((-2.0,)), P((40.0,)), P((-40.0,)), P((-700.0,), fd=False), P((800.0,)),
            P((-800.0,), fd=False),
        ),
        gradcheck=((-2.0,), (0.0,), (3.0,)),
    ),
    "softplus": OpCase(
        _torch("softplus"), lambda a: a.softplus(),
        (P((0.0,)), P((1.5,)), P((-2.0,)), P((40.0,)), P((-40.0,)), P((800.0,)), P((-800.0,), fd=False)),
        gradcheck=((-2.0,), (0.0,), (3.0,)),
    ),
    "sin": OpCase(
        _torch("sin"), lambda a: a.sin(), (P((0.0,)), P((1.0,)), P((-2.5,)), P((100.0,))),
        gradcheck=((-1.0,), (0.5,), (3.0,)),
    ),
    "cos": OpCase(
        _torch("cos"), lambda a: a.cos(), (P((0.0,)), P((1.0,)), P((-2.5,)), P((100.0,))),
        gradcheck=((-1.0,), (0.5,), (3.0,)),
    ),
    "sqrt": OpCase(
        _torch("sqrt"), lambda a: a.sqrt(),
        (P((4.0,)), P((2.0,)), P((1e-3,)), P((1e-300,), fd=False), P((1e300,))),
        invalid=((-1.0,), (-1e-300,), (-math.inf,)),
        gradcheck=((0.25,), (2.0,), (9.0,)),
        ranges=((0.2, 3.0),),
        safe=_positive,
        recipe=lambda a, b, c, k: (a * a + 0.25).sqrt(),
    ),
    "abs": OpCase(
        _torch("abs"), lambda a: abs(a),
        (P((1.5,)), P((-1.5,)), P((-1e-300,), fd=False), P((0.0,), fd=False)),
        gradcheck=((-1.5,), (0.5,)),
    ),
    "sum": OpCase(
        _torch("sum"), lambda *xs: chainrule.sum(xs),
        (
            P((2.5,)), P((1.0, -2.0)), P((1.0, -2.0, 3.5)), P((0.5, 1.5, -2.5, 3.5, 1e-3)),
            P((1.0, 2.0, 3.0), wrt=(1,)),
        ),
        gradcheck=((1.0,), (1.0, 2.0), (0.5, -1.0, 2.0, 3.0)),
    ),
    # numpy's elementary functions
    "tan": OpCase(
        _torch("tan"), lambda a: a.tan(), (P((0.0,)), P((0.5,)), P((-1.2,)), P((1.5,)), P((100.0,))),
        gradcheck=((-1.0,), (0.3,), (1.2,)),
        safe=lambda xs, is_node: abs(math.cos(xs[0])) > 0.1,  # away from the poles
        recipe=lambda a, b, c, k: a.tanh().tan(),
    ),
    "sinh": OpCase(
        _torch("sinh"), lambda a: a.sinh(),
        (P((0.0,)), P((0.5,)), P((-2.0,)), P((20.0,)), P((711.0,), fd=False), P((-711.0,), fd=False)),
        gradcheck=((-1.0,), (0.3,), (2.0,)),
        safe=lambda xs, is_node: abs(xs[0]) < 6.0,
    ),
    "cosh": OpCase(
        _torch("cosh"), lambda a: a.cosh(),
        (P((0.0,)), P((0.5,)), P((-2.0,)), P((20.0,)), P((-711.0,), fd=False)),
        gradcheck=((-1.0,), (0.3,), (2.0,)),
        safe=lambda xs, is_node: abs(xs[0]) < 6.0,
    ),
    "arcsin": OpCase(
        _torch("arcsin"), lambda a: a.arcsin(), (P((0.0,)), P((0.5,)), P((-0.9,)), P((0.999,)), P((1e-300,))),
        invalid=((1.5,), (-1.0000000000000002,), (math.inf,), (-math.inf,)),
        gradcheck=((-0.5,), (0.2,), (0.8,)),
        ranges=((-0.95, 0.95),),
        safe=lambda xs, is_node: abs(xs[0]) < 0.99,
        recipe=lambda a, b, c, k: (a.tanh() * 0.9).arcsin(),
    ),
    "arccos": OpCase(
        _torch("arccos"), lambda a: a.arccos(), (P((0.0,)), P((0.5,)), P((-0.9,)), P((0.999,)), P((-0.999,))),
        invalid=((1.5,), (-1.0000000000000002,), (math.inf,)),
        gradcheck=((-0.5,), (0.2,), (0.8,)),
        ranges=((-0.95, 0.95),),
        safe=lambda xs, is_node: abs(xs[0]) < 0.99,
        recipe=lambda a, b, c, k: (a.tanh() * 0.9).arccos(),
    ),
    "arctan": OpCase(
        _torch("arctan"), lambda a: a.arctan(), (P((0.0,)), P((0.5,)), P((-3.0,)), P((1e10,)), P((-1e300,))),
        gradcheck=((-2.0,), (0.3,), (1.5,)),
    ),
    "arcsinh": OpCase(
        _torch("arcsinh"), lambda a: a.arcsinh(),
        (P((0.0,)), P((0.5,)), P((-3.0,)), P((1e10,)), P((-1e-300,))),
        gradcheck=((-2.0,), (0.3,), (1.5,)),
    ),
    "arccosh": OpCase(
        _torch("arccosh"), lambda a: a.arccosh(), (P((1.5,)), P((3.0,)), P((1.001,)), P((1e10,))),
        invalid=((0.999,), (0.0,), (-2.0,), (-math.inf,)),
        gradcheck=((1.2,), (2.0,), (5.0,)),
        ranges=((1.1, 3.0),),
        safe=lambda xs, is_node: xs[0] > 1.01,
        recipe=lambda a, b, c, k: (a * a + 1.5).arccosh(),
    ),
    "arctanh": OpCase(
        _torch("arctanh"), lambda a: a.arctanh(),
        (P((0.0,)), P((0.5,)), P((-0.9,)), P((0.999,)), P((1e-300,))),
        invalid=((1.0,), (-1.0,), (2.0,), (math.inf,)),
        gradcheck=((-0.5,), (0.2,), (0.8,)),
        ranges=((-0.95, 0.95),),
        safe=lambda xs, is_node: abs(xs[0]) < 0.99,
        recipe=lambda a, b, c, k: (a.tanh() * 0.9).arctanh(),
    ),
    "log2": OpCase(
        _torch("log2"), lambda a: a.log2(),
        (P((1.0,)), P((0.5,)), P((8.0,)), P((1e-3,)), P((1e-300,), fd=False), P((1e300,))),
        invalid=((0.0,), (-1.0,), (-0.0,), (-math.inf,)),
        gradcheck=((0.5,), (2.0,), (10.0,)),
        ranges=((0.2, 3.0),),
        safe=_positive,
        recipe=lambda a, b, c, k: (a * a + 0.5).log2(),
    ),
    "log10": OpCase(
        _torch("log10"), lambda a: a.log10(),
        (P((1.0,)), P((0.5,)), P((1000.0,)), P((1e-3,)), P((1e-300,), fd=False), P((1e300,))),
        invalid=((0.0,), (-1.0,), (-0.0,), (-math.inf,)),
        gradcheck=((0.5,), (2.0,), (10.0,)),
        ranges=((0.2, 3.0),),
        safe=_positive,
        recipe=lambda a, b, c, k: (a * a + 0.5).log10(),
    ),
    "log1p": OpCase(
        _torch("log1p"), lambda a: a.log1p(),
        (P((0.0,)), P((1e-10,)), P((-0.5,)), P((-0.999,)), P((3.0,)), P((1e300,))),
        invalid=((-1.0,), (-2.0,), (-math.inf,)),
        gradcheck=((-0.5,), (0.0,), (3.0,)),
        ranges=((-0.8, 3.0),),
        safe=lambda xs, is_node: xs[0] > -0.99,
        recipe=lambda a, b, c, k: (a * a - 0.5).log1p(),
    ),
    "expm1": OpCase(
        _torch("expm1"), lambda a: a.expm1(),
        (P((0.0,)), P((1e-10,)), P((-2.5,)), P((3.0,)), P((700.0,)), P((710.0,), fd=False)),
        gradcheck=((-1.0,), (0.0,), (2.0,)),
        # PyTorch's slope is out + 1, which loses digits for a < -3 (chainrule's is e ** a)
        safe=lambda xs, is_node: -3.0 < xs[0] < 6.0,
        recipe=lambda a, b, c, k: a.tanh().expm1(),
    ),
    "exp2": OpCase(
        _torch("exp2"), lambda a: a.exp2(),
        (P((0.0,)), P((0.5,)), P((-3.0,)), P((10.0,)), P((1023.0,)), P((1100.0,), fd=False)),
        gradcheck=((-1.0,), (0.5,), (3.0,)),
        safe=lambda xs, is_node: xs[0] < 8.0,
        recipe=lambda a, b, c, k: a.tanh().exp2(),
    ),
    "deg2rad": OpCase(
        _torch("deg2rad"), lambda a: a.deg2rad(), (P((0.0,)), P((90.0,)), P((-180.5,)), P((1e300,))),
        gradcheck=((-30.0,), (45.0,)),
    ),
    "rad2deg": OpCase(
        _torch("rad2deg"), lambda a: a.rad2deg(), (P((0.0,)), P((1.5,)), P((-3.0,)), P((1e300,))),
        gradcheck=((-1.0,), (0.5,)),
        safe=lambda xs, is_node: abs(xs[0]) < 10.0,
    ),
    "mod": OpCase(
        _torch("remainder"), lambda a, b: a % b,
        (
            # numpy's sign convention: the result has the sign of the divisor
            P((7.5, 2.0)), P((-7.5, 2.0)), P((7.5, -2.0)), P((-7.5, -2.0)), P((0.3, 0.25)),
            P((1e-3, 2.0)), P((-1e-3, 2.0)), P((1e6 + 0.5, 3.0)), P((5.0, 3.0), wrt=(0,)),
            P((5.0, 3.0), wrt=(1,)),
        ),
        invalid=((1.0, 0.0), (0.0, 0.0), (-2.0, -0.0)),
        gradcheck=((7.3, 2.0), (-2.3, 0.7), (1.1, -0.4)),
        ranges=((-4.0, 4.0), (0.5, 2.0)),  # a divisor away from zero
        safe=_mod_safe,
        numbers=(None, (2.0, 0.5, -1.5, 3.0)),
        recipe=lambda a, b, c, k: (a + 0.123) % (b * b + 0.5),
    ),
    "sinc": OpCase(
        _torch("sinc"), lambda a: a.sinc(),
        (
            P((0.0,)), P((0.3,)), P((-1.5,)), P((2.0,)), P((1e-3,)), P((0.4999,)), P((0.5,)),
            P((-0.5001,)), P((100.25,)),
        ),
        gradcheck=((0.0,), (0.3,), (-1.7,)),
        # PyTorch's slope near 0 loses digits to cancellation (chainrule uses the series there)
        safe=lambda xs, is_node: xs[0] == 0.0 or abs(xs[0]) > 1e-2,
    ),
}
# fmt: on


def case(op: Op) -> OpCase:
    """The entry for a row of the table; a test fails, saying what to do, if the row has none."""
    entry = CASES.get(op.name)
    if entry is None:
        pytest.fail(f"op {op.name!r} is in chainrule.TABLE but has no entry in CASES in {__file__}")
    return entry


def cases_for_table() -> tuple[list[str], list[str]]:
    """(rows of chainrule.TABLE without an entry, entries without a row)."""
    names = [op.name for op in TABLE]
    return [n for n in names if n not in CASES], [n for n in CASES if n not in names]
