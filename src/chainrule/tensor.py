"""`Tensor`: `Value` for arrays. A numpy array that records the operations applied to it.

Every elementwise operation is a row of the same derivative table `Value` uses (`chainrule.ops.TABLE`),
run on the numpy backend: `t.tanh()` calls the tanh row's forward rule on the whole array, and
`backward()` calls its derivative rule on whole arrays. No derivative is written in this module. The
operations only arrays have (`@`, `sum`, `mean`, `reshape`, `transpose`) are rows of a second tuple,
`chainrule.ops.TENSOR_OPS`, written the same way.

What arrays add to the scalar engine is broadcasting: `x (3, 1) + y (1, 4)` is a (3, 4) array in which
each entry of x is used four times. Its gradient is therefore the sum over those four uses, so after a
rule has run, `_unbroadcast` sums the gradient back down to the input's shape.

A node is a `chainrule.engine.Node` like `Value` (the same slots for its inputs and its operation), so
the graph walks and the chain rule are the engine's own: `backward()` is the reference sweep
(`chainrule.engine.sweep`) with the reference step for a table row (`rule_contributions`) followed by
the broadcasting rule. A node also keeps `_kw`, the parameters of its op (an axis, a shape), which its
forward and derivative rules both take.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from .backends import FLOAT, numpy_backend
from .engine import (
    GRAD_LOCK,
    Node,
    attach_table_methods,
    flatten_graph,
    is_grad_enabled,
    rebuild_nodes,
    rule_contributions,
    sweep,
    topological_order,
)
from .errors import DomainError, rule_failure, with_context
from .ops import TENSOR_OPS_BY_NAME, Op

_M = numpy_backend()
_NO_KW: dict[str, Any] = {}  # the parameters of an op that has none, shared (never modified)
_MATMUL, _SUM, _MEAN = (
    TENSOR_OPS_BY_NAME["matmul"],
    TENSOR_OPS_BY_NAME["axis_sum"],
    TENSOR_OPS_BY_NAME["mean"],
)
_RESHAPE, _TRANSPOSE = TENSOR_OPS_BY_NAME["reshape"], TENSOR_OPS_BY_NAME["transpose"]

ArrayLike = Any  # a number, a (nested) list of numbers, a numpy array or a Tensor


def _as_array(x: Any, what: str, copy: bool = False) -> np.ndarray:
    """`x` as a float64 array, or a TypeError naming `what` and the type when it holds no real numbers."""
    if isinstance(x, Tensor):
        x = x.data
    try:
        array = np.asarray(x)
    except ValueError as exc:  # numpy's complaint about ragged nested lists
        raise ValueError(f"{what} needs a rectangular array of numbers, got {_show(x)}: {exc}") from exc
    if array.dtype.kind not in "biuf":  # bool, int, unsigned, float: anything else is not a real number
        raise TypeError(f"{what} needs real numbers, got {type(x).__name__}: {_show(x)}")
    return np.array(array, dtype=np.float64) if copy else np.asarray(array, dtype=np.float64)


def _show(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def _unbroadcast(g: Any, shape: tuple[int, ...]) -> np.ndarray:
    """`g` summed down to `shape`: an entry that broadcasting used n times gets the sum of n gradients."""
    g = np.asarray(g)
    if g.shape == shape:
        return g
    if g.ndim < len(shape):  # a rule that gave fewer axes than its input (a constant): spread it out
        return np.broadcast_to(g, shape)
    g = g.sum(axis=tuple(range(g.ndim - len(shape))))  # axes that broadcasting put in front
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)  # length-1 axes
    return g.sum(axis=stretched, keepdims=True) if stretched else g


# --- building nodes -------------------------------------------------------------------------------
def _operand(x: Any, what: str) -> Tensor:
    """`x` as a Tensor: a Tensor as it is, a number or array as a constant (no gradient).

    `what` names the operation for the error message (an op's name, or a comparison's: "eq").
    """
    if isinstance(x, Tensor):
        return x
    try:
        data = _as_array(x, what)
    except TypeError:
        raise TypeError(
            f"{what}: a Tensor combines with numbers, arrays and Tensors, not {type(x).__name__}: {_show(x)}"
        ) from None
    return _constant(data)


def _constant(data: np.ndarray) -> Tensor:
    """A leaf holding `data` as it is (no copy), taking no gradient: a number or array in an expression."""
    out = Tensor.__new__(Tensor)
    out.data = data
    out.label = ""
    out.requires_grad = False
    out._grad = None
    out._a = out._b = out._operation = out._g = None
    out._kw = _NO_KW
    return out


def _apply(op: Op, inputs: tuple[Tensor, ...], kw: dict[str, Any] = _NO_KW) -> Tensor:
    """Run `op` forward on the inputs' arrays and record the result as a graph node."""
    xs = [t.data for t in inputs]
    if op.invalid is not None:
        _check(op, xs)
    with np.errstate(all="ignore"):  # overflow gives inf, as for Value
        data = np.asarray(op.forward(_M, *xs, **kw), dtype=np.float64)
    out = Tensor.__new__(Tensor)
    out.data = data
    out.label = ""
    out._grad = None
    out._g = None
    if is_grad_enabled():
        out.requires_grad = any(t.requires_grad for t in inputs)
        out._a = inputs[0]
        out._b = inputs[1] if len(inputs) == 2 else None
        out._operation = op
        out._kw = kw
    else:  # no_grad(): a value, not a node
        out.requires_grad = False
        out._a = out._b = out._operation = None
        out._kw = _NO_KW
    return out


