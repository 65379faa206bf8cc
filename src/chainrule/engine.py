"""The eager scalar engine: `Value`, reverse-mode `backward()`, `no_grad()`.

A `Value` wraps a float and remembers how it was made: the operation (a row of the derivative
table in `chainrule.ops`) and its inputs. `backward()` walks that graph from the output back to the
leaves and applies each operation's derivative rules: the chain rule, one node at a time.

Design notes, for the curious:
- A node made by an operation stores the op and its inputs, never a closure. Closures that capture
  their own output make reference cycles, which only Python's cyclic garbage collector can free;
  without them a graph is freed the moment its last reference goes.
- A node built by hand, as micrograd and the seed notebooks teach (`Value(x.data**3, (x,), "cube")`
  and then `out._backward = closure`), works too: its op is a `HandBuilt` record holding the
  closure, and `backward()` runs the closure in the middle of the same sweep.
- The traversal is iterative, so a chain of a million nodes needs no recursion limit.
- `backward()` computes a fresh gradient for every node (in the `_g` slot) and only then adds it
  to `.grad`, so calling it twice doubles every gradient exactly.
- Threads: `no_grad()` is per thread; backward sweeps take one lock, because graphs built in
  different threads may share parameters (and so their `_g` and `.grad`).
"""

from __future__ import annotations

import numbers
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from operator import attrgetter
from typing import Any, ClassVar, Union

from .backends import FLOAT, VALUE
from .errors import DomainError, PlaceholderError
from .ops import OPS, TABLE, Op

Number = int | float
Operand = Union["Value", int, float]

# --- grad mode, per thread ------------------------------------------------------------------------
# `_grad_enabled` is the fast path every operation reads: True while no thread at all is inside
# `no_grad()`. Only while some thread is, an operation asks its own thread (`_local.enabled`).
_grad_enabled = True
_local = threading.local()
_mode_lock = threading.Lock()
_threads_without_grad = 0  # no_grad() blocks open right now, in all threads together

# One lock for every backward sweep: two graphs may share parameters, whose `_g` scratch slot and
# `.grad` would otherwise be written by two sweeps at once.
GRAD_LOCK = threading.RLock()

# The engine's one seam for instrumentation (chainrule.anomaly): None, or an object whose
# `created(node, op, inputs)` sees every node an operation makes, and whose `sweeps(floats, values)`
# returns the backward sweeps to use (checking versions, in the threads that asked for them).
# Reading one module global per node is all it costs when unused.
_observer: Any = None


def _recording() -> bool:
    """Whether operations in this thread record a graph (the slow path of the grad-mode check)."""
    return getattr(_local, "enabled", True)


def _is_real(x: Any) -> bool:
    """Whether `x` is a real number: int, float, bool, or a numpy scalar of those kinds."""
    if isinstance(x, numbers.Real):
        return not isinstance(x, Value)
    # numpy.bool_ is not registered as numbers.Real; if numpy is not imported, x is not a numpy bool.
    np = sys.modules.get("numpy")
    return np is not None and isinstance(x, np.bool_)


def _to_float(x: Any, what: str) -> float:
    """`x` as a float if it is a real number (int, float, bool, numpy scalar), else a TypeError."""
    if type(x) is float:
        return x
    if _is_real(x):
        try:
            return float(x)
        except OverflowError:
            raise OverflowError(f"{what}: {x} is too large for a float (at most about 1.8e308)") from None
    raise TypeError(f"{what} needs a real number, got {type(x).__name__}: {x!r}")


