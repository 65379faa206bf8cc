"""The eager engine: `Value`, its graph, and the chain rule that sends gradients back through it.

Reading order (the core path that `x.tanh().backward()` runs, after the table in `chainrule/ops.py`):

1. `layout.py`: the slots every node has, the one node constructor (`new_node`), how a node stores
   its inputs; `HandBuilt`, the operation of a node built by hand.
2. `node.py`: `Value`, and how an operation makes a node from a row of the table (`apply`).
3. `walk.py`: the walks over a graph (topological order, the nodes a gradient reaches, reading order).
4. `chain_rule.py`: the chain rule, once: the reference step for one node and the reference sweep.
5. `backprop.py`: a backward pass: which sweep, under which lock, and how gradients reach `.grad`.

Skip on a first reading: `operators.py` (each row's operator, `apply` inlined: the hottest code) and
`fast_sweep.py` (the reference sweep inlined for floats), both tested equal to what they inline.
Then, on a second reading: `hand_built.py` (running micrograd-style `_backward` closures),
`micrograd.py` (`_op`, `_children`, `_backward()` by hand), `protocols.py` (comparisons, refused
conversions, numpy's functions), `numbers.py` (which objects are numbers), `mode.py` (grad mode per
thread, the lock, the instrumentation seam), `copying.py` (deepcopy and pickle without recursion)
and `placeholder.py` (nodes with no data yet, for define-then-run).

Each module imports only modules of lower layers: mode; layout; numbers, walk, hand_built; chain_rule;
micrograd, protocols, operators, fast_sweep; backprop, copying; node; placeholder.
"""

from .backprop import add_gradients, backward, gradients, zero_gradients
from .chain_rule import contributions, hand_built_contributions, rule_contributions, sweep
from .copying import flatten_graph, rebuild_nodes
from .layout import HandBuilt, Node, operation_of, stored_inputs
from .mode import GRAD_LOCK, enable_grad, is_grad_enabled, no_grad, set_observer
from .node import (
    Value,
    apply,
    constant,
    leaf,
    sum,  # noqa: A004 - chainrule.sum, like numpy.sum
)
from .numbers import as_float, is_real, not_a_number, to_float
from .operators import attach_table_methods
from .placeholder import NoDataError, Symbolic, placeholder, symbolic
from .walk import (
    count_nodes,
    depends_on,
    gradient_order,
    nodes_below,
    reading_order,
    topological_order,
)

__all__ = [
    "GRAD_LOCK",
    "add_gradients",
    "HandBuilt",
    "NoDataError",
    "Node",
    "Symbolic",
    "Value",
    "apply",
    "as_float",
    "attach_table_methods",
    "backward",
    "constant",
    "contributions",
    "count_nodes",
    "depends_on",
    "enable_grad",
    "flatten_graph",
    "gradient_order",
    "gradients",
    "hand_built_contributions",
    "is_grad_enabled",
    "is_real",
    "leaf",
    "no_grad",
    "nodes_below",
    "not_a_number",
    "operation_of",
    "placeholder",
    "reading_order",
    "rebuild_nodes",
    "rule_contributions",
    "set_observer",
    "stored_inputs",
    "sum",
    "sweep",
    "symbolic",
    "to_float",
    "topological_order",
    "zero_gradients",
]