def apply(op: Op, *args: Any) -> Tensor:
    """Apply a row of the table with one or two inputs to Tensors (numbers and arrays are constants)."""
    if op.arity is None or op.arity > 2:
        raise TypeError(
            f"{op.name}: a Tensor node takes one or two inputs; this op takes {op.arity or 'any number'}"
        )
    inputs = tuple(_operand(x, op.name) for x in args)
    if len(inputs) == 2:
        _broadcastable(op, *inputs)
    return _apply(op, inputs)


def _broadcastable(op: Op, a: Tensor, b: Tensor) -> None:
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op.name}: shapes {a.shape} and {b.shape} cannot be broadcast together") from None


def _check(op: Op, xs: list[np.ndarray]) -> None:
    """The op's domain check; for a Tensor with several axes, the message also gives the entry's position."""
    # The check names an offending entry by its place in an array of the inputs' common shape (an
    # invalid-mask may have the shape of one input only: `b == 0`), so hand it the broadcast inputs
    # (views, not copies).
    xs = np.broadcast_arrays(*xs) if len(xs) > 1 else xs
    try:
        op.check(_M, *xs)
    except (DomainError, ArithmeticError) as exc:
        # The table's message counts entries in one flat run ("at batch index 4"); in a (2, 3) Tensor
        # that is entry (1, 1), which is what a reader looks for.
        shape = xs[0].shape
        if len(shape) >= 2 and exc.args:
            bad = op.invalid(_M, *xs)
            where = tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(bad)[0]), shape))
            exc.args = (f"{exc.args[0]}, entry {where} of shape {shape}", *exc.args[1:])
        raise


def _binary(op: Op, reflected: bool) -> Callable[[Tensor, Any], Tensor]:
    """Tensor's method for the two-input table op `op`: `__mul__`, or `__rmul__` when `reflected`."""

    def method(self: Tensor, other: Any) -> Tensor:
        other = _operand(other, op.name)
        a, b = (other, self) if reflected else (self, other)
        _broadcastable(op, a, b)
        return _apply(op, (a, b))

    name = f"__{'r' if reflected else ''}{op.name}__"
    method.__name__ = name
    method.__qualname__ = f"Tensor.{name}"
    method.__doc__ = f"other {op.symbol} self, entry by entry" if reflected else f"self {op.symbol} other"
    return method