def _operator(op: Op, reflected: bool) -> Callable[[Value, Any], Value]:
    """Value's method for the two-input op `op`: `__mul__`, or `__rmul__` when `reflected`."""
    # One function per operator, with the node built right here rather than by a shared helper,
    # saves two calls per node on the hottest path of the engine. The op's rules stay in the table;
    # this only wires them to Python's operators.
    forward = op.forward
    invalid = op.invalid  # the domain test; `op.check` builds the error when it fails

    def method(self: Value, other: Any) -> Value:
        if isinstance(other, Value):
            if reflected:
                a = other
                b = self
            else:
                a = self
                b = other
            try:
                x = a._data
                y = b._data
            except AttributeError:  # a placeholder (or a node computed from one) has no data yet
                return _symbolic(op, (a, b))
            requires_grad = a.requires_grad or b.requires_grad
        else:
            # A plain number operand is stored in the node as the float itself, not as a constant
            # Value: one object less per node. `_prev` turns it into a constant Value when asked.
            number = other if type(other) is float else _as_float(other)
            if number is None:
                return _not_a_number(op, other)
            try:
                mine = self._data
            except AttributeError:
                leaf = _leaf(number)
                return _symbolic(op, (leaf, self) if reflected else (self, leaf))
            if reflected:
                a = x = number
                b = self
                y = mine
            else:
                a = self
                x = mine
                b = y = number
            requires_grad = self.requires_grad
        if invalid is not None and invalid(FLOAT, x, y):
            op.check(FLOAT, x, y)
        out = _new(Value)
        out._data = forward(FLOAT, x, y)
        out.grad = 0.0
        out.label = ""
        if _grad_enabled or _recording():
            out.requires_grad = requires_grad
            out._a = a
            out._b = b
            out._fn = op
        else:
            out.requires_grad = False
            out._a = out._b = out._fn = None
        if _observer is not None:
            _observer.created(out, op, (x, y))
        return out

    name = f"__{'r' if reflected else ''}{op.name}__"
    method.__name__ = name
    method.__qualname__ = f"Value.{name}"
    method.__doc__ = f"other {op.symbol} self" if reflected else f"self {op.symbol} other"
    return method


def _unary(op: Op) -> Callable[[Value], Value]:
    """Value's method for the one-input op `op` (`v.tanh()`, `-v`, `abs(v)`), made from its row."""
    forward = op.forward
    invalid = op.invalid

    def method(self: Value) -> Value:
        try:
            x = self._data
        except AttributeError:
            return _symbolic(op, (self,))
        if invalid is not None and invalid(FLOAT, x):
            op.check(FLOAT, x)
        out = _new(Value)
        out._data = forward(FLOAT, x)
        out.grad = 0.0
        out.label = ""
        if _grad_enabled or _recording():
            out.requires_grad = self.requires_grad
            out._a = self
            out._b = None
            out._fn = op
        else:
            out.requires_grad = False
            out._a = out._b = out._fn = None
        if _observer is not None:
            _observer.created(out, op, (x,))
        return out

    method.__name__ = op.method
    method.__qualname__ = f"Value.{op.method}"
    method.__doc__ = op.doc + (f"; a {op.error.__name__} unless {op.domain_text}" if op.invalid else "")
    return method


class HandBuilt:
    """The op of a node built by hand: its symbol, and the `_backward` closure its author wrote.

    `Value(x.data ** 3, (x,), "cube")` makes one; `out._backward = closure` fills it in. The closure
    follows micrograd: it reads `out.grad` and adds into the children's `.grad`.
    """

    __slots__ = ("symbol", "backward")
    hand_built: ClassVar[bool] = True
    arity: ClassVar[None] = None

    def __init__(self, symbol: str, backward: Callable[[], Any] | None = None) -> None:
        self.symbol = symbol
        self.backward = backward

    @property
    def name(self) -> str:
        """How messages name the op: its symbol, or 'a hand-built op' if it has none."""
        return self.symbol or "a hand-built op"

    def __repr__(self) -> str:
        return f"HandBuilt({self.symbol!r})"


_CHILDREN_TYPES = (tuple, list, set, frozenset)


