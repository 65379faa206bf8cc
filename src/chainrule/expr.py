"""The safe expression parser of `chainrule draw` and `chainrule explore`: text to a graph of Values.

The expression is read with Python's own parser (`ast.parse`, which only parses) and then walked
by an allow-list: numbers, names, `+ - * / **`, unary minus, calls to the derivative table's
functions (`tanh(x)`, `exp(x)`, ...), and assignments that name intermediate values
(`e = a*b; d = e + c; L = d*f`). Anything else is refused with a one-line error before any
arithmetic happens, and nothing in the text is ever run by `eval` or `exec`: each allowed node
becomes one `Value` operation.
"""

from __future__ import annotations

import ast
import math
import operator
import textwrap
import threading
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .engine import Value, apply, constant
from .engine import sum as value_sum
from .ops import TABLE, Op

MAX_TEXT = 2000  # characters of expression text
MAX_NODES = 500  # numbers, names, operations and statements: a drawing with more is unreadable
MAX_DEPTH = 200  # nesting depth (a+b+c+... nests too); keeps the tree walk far from the recursion limit
MAX_EXPONENT = 100  # |n| for a literal exponent: x**1000 draws nothing a learner can read

# The functions an expression may call: every one-input row of the derivative table (except
# `neg`, which is the `-` sign), plus n-ary `sum`. A new row in chainrule.ops shows up here by itself.
FUNCTIONS: dict[str, Op] = {op.name: op for op in TABLE if op.arity == 1 and op.name != "neg"}
FUNCTIONS["sum"] = next(op for op in TABLE if op.name == "sum")

# Each operator runs through Value's own operator, i.e. one row of the derivative table.
_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,  # numpy's mod: the table's `mod` row
}
# What the refusals call the syntax they refuse, so the message says what was written.
_REFUSED = {
    ast.Attribute: "attribute access",
    ast.Subscript: "a subscript",
    ast.Lambda: "a lambda",
    ast.Compare: "a comparison",
    ast.BoolOp: "and/or",
    ast.IfExp: "an if-expression",
    ast.JoinedStr: "an f-string",
    ast.ListComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.List: "a list",
    ast.Tuple: "a tuple",
    ast.Dict: "a dict",
    ast.Set: "a set",
    ast.Starred: "a starred argument",
    ast.NamedExpr: "the walrus operator",
    ast.Import: "import",
    ast.ImportFrom: "import",
    ast.FunctionDef: "a function definition",
    ast.AsyncFunctionDef: "a function definition",
    ast.ClassDef: "a class definition",
    ast.AugAssign: "augmented assignment",
    ast.AnnAssign: "an annotated assignment",
    ast.If: "an if statement",
    ast.For: "a for loop",
    ast.AsyncFor: "a for loop",
    ast.While: "a while loop",
    ast.With: "a with statement",
    ast.AsyncWith: "a with statement",
    ast.Match: "a match statement",
    ast.Try: "a try statement",
    ast.TryStar: "a try statement",
    ast.Raise: "raise",
    ast.Assert: "assert",
    ast.Return: "return",
    ast.Delete: "del",
    ast.Pass: "pass",
    ast.Break: "break",
    ast.Continue: "continue",
    ast.Global: "global",
    ast.Nonlocal: "nonlocal",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.FormattedValue: "an f-string",
    ast.Slice: "a slice",
}
# Operators outside + - * / ** % and unary -, as they are written.
_OPERATOR_TEXT = {
    ast.FloorDiv: "//",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
    ast.Not: "not",
    ast.Invert: "~",
}
_ALLOWED_OPERATORS = "+ - * / ** % and unary -"
# warnings.catch_warnings changes process-wide state: one parse at a time changes it.
_PARSE_LOCK = threading.Lock()


class ExprError(ValueError):
    """An expression that `chainrule draw` refuses to build, with a one-line reason."""


@dataclass
class Built:
    """An expression's graph: its output (the last statement) and the named values in it."""

    output: Value
    inputs: dict[str, Value] = field(default_factory=dict)
    names: dict[str, Value] = field(default_factory=dict)