def _unary(op: Op) -> Callable[[Tensor], Tensor]:
    """Tensor's method for the one-input table op `op` (`t.tanh()`, `-t`, `abs(t)`)."""

    def method(self: Tensor) -> Tensor:
        return _apply(op, (self,))

    method.__name__ = op.method
    method.__qualname__ = f"Tensor.{op.method}"
    method.__doc__ = f"{op.doc}, entry by entry" + (
        f"; a {op.error.__name__} naming the first entry outside {op.domain_text}" if op.invalid else ""
    )
    return method


class Tensor(Node):
    """An array of float64 numbers that records the operations applied to it, so gradients can flow back."""

    # Node's slots (chainrule/engine/layout.py): leaf: _a = _b = None; one input: _a; two inputs: _a, _b.
    __slots__ = ("data", "label", "_kw")

    # numpy leaves `array + tensor` to Tensor.__radd__ (instead of trying to add entry by entry).
    __array_ufunc__ = None

    def __init__(self, data: ArrayLike, label: str = "", requires_grad: bool = True) -> None:
        self.data: np.ndarray = _as_array(data, "Tensor", copy=True)
        self.label = label
        self.requires_grad = requires_grad
        self._grad: np.ndarray | None = None
        self._a: Any = None
        self._b: Any = None
        self._operation: Op | None = None
        self._kw = _NO_KW
        self._g: Any = None

    # --- what it holds ------------------------------------------------------------------------
    @property
    def grad(self) -> np.ndarray:
        """d(output)/d(self) from the last `backward()` calls, an array of self's shape (zeros at first)."""
        if self._grad is None:  # made on first use: most intermediate nodes are never asked
            self._grad = np.zeros_like(self.data)
        return self._grad

    @grad.setter
    def grad(self, value: ArrayLike | None) -> None:
        if value is None:  # `t.grad = None`: zeros again when next needed, as zero_grad() does
            self._grad = None
            return
        grad = _as_array(value, "Tensor.grad", copy=True)  # a copy: backward() adds into it in place
        if grad.shape != self.shape:
            raise ValueError(
                f"Tensor.grad: shape {grad.shape} does not match the Tensor's shape {self.shape}"
            )
        self._grad = grad

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the data."""
        return self.data.shape

    @property
    def ndim(self) -> int:
        """The number of axes of the data."""
        return self.data.ndim

    @property
    def _prev(self) -> tuple[Tensor, ...]:
        """The inputs of the op that made this node, in operand order (() for a leaf), as in micrograd."""
        return () if self._a is None else (self._a,) if self._b is None else (self._a, self._b)

    @property
    def _op(self) -> str:
        """The symbol of the op that made this node ('' for a leaf), as micrograd names it."""
        return self._operation.symbol if self._operation is not None else ""

    def item(self) -> float:
        """The single number in a one-entry Tensor (a loss), as a float."""
        if self.data.size != 1:
            raise ValueError(f"item: a Tensor of shape {self.shape} holds {self.data.size} numbers, not one")
        return float(self.data.reshape(()))

    def detach(self) -> Tensor:
        """The same numbers as a new leaf that takes no gradient."""
        return Tensor(self.data, label=self.label, requires_grad=False)

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="Tensor(")
        label = f", label={self.label!r}" if self.label else ""
        flag = "" if self.requires_grad else ", requires_grad=False"
        return f"Tensor({body}{label}{flag})"

    # --- elementwise arithmetic: each operator is a row of the scalar table --------------------
    # Every row of the derivative table becomes an operator or method here, as it does on Value:
    # they are attached right after the class (`attach_table_methods`).

    # --- comparisons: entry by entry, as numpy and torch do; a comparison takes no gradient ------
    # (the node itself is still hashed by identity, so Tensors go into sets and dicts as graph nodes)
    __hash__ = object.__hash__

    def _compare(self, other: Any, how: Callable[[Any, Any], Any], name: str) -> np.ndarray:
        theirs = other.data if isinstance(other, Tensor) else _operand(other, name).data
        return np.asarray(how(self.data, theirs))

    def __eq__(self, other: Any) -> np.ndarray:  # type: ignore[override]
        """Entry by entry `self == other`: a numpy bool array (no gradient flows through it)."""
        return self._compare(other, np.equal, "eq")

    def __ne__(self, other: Any) -> np.ndarray:  # type: ignore[override]
        """Entry by entry `self != other`: a numpy bool array."""
        return self._compare(other, np.not_equal, "ne")

    def __lt__(self, other: Any) -> np.ndarray:
        """Entry by entry `self < other`: a numpy bool array."""
        return self._compare(other, np.less, "lt")

    def __le__(self, other: Any) -> np.ndarray:
        """Entry by entry `self <= other`: a numpy bool array."""
        return self._compare(other, np.less_equal, "le")

    def __gt__(self, other: Any) -> np.ndarray:
        """Entry by entry `self > other`: a numpy bool array."""
        return self._compare(other, np.greater, "gt")

    def __ge__(self, other: Any) -> np.ndarray:
        """Entry by entry `self >= other`: a numpy bool array."""
        return self._compare(other, np.greater_equal, "ge")

    def __pos__(self) -> Tensor:
        return self

    # --- whole-array operations (chainrule.ops.TENSOR_OPS) -------------------------------------
    def __matmul__(self, other: ArrayLike) -> Tensor:
        return self.matmul(other)

    def __rmatmul__(self, other: ArrayLike) -> Tensor:
        return _operand(other, _MATMUL.name).matmul(self)

    def matmul(self, other: ArrayLike) -> Tensor:
        """self @ other for 1-D and 2-D Tensors: a matrix product, matrix times vector, or a dot product."""
        other = _operand(other, _MATMUL.name)
        a, b = self.shape, other.shape
        if not (1 <= len(a) <= 2 and 1 <= len(b) <= 2):
            raise ValueError(f"matmul: works on 1-D and 2-D Tensors, got shapes {a} and {b}")
        if a[-1] != b[0]:
            raise ValueError(
                f"matmul: shapes {a} and {b} do not line up: the last axis of the left one ({a[-1]}) "
                f"must match the first axis of the right one ({b[0]})"
            )
        return _apply(_MATMUL, (self, other))

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        """The sum of the entries: all of them, or along `axis` (an int or a tuple of ints)."""
        return _apply(_SUM, (self,), {"axis": _axes(self, axis, "sum"), "keepdims": bool(keepdims)})

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        """The mean of the entries: all of them, or along `axis` (an int or a tuple of ints)."""
        return _apply(_MEAN, (self,), {"axis": _axes(self, axis, "mean"), "keepdims": bool(keepdims)})

    def reshape(self, *shape: int | tuple[int, ...]) -> Tensor:
        """The same entries in a new shape (`t.reshape(2, 3)` or `t.reshape((2, 3))`; one -1 is inferred)."""
        new = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], tuple | list) else shape
        if not all(isinstance(n, int | np.integer) for n in new):
            raise TypeError(f"reshape: a shape is made of ints, got {new!r}")
        try:
            return _apply(_RESHAPE, (self,), {"shape": tuple(int(n) for n in new)})
        except ValueError as exc:  # numpy's own test of the shape, in the forward rule
            raise ValueError(f"reshape: cannot give a Tensor of shape {self.shape} the shape {new}") from exc

    def transpose(self, *axes: int) -> Tensor:
        """The axes permuted, as numpy's `transpose`: reversed by default (for a matrix, its transpose)."""
        if len(axes) == 1 and isinstance(axes[0], tuple | list):
            axes = tuple(axes[0])
        if not axes:
            return _apply(_TRANSPOSE, (self,), {"axes": None})
        perm = _axes(self, axes, "transpose")
        if len(perm) != self.ndim:
            raise ValueError(
                f"transpose: axes {axes} are not a permutation of the {self.ndim} axes of shape {self.shape}"
            )
        return _apply(_TRANSPOSE, (self,), {"axes": perm})

    @property
    def T(self) -> Tensor:  # noqa: N802 - numpy's and PyTorch's name
        """The transpose: the axes reversed."""
        return self.transpose()

    # --- copying and pickling: node by node, so that a long chain needs no recursion -----------
    def __copy__(self) -> Tensor:
        """A new node with the same data, label, operation and inputs (the arrays are shared)."""
        twin = _new_node(self)
        twin.data, twin._grad, twin._kw = self.data, self._grad, self._kw
        twin._a, twin._b = self._a, self._b
        return twin

    def __deepcopy__(self, memo: dict[int, Any]) -> Tensor:
        """A copy of the whole graph below self, with its own arrays (nodes in `memo` are reused)."""
        return _copy_graph(self, memo)

    def __reduce_ex__(self, protocol: Any) -> Any:
        return _graph_reduce(self)

    # --- gradients ----------------------------------------------------------------------------
    def backward(self, grad: ArrayLike | None = None) -> None:
        """Add d(self)/d(node) into `.grad` of every node of the graph below self.

        For a Tensor with one entry (a loss) the sweep starts from 1. Otherwise pass `grad`, an array
        of self's shape: the gradient of some final number with respect to self (as PyTorch asks).
        Calling it twice adds the gradients twice, as for `Value`.
        """
        if not self.requires_grad:
            raise ValueError(
                "backward: this Tensor does not require grad (it was made from constants, "
                "requires_grad=False, or inside chainrule.no_grad())"
            )
        if grad is None:
            if self.data.size != 1:
                raise ValueError(
                    f"backward: a Tensor of shape {self.shape} has no single value to differentiate: "
                    f"reduce it first (.sum(), .mean()) or pass grad=, an array of shape {self.shape}"
                )
            seed = np.ones_like(self.data)
        else:
            seed = _as_array(grad, "backward: grad")
            if seed.shape != self.shape:
                raise ValueError(
                    f"backward: grad has shape {seed.shape} but the Tensor has shape {self.shape}"
                )
        with GRAD_LOCK, np.errstate(all="ignore"):  # graphs in other threads may share parameters
            # IEEE arithmetic as the float engine does it: inf, not warnings
            grads = sweep(self, seed, topological_order(self, only_requiring_grad=True), step=_step)
            # every gradient is known: only now does any .grad change (a failing rule changes none)
            for node, g in grads.items():
                grad = node.grad  # made as zeros on first use
                grad += g

    def zero_grad(self) -> None:
        """Set `.grad` to zeros on this node and every node below it."""
        for node in topological_order(self):
            node._grad = None  # made again, as zeros, when next asked for


