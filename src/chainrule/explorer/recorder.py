"""The explorer's recorder: the forward values and the backward sweep, replayed and written down.

`Recorder(root).run()` records, in Python, the forward values in reading order and then the
backward sweep node by node, in the order `backward()` uses: for every input of every node, the
gradient arriving from above (dL/dnode), the local derivative (from the derivative table, the same
rules `backward()` runs) and their product, which is added into the input's gradient. The page
(`chainrule.explorer.page`) only displays these records; nothing here touches a `.grad`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..drawing import RANKDIRS, reading_order, record_number
from ..engine import Value, contributions, count_nodes, gradient_order, operation_of, sweep
from ..errors import DomainError, PlaceholderError
from .formulas import local_formula

__all__ = [
    "DEFAULT_MAX_NODES",
    "MAX_NODES_LIMIT",
    "Contribution",
    "NodeRecord",
    "Recorder",
    "Step",
    "check_graph",
    "format_number",
    "local_derivatives",
]

DEFAULT_MAX_NODES = 300
"""Graphs with more values are refused: a neuron or a small MLP's loss on one sample fit."""
MAX_NODES_LIMIT = 2000
"""The largest `max_nodes` accepted: beyond it neither the layout nor a learner keeps up."""
_COUNT_LIMIT = 100_000  # how far a graph that is too big is counted, for the message
_INFIX = ("+", "-", "*", "/", "**")  # ops written between their operands


@dataclass(frozen=True)
class Contribution:
    """One input's share of a backward step: dL/d(input) += upstream * local."""

    input: str  # the input's name (its label, or a generated n3)
    upstream: float  # dL/d(node), complete when the node's step comes
    local: float  # d(node)/d(input), from the derivative table
    product: float  # the table's rule applied to the upstream gradient: what backward() adds
    total: float  # the input's gradient after this contribution
    accumulates: bool  # True where it adds to an earlier contribution (dL/db += ...)
    text: str  # the chain-rule line the page shows
    local_text: str = ""  # the line before it: the local derivative from the op's rule


@dataclass(frozen=True)
class Step:
    """One position of the page: the start, one forward node, one backward node, or the end."""

    phase: str  # "start", "forward", "backward" or "end"
    node: str | None  # the name of the current node, if any
    title: str
    lines: tuple[str, ...]
    contributions: tuple[Contribution, ...] = ()


def format_number(x: float) -> str:
    """A number for the formulas: six significant digits, and -2.0 rather than -2."""
    x = float(x)
    if not math.isfinite(x):
        return repr(x)
    text = f"{x:.6g}"
    return text + ".0" if text.lstrip("-").isdigit() else text


def _d(name: str, symbol: str = "d") -> str:
    """`da` for a plain name, `d(x1*w1)` for a label that is an expression; `∂a` with symbol="∂"."""
    return f"{symbol}{name}" if name.isidentifier() else f"{symbol}({name})"


def _local(node: str, child: str) -> str:
    """A local derivative, in a notation of its own: `∂e/∂a` (gradients are written `dL/da`)."""
    return f"{_d(node, '∂')}/{_d(child, '∂')}"


def leaf_kind(node: Value) -> str:
    """What a leaf is, in `compile`'s words: a "parameter" takes a gradient, an "input" is data
    (labelled, no gradient), a "constant" is a number in the graph (unlabelled, no gradient)."""
    if node.requires_grad:
        return "parameter"
    return "input" if node.label else "constant"


_NO_GRADIENT = {"input": "an input", "constant": "a constant"}  # the leaves that take no gradient
_KINDS = {
    "parameter": "a parameter: a leaf that takes a gradient",
    "input": "an input: data, a leaf that takes no gradient",
    "constant": "a constant: a number in the graph, it takes no gradient",
}


