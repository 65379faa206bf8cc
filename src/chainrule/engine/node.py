"""`Value`: a number that remembers how it was made, so that gradients can flow back through it.

A `Value` wraps a float. An operation on Values (`a * b`, `x.tanh()`) runs the forward rule of its
row in the derivative table (`chainrule.ops`) and records a new node: its data, its inputs (in the
slots of `layout.py`) and the row (`_operation`). `backward()` walks that graph back to the leaves,
applying the rows' derivative rules (`chain_rule.py`).

- A node made by an operation stores the row, never a closure. Closures that capture their own output
  make reference cycles, which only Python's cyclic garbage collector can free; without them a graph
  is freed the moment its last reference goes.
- A node built by hand, as micrograd and the seed notebooks teach (`Value(x.data**3, (x,), "cube")`
  and then `out._backward = closure`), works too: its operation is a `HandBuilt` record holding the
  closure, which `backward()` runs in the middle of the same sweep.
- A placeholder (`placeholder("x")`, for define-then-run; placeholder.py) is a `Value` with no data yet:
  an operation on it asks it for the node (`_traced`), which records the graph without running it.

Every node is made by `new_node` (or by the operators below, which inline it: they are the hottest code
in chainrule, and one call less per node is measurable; tests/test_chain_rule.py holds them to it).
"""

from __future__ import annotations

import numbers
import operator
import sys
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any, Union

from ..backends import FLOAT, spellings
from ..ops import OPS, TABLE, Op
from . import backprop, chain_rule, copying
from .layout import MANY, HandBuilt, Node, set_inputs, stored_inputs
from .mode import STATE, recording
from .walk import depends_on, nodes_below

Number = int | float
Operand = Union["Value", int, float]

_new = object.__new__
_CHILDREN_TYPES = (tuple, list, set, frozenset)


# --- numbers ------------------------------------------------------------------------------------------
def is_real(x: Any) -> bool:
    """Whether `x` is a real number: int, float, bool, or a numpy scalar of those kinds (not a Value)."""
    if isinstance(x, numbers.Real):
        return not isinstance(x, Node)
    # numpy.bool_ is not registered as numbers.Real; if numpy is not imported, x is not a numpy bool.
    np = sys.modules.get("numpy")
    return np is not None and isinstance(x, np.bool_)