attach_table_methods(Tensor, _binary, _unary)


def _step(node: Tensor, g: np.ndarray, graph: bool = False) -> list[tuple[int, Tensor, np.ndarray]]:
    """The reference step for a Tensor node: its row's rules on arrays, summed down to each input's shape.

    A gradient array is never changed in place once made (a rule such as add's returns g itself,
    shared between nodes); only `.grad`, our own, is added into.
    """
    op = node._operation
    if op is None:
        return []
    inputs = node._prev
    wanted = [t.requires_grad for t in inputs]  # False if switched off after the graph was built
    xs = [t.data for t in inputs]
    found = rule_contributions(op, g, node.data, xs, wanted, _M, node._kw)
    if node._kw is _NO_KW:  # an elementwise row: refuse, as eager does, where its derivative is undefined
        for i, d in enumerate(found):
            if d is not None:
                _refuse_undefined(op, i, g, node.data, xs, d)
    return [
        (i, t, _unbroadcast(d, t.shape))
        for i, (t, d, w) in enumerate(zip(inputs, found, wanted, strict=True))
        if w
    ]


def _refuse_undefined(op: Op, i: int, g: Any, out: Any, xs: list[Any], d: Any) -> None:
    """Raise eager's DomainError where row `op`'s derivative for input `i` gave NaN or inf on arrays.

    numpy says inf or NaN where Python's floats raise (sqrt's slope at 0 is 1 / 0). At each such entry
    (whose operands are finite: a NaN given as data propagates) the row's float rule is run, as
    eager backward() runs it; if it raises, so does this, naming the op, the values and the index.
    """
    bad = ~np.isfinite(d)
    if not bad.any():
        return
    shape = np.broadcast_shapes(np.shape(d), np.shape(g), np.shape(out), *(np.shape(x) for x in xs))
    for index in np.argwhere(np.broadcast_to(bad, shape))[:1000]:  # bounded: the first 1,000 entries
        at = tuple(int(k) for k in index)
        values = tuple(float(np.broadcast_to(x, shape)[at]) for x in xs)
        g_at, out_at = float(np.broadcast_to(g, shape)[at]), float(np.broadcast_to(out, shape)[at])
        try:
            op.derivative(i)(FLOAT, g_at, out_at, *values)
        except (ArithmeticError, ValueError) as exc:
            where = f"batch index {at[0]}" if len(at) == 1 else f"index {at}"  # as batch mode says it
            raise with_context(rule_failure(op.name, values, exc), f"at {where}") from exc


