"""The eager scalar engine: `Value`, reverse-mode `backward()`, `no_grad()`.

A `Value` wraps a float and remembers how it was made: the operation (a row of the derivative
table in `chainrule.ops`) and its inputs. `backward()` walks that graph from the output back to the
leaves and applies each operation's derivative rules: the chain rule, one node at a time.

Design notes, for the curious:
- A node stores its op and its inputs, never a closure. Closures that capture their own output
  make reference cycles, which only Python's cyclic garbage collector can free; without them a
  graph is freed the moment its last reference goes, and the collector has nothing to untangle.
- The traversal is iterative, so a chain of a million nodes needs no recursion limit.
- `backward()` computes a fresh gradient for every node (in the `_g` slot) and only then adds it
  to `.grad`, so calling it twice doubles every gradient exactly.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from operator import attrgetter
from typing import Any, Union

from .backends import FLOAT, VALUE
from .errors import DomainError, PlaceholderError
from .ops import OPS, Op

Number = int | float
Operand = Union["Value", int, float]

_grad_enabled = True  # switched off inside `no_grad()`


def _is_real(x: Any) -> bool:
    """Whether `x` is a real number: int, float, bool, or a numpy scalar of those kinds."""
    if isinstance(x, numbers.Real):
        return not isinstance(x, Value)
    # numpy.bool_ is not registered as numbers.Real; if numpy is not imported, x is not a numpy bool.
    np = sys.modules.get("numpy")
    return np is not None and isinstance(x, np.bool_)


def _to_float(x: Any, what: str) -> float:
    """`x` as a float if it is a real number (int, float, bool, numpy scalar), else a TypeError."""
    if _is_real(x):
        return float(x)
    raise TypeError(f"{what} needs a real number, got {type(x).__name__}: {x!r}")


_ADD, _SUB, _MUL, _DIV, _POW = OPS["add"], OPS["sub"], OPS["mul"], OPS["truediv"], OPS["pow"]
_NEG, _ABS, _EXP, _LOG, _TANH = OPS["neg"], OPS["abs"], OPS["exp"], OPS["log"], OPS["tanh"]
_RELU, _SIGMOID, _SOFTPLUS = OPS["relu"], OPS["sigmoid"], OPS["softplus"]
_SIN, _COS, _SQRT, _SUM = OPS["sin"], OPS["cos"], OPS["sqrt"], OPS["sum"]


def _operator(op: Op, reflected: bool) -> Callable[[Value, Any], Value]:
    """Value's method for the two-input op `op`: `__mul__`, or `__rmul__` when `reflected`."""
    # One function per operator, rather than every operator calling a shared helper, saves a call
    # per node on the hottest path of the engine (a third of the time of `a * b`). The op's rules
    # stay in the table; this only wires them to Python's operators.
    forward = op.forward
    check = op.check if op.invalid is not None else None

    def method(self: Value, other: Any) -> Value:
        if not isinstance(other, Value):  # a plain number becomes a constant
            number = _leaf(other)
            if number is None:
                return _not_a_number(op, other)
            other = number
        a, b = (other, self) if reflected else (self, other)
        try:
            x = a.data
            y = b.data
        except PlaceholderError:
            return _symbolic(op, (a, b))
        if check is not None:
            check(FLOAT, x, y)
        return _node(op, forward(FLOAT, x, y), (a, b), a.requires_grad or b.requires_grad)

    name = f"__{'r' if reflected else ''}{op.name}__"
    method.__name__ = name
    method.__qualname__ = f"Value.{name}"
    method.__doc__ = f"other {op.symbol} self" if reflected else f"self {op.symbol} other"
    return method