def parse_values(items: Iterable[str]) -> dict[str, float]:
    """`["a=2", "b=-3"]` as `{"a": 2.0, "b": -3.0}`; a name given twice is an error, not "last wins"."""
    values: dict[str, float] = {}
    for item in items:
        name, value = parse_assignment(item)
        if name in values:
            raise ExprError(
                f"draw: {name!r} is given twice ({name}={values[name]:g} and {name}={value:g}); "
                "give each input one value"
            )
        values[name] = value
    return values


def parse_assignment(text: str) -> tuple[str, float]:
    """`"a=2"` as `("a", 2.0)`; a clear error for anything that is not name=number."""
    name, sep, number = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise ExprError(f"draw: expected name=value (like a=2), got {text!r}")
    if name in FUNCTIONS:
        raise ExprError(f"draw: {name!r} is a function and cannot be given a value")
    try:
        value = float(number)
    except ValueError:
        raise ExprError(f"draw: the value of {name!r} must be a number, got {number.strip()!r}") from None
    if not math.isfinite(value):
        raise ExprError(f"draw: the value of {name!r} must be a finite number, got {number.strip()!r}")
    return name, value


def _where(node: ast.AST, text: str) -> str:
    segment = ast.get_source_segment(text, node) or ""
    if len(segment) > 40:
        segment = segment[:37] + "..."
    return f" in {segment!r}" if segment else ""


def _check_shape(tree: ast.Module) -> None:
    """Refuse trees that are too big or too deep, before walking them recursively."""
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, ast.expr | ast.stmt):  # not the Load/Add markers that hang off them
            count += 1
        if count > MAX_NODES:
            raise ExprError(
                f"draw: the expression is too big (more than {MAX_NODES} numbers, names and operations)"
            )
        if depth > MAX_DEPTH:
            raise ExprError(f"draw: the expression is nested too deeply (more than {MAX_DEPTH} levels)")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _number(node: ast.Constant, text: str) -> float:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExprError(f"draw: only numbers are allowed as constants, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise ExprError(f"draw: the number{_where(node, text)} is too large") from None
    if not math.isfinite(number):
        raise ExprError(f"draw: the number{_where(node, text)} is too large")
    return number


class _Builder:
    """Walks an allow-listed syntax tree, turning each node into one Value operation."""

    def __init__(self, text: str, values: Mapping[str, float]) -> None:
        self.text = text
        self.values = dict(values)
        self.names: dict[str, Value] = {}
        self.inputs: dict[str, Value] = {}

    def refuse(self, node: ast.AST) -> ExprError:
        op = getattr(node, "op", None)
        if isinstance(node, ast.BinOp | ast.UnaryOp | ast.AugAssign) and type(op) in _OPERATOR_TEXT:
            return ExprError(
                f"draw: the operator '{_OPERATOR_TEXT[type(op)]}' is not allowed{_where(node, self.text)} "
                f"(allowed: {_ALLOWED_OPERATORS})"
            )
        # Never a syntax-tree class name: the message says, in words, what was written.
        what = _REFUSED.get(type(node)) or ("this statement" if isinstance(node, ast.stmt) else "this syntax")
        return ExprError(f"draw: {what} is not allowed{_where(node, self.text)}")

    def statement(self, node: ast.stmt) -> Value:
        if isinstance(node, ast.Expr):
            return self.expr(node.value)
        if isinstance(node, ast.Assign):
            if len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name):
                raise ExprError(f"draw: assign to one plain name, like e = a*b{_where(node, self.text)}")
            name = node.targets[0].id
            if name in self.names or name in self.values:
                raise ExprError(f"draw: {name!r} is already defined; give each value its own name")
            if name in FUNCTIONS:
                raise ExprError(f"draw: {name!r} is a function and cannot be assigned to")
            value = self.expr(node.value)
            if not value.label:  # `e = a` keeps a's own name
                value.label = name
            self.names[name] = value
            return value
        raise self.refuse(node)

    def expr(self, node: ast.expr) -> Value:
        if isinstance(node, ast.Constant):
            return constant(_number(node, self.text))
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = self.expr(node.left), self.expr(node.right)
            # An exponent made of constants only (2**1000, 9**9**9) is refused; one that depends on
            # an input is the user's own number. All arithmetic is on floats, so neither can hang.
            if isinstance(node.op, ast.Pow) and not right.requires_grad and abs(right.data) > MAX_EXPONENT:
                raise ExprError(
                    f"draw: the exponent{_where(node.right, self.text)} is too large "
                    f"({right.data:g}; at most {MAX_EXPONENT} in absolute value)"
                )
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -self.expr(node.operand)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd):
            return self.expr(node.operand)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.refuse(node)

    def name(self, node: ast.Name) -> Value:
        name = node.id
        if name in self.names:
            return self.names[name]
        if name in self.values:  # first use of an input: one leaf Value, labelled with its name
            leaf = Value(self.values[name], label=name)
            self.names[name] = self.inputs[name] = leaf
            return leaf
        if name in FUNCTIONS:
            raise ExprError(f"draw: {name!r} is a function: call it, like {name}(x)")
        raise ExprError(f"draw: unknown name {name!r}: give it a value ({name}=1.5) or assign it first")

    def call(self, node: ast.Call) -> Value:
        if not isinstance(node.func, ast.Name):
            raise ExprError(
                f"draw: only the functions {', '.join(FUNCTIONS)} can be called{_where(node, self.text)}"
            )
        name = node.func.id
        if name not in FUNCTIONS:
            raise ExprError(f"draw: unknown function {name!r}; allowed: {', '.join(FUNCTIONS)}")
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise ExprError(f"draw: {name}() takes plain positional arguments{_where(node, self.text)}")
        op = FUNCTIONS[name]
        args = [self.expr(arg) for arg in node.args]
        if op.arity is None:
            if not args:
                raise ExprError("draw: sum() needs at least one argument")
            return value_sum(args)
        if len(args) != op.arity:
            raise ExprError(f"draw: {name}() takes {op.arity} argument, got {len(args)}")
        return apply(op, *args)