class Value:
    """A scalar that records the operations applied to it, so gradients can flow back.

    `Value(data, _children=(), _op="", label="", *, requires_grad=True, grad=0.0)`: micrograd's
    signature. Also `Value(2.0, "a")` (label second, as seed 000 writes it). Giving children makes a
    node built by hand, whose `_backward` you write yourself (see `HandBuilt`).
    """

    # The inputs live in two slots rather than in a `_prev` tuple: one object per node instead of two
    # halves the work of Python's cyclic garbage collector, which visits every container object
    # while a graph is being built (see docs/performance.md). `_prev` is rebuilt on demand.
    #   leaf: _a = _b = None;  one input: _a = x, _b = None;  two: _a, _b;
    #   n-ary or hand-built: _a = tuple of inputs, _b = _MANY
    __slots__ = ("_data", "grad", "label", "requires_grad", "_a", "_b", "_fn", "_g")

    def __init__(
        self,
        data: Number,
        _children: Iterable[Value] | str = (),
        _op: str = "",
        label: str = "",
        *,
        requires_grad: bool = True,
        grad: Number = 0.0,
    ) -> None:
        self._data = data if type(data) is float else _to_float(data, "Value")
        if type(_children) is str:  # seed 000's Value(2.0, "a"): the label comes second
            if label:
                raise TypeError(f"Value: the label is given twice ({_children!r} and {label!r})")
            if _op != "":
                raise TypeError(
                    f"Value: after a label given second ({_children!r}), pass children and op as "
                    f"keywords (_children=..., _op=...), got {_op!r}"
                )
            label, _children = _children, ()
        if type(label) is not str:
            raise TypeError(f"Value: label must be a str, got {type(label).__name__}: {label!r}")
        if type(_op) is not str:
            raise TypeError(f"Value: _op must be a str, got {type(_op).__name__}: {_op!r}")
        if type(requires_grad) is not bool:
            np = sys.modules.get("numpy")
            if np is None or not isinstance(requires_grad, np.bool_):
                raise TypeError(
                    f"Value: requires_grad must be True or False, got "
                    f"{type(requires_grad).__name__}: {requires_grad!r}"
                )
            requires_grad = bool(requires_grad)
        self.grad: Any = grad if type(grad) is float else _to_float(grad, "Value(grad=...)")
        self.label = label
        self._a: Any = None
        self._b: Any = None
        self._fn: Op | HandBuilt | None = None
        children = _check_children(_children)
        if not children:
            if _op:  # micrograd allows an op on a node without children: a hand-built node of none
                self._a, self._b, self._fn = (), _MANY, HandBuilt(_op)
            self.requires_grad = requires_grad
            return
        if _grad_enabled or _recording():
            self._a, self._b, self._fn = children, _MANY, HandBuilt(_op)
            self.requires_grad = requires_grad and any(c.requires_grad for c in children)
        else:
            self.requires_grad = False

    # `data` is always a Python float: assigning a numpy float32 (or an int) converts it, so one
    # stray assignment cannot turn later results into float32. Inside the engine `_data` is read
    # directly; `data` is the public face, read through a C-level getter.
    def _set_data(self, value: Number) -> None:
        self._data = value if type(value) is float else _to_float(value, "Value.data")

    data = property(attrgetter("_data"), _set_data, doc="The number this node holds (a float).")

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
        if type(a) is float or type(b) is float:  # a number operand, stored as a float: make it a
            a, b = _as_node(a), _as_node(b)  # constant Value once, so that it keeps its identity
            self._a, self._b = a, b
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

    @property
    def _backward(self) -> Callable[[], None]:
        """micrograd's one step of backprop: push this node's `.grad` into its inputs' `.grad`.

        Call it node by node to do backpropagation by hand. On a node made by an operation it applies
        the op's derivative rules from the table; on a node built by hand it is the closure you gave.
        """
        fn = self._fn
        if fn is None:
            return _nothing
        if fn.hand_built:
            return fn.backward if fn.backward is not None else _MissingBackward(self)
        return _StepBack(self)

    @_backward.setter
    def _backward(self, closure: Callable[[], None]) -> None:
        if not callable(closure):
            raise TypeError(f"_backward must be a function of no arguments, got {type(closure).__name__}")
        fn = self._fn
        if fn is not None and fn.hand_built:
            fn.backward = closure
            return
        # A leaf, or a node an operation made: from now on it is built by hand, and your closure
        # replaces the table's rule for it.
        children = self._prev
        self._a, self._b, self._fn = children, _MANY, HandBuilt(self._op, closure)

    def __repr__(self) -> str:
        label = f", label={self.label!r}" if self.label else ""
        return f"Value(data={self.data}, grad={self.grad}{label})"

    # --- arithmetic: each operator and method is one row of the table ---------------------------
    # Two-input rows become an operator and its reflected form (__mul__, __rmul__); one-input rows
    # become the method their row names (`Op.method`: tanh, exp, ..., __neg__, __abs__). They are
    # attached right after the class, from `TABLE`.

    def __pos__(self) -> Value:
        return self

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

    # --- copying: iterative, so that a long chain copies without recursion ---------------------
    def __copy__(self) -> Value:
        # A shallow copy: a new node with the same data, label, op and the same inputs.
        twin = _new(type(self))
        for slot in ("_data", "grad", "label", "requires_grad", "_a", "_b", "_fn"):
            if hasattr(self, slot):
                setattr(twin, slot, getattr(self, slot))
        if twin._fn is not None and twin._fn.hand_built:
            twin._fn = HandBuilt(twin._fn.symbol, twin._fn.backward)
        return twin

    def __deepcopy__(self, memo: dict[int, Any]) -> Value:
        return _copy_graph(self, memo)

    def __reduce_ex__(self, protocol: Any) -> Any:
        return _graph_reduce(self)

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