def _short(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 40 else f"{text[:20]}...{text[-8:]} ({len(text)} characters)"


def to_float(x: Any, what: str) -> float:
    """`x` as a float if it is a real number (int, float, bool, numpy scalar); else a TypeError naming `what`.

    An int too large for a float is an OverflowError that shows the number shortened, not all its digits.
    """
    if type(x) is float:
        return x
    if is_real(x):
        try:
            return float(x)
        except OverflowError:
            raise OverflowError(
                f"{what}: {_short(x)} is too large for a float (at most about 1.8e308)"
            ) from None
    raise TypeError(f"{what} needs a real number, got {type(x).__name__}: {_short(x)}")


def as_float(x: Any) -> float | None:
    """A real number (int, bool, numpy scalar, ...) as a float; None if `x` is not one."""
    if type(x) is int and -(2**53) <= x <= 2**53:  # the common case, exactly representable
        return float(x)
    if not is_real(x):
        return None
    return to_float(x, "Value")


# Operands that are certainly not numbers. Python's own answer for them would be confusing (for
# `Value(2) * "ab"`, str's sequence repetition says "can't multiply sequence by non-int of type
# 'Value'"), so they get our error. Anything else unknown gets NotImplemented: e.g. a numpy array
# combines with a Value element by element in its own reflected operator.
_NOT_NUMBERS = (str, bytes, bytearray, list, tuple, dict, set, frozenset, type(None))


def not_a_number(op: Op, x: Any) -> Any:
    """An operand of `op` that is not a number: a TypeError naming both, or NotImplemented for Python."""
    if isinstance(x, _NOT_NUMBERS):
        raise TypeError(
            f"{op.name}: a Value combines with real numbers and Values, not {type(x).__name__}: {x!r}"
        )
    return NotImplemented


def _traced(op: Op, inputs: tuple[Any, ...]) -> Any:
    """`op` applied to inputs of which some have no data yet (placeholders): such an input makes the node.

    A node without data is a `Symbolic` (placeholder.py), which records the operation without running it.
    """
    for x in inputs:
        if not hasattr(x, "_data"):
            return x.traced(op, inputs)
    raise AssertionError("an input without data was expected")  # pragma: no cover


# --- the node constructor -----------------------------------------------------------------------------
def new_node(cls: type, data: Any, op: Op | None, inputs: tuple[Any, ...], requires_grad: bool) -> Any:
    """A new node of class `cls` holding `data`, made by `op` from `inputs` (recorded only in grad mode)."""
    out = _new(cls)
    if data is not None:
        out._data = data
    out._grad = 0.0
    if op is not None and (STATE.recording_everywhere or recording()):
        out.requires_grad = requires_grad
        out._operation = op
        # Stored by the op's arity (not the number of inputs), so the backward sweep can rely on it.
        set_inputs(out, inputs, many=op.arity is None or op.hand_built)
    else:
        out.requires_grad = False if op is not None else requires_grad
        out._a = out._b = out._operation = None
    return out


def leaf(x: Any) -> Value | None:
    """A plain number as a constant Value (no gradient); None if `x` is not a real number."""
    if type(x) is not float:
        x = as_float(x)
        if x is None:
            return None
    return new_node(Value, x, None, (), False)


def apply(op: Op, *children: Value) -> Value:
    """Run `op` forward on the data of `children` and record the result as a graph node."""
    try:
        xs = [c._data for c in children]
    except AttributeError:
        return _traced(op, children)
    if op.invalid is not None:
        op.check(FLOAT, *xs)
    data = op.forward(FLOAT, *xs)
    if type(data) is not float:  # a rule defined with defop may give an int or a numpy scalar
        data = to_float(data, op.name)
    out = new_node(Value, data, op, children, any(map(_requires_grad, children)))
    observer = STATE.observer
    if observer is not None:
        observer.created(out, op, tuple(xs))
    return out


# A row that declares its algebra is computed by Python's own operator, without calling its forward
# rule: the same number (tests/test_ops_table.py holds each declaration to the row's own forward
# rule), and one Python call less per node on the hottest path.
_DECLARED = {
    (True, None): operator.mul,
    (False, (1.0, 1.0)): operator.add,
    (False, (1.0, -1.0)): operator.sub,
}


def _operator(op: Op, reflected: bool) -> Callable[[Value, Any], Value]:
    """Value's method for the two-input op `op`: `__mul__`, or `__rmul__` when `reflected`."""
    # One function per operator, with `new_node` inlined, saves two calls per node on the hottest path
    # of the engine. The op's rules stay in the table; this only wires them to Python's operators.
    forward = op.forward
    declared = _DECLARED.get((op.bilinear, op.linear))  # None: the forward rule computes it
    invalid = op.invalid  # the domain test; `op.check` builds the error when it fails
    state = STATE

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
                return _traced(op, (a, b))
            requires_grad = a.requires_grad or b.requires_grad
        else:
            # A plain number operand is stored in the node as the float itself, not as a constant
            # Value: one object less per node. `_prev` turns it into a constant Value when asked.
            number = other if type(other) is float else as_float(other)
            if number is None:
                return not_a_number(op, other)
            try:
                mine = self._data
            except AttributeError:
                constant_leaf = leaf(number)
                return _traced(op, (constant_leaf, self) if reflected else (self, constant_leaf))
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
        out._data = declared(x, y) if declared is not None else forward(FLOAT, x, y)
        out._grad = 0.0
        if state.recording_everywhere or recording():
            out.requires_grad = requires_grad
            out._a = a
            out._b = b
            out._operation = op
        else:
            out.requires_grad = False
            out._a = out._b = out._operation = None
        if state.observer is not None:
            state.observer.created(out, op, (x, y))
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
    state = STATE

    def method(self: Value) -> Value:
        try:
            x = self._data
        except AttributeError:
            return _traced(op, (self,))
        if invalid is not None and invalid(FLOAT, x):
            op.check(FLOAT, x)
        out = _new(Value)
        out._data = forward(FLOAT, x)
        out._grad = 0.0
        if state.recording_everywhere or recording():
            out.requires_grad = self.requires_grad
            out._a = self
            out._b = None
            out._operation = op
        else:
            out.requires_grad = False
            out._a = out._b = out._operation = None
        if state.observer is not None:
            state.observer.created(out, op, (x,))
        return out

    method.__name__ = op.method
    method.__qualname__ = f"Value.{op.method}"
    method.__doc__ = op.doc + (f"; a {op.error.__name__} unless {op.domain_text}" if op.invalid else "")
    return method


def _check_children(children: Any, what: str = "_children") -> tuple[Value, ...]:
    """The children given to a hand-built node, as a tuple of Values, or a TypeError naming the problem."""
    if type(children) is tuple and not children:  # the default, and the common case: a leaf
        return children
    if not isinstance(children, _CHILDREN_TYPES):
        raise TypeError(
            f"Value: {what} must be a tuple, list or set of Values, got "
            f"{type(children).__name__}: {_short(children)}"
        )
    children = tuple(children)
    for i, child in enumerate(children):
        if not isinstance(child, Value):
            raise TypeError(
                f"Value: _children[{i}] must be a Value, got {type(child).__name__}: {_short(child)}"
            )
    return children


def _detached(kind: str) -> Callable[[Any], Any]:
    def convert(self: Value, *args: Any) -> Any:
        raise TypeError(
            f"{kind}() of {self!r} would detach it from the graph: use .data (or .item()) for the "
            "number, and Value methods (v.tanh(), v.exp(), ...) rather than math functions"
        )

    convert.__name__ = f"__{kind}__"
    return convert


class Value(Node):
    """A scalar that records the operations applied to it, so gradients can flow back.

    `Value(data, _children=(), _op="", label="", *, requires_grad=True, grad=0.0)`: micrograd's
    signature. Also `Value(2.0, "a")` (label second, as seed 000 writes it). Giving children makes a
    node built by hand, whose `_backward` you write yourself (see `HandBuilt`). Code may set
    attributes of its own on a node (`v._vis_color = ...`), as on micrograd's Value.
    """

    # `label` is not a slot: most nodes have none, and read the class's "" until one is given (it then
    # lives with any attributes of the user's own, in the node's attribute dict).
    __slots__ = ("_data", "__dict__")
    label: str = ""

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
        self._data = data if type(data) is float else to_float(data, "Value")
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
            raise TypeError(f"Value: label must be a str, got {type(label).__name__}: {_short(label)}")
        if type(_op) is not str:
            raise TypeError(f"Value: _op must be a str, got {type(_op).__name__}: {_short(_op)}")
        if type(requires_grad) is not bool:
            np = sys.modules.get("numpy")
            if np is None or not isinstance(requires_grad, np.bool_):
                raise TypeError(
                    f"Value: requires_grad must be True or False, got "
                    f"{type(requires_grad).__name__}: {_short(requires_grad)}"
                )
            requires_grad = bool(requires_grad)
        self._grad = grad if type(grad) is float else to_float(grad, "Value(grad=...)")
        if label:
            self.label = label
        self._a = self._b = self._operation = None
        children = _check_children(_children)
        if not children:
            if _op:  # micrograd allows an op on a node without children: a hand-built node of none
                self._a, self._b, self._operation = (), MANY, HandBuilt(_op)
            self.requires_grad = requires_grad
            return
        if STATE.recording_everywhere or recording():
            self._a, self._b, self._operation = children, MANY, HandBuilt(_op)
            self.requires_grad = requires_grad and any(c.requires_grad for c in children)
        else:
            self.requires_grad = False

    # `data` and `grad` are always numbers: assigning a numpy float32 (or an int) to `data` converts it,
    # so one stray assignment cannot turn later results into float32, and `a.grad = "6"` is refused at
    # once. Inside the engine the slots are read directly; the public faces read through C-level getters.
    def _set_data(self, value: Number) -> None:
        self._data = value if type(value) is float else to_float(value, "Value.data")

    def _set_grad(self, value: Any) -> None:
        # a float (a float subclass too: a hand-built closure's lent .grad) or, after
        # backward(create_graph=True), a Value; anything else must be a real number
        if type(value) is not float and not isinstance(value, float | Node):
            value = to_float(value, "Value.grad")
        self._grad = value

    data = property(attrgetter("_data"), _set_data, doc="The number this node holds (a float).")
    grad = property(attrgetter("_grad"), _set_grad, doc="d(output)/d(self), added up by backward().")

    @property
    def _prev(self) -> tuple[Value, ...]:
        """The inputs of the op that made this node, in operand order (() for a leaf), as in micrograd."""
        inputs = stored_inputs(self)
        if len(inputs) == 2 and self._b is not MANY and float in (type(inputs[0]), type(inputs[1])):
            # a number operand, stored as a float: make it a constant Value once, so that it keeps
            # its identity from now on
            inputs = self._a, self._b = _as_node(inputs[0]), _as_node(inputs[1])
        return inputs

    @_prev.setter
    def _prev(self, children: tuple[Value, ...]) -> None:
        set_inputs(self, _check_children(children, "_prev"))

    @property
    def _children(self) -> tuple[Value, ...]:
        """Seed 000's name for `_prev`: the inputs, in operand order."""
        return self._prev

    @property
    def _op(self) -> str:
        """The symbol of the op that made this node ('' for a leaf), as micrograd names it."""
        return self._operation.symbol if self._operation is not None else ""

    @property
    def _backward(self) -> Callable[[], None]:
        """micrograd's one step of backprop: push this node's `.grad` into its inputs' `.grad`.

        Call it node by node to do backpropagation by hand. On a node made by an operation it applies
        the op's derivative rules from the table; on a node built by hand it is the closure you gave.
        """
        op = self._operation
        if op is None:
            return chain_rule.nothing
        if op.hand_built:
            return op.backward if op.backward is not None else chain_rule.MissingBackward(self)
        return chain_rule.ManualStep(self)

    @_backward.setter
    def _backward(self, closure: Callable[[], None]) -> None:
        if not callable(closure):
            raise TypeError(f"_backward must be a function of no arguments, got {type(closure).__name__}")
        op = self._operation
        if op is not None and op.hand_built:
            op.backward = closure
            return
        # A leaf, or a node an operation made: from now on it is built by hand, and your closure
        # replaces the table's rule for it.
        set_inputs(self, self._prev, many=True)
        self._operation = HandBuilt(self._op, closure)

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

    # float(v), and with it math.tanh(v) and friends, would silently drop the graph: a gradient that
    # quietly never arrives. int() and round() would too. Ask for the number by name instead.
    __float__ = _detached("float")
    __int__ = _detached("int")
    __round__ = _detached("round")

    def item(self) -> float:
        """The data as a float (PyTorch's spelling of `.data`)."""
        return self.data

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        """numpy's functions written in Python (`np.sinc`) ask here: one that is a row runs the row.

        numpy's ufuncs (`np.tan(v)`) call the method of their name themselves; `np.sinc` would instead
        compute sin(pi x) / (pi x) with object arrays, which fails on a Value. Every other function
        gets what it got before this method existed: the Values as 0-d object arrays, for which numpy
        runs its own code.
        """
        if args == (self,) and not kwargs and func.__name__ in _ONE_INPUT_METHODS:
            return getattr(self, func.__name__)()
        np = sys.modules["numpy"]  # numpy is calling us, so it is imported
        as_arrays = [np.asarray(a, dtype=object) if isinstance(a, Value) else a for a in args]
        return func(*as_arrays, **kwargs)

    # --- copying: iterative, so that a long chain copies without recursion ---------------------
    def __copy__(self) -> Value:
        return copying.copy_node(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> Value:
        return copying.copy_graph(self, memo)

    def __reduce_ex__(self, protocol: Any) -> Any:
        return copying.graph_reduce(self)

    # --- gradients ----------------------------------------------------------------------------
    def backward(self, create_graph: bool = False) -> None:
        """Add d(self)/d(node) into `.grad` of every node of the graph below self.

        All or nothing: if a step raises, every `.grad` is left as it was. With `create_graph=True`
        the gradients are themselves `Value`s connected to the graph, so they can be differentiated
        again (see `chainrule.grad` for the friendlier way).
        """
        backprop.backward(self, create_graph=create_graph)

    def zero_grad(self) -> None:
        """Set `.grad = 0.0` on this node and every node below it."""
        for node in nodes_below(self):
            node._grad = 0.0


def attach_table_methods(cls: type, binary: Callable[..., Any], unary: Callable[..., Any]) -> None:
    """Give `cls` an operator or method for every row of the table (also used by `Tensor`).

    A one-input row's method has numpy's name (`arctan`, `deg2rad`), so that `np.arctan(v)`, which
    calls `v.arctan()`, works; math's spelling of the same function (`atan`, `radians`: the backends'
    `ALIASES`) is the same method under a second name.
    """
    for op in TABLE:
        if op.arity == 2:
            setattr(cls, f"__{op.name}__", binary(op, reflected=False))
            setattr(cls, f"__r{op.name}__", binary(op, reflected=True))
        elif op.arity == 1:
            method = unary(op)
            for name in spellings(op.method):
                setattr(cls, name, method)


attach_table_methods(Value, _operator, _unary)


def _data_of(x: Operand) -> float:
    return x.data if isinstance(x, Value) else x


def _as_node(x: Value | float) -> Value:
    """An operand as a Value: a number stored in a node's slot becomes a constant leaf."""
    return leaf(x) if type(x) is float else x


def constant(x: Operand) -> Value:
    """`x` as a Value that takes no gradient (a Value given is returned as it is)."""
    if isinstance(x, Value):
        return x
    return Value(x, requires_grad=False)


_SUM = OPS["sum"]
_ONE_INPUT_METHODS = frozenset(op.method for op in TABLE if op.arity == 1)
_requires_grad = attrgetter("requires_grad")
_is_value = Value.__instancecheck__


def sum(values: Iterable[Operand]) -> Value:  # noqa: A001 - chainrule.sum, like numpy.sum
    """a + b + c + ... as one graph node, so backward makes one step instead of a long chain."""
    children = tuple(values)
    if not all(map(_is_value, children)):  # numbers among the inputs become constants
        children = tuple(v if isinstance(v, Value) else constant(v) for v in children)
    if not children:
        return Value(0.0, requires_grad=False)
    return apply(_SUM, *children)


__all__ = ["Value", "apply", "attach_table_methods", "constant", "depends_on", "leaf", "sum"]