def _parse(text: str) -> ast.Module:
    """Python's parser on `text`, with its warnings silenced: a refusal is one line, nothing else."""
    try:
        with _PARSE_LOCK, warnings.catch_warnings():
            # "1and a" makes the tokenizer warn ("invalid decimal literal") before parsing it
            warnings.simplefilter("ignore")
            return ast.parse(text, mode="exec")
    except SyntaxError as exc:
        if exc.msg == "unexpected indent":
            raise ExprError(
                f"draw: line {exc.lineno} is indented: start every statement at the beginning of its "
                "line, or separate statements with ;"
            ) from None
        where = f"line {exc.lineno}, column {exc.offset}" if text.count("\n") else f"column {exc.offset}"
        raise ExprError(f"draw: not a valid expression: {exc.msg} ({where})") from None
    except (RecursionError, MemoryError):
        raise ExprError("draw: the expression is nested too deeply") from None
    except ValueError as exc:  # a NUL character, in Python 3.11
        raise ExprError(f"draw: not a valid expression: {exc}") from None


def build(text: str, values: Mapping[str, float]) -> Built:
    """Build the graph of `text` (statements separated by ; or newlines) with the given inputs.

    Raises ExprError for anything outside the allow-list, unknown names or unused values, and the
    engine's DomainError / ZeroDivisionError for values outside an operation's domain.
    """
    if len(text) > MAX_TEXT:
        raise ExprError(f"draw: the expression is too long ({len(text)} characters, at most {MAX_TEXT})")
    if not text.strip():
        raise ExprError("draw: the expression is empty")
    # " a*b" (a space typed before the expression) or an indented block is read as written.
    text = textwrap.dedent(text).strip()
    tree = _parse(text)
    if not tree.body:
        raise ExprError("draw: the expression is empty (it holds only a comment)")
    _check_shape(tree)
    builder = _Builder(text, values)
    output = builder.statement(tree.body[0])
    for statement in tree.body[1:]:
        output = builder.statement(statement)
    if not output.label:  # the picture and the printout need a name for the output
        output.label = "out"
    unused = sorted(set(values) - set(builder.inputs))
    if unused:
        raise ExprError(f"draw: values given for names the expression does not use: {', '.join(unused)}")
    return Built(output, builder.inputs, builder.names)