class Value:
    """A scalar that records the operations applied to it, so gradients can flow back."""

    # The inputs live in two slots rather than in a `_prev` tuple: one object per node instead of two
    # halves the work of Python's cyclic garbage collector, which visits every container object
    # while a graph is being built (see docs/performance.md). `_prev` is rebuilt on demand.
    #   leaf: _a = _b = None;  one input: _a = x, _b = None;  two: _a, _b;  n-ary: _a = tuple, _b = _MANY
    __slots__ = ("data", "grad", "label", "requires_grad", "_a", "_b", "_fn", "_g")

    def __init__(self, data: Number, label: str = "", requires_grad: bool = True) -> None:
        self.data: float = data if type(data) is float else _to_float(data, "Value")
        self.grad: Any = 0.0
        self.label = label
        self.requires_grad = requires_grad
        self._a: Any = None
        self._b: Any = None
        self._fn: Op | None = None

    @property
    def _prev(self) -> tuple[Value, ...]:
        """The inputs of the op that made this node, in operand order (() for a leaf), as in micrograd."""
        a, b = self._a, self._b
        if a is None:
            return ()
        if b is None:
            return (a,)
        if b is _MANY:
            return a
        return (a, b)

    @_prev.setter
    def _prev(self, children: tuple[Value, ...]) -> None:
        children = tuple(children)
        if len(children) == 1:
            self._a, self._b = children[0], None
        elif len(children) == 2:
            self._a, self._b = children
        else:
            self._a, self._b = (children, _MANY) if children else (None, None)

    @property
    def _op(self) -> str:
        """The symbol of the op that made this node ('' for a leaf), as micrograd names it."""
        return self._fn.symbol if self._fn is not None else ""

    def __repr__(self) -> str:
        label = f", label={self.label!r}" if self.label else ""
        return f"Value(data={self.data}, grad={self.grad}{label})"

    # --- arithmetic: each operator is one row of the table ------------------------------------
    __add__ = _operator(_ADD, reflected=False)
    __radd__ = _operator(_ADD, reflected=True)
    __sub__ = _operator(_SUB, reflected=False)
    __rsub__ = _operator(_SUB, reflected=True)
    __mul__ = _operator(_MUL, reflected=False)
    __rmul__ = _operator(_MUL, reflected=True)
    __truediv__ = _operator(_DIV, reflected=False)
    __rtruediv__ = _operator(_DIV, reflected=True)
    __pow__ = _operator(_POW, reflected=False)  # a number or a Value exponent
    __rpow__ = _operator(_POW, reflected=True)

    def __neg__(self) -> Value:
        return _apply1(_NEG, self)

    def __pos__(self) -> Value:
        return self

    def __abs__(self) -> Value:
        return _apply1(_ABS, self)

    def exp(self) -> Value:
        """e ** self."""
        return _apply1(_EXP, self)

    def log(self) -> Value:
        """Natural logarithm; a DomainError for self <= 0."""
        return _apply1(_LOG, self)

    def tanh(self) -> Value:
        """Hyperbolic tangent."""
        return _apply1(_TANH, self)

    def relu(self) -> Value:
        """max(self, 0)."""
        return _apply1(_RELU, self)

    def sigmoid(self) -> Value:
        """1 / (1 + e ** -self), stable for large |self|."""
        return _apply1(_SIGMOID, self)

    def softplus(self) -> Value:
        """log(1 + e ** self), stable for large |self|."""
        return _apply1(_SOFTPLUS, self)

    def sin(self) -> Value:
        """Sine."""
        return _apply1(_SIN, self)

    def cos(self) -> Value:
        """Cosine."""
        return _apply1(_COS, self)

    def sqrt(self) -> Value:
        """Square root; a DomainError for self < 0."""
        return _apply1(_SQRT, self)

    # --- comparisons look at the data (equality stays identity, as in micrograd) ---------------
    def __lt__(self, other: Operand) -> bool:
        return self.data < _data_of(other)

    def __le__(self, other: Operand) -> bool:
        return self.data <= _data_of(other)

    def __gt__(self, other: Operand) -> bool:
        return self.data > _data_of(other)

    def __ge__(self, other: Operand) -> bool:
        return self.data >= _data_of(other)

    __hash__ = object.__hash__

    def __float__(self) -> float:
        # float(v), and with it math.tanh(v) and friends, would silently drop the graph: a gradient
        # that quietly never arrives. Ask for the number by name instead.
        raise TypeError(
            f"float() of {self!r} would detach it from the graph: use .data (or .item()) for the "
            "number, and Value methods (v.tanh(), v.exp(), ...) rather than math functions"
        )

    def item(self) -> float:
        """The data as a float (PyTorch's spelling of `.data`)."""
        return self.data

    # --- gradients ----------------------------------------------------------------------------
    def backward(self, create_graph: bool = False) -> None:
        """Add d(self)/d(node) into `.grad` of every node of the graph below self.

        With `create_graph=True` the gradients are themselves `Value`s connected to the graph,
        so they can be differentiated again (see `chainrule.grad` for the friendlier way).
        """
        backprop(self, accumulate=True, create_graph=create_graph)

    def zero_grad(self) -> None:
        """Set `.grad = 0.0` on this node and every node below it."""
        for node in _walk(self):
            node.grad = 0.0