def attach_table_methods(cls: type, binary: Callable[..., Any], unary: Callable[..., Any]) -> None:
    """Give `cls` an operator or method for every row of the table (also used by `Tensor`)."""
    for op in TABLE:
        if op.arity == 2:
            setattr(cls, f"__{op.name}__", binary(op, reflected=False))
            setattr(cls, f"__r{op.name}__", binary(op, reflected=True))
        elif op.arity == 1:
            setattr(cls, op.method, unary(op))


attach_table_methods(Value, _operator, _unary)

_new = object.__new__


def _nothing() -> None:
    """A leaf's `_backward`: there is nothing below it to push a gradient into."""


class _StepBack:
    """`node._backward` for a node made by an operation: one step of the chain rule, by hand."""

    __slots__ = ("node",)

    def __init__(self, node: Value) -> None:
        self.node = node

    def __call__(self) -> None:
        node = self.node
        op, children, g = node._fn, node._prev, node.grad
        graph = isinstance(g, Value)  # after backward(create_graph=True) gradients are Values
        m, out = (VALUE, node) if graph else (FLOAT, node.data)
        xs = children if graph else [c.data for c in children]
        try:
            for i, child in enumerate(children):
                if child.requires_grad:
                    child.grad = child.grad + op.derivative(i)(m, g, out, *xs)
        except (ArithmeticError, ValueError) as exc:
            _explain_failed_rule(exc, node)


class _MissingBackward:
    """`node._backward` of a node built by hand before its closure was given: says what to do."""

    __slots__ = ("node",)

    def __init__(self, node: Value) -> None:
        self.node = node

    def __call__(self) -> None:
        raise _no_backward_error(self.node)


def _no_backward_error(node: Value) -> TypeError:
    what = f"{node!r} (op {node._op!r})" if node._op else repr(node)
    return TypeError(
        f"backward: {what} was built by hand from {len(node._prev)} input(s) but has no _backward: "
        f"give it one (def _backward(): ...; node._backward = _backward, adding into each input's "
        f".grad as micrograd does), or define the operation with chainrule.defop"
    )


def _check_children(children: Any) -> tuple[Value, ...]:
    """The children given to a hand-built node, as a tuple of Values, or a TypeError naming the problem."""
    if type(children) is tuple and not children:  # the default, and the common case: a leaf
        return children
    if not isinstance(children, _CHILDREN_TYPES):
        raise TypeError(
            f"Value: _children must be a tuple, list or set of Values, got "
            f"{type(children).__name__}: {children!r}"
        )
    children = tuple(children)
    for i, child in enumerate(children):
        if not isinstance(child, Value):
            raise TypeError(f"Value: _children[{i}] must be a Value, got {type(child).__name__}: {child!r}")
    return children