# --- checks -------------------------------------------------------------------------------------
def check_graph(root: Any, max_nodes: Any, rankdir: Any) -> None:
    """Refuse, in one line naming what is wrong, what explore() cannot step through."""
    if not isinstance(root, Value):
        raise TypeError(f"explore: needs a chainrule Value, got {type(root).__name__}: {root!r}")
    if rankdir not in RANKDIRS:
        raise ValueError(f"explore: rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or not 1 <= max_nodes <= MAX_NODES_LIMIT:
        raise ValueError(
            f"explore: max_nodes must be an integer from 1 to {MAX_NODES_LIMIT}, got {max_nodes!r}"
        )
    size = count_nodes(root, max(max_nodes, _COUNT_LIMIT))
    if size > max_nodes:
        many = f"more than {_COUNT_LIMIT}" if size > _COUNT_LIMIT else str(size)
        raise ValueError(
            f"explore: the graph has {many} values, more than max_nodes={max_nodes} can step through; "
            f"explore a smaller part of it (one neuron, one sample) or raise max_nodes "
            f"(at most {MAX_NODES_LIMIT})"
        )
    if not root.requires_grad:
        raise ValueError(
            "explore: this Value does not require grad (it was made from constants, requires_grad=False, "
            "or inside chainrule.no_grad()), so there is no backward pass to show"
        )


def check_labels(order: list[Value]) -> None:
    """Refuse labels that no page can show: not text, a NUL (Graphviz stops there), a lone surrogate."""
    for node in order:
        label = node.label
        if label is None:
            continue
        if not isinstance(label, str):
            raise ValueError(
                f"explore: a label must be text (a str), got {type(label).__name__}: {label!r}; "
                f"write label={str(label)!r}"
            )
        if "\x00" in label:
            raise ValueError(f"explore: the label {label!r} holds a NUL character, which no page can show")
        bad = next((ch for ch in label if "\ud800" <= ch <= "\udfff"), None)
        if bad is not None:
            raise ValueError(
                f"explore: the label {label!r} holds a lone surrogate (U+{ord(bad):04X}), which is not "
                "text any page can hold; decode the label's bytes properly"
            )


# --- recording ----------------------------------------------------------------------------------
@dataclass
class NodeRecord:
    """What the page needs to know about one value."""

    id: str  # the DOT id, as to_dot numbers it (n0, n1, ...)
    name: str
    how: str  # "a * b", or the leaf's kind: "parameter", "input", "constant"
    data: float
    data_step: int = 0
    # the gradient as it arrives: [step, record text, short text, exact repr, partial?, status]
    grads: list[list[Any]] = field(default_factory=list)
    no_grad: bool = False  # takes no gradient (an input, a constant, or made from them only)


def _expression(node: Value, names: dict[Value, str], values: bool = False) -> str:
    """How `node` was made, with its inputs' names (or their values): 'a * b', 'tanh(n)', 'sum(...)'."""
    fn = operation_of(node)
    assert fn is not None
    args = [format_number(c.data) if values else names[c] for c in node._prev]
    if fn.arity == 2 and fn.symbol in _INFIX:
        return f"{args[0]} {fn.symbol} {args[1]}"
    if fn.name == "neg":
        return f"-({args[0]})" if values else f"-{args[0]}"
    if fn.name == "sum":
        return " + ".join(args)
    return f"{fn.name}({', '.join(args)})"


def _names(order: list[Value], ids: dict[Value, str]) -> tuple[dict[Value, str], dict[Value, str]]:
    """Each value's name in the formulas, and the generated ones the drawing must show."""
    taken = {" ".join(node.label.split()) for node in order if node.label}
    names: dict[Value, str] = {}
    generated: dict[Value, str] = {}
    for node in order:
        if node.label:
            names[node] = " ".join(node.label.split())  # a label's line breaks become spaces
            continue
        if operation_of(node) is None and not node.requires_grad:  # an unnamed constant goes by its number
            names[node] = generated[node] = format_number(node.data)
            continue
        name = ids[node]
        for _ in range(len(taken) + 1):  # bounded: some suffix is free within len(taken) tries
            if name not in taken:
                break
            name += "'"
        names[node] = generated[node] = name
    return names, generated


class Recorder:
    """Runs the forward and backward replay, filling in the steps and the per-node records."""

    def __init__(self, root: Value) -> None:
        self.root = root
        # The drawing's reading order (first operands first) is a topological order too, and the
        # one a learner reads the expression in: a, b, e = a*b, c, d = e + c, ...
        self.forward = reading_order(root)
        check_labels(self.forward)
        try:
            for node in self.forward:
                node.data  # noqa: B018 - a placeholder raises here
        except PlaceholderError:
            raise ValueError(
                "explore: the graph has placeholders with no data yet; build it from numbers "
                "(Value(2.0)) to step through it"
            ) from None
        self.ids = {node: f"n{i}" for i, node in enumerate(self.forward)}  # to_dot's ids
        self.names, self.generated = _names(self.forward, self.ids)
        self.nodes = {node: self._node(node) for node in self.forward}
        self.steps: list[Step] = []
        self.current: list[str | None] = []  # per step: the id of the current node
        self.touched: list[list[str]] = []  # per step: the ids of its inputs
        self.grads: dict[Value, float] = {}

    def _node(self, node: Value) -> NodeRecord:
        how = _expression(node, self.names) if operation_of(node) is not None else leaf_kind(node)
        return NodeRecord(self.ids[node], self.names[node], how, node.data, no_grad=not node.requires_grad)

    def add(self, step: Step, current: Value | None, touched: list[Value]) -> int:
        """Append a step, with its current node and the inputs it touches; returns its index."""
        self.steps.append(step)
        self.current.append(self.ids[current] if current is not None else None)
        self.touched.append([self.ids[v] for v in touched])
        return len(self.steps) - 1

    def run(self) -> None:
        """Record every step: the start, the forward pass, the backward sweep and the end."""
        root_name = self.names[self.root]
        self.add(
            Step(
                "start",
                None,
                f"Before the forward pass: {root_name} and everything it is made of",
                (
                    "No value is known yet ('data ?'), and no gradient ('grad ?').",
                    "Press Next (or the right arrow key) to compute the values one node at a time.",
                ),
            ),
            None,
            [],
        )
        self._forward()
        self._backward()

    def _forward(self) -> None:
        total = len(self.forward)
        for k, node in enumerate(self.forward, 1):
            name = self.names[node]
            value = format_number(node.data)
            if operation_of(node) is None:
                lines = (f"{name} = {value}", f"{name} is {_KINDS[leaf_kind(node)]}.")
            else:
                formula = f"{name} = {_expression(node, self.names)}"
                numbers = _expression(node, self.names, values=True)
                lines = (f"{formula} = {numbers} = {value}",)
            title = f"Forward {k} of {total}: {name}"
            step = self.add(Step("forward", name, title, lines), node, list(node._prev))
            self.nodes[node].data_step = step

    def _backward(self) -> None:
        root = self.root
        r = self.names[root]
        # The replay is the engine's reference sweep itself, watched through its record hook: every
        # gradient the page shows is one backward() computes, in the order it computes them.
        order = gradient_order(root)
        visited: list[tuple[Value, float, list[tuple[int, Value, float]]]] = []
        try:
            final = sweep(root, 1.0, order, record=lambda node, g, found: visited.append((node, g, found)))
        except DomainError as exc:
            raise DomainError(f"explore: {exc}", op=exc.op, value=exc.value) from exc
        g: dict[Value, float] = {node: 0.0 for node in order}  # the running sums, as the page shows them
        g[root] = 1.0
        history: dict[Value, list[tuple[int, float]]] = {node: [] for node in order}
        with_steps = [
            (node, found) for node, _, found in visited if operation_of(node) is not None or node is root
        ]
        total = len(with_steps)
        for k, (node, found) in enumerate(with_steps, 1):
            name = self.names[node]
            upstream = g[node]
            if node is root:
                lines = [f"{_d(r)}/{_d(r)} = 1.0: the output's gradient with respect to itself."]
            else:
                lines = [
                    f"{_d(r)}/{_d(name)} = {format_number(upstream)} is complete: every value made from "
                    f"{name} has passed its gradient back."
                ]
            title = f"Backward {k} of {total}: {name}"
            if operation_of(node) is not None:
                title += f" = {_expression(node, self.names)}"
            shown = self._contributions(node, upstream, found, g, history, len(self.steps), lines)
            touched = [c for c in node._prev if c.requires_grad]
            step = self.add(Step("backward", name, title, tuple(lines), tuple(shown)), node, touched)
            if node is root:
                history[root].insert(0, (step, 1.0))
        self.grads = {node: final.get(node, 0.0) for node in order}  # the running sums end there too
        end = len(self.steps)
        # A value that takes a gradient but that the sweep does not reach (below a node whose
        # requires_grad was switched off) keeps the 0 that backward() leaves in it.
        for node in self.forward:
            if node.requires_grad and node not in g:
                self.grads[node] = 0.0
                history[node] = [(end, 0.0)]
        self._finish(history, end)

    def _contributions(
        self,
        node: Value,
        upstream: float,
        found: list[tuple[int, Value, float]],
        g: dict[Value, float],
        history: dict[Value, list[tuple[int, float]]],
        step: int,
        lines: list[str],
    ) -> list[Contribution]:
        fn = operation_of(node)
        if fn is None:
            return []
        r, name = self.names[self.root], self.names[node]
        contributions = []
        input_names = [self.names[child] for child in node._prev]
        for i, (child, local, product) in enumerate(local_derivatives(node, found)):
            c = self.names[child]
            if not child.requires_grad:
                what = (
                    _NO_GRADIENT[leaf_kind(child)]
                    if operation_of(child) is None
                    else "made from inputs and constants"
                )
                lines.append(f"{c} takes no gradient ({what}): nothing flows into it.")
                continue
            accumulates = bool(history[child])
            g[child] += product
            total = g[child]
            history[child].append((step, total))
            local_text = self._local_text(node, i, input_names, child, local)
            lines.append(local_text)
            chain = (
                f"{_d(r)}/{_d(name)} * {_local(name, c)} = "
                f"{format_number(upstream)} * {format_number(local)} = {format_number(product)}"
            )
            if accumulates:
                text = f"{_d(r)}/{_d(c)} += {chain}, so {_d(r)}/{_d(c)} = {format_number(total)}"
            else:
                text = f"{_d(r)}/{_d(c)} = {chain}"
            lines.append(text)
            contributions.append(
                Contribution(c, upstream, local, product, total, accumulates, text, local_text)
            )
        return contributions

    def _local_text(self, node: Value, i: int, input_names: list[str], child: Value, local: float) -> str:
        """`local derivative ∂L/∂d = f = -2.0`: the op's rule as a formula, then its number."""
        name, c = self.names[node], self.names[child]
        head = f"local derivative {_local(name, c)}"
        number = format_number(local)
        formula = local_formula(operation_of(node), i, name, input_names)
        if formula is None:  # a node built by hand: its rule is its own _backward
            return f"{head} = {number}, from {name}'s own _backward"
        try:
            float(formula.strip("()"))
        except ValueError:
            return f"{head} = {formula} = {number}"
        return f"{head} = {number}"  # the rule is a number (1 for +): no formula to show

    def _finish(self, history: dict[Value, list[tuple[int, float]]], end: int) -> None:
        r = self.names[self.root]
        leaves = [node for node in self.forward if operation_of(node) is None and node.requires_grad]
        lines = [f"{_d(r)}/{_d(self.names[leaf])} = {format_number(self.grads[leaf])}" for leaf in leaves]
        self.add(
            Step(
                "end",
                None,
                "Done: every gradient is complete, as backward() computes them",
                (f"{r} = {format_number(self.root.data)}", *lines),
            ),
            None,
            [],
        )
        for node, updates in history.items():
            n = len(updates)
            for i, (step, value) in enumerate(updates):
                if node is self.root:
                    status = "complete: the output"
                elif i < n - 1:
                    status = f"partial: {i + 1} of {n} contributions"
                else:
                    status = "complete" if n == 1 else f"complete: the sum of {n} contributions"
                record = [
                    step,
                    f"grad {record_number(value)}",
                    format_number(value),
                    repr(value),
                    i < n - 1,
                    status,
                ]
                self.nodes[node].grads.append(record)


def local_derivatives(node: Value, found: list[tuple[int, Value, float]]) -> list[tuple[Value, float, float]]:
    """(input, local derivative, contribution) for each input of `node`, from the engine's reference step.

    `found` is what the reference sweep's step gave `node`'s inputs for its gradient (the numbers
    backward() adds); the local derivative is the same step for a gradient of 1 (a hand-built node's
    own `_backward` run on its own, as backward() runs it). An input that takes no gradient gets
    (input, 0.0, 0.0).
    """
    local = {i: d for i, _, d in contributions(node, 1.0)}
    product = {i: d for i, _, d in found}
    inputs = node._prev
    if operation_of(node).hand_built:  # its closure sees each distinct input once
        inputs = tuple(dict.fromkeys(inputs))
    return [(child, local.get(i, 0.0), product.get(i, 0.0)) for i, child in enumerate(inputs)]