_new = object.__new__


class _Many:
    """The type of `_MANY`, the marker in a node's `_b` slot saying `_a` holds an n-ary op's inputs."""

    __slots__ = ()

    def __reduce__(self) -> str:
        return "_MANY"  # copy and pickle it as this module's global: `is _MANY` survives deepcopy

    def __repr__(self) -> str:
        return "_MANY"


_MANY = _Many()


def _data_of(x: Operand) -> float:
    return x.data if isinstance(x, Value) else x


def constant(x: Operand) -> Value:
    """`x` as a Value that takes no gradient (a Value given is returned as it is)."""
    if isinstance(x, Value):
        return x
    return Value(x, requires_grad=False)


def _node(op: Op, data: float, children: tuple[Value, ...], requires_grad: bool) -> Value:
    """A new graph node holding `data`, made by `op` from `children`."""
    # Built slot by slot rather than through __init__: this is the hottest path in chainrule.
    out = _new(Value)
    out.data = data
    out.grad = 0.0
    out.label = ""
    if _grad_enabled:
        out.requires_grad = requires_grad
        # Stored by the op's arity (not the number of inputs), so the backward sweep can rely on it.
        if op.arity == 2:
            out._a, out._b = children
        elif op.arity == 1:
            out._a = children[0]
            out._b = None
        else:
            out._a = children
            out._b = _MANY
        out._fn = op
    else:
        out.requires_grad = False
        out._a = out._b = None
        out._fn = None
    return out


def _leaf(x: Any) -> Value | None:
    """A plain number as a constant Value (no gradient); None if `x` is not a real number."""
    if type(x) is not float:
        if not _is_real(x):
            return None
        x = float(x)
    out = _new(Value)
    out.data = x
    out.grad = 0.0
    out.label = ""
    out.requires_grad = False
    out._a = out._b = None
    out._fn = None
    return out


# Operands that are certainly not numbers. Python's own answer for them would be confusing (for
# `Value(2) * "ab"`, str's sequence repetition says "can't multiply sequence by non-int of type
# 'Value'"), so they get our error. Anything else unknown gets NotImplemented: e.g. a numpy array
# combines with a Value element by element in its own reflected operator.
_NOT_NUMBERS = (str, bytes, bytearray, list, tuple, dict, set, frozenset, type(None))


def _not_a_number(op: Op, x: Any) -> Any:
    if isinstance(x, _NOT_NUMBERS):
        raise TypeError(
            f"{op.name}: a Value combines with real numbers and Values, not {type(x).__name__}: {x!r}"
        )
    return NotImplemented


def _apply1(op: Op, a: Value) -> Value:
    try:
        x = a.data
    except PlaceholderError:
        return _symbolic(op, (a,))
    if op.invalid is not None:
        op.check(FLOAT, x)
    return _node(op, op.forward(FLOAT, x), (a,), a.requires_grad)


def apply(op: Op, *children: Value) -> Value:
    """Run `op` forward on the data of `children` and record the result as a graph node."""
    return _apply(op, children)


def _apply(op: Op, children: tuple[Value, ...]) -> Value:
    try:
        xs = [c.data for c in children]
    except PlaceholderError:
        return _symbolic(op, children)
    if op.invalid is not None:
        op.check(FLOAT, *xs)
    return _node(op, op.forward(FLOAT, *xs), children, any(map(_requires_grad, children)))


_requires_grad = attrgetter("requires_grad")
_is_value = Value.__instancecheck__