class _Many:
    """The type of `_MANY`, the marker in a node's `_b` slot saying `_a` holds a tuple of inputs."""

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


def _as_float(x: Any) -> float | None:
    """A real number (int, bool, numpy scalar, ...) as a float; None if `x` is not one."""
    if type(x) is int and -(2**53) <= x <= 2**53:  # the common case, exactly representable
        return float(x)
    if not _is_real(x):
        return None
    return _to_float(x, "Value")


def _as_node(x: Value | float) -> Value:
    """An operand as a Value: a number stored in a node's slot becomes a constant leaf."""
    return _leaf(x) if type(x) is float else x


def _leaf(x: Any) -> Value | None:
    """A plain number as a constant Value (no gradient); None if `x` is not a real number."""
    if type(x) is not float:
        x = _as_float(x)
        if x is None:
            return None
    out = _new(Value)
    out._data = x
    out.grad = 0.0
    out.label = ""
    out.requires_grad = False
    out._a = out._b = out._fn = None
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


def apply(op: Op, *children: Value) -> Value:
    """Run `op` forward on the data of `children` and record the result as a graph node."""
    return _apply(op, children)


def _apply(op: Op, children: tuple[Value, ...]) -> Value:
    try:
        xs = [c._data for c in children]
    except AttributeError:
        return _symbolic(op, children)
    if op.invalid is not None:
        op.check(FLOAT, *xs)
    data = op.forward(FLOAT, *xs)
    if type(data) is not float:  # a rule defined with defop may give an int or a numpy scalar
        data = _to_float(data, op.name)
    out = _new(Value)
    out._data = data
    out.grad = 0.0
    out.label = ""
    if _grad_enabled or _recording():
        out.requires_grad = any(map(_requires_grad, children))
        out._fn = op
        # Stored by the op's arity (not the number of inputs), so the backward sweep can rely on it.
        if op.arity == 2:
            out._a, out._b = children
        elif op.arity == 1:
            out._a, out._b = children[0], None
        else:
            out._a, out._b = children, _MANY
    else:
        out.requires_grad = False
        out._a = out._b = out._fn = None
    if _observer is not None:
        _observer.created(out, op, tuple(xs))
    return out


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


_SUM = OPS["sum"]


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
            f"Program with numbers. (Building a node by hand from .data, micrograd's way, cannot be "
            f"traced either: define that operation with chainrule.defop.)"
        )


class Symbolic(Value):
    """A Value whose data is not known yet: a placeholder, or something computed from one."""

    __slots__ = ()

    @property  # type: ignore[override]
    def data(self) -> float:
        # Operations read the `_data` slot, which a Symbolic never has, so they never get here; this
        # error's message (which walks the graph to name the placeholders) is built only when shown.
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
    """Every node below `root`, each after all of its inputs (iterative depth-first search).

    With `only_requiring_grad`, just the nodes a gradient flows into (what `backward()` visits);
    otherwise every node, numbers stored in a node included (as constant Values).
    """
    if not only_requiring_grad:
        return _every_node_in_order(root)
    return _gradient_order(root, zero_scratch=False)


def _gradient_order(root: Value, zero_scratch: bool) -> list[Value]:
    """The nodes a gradient flows into, each after its inputs; with `zero_scratch`, also `_g = 0.0`.

    Backward zeroes each node's scratch gradient here, as the node is reached, rather than in a
    second loop over the order (only under `GRAD_LOCK`: the slot may be shared with other graphs).
    """
    order: list[Value] = []
    # A node is marked when it is expanded, not when it is pushed: a node pushed early (a child of
    # the root) but also reachable deeper down (y = x + x*2) must be finished before every user.
    seen: set[Value] = set()
    stack: list[Any] = [root]
    push, pop, mark, emit = stack.append, stack.pop, seen.add, order.append
    while stack:
        node = pop()
        if node is _EXIT:
            emit(pop())
            continue
        if node in seen:
            continue
        mark(node)
        if zero_scratch:
            node._g = 0.0
        a = node._a
        if a is None:  # a leaf is finished as soon as it is reached
            emit(node)
            continue
        push(node)
        push(_EXIT)
        b = node._b
        if b is _MANY:
            for child in a:
                if child not in seen and child.requires_grad:
                    push(child)
            continue
        # A number operand is a float here (it takes no gradient): skip it.
        if type(a) is not float and a not in seen and a.requires_grad:
            push(a)
        if b is not None and type(b) is not float and b not in seen and b.requires_grad:
            push(b)
    return order