def _axes(t: Tensor, axis: Any, what: str) -> tuple[int, ...] | None:
    """`axis` (None, an int or ints) as a tuple of distinct axes counted from 0, checked against t's shape."""
    if axis is None:
        return None
    axes = tuple(axis) if isinstance(axis, tuple | list) else (axis,)
    out = []
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, int | np.integer):
            raise TypeError(f"{what}: an axis is an int, got {type(a).__name__}: {a!r}")
        if not -t.ndim <= a < t.ndim:
            raise ValueError(f"{what}: axis {a} is out of range for a Tensor of shape {t.shape}")
        out.append(int(a) % t.ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: axis {axis} names an axis twice")
    return tuple(out)


# --- copying and pickling -------------------------------------------------------------------------
# Python's deepcopy and pickle follow `_a` and `_b` recursively, so a chain of a few thousand nodes
# would exhaust the recursion limit. A graph is copied and pickled node by node in topological order
# instead, as `chainrule.engine.copying` does for Values. Ops copy and pickle by name (`Op.__reduce__`).


def _new_node(node: Tensor) -> Tensor:
    """A node of node's class with node's label, flags and operation, and no scratch gradient yet."""
    twin = type(node).__new__(type(node))
    twin.label, twin.requires_grad, twin._operation = node.label, node.requires_grad, node._operation
    twin._g = None
    return twin


def _copy_graph(root: Tensor, memo: dict[int, Any]) -> Tensor:
    """A deep copy of the graph below `root`, each node copied after its inputs."""
    for node in topological_order(root):
        if id(node) in memo:
            continue
        twin = _new_node(node)
        twin.data = copy.deepcopy(node.data, memo)
        twin._grad = None if node._grad is None else copy.deepcopy(node._grad, memo)
        twin._kw = node._kw if node._kw is _NO_KW else copy.deepcopy(node._kw, memo)
        twin._a = None if node._a is None else memo[id(node._a)]
        twin._b = None if node._b is None else memo[id(node._b)]
        memo[id(node)] = twin
    return memo[id(root)]


def _row(node: Tensor, inputs: tuple[int, ...]) -> tuple[Any, ...]:
    kw = None if node._kw is _NO_KW else node._kw
    return (type(node), node.data, node.label, node.requires_grad, node._grad, node._operation, inputs, kw)


def _node(row: tuple[Any, ...], nodes: list[Tensor]) -> Tensor:
    cls, data, label, requires_grad, grad, op, inputs, kw = row
    node = cls.__new__(cls)
    node.data, node.label, node.requires_grad, node._grad = data, label, requires_grad, grad
    node._operation, node._g = op, None
    node._kw = _NO_KW if kw is None else kw
    node._a = nodes[inputs[0]] if inputs else None
    node._b = nodes[inputs[1]] if len(inputs) == 2 else None
    return node


def _graph_reduce(root: Tensor) -> tuple[Any, ...]:
    """How a Tensor pickles: its graph as one flat list of rows (the engine's `flatten_graph`)."""
    return (_rebuild_graph, (flatten_graph(root, _row),))


def _rebuild_graph(rows: list[Any]) -> Tensor:
    """The graph `_graph_reduce` flattened, rebuilt; returns its root (the last row)."""
    return rebuild_nodes(rows, _node)