def sum(values: Iterable[Operand]) -> Value:  # noqa: A001 - chainrule.sum, like numpy.sum
    """a + b + c + ... as one graph node, so backward makes one step instead of a long chain."""
    children = tuple(values)
    if not all(map(_is_value, children)):  # numbers among the inputs become constants
        children = tuple(v if isinstance(v, Value) else constant(v) for v in children)
    if not children:
        return Value(0.0, requires_grad=False)
    return _apply(_SUM, children)


# --- placeholders (define-then-run): nodes with no data yet ----------------------------------
class _NoData(PlaceholderError):
    """Reading the data of a traced node; the message is built lazily, when it is shown."""

    def __init__(self, node: Value) -> None:
        super().__init__(node)  # args hold the node, so the error pickles and re-raises like others
        self.node = node

    def __str__(self) -> str:
        node = self.node
        names = ", ".join(repr(p.label) for p in _walk(node) if isinstance(p, Symbolic) and p._fn is None)
        what = f"placeholder {node.label!r}" if node._fn is None else f"this Value (it depends on {names})"
        return (
            f"{what} has no data yet: a traced graph cannot be read or used in Python control flow "
            f"(if/while/comparisons). Compile it with chainrule.compile(output, inputs) and run the "
            f"Program with numbers."
        )


class Symbolic(Value):
    """A Value whose data is not known yet: a placeholder, or something computed from one."""

    __slots__ = ()

    @property  # type: ignore[override]
    def data(self) -> float:
        # Every op on a Symbolic reads .data and catches this error, so the message (which walks the
        # graph to name the placeholders) is only built if someone actually reads it.
        raise _NoData(self)

    @data.setter
    def data(self, value: float) -> None:
        raise PlaceholderError(
            f"placeholder {self.label!r} cannot be given data: pass the numbers to the compiled "
            f"Program instead (program(x) or program.value_and_grad(x))"
        )

    def __bool__(self) -> bool:
        return bool(self.data)  # raises the error above

    def __float__(self) -> float:
        return self.data  # raises the error above, naming the placeholder

    def __repr__(self) -> str:
        if self._fn is None:
            return f"placeholder({self.label!r})"
        return f"Symbolic({self._op}, label={self.label!r})"


def placeholder(label: str, requires_grad: bool = True) -> Value:
    """An input with no data yet: build a graph on it, then `compile` and run it for many inputs.

    With `requires_grad=False` (data such as labels) a compiled Program computes no gradient for it.
    """
    node = _new(Symbolic)
    node.grad = 0.0
    node.label = label
    node.requires_grad = requires_grad
    node._prev = ()
    node._fn = None
    return node


def _symbolic(op: Op, children: tuple[Value, ...]) -> Value:
    node = _new(Symbolic)
    node.grad = 0.0
    node.label = ""
    node.requires_grad = any(c.requires_grad for c in children)
    node._prev = tuple(children)
    node._fn = op
    return node


# --- graph traversal and backpropagation ------------------------------------------------------
_EXIT = object()  # a marker on the DFS stack: "all children of the node below me are done"


def topological_order(root: Value, only_requiring_grad: bool = False) -> list[Value]:
    """Every node below `root`, each after all of its inputs (iterative depth-first search)."""
    order: list[Value] = []
    # A node is marked when it is expanded, not when it is pushed: a node pushed early (a child of
    # the root) but also reachable deeper down (y = x + x*2) must be finished before every user.
    seen: set[Value] = set()
    stack: list[Any] = [root]
    push, pop, mark, emit = stack.append, stack.pop, seen.add, order.append
    all_nodes = not only_requiring_grad
    while stack:
        node = pop()
        if node is _EXIT:
            emit(pop())
            continue
        if node in seen:
            continue
        mark(node)
        a = node._a
        if a is None:  # a leaf is finished as soon as it is reached
            emit(node)
            continue
        push(node)
        push(_EXIT)
        b = node._b
        if b is _MANY:
            for child in a:
                if child not in seen and (all_nodes or child.requires_grad):
                    push(child)
            continue
        if a not in seen and (all_nodes or a.requires_grad):
            push(a)
        if b is not None and b not in seen and (all_nodes or b.requires_grad):
            push(b)
    return order