def _every_node_in_order(root: Value) -> list[Value]:
    """`topological_order` over all nodes, through `_prev` (which gives stored numbers their Value)."""
    order: list[Value] = []
    seen: set[Value] = set()
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if node is _EXIT:
            order.append(stack.pop())
            continue
        if node in seen:
            continue
        seen.add(node)
        if node._a is None:
            order.append(node)
            continue
        stack.append(node)
        stack.append(_EXIT)
        stack.extend(child for child in node._prev if child not in seen)
    return order


def _walk(root: Value) -> Iterator[Value]:
    """Every node below `root` once, in no particular order (numbers stored in nodes skipped)."""
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
            if type(child) is not float and child not in seen:
                seen.add(child)
                stack.append(child)


def backprop(root: Value, accumulate: bool, create_graph: bool = False) -> list[Value]:
    """Reverse-mode sweep: leave d(root)/d(node) in `node._g` for every node that needs a gradient.

    Returns those nodes, each after its inputs (root last). With `accumulate`, also adds each
    gradient into `node.grad`. With `create_graph`, the rules run on `Value`s (the VALUE backend)
    so the gradients are graph nodes themselves; otherwise they run on floats.
    """
    if isinstance(root, Symbolic):
        root.data  # noqa: B018 - raises the error that names the placeholders
    if not root.requires_grad:
        raise ValueError(
            "backward: this Value does not require grad (it was made from constants, "
            "requires_grad=False, or inside chainrule.no_grad())"
        )
    sweep_floats, sweep_values = _sweep_floats, _sweep_values
    if _observer is not None:  # chainrule.anomaly: checking sweeps, in the threads that ask for them
        sweep_floats, sweep_values = _observer.sweeps(sweep_floats, sweep_values)
    with GRAD_LOCK:
        order = _gradient_order(root, zero_scratch=not create_graph)
        if create_graph:
            for node in order:
                node._g = None
            root._g = Value(1.0, requires_grad=False)
            with enable_grad():
                sweep_values(order, accumulate)
            if accumulate:
                # The gradients now live in .grad. A gradient Value left in `_g` would point back
                # into the graph it sits on: a reference cycle only the cyclic collector could free.
                for node in order:
                    node._g = None
        else:
            root._g = 1.0
            sweep_floats(order, accumulate)
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
                    a._g += op.derivatives[0](m, g, node._data, a._data)
            elif b is not _MANY:  # two inputs; a number among them is stored as a float
                # A row declared bilinear (mul) or linear (add, sub) needs no rule call: each input
                # gets g times the other input, or g times its coefficient. The table's tests hold
                # each declaration to the row's own rules, so this gives the rules' numbers exactly.
                if op.bilinear:
                    if type(b) is float:
                        if a.requires_grad:
                            a._g += g * b
                    elif type(a) is float:
                        if b.requires_grad:
                            b._g += g * a
                    else:
                        if a.requires_grad:
                            a._g += g * b._data
                        if b.requires_grad:
                            b._g += g * a._data
                    continue
                if op.linear is not None:
                    ca, cb = op.linear
                    if type(a) is not float and a.requires_grad:
                        a._g += g * ca
                    if type(b) is not float and b.requires_grad:
                        b._g += g * cb
                    continue
                out = node._data
                da, db = op.derivatives
                if type(b) is float:
                    if a.requires_grad:
                        a._g += da(m, g, out, a._data, b)
                elif type(a) is float:
                    if b.requires_grad:
                        b._g += db(m, g, out, a, b._data)
                else:
                    x = a._data
                    y = b._data
                    if a.requires_grad:
                        a._g += da(m, g, out, x, y)
                    if b.requires_grad:
                        b._g += db(m, g, out, x, y)
            elif op.hand_built:
                _hand_step(node, g)
            elif op.arity is None:
                # An n-ary op has one rule for all inputs, and the rule is not told which input it is
                # for, so its value is the same for each: compute it once. A row declared linear
                # (`sum`) gives each input g times its coefficient, without gathering the inputs.
                if op.linear is not None:
                    d = g * op.linear[0]
                else:
                    d = op.derivatives[0](m, g, node._data, *[c._data for c in a])
                for child in a:
                    if child.requires_grad:
                        child._g += d
            else:  # three inputs or more (an op made with defop): one rule per input
                out = node._data
                xs = [c._data for c in a]
                for rule, child in zip(op.derivatives, a, strict=True):
                    if child.requires_grad:
                        child._g += rule(m, g, out, *xs)
    except (ArithmeticError, ValueError) as exc:
        _explain_failed_rule(exc, node)


