"""The eager engine: `Value`, its graph, and the chain rule that sends gradients back through it.

Reading order (the core path that `x.tanh().backward()` runs, after the table in `chainrule/ops.py`):

1. `node.py`: `Value`, and how an operation makes a node from a row of the table
   (`placeholder.py`: the nodes with no data yet, for define-then-run).
2. `layout.py`: the slots every node has and how it stores its inputs; `HandBuilt`, the operation of a
   node built by hand.
3. `walk.py`: the walks over a graph (topological order, the nodes a gradient reaches, reading order).
4. `chain_rule.py`: the chain rule, once: the reference step for one node and the reference sweep.
5. `backprop.py`: a backward pass: which sweep, under which lock, and how gradients reach `.grad`.

Then, on a second reading: `mode.py` (grad mode per thread, the lock, the instrumentation seam),
`fast_sweep.py` (the reference sweep inlined for floats: the hot loop, tested equal to the reference
one) and `copying.py` (deepcopy and pickle without recursion). Each module imports only the ones
listed after `node.py` above it in this order of layers: layout, walk, mode, chain_rule, fast_sweep,
backprop, copying, node.
"""

from .backprop import add_gradients, backward, gradients, zero_gradients
from .chain_rule import contributions, hand_built_contributions, rule_contributions, sweep
from .copying import flatten_graph, rebuild_nodes
from .layout import HandBuilt, Node, operation_of, stored_inputs
from .mode import GRAD_LOCK, enable_grad, is_grad_enabled, no_grad, set_observer
from .node import (
    Value,
    apply,
    as_float,
    attach_table_methods,
    constant,
    is_real,
    leaf,
    not_a_number,
    sum,  # noqa: A004 - chainrule.sum, like numpy.sum
    to_float,
)
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