def _walk(root: Value) -> Iterator[Value]:
    """Every node below `root` once, in no particular order."""
    seen = {root}
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        a = node._a
        if a is None:
            continue
        b = node._b
        for child in a if b is _MANY else (a,) if b is None else (a, b):  # the slots, not `_prev`: faster
            if child not in seen:
                seen.add(child)
                stack.append(child)


def backprop(root: Value, accumulate: bool, create_graph: bool = False) -> list[Value]:
    """Reverse-mode sweep: leave d(root)/d(node) in `node._g` for every node that needs a gradient.

    Returns those nodes, each after its inputs (root last). With `accumulate`, also adds each
    gradient into `node.grad`. With `create_graph`, the rules run on `Value`s (the VALUE backend)
    so the gradients are graph nodes themselves; otherwise they run on floats.
    """
    if not root.requires_grad:
        raise ValueError(
            "backward: this Value does not require grad (it was made from constants, "
            "requires_grad=False, or inside chainrule.no_grad())"
        )
    order = topological_order(root, only_requiring_grad=True)
    if create_graph:
        for node in order:
            node._g = None
        root._g = Value(1.0, requires_grad=False)
        with _enable_grad():
            _sweep_values(order, accumulate)
    else:
        for node in order:
            node._g = 0.0
        root._g = 1.0
        _sweep_floats(order, accumulate)
    return order


def _sweep_floats(order: list[Value], accumulate: bool) -> None:
    # The hot loop of every training step. Every node in `order` is reachable from the root and
    # comes after all nodes that use it, so its `_g` is complete by the time the loop reaches it.
    m = FLOAT
    node = None
    try:
        for node in reversed(order):
            g = node._g
            if accumulate:
                node.grad += g
            op = node._fn
            if op is None:
                continue
            a = node._a
            b = node._b
            if b is None:  # one input
                if a.requires_grad:  # False if it was switched off after the graph was built
                    a._g += op.derivatives[0](m, g, node.data, a.data)
            elif b is not _MANY:  # two inputs
                out = node.data
                x = a.data
                y = b.data
                da, db = op.derivatives
                if a.requires_grad:
                    a._g += da(m, g, out, x, y)
                if b.requires_grad:
                    b._g += db(m, g, out, x, y)
            else:
                # An n-ary op has one rule for all inputs, and the rule is not told which input it is
                # for, so its value is the same for each: compute it once.
                d = op.derivatives[0](m, g, node.data, *[c.data for c in a])
                for child in a:
                    if child.requires_grad:
                        child._g += d
    except (ArithmeticError, ValueError) as exc:
        _explain_failed_rule(exc, node)


def _sweep_values(order: list[Value], accumulate: bool) -> None:
    # Gradients as Values: the rules run on the nodes themselves, so every multiplication they
    # make is recorded and the result can be differentiated again.
    m = VALUE
    node = None
    try:
        for node in reversed(order):
            g = node._g
            if g is None:
                continue
            if accumulate:  # keep the gradient graph free of a needless "0.0 + g" node
                node.grad = g if type(node.grad) is float and node.grad == 0.0 else node.grad + g
            op = node._fn
            if op is None:
                continue
            for i, child in enumerate(node._prev):
                if child.requires_grad:
                    d = op.derivative(i)(m, g, node, *node._prev)
                    child._g = d if child._g is None else child._g + d
    except (ArithmeticError, ValueError) as exc:
        _explain_failed_rule(exc, node)


def _explain_failed_rule(exc: Exception, node: Value | None) -> None:
    """Re-raise an arithmetic failure inside a derivative rule as a DomainError naming the op."""
    if isinstance(exc, DomainError) or node is None or node._fn is None:
        raise exc
    inputs = tuple(c.data for c in node._prev)
    raise DomainError(
        f"{node._fn.name}: the derivative is undefined at {inputs}: {exc}",
        op=node._fn.name,
        value=inputs,
    ) from exc


@contextmanager
def no_grad() -> Iterator[None]:
    """Inside this block, operations compute values but record no graph (as in PyTorch)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


@contextmanager
def _enable_grad() -> Iterator[None]:
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, True
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled() -> bool:
    """Whether operations currently record a graph (False inside `no_grad()`)."""
    return _grad_enabled