def _hand_step(node: Value, g: float) -> None:
    """Run a hand-built node's `_backward` for gradient `g`, adding what it gives into the inputs' `_g`."""
    children, contributions = hand_contributions(node, g)
    for child, d in zip(children, contributions, strict=True):
        if child.requires_grad:
            child._g += d


def hand_contributions(node: Value, g: float) -> tuple[tuple[Value, ...], list[float]]:
    """What a hand-built node's `_backward` adds to each of its (distinct) inputs for gradient `g`.

    The closure speaks micrograd: it reads `node.grad` and adds into its children's `.grad`. So for
    the length of the call, `node.grad` holds `g` and each child's `.grad` starts from 0; what the
    closure adds is the child's contribution. Every `.grad` is then put back as it was, so the sweep
    keeps its own semantics (twice doubles, each path counted once) whatever the closure does.
    """
    closure = node._fn.backward
    children = node._a
    if len(children) > 1:  # a child given twice is one child, with one .grad
        children = tuple(dict.fromkeys(children))
    if closure is None:
        if not children:
            return children, []
        raise _no_backward_error(node)
    with GRAD_LOCK:  # the .grad slots are borrowed for the call
        saved = [child.grad for child in children]
        own = node.grad
        for child in children:
            child.grad = 0.0
        node.grad = g
        try:
            closure()
            added = [child.grad for child in children]
        finally:
            node.grad = own
            for child, grad in zip(children, saved, strict=True):
                child.grad = grad
    name = f"the _backward of {node._fn.name}"
    return children, [d if type(d) is float else _to_float(d, name) for d in added]


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
            if op.hand_built:
                raise _not_twice_error(node)
            for i, child in enumerate(node._prev):
                if child.requires_grad:
                    d = op.derivative(i)(m, g, node, *node._prev)
                    child._g = d if child._g is None else child._g + d
    except (ArithmeticError, ValueError) as exc:
        _explain_failed_rule(exc, node)


def _not_twice_error(node: Value) -> TypeError:
    return TypeError(
        f"backward(create_graph=True): {node!r} was built by hand (op {node._fn.name!r}); its _backward "
        f"works on numbers, so its gradient cannot be differentiated again. Define the operation with "
        f"chainrule.defop, whose rules also run on Values"
    )


def _explain_failed_rule(exc: Exception, node: Value | None) -> None:
    """Re-raise an arithmetic failure inside a derivative rule as a DomainError naming the op."""
    if isinstance(exc, DomainError) or node is None or node._fn is None or node._fn.hand_built:
        raise exc
    inputs = tuple(c.data for c in node._prev)
    raise DomainError(
        f"{node._fn.name}: the derivative is undefined at {inputs}: {exc}",
        op=node._fn.name,
        value=inputs,
    ) from exc


@contextmanager
def no_grad() -> Iterator[None]:
    """Inside this block, operations in this thread compute values but record no graph (as in PyTorch)."""
    global _grad_enabled, _threads_without_grad
    previous = _recording()
    _local.enabled = False
    with _mode_lock:
        _threads_without_grad += 1
        _grad_enabled = False
    try:
        yield
    finally:
        _local.enabled = previous
        with _mode_lock:
            _threads_without_grad -= 1
            _grad_enabled = _threads_without_grad == 0


