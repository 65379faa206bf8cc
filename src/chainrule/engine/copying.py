"""Copying and pickling a graph, node by node, without recursion.

Python's own `deepcopy` and `pickle` follow references recursively: a chain of a few hundred nodes
would exhaust the recursion limit. A graph is copied node by node in topological order instead.

A node built by hand carries its author's `_backward` closure, which names the original nodes
(`out.grad`, `x.grad`). The copy gets a copy of that function whose captured nodes are the copy's own,
so the copy's `backward()` acts on the copy; a `_backward` that cannot be re-pointed that way (a bound
method, a callable object) makes the copy fail with an error naming the node, never silently.
"""

from __future__ import annotations

import copy
import types
from typing import Any

from .layout import HandBuilt, Node, has_input_tuple, set_inputs, stored_inputs
from .walk import topological_order

_new = object.__new__


def has_data(node: Any) -> bool:
    """Whether the node holds a number (a placeholder, or a node computed from one, does not)."""
    try:
        node._data  # noqa: B018
    except AttributeError:
        return False
    return True


def user_attributes(node: Any) -> dict[str, Any] | None:
    """The attributes set on `node` after it was made (its label, `v._vis_color = ...`), or None.

    (Python makes the attribute dict of a node that has none when it is first asked for: copying and
    pickling a graph give each node one.)
    """
    return node.__dict__ or None


def copy_node(node: Any) -> Any:
    """A shallow copy: a new node with the same data, label and operation, reading the same inputs."""
    twin = _new(type(node))
    _copy_fields(node, twin, memo=None)
    set_inputs(twin, stored_inputs(node), many=has_input_tuple(node))
    op = node._operation
    if op is not None and op.hand_built:
        twin._operation = HandBuilt(op.symbol, _repointed(op.backward, {id(node): twin}, node))
    return twin


def copy_graph(root: Any, memo: dict[int, Any]) -> Any:
    """A deep copy of the graph below `root` (nodes already in `memo` are reused, as deepcopy does)."""
    hand_built = []
    for node in topological_order(root):
        if id(node) in memo:
            continue
        twin = _new(type(node))
        _copy_fields(node, twin, memo)
        inputs = tuple(x if type(x) is float else memo[id(x)] for x in stored_inputs(node))
        set_inputs(twin, inputs, many=has_input_tuple(node))
        if twin._operation is not None and twin._operation.hand_built:
            hand_built.append((node, twin))
        memo[id(node)] = twin
    for node, twin in hand_built:  # every node is copied now: point each closure at the copies
        twin._operation = HandBuilt(twin._operation.symbol, _repointed(twin._operation.backward, memo, node))
    return memo[id(root)]


def _copy_fields(node: Any, twin: Any, memo: dict[int, Any] | None) -> None:
    if has_data(node):
        twin._data = node._data
    grad = node.grad
    twin.grad = grad if type(grad) is float or memo is None else copy.deepcopy(grad, memo)
    twin.requires_grad = node.requires_grad
    twin._operation = node._operation
    twin._g = 0.0  # as every node is made: the float sweep's walk marks nodes in this slot
    extra = user_attributes(node)
    if extra:
        twin.__dict__.update(extra if memo is None else copy.deepcopy(extra, memo))


def _repointed(closure: Any, memo: dict[int, Any], node: Any) -> Any:
    """`closure` with every graph node it captured replaced by that node's copy in `memo`."""
    if closure is None:
        return None
    if not isinstance(closure, types.FunctionType):
        raise TypeError(
            f"copy: the _backward of {node!r} (op {node._op!r}) is a {type(closure).__name__}, which "
            f"cannot be pointed at the copy's nodes: give it a plain function (def _backward(): ...), "
            f"or define the operation with chainrule.defop"
        )
    for name in closure.__code__.co_names:
        if isinstance(closure.__globals__.get(name), Node):
            raise TypeError(
                f"copy: the _backward of {node!r} (op {node._op!r}) reads the global node {name!r}, which "
                f"cannot be pointed at the copy's nodes: capture the nodes it needs in the closure instead"
            )

    def swap(x: Any) -> Any:
        return memo.get(id(x), x) if isinstance(x, Node) else x

    cells = None
    if closure.__closure__ is not None:
        cells = tuple(types.CellType(swap(_contents(cell))) for cell in closure.__closure__)
    defaults = None if closure.__defaults__ is None else tuple(swap(x) for x in closure.__defaults__)
    twin = types.FunctionType(closure.__code__, closure.__globals__, closure.__name__, defaults, cells)
    twin.__kwdefaults__ = closure.__kwdefaults__
    twin.__qualname__ = closure.__qualname__
    twin.__dict__.update(closure.__dict__)
    return twin


_EMPTY = object()


def _contents(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # a variable not assigned yet
        return _EMPTY


# --- pickling ---------------------------------------------------------------------------------------
def flatten_graph(root: Any, row_of: Any) -> list[Any]:
    """The graph below `root` as one flat list, each node after its inputs, for pickling without recursion.

    Leaves other than the root go into the list as themselves, so pickle stores each once and graphs
    pickled together (a model's outputs, a Program's inputs and output) share their parameters and
    placeholders again when loaded; every other node becomes `row_of(node, input_positions)`.
    Shared by `Value` and `Tensor` (each says what its row holds).
    """
    order = topological_order(root)
    index = {node: i for i, node in enumerate(order)}
    rows: list[Any] = []
    for node in order:
        if node._a is None and node is not root:
            rows.append(node)  # a leaf: pickled (once) by its own reduce
        else:
            rows.append(row_of(node, tuple(index[c] for c in node._prev)))
    return rows


def rebuild_nodes(rows: list[Any], node_of: Any) -> Any:
    """The graph `flatten_graph` flattened, rebuilt with `node_of(row, nodes so far)`; returns its root."""
    nodes: list[Any] = []
    for row in rows:
        nodes.append(row if isinstance(row, Node) else node_of(row, nodes))
    return nodes[-1]


def _value_row(node: Any, inputs: tuple[int, ...]) -> tuple[Any, ...]:
    op = node._operation
    if op is not None and op.hand_built:
        op = ("hand-built", op.symbol, op.backward)
    data = node._data if has_data(node) else None
    return (
        type(node),
        data,
        node.grad,
        node.requires_grad,
        op,
        inputs,
        has_input_tuple(node),
        user_attributes(node),
    )


def _value_node(row: tuple[Any, ...], nodes: list[Any]) -> Any:
    cls, data, grad, requires_grad, op, inputs, many, extra = row
    node = _new(cls)
    if data is not None:
        node._data = data
    node.grad, node.requires_grad = grad, requires_grad
    node._g = 0.0  # as every node is made: the float sweep's walk marks nodes in this slot
    if isinstance(op, tuple):  # a hand-built op: ("hand-built", symbol, closure)
        op = HandBuilt(op[1], op[2])
    node._operation = op
    set_inputs(node, tuple(nodes[i] for i in inputs), many=many)
    if extra:
        node.__dict__.update(extra)
    return node


def graph_reduce(root: Any) -> tuple[Any, ...]:
    """How a Value pickles: its whole graph as one flat list (`flatten_graph`), rebuilt by `rebuild_graph`."""
    return (rebuild_graph, (flatten_graph(root, _value_row),))


def rebuild_graph(rows: list[Any]) -> Any:
    """The graph `graph_reduce` flattened, rebuilt; returns its root (the last row)."""
    return rebuild_nodes(rows, _value_node)