@contextmanager
def enable_grad() -> Iterator[None]:
    """Inside this block, operations in this thread record a graph again (also inside `no_grad()`)."""
    previous = _recording()
    _local.enabled = True
    try:
        yield
    finally:
        _local.enabled = previous


def is_grad_enabled() -> bool:
    """Whether operations in this thread record a graph (False inside `no_grad()`)."""
    return _recording()


# --- copying and pickling a graph without recursion --------------------------------------------
# Python's own deepcopy and pickle follow references recursively: a chain of a few hundred nodes
# would exhaust the recursion limit. A graph is copied node by node in topological order instead.


def _copy_graph(root: Value, memo: dict[int, Any]) -> Value:
    """A deep copy of the graph below `root` (nodes already in `memo` are reused, as deepcopy does)."""
    import copy

    for node in topological_order(root):
        if id(node) in memo:
            continue
        twin = _new(type(node))
        if not isinstance(node, Symbolic):
            twin._data = node._data
        twin.grad = node.grad if type(node.grad) is float else copy.deepcopy(node.grad, memo)
        twin.label = node.label
        twin.requires_grad = node.requires_grad
        fn = node._fn
        twin._fn = HandBuilt(fn.symbol, fn.backward) if fn is not None and fn.hand_built else fn
        twin._a, twin._b = _twin_inputs(node, memo)
        memo[id(node)] = twin
    return memo[id(root)]


def _twin_inputs(node: Value, memo: dict[int, Any]) -> tuple[Any, Any]:
    """The copy's `_a`, `_b` slots: the same layout, pointing at the inputs' copies."""
    a, b = node._a, node._b
    if a is None:
        return None, None
    if b is _MANY:
        return tuple(memo[id(c)] for c in a), _MANY
    return memo[id(a)], (None if b is None else memo[id(b)])


def _graph_reduce(root: Value) -> tuple[Any, ...]:
    """How a Value pickles: its whole graph as one flat list, rebuilt by `_rebuild_graph`.

    Leaves other than the root go into the list as themselves, so pickle stores each once and
    graphs pickled together (a model's outputs, a Program's inputs and output) share their
    parameters and placeholders again when loaded; the nodes between are rebuilt per root.
    """
    order = topological_order(root)
    index = {node: i for i, node in enumerate(order)}
    rows: list[Any] = []
    for node in order:
        if node._a is None and node is not root:
            rows.append(node)  # a leaf: pickled (once) by its own reduce
            continue
        symbolic = isinstance(node, Symbolic)
        fn = node._fn
        if fn is not None and fn.hand_built:
            fn = ("hand-built", fn.symbol, fn.backward)
        rows.append(
            (
                None if symbolic else node._data,
                node.grad,
                node.label,
                node.requires_grad,
                fn,
                None if node._a is None else tuple(index[c] for c in node._prev),
                node._b is _MANY,
                symbolic,
            )
        )
    return (_rebuild_graph, (rows,))


def _rebuild_graph(rows: list[Any]) -> Value:
    """The graph `_graph_reduce` flattened, rebuilt; returns its root (the last row)."""
    nodes: list[Value] = []
    for row in rows:
        if isinstance(row, Value):
            nodes.append(row)
            continue
        data, grad, label, requires_grad, fn, inputs, many, symbolic = row
        node = _new(Symbolic if symbolic else Value)
        if not symbolic:
            node._data = data
        node.grad, node.label, node.requires_grad = grad, label, requires_grad
        if isinstance(fn, tuple):  # a hand-built op: ("hand-built", symbol, closure)
            fn = HandBuilt(fn[1], fn[2])
        node._fn = fn
        node._a = node._b = None
        if inputs is not None:
            children = tuple(nodes[i] for i in inputs)
            if many:
                node._a, node._b = children, _MANY
            else:
                node._prev = children
        nodes.append(node)
    return nodes[-1]
