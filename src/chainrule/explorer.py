"""See backprop happen: `explore(root)` replays the forward and backward pass over your own graph.

`explore(root)` records, in Python, the forward values in topological order and then the backward
sweep node by node: for every input of every node, the gradient arriving from above (dL/dnode),
the local derivative (from the derivative table, the same rules `backward()` runs) and their
product, which is added into the input's gradient. It returns an `Explorer`: shown inline in
Jupyter, `.save("page.html")` writes one self-contained page (inline SVG, CSS and JavaScript, no
network) whose buttons and keys step through those records. The page's script only displays the
numbers recorded here; it computes none, so the derivative table stays the one source of truth.

`chainrule explore "EXPR" a=2 b=-3 -o page.html` does the same from the command line, with the
safe expression parser of `chainrule draw`. docs/explore.md describes the page.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backends import FLOAT
from .drawing import RendererNotFound, _reading_order, render_dot, to_dot
from .engine import Value, hand_built_contributions, topological_order
from .errors import DomainError, PlaceholderError

__all__ = ["DEFAULT_MAX_NODES", "MAX_NODES_LIMIT", "Contribution", "Explorer", "Step", "explore"]

DEFAULT_MAX_NODES = 300
"""Graphs with more values are refused: a neuron or a small MLP's loss on one sample fit."""
MAX_NODES_LIMIT = 2000
"""The largest `max_nodes` accepted: beyond it neither the layout nor a learner keeps up."""
_COUNT_LIMIT = 100_000  # how far a graph that is too big is counted, for the message
_RANKDIRS = ("LR", "RL", "TB", "BT")
_INFIX = ("+", "-", "*", "/", "**")  # ops written between their operands
_PLAY_MS = 900  # the pause between two steps while playing


@dataclass(frozen=True)
class Contribution:
    """One input's share of a backward step: dL/d(input) += upstream * local."""

    input: str  # the input's name (its label, or a generated n3)
    upstream: float  # dL/d(node), complete when the node's step comes
    local: float  # d(node)/d(input), from the derivative table
    product: float  # the table's rule applied to the upstream gradient: what backward() adds
    total: float  # the input's gradient after this contribution
    accumulates: bool  # True where it adds to an earlier contribution (dL/db += ...)
    text: str  # the line the page shows


@dataclass(frozen=True)
class Step:
    """One position of the page: the start, one forward node, one backward node, or the end."""

    phase: str  # "start", "forward", "backward" or "end"
    node: str | None  # the name of the current node, if any
    title: str
    lines: tuple[str, ...]
    contributions: tuple[Contribution, ...] = ()


def _fmt(x: float) -> str:
    """A number for the formulas: six significant digits, and -2.0 rather than -2."""
    x = float(x)
    if not math.isfinite(x):
        return repr(x)
    text = f"{x:.6g}"
    return text + ".0" if text.lstrip("-").isdigit() else text


def _d(name: str) -> str:
    """`da` for a plain name, `d(x1*w1)` for a label that is an expression."""
    return f"d{name}" if name.isidentifier() else f"d({name})"


# --- checks -------------------------------------------------------------------------------------
def _count(root: Value, limit: int) -> int:
    """The number of values below `root`, counting no further than `limit` + 1 (a bounded walk)."""
    seen = {root}
    stack = [root]
    while stack:
        for child in stack.pop()._prev:
            if child not in seen:
                seen.add(child)
                if len(seen) > limit:
                    return len(seen)
                stack.append(child)
    return len(seen)


def _check(root: Any, max_nodes: Any, rankdir: Any) -> None:
    if not isinstance(root, Value):
        raise TypeError(f"explore: needs a chainrule Value, got {type(root).__name__}: {root!r}")
    if rankdir not in _RANKDIRS:
        raise ValueError(f"explore: rankdir must be one of {', '.join(_RANKDIRS)}, got {rankdir!r}")
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or not 1 <= max_nodes <= MAX_NODES_LIMIT:
        raise ValueError(
            f"explore: max_nodes must be an integer from 1 to {MAX_NODES_LIMIT}, got {max_nodes!r}"
        )
    size = _count(root, max(max_nodes, _COUNT_LIMIT))
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


# --- recording ----------------------------------------------------------------------------------
@dataclass
class _Node:
    """What the page needs to know about one value."""

    id: str  # the DOT id, as to_dot numbers it (n0, n1, ...)
    name: str
    how: str  # "a * b", "input", "constant"
    data: float
    data_step: int = 0
    # the gradient as it arrives: [step, record text, short text, exact repr, partial?, status]
    grads: list[list[Any]] = field(default_factory=list)
    no_grad: bool = False  # takes no gradient (a constant, or made from constants only)


def _expression(node: Value, names: dict[Value, str], values: bool = False) -> str:
    """How `node` was made, with its inputs' names (or their values): 'a * b', 'tanh(n)', 'sum(...)'."""
    fn = node._operation
    assert fn is not None
    args = [_fmt(c.data) if values else names[c] for c in node._prev]
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
        if node._operation is None and not node.requires_grad:  # an unnamed constant goes by its number
            names[node] = generated[node] = _fmt(node.data)
            continue
        name = ids[node]
        for _ in range(len(taken) + 1):  # bounded: some suffix is free within len(taken) tries
            if name not in taken:
                break
            name += "'"
        names[node] = generated[node] = name
    return names, generated


class _Recorder:
    """Runs the forward and backward replay, filling in the steps and the per-node records."""

    def __init__(self, root: Value) -> None:
        self.root = root
        # The drawing's reading order (first operands first) is a topological order too, and the
        # one a learner reads the expression in: a, b, e = a*b, c, d = e + c, ...
        self.forward = _reading_order(root)
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

    def _node(self, node: Value) -> _Node:
        if node._operation is not None:
            how = _expression(node, self.names)
        else:
            how = "input" if node.requires_grad else "constant"
        return _Node(self.ids[node], self.names[node], how, node.data, no_grad=not node.requires_grad)

    def add(self, step: Step, current: Value | None, touched: list[Value]) -> int:
        self.steps.append(step)
        self.current.append(self.ids[current] if current is not None else None)
        self.touched.append([self.ids[v] for v in touched])
        return len(self.steps) - 1

    def run(self) -> None:
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
            value = _fmt(node.data)
            if node._operation is None:
                kind = (
                    "an input: a leaf that takes a gradient"
                    if node.requires_grad
                    else "a constant: a leaf that takes no gradient"
                )
                lines = (f"{name} = {value}", f"{name} is {kind}.")
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
        sweep = topological_order(root, only_requiring_grad=True)  # the order backward() uses
        g: dict[Value, float] = {node: 0.0 for node in sweep}
        g[root] = 1.0
        history: dict[Value, list[tuple[int, float]]] = {node: [] for node in sweep}
        nodes_with_steps = [node for node in reversed(sweep) if node._operation is not None or node is root]
        total = len(nodes_with_steps)
        for k, node in enumerate(nodes_with_steps, 1):
            name = self.names[node]
            upstream = g[node]
            if node is root:
                lines = [f"{_d(r)}/{_d(r)} = 1.0: the output's gradient with respect to itself."]
            else:
                lines = [f"{_d(r)}/{_d(name)} = {_fmt(upstream)} is complete: every value made from {name} "
                         f"has passed its gradient back."]  # fmt: skip
            title = f"Backward {k} of {total}: {name}"
            if node._operation is not None:
                title += f" = {_expression(node, self.names)}"
            contributions = self._contributions(node, upstream, g, history, len(self.steps), lines)
            touched = [c for c in node._prev if c.requires_grad]
            step = self.add(Step("backward", name, title, tuple(lines), tuple(contributions)), node, touched)
            if node is root:
                history[root].insert(0, (step, 1.0))
        self.grads = dict(g)
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
        g: dict[Value, float],
        history: dict[Value, list[tuple[int, float]]],
        step: int,
        lines: list[str],
    ) -> list[Contribution]:
        fn = node._operation
        if fn is None:
            return []
        r, name = self.names[self.root], self.names[node]
        contributions = []
        for child, local, product in self._local_derivatives(node, upstream):
            c = self.names[child]
            if not child.requires_grad:
                lines.append(f"{c} takes no gradient (a constant): nothing flows into it.")
                continue
            accumulates = bool(history[child])
            g[child] += product
            total = g[child]
            history[child].append((step, total))
            chain = (
                f"{_d(r)}/{_d(name)} * {_d(name)}/{_d(c)} = "
                f"{_fmt(upstream)} * {_fmt(local)} = {_fmt(product)}"
            )
            if accumulates:
                text = f"{_d(r)}/{_d(c)} += {chain}, so {_d(r)}/{_d(c)} = {_fmt(total)}"
            else:
                text = f"{_d(r)}/{_d(c)} = {chain}"
            lines.append(text)
            contributions.append(Contribution(c, upstream, local, product, total, accumulates, text))
        return contributions

    @staticmethod
    def _local_derivatives(node: Value, upstream: float) -> list[tuple[Value, float, float]]:
        """(input, local derivative, upstream * local as backward() adds it) for each input of `node`.

        A table op's come from its derivative rules; a hand-built node's from running its own
        `_backward` on its own (for gradient 1, then for the real one), as backward() runs it.
        """
        fn = node._operation
        if fn.hand_built:
            local = hand_built_contributions(node, 1.0)
            product = hand_built_contributions(node, upstream)
            return [(child, d1, d) for (_, child, d1), (_, _, d) in zip(local, product, strict=True)]
        out = node.data
        xs = [c.data for c in node._prev]
        found = []
        for i, child in enumerate(node._prev):
            if not child.requires_grad:
                found.append((child, 0.0, 0.0))
                continue
            rule = fn.derivative(i)
            try:
                found.append((child, rule(FLOAT, 1.0, out, *xs), rule(FLOAT, upstream, out, *xs)))
            except (ArithmeticError, ValueError) as exc:
                raise DomainError(
                    f"explore: {fn.name}: the derivative is undefined at {tuple(xs)}: {exc}",
                    op=fn.name,
                    value=tuple(xs),
                ) from exc
        return found

    def _finish(self, history: dict[Value, list[tuple[int, float]]], end: int) -> None:
        r = self.names[self.root]
        leaves = [node for node in self.forward if node._operation is None and node.requires_grad]
        lines = [f"{_d(r)}/{_d(self.names[leaf])} = {_fmt(self.grads[leaf])}" for leaf in leaves]
        self.add(
            Step(
                "end",
                None,
                "Done: every gradient is complete, as backward() computes them",
                (f"{r} = {_fmt(self.root.data)}", *lines),
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
                record = [step, f"grad {value:.4f}", _fmt(value), repr(value), i < n - 1, status]
                self.nodes[node].grads.append(record)


# --- the page -----------------------------------------------------------------------------------
_GROUP = re.compile(r'<g id="(?:node|edge)\d+" class="(node|edge)">\s*<title>([^<]*)</title>')
_ID = re.compile(r"n\d+(?:_op)?")


def _svg(root: Value, recorder: _Recorder, rankdir: str, backend: str) -> str | None:
    """The graph as inline SVG, groups renamed for the page's script; None without a renderer."""
    dot = to_dot(
        root,
        rankdir=rankdir,
        max_nodes=None,
        labels=recorder.generated,
        grads={node: recorder.grads.get(node, 0.0) for node in recorder.forward},
    )
    try:
        text = render_dot(dot, "svg", backend=backend).decode("utf-8")
    except RendererNotFound:
        return None
    start = text.find("<svg")
    if start < 0:  # pragma: no cover - a renderer that printed no SVG
        return None
    text = re.sub(r"<!--.*?-->", "", text[start:], flags=re.S)

    def rename(match: re.Match[str]) -> str:
        kind, title = match.group(1), html.unescape(match.group(2))
        if kind == "node" and _ID.fullmatch(title):
            return f'<g id="cr-{title}" class="node">'
        source, _, target = title.partition("->")
        if kind == "edge" and _ID.fullmatch(source) and _ID.fullmatch(target):
            return f'<g class="edge" data-from="{source}" data-to="{target}">'
        return f'<g class="{kind}">'  # pragma: no cover - to_dot makes no other ids

    text = _GROUP.sub(rename, text)
    text = re.sub(r"<title>[^<]*</title>", "", text)  # the graph's own title ("%3")
    label = html.escape(f"the computation graph of {recorder.names[root]}", quote=True)
    return text.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1)


def _json(data: Any) -> str:
    """JSON that is safe inside a <script> element (no '</script>' or '<!--' can appear)."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _page(recorder: _Recorder, svg: str | None) -> str:
    root_name = recorder.names[recorder.root]
    nodes = [recorder.nodes[node] for node in recorder.forward]
    steps = recorder.steps
    phase_text = {"start": "before the forward pass", "forward": "forward pass", "backward": "backward pass",
                  "end": "done"}  # fmt: skip
    data = {
        "unknownData": "data ?",
        "unknownShort": "?",
        "playMs": _PLAY_MS,
        "nodes": [
            {
                "id": n.id,
                "name": n.name,
                "dataStep": n.data_step,
                "dataText": f"data {n.data:.4f}",
                "dataShort": _fmt(n.data),
                "dataExact": repr(float(n.data)),
                "grads": n.grads,
                "noGradText": "no grad" if n.no_grad else "grad ?",
                "noGradShort": "no gradient" if n.no_grad else "?",
            }
            for n in nodes
        ],
        "steps": [
            {
                "phase": s.phase,
                "phaseText": phase_text[s.phase],
                "node": current,
                "touched": touched,
                "title": s.title,
                "lines": list(s.lines),
            }
            for s, current, touched in zip(steps, recorder.current, recorder.touched, strict=True)
        ],
    }
    rows = "\n".join(
        f'<tr id="cr-row-{n.id}"><td class="cr-mark"></td><th scope="row">{html.escape(n.name)}</th>'
        f'<td>{html.escape(n.how)}</td><td class="cr-data">?</td><td class="cr-grad">?</td>'
        f'<td class="cr-status"></td></tr>'
        for n in nodes
    )
    if svg is None:
        graph = (
            '<p class="cr-note">No picture: no Graphviz renderer was found (pip install graphviz-pure). '
            "The steps and the table below work without it.</p>"
        )
    else:
        graph = svg
    last = len(steps) - 1
    replacements = {
        "TITLE": html.escape(f"chainrule explorer: {root_name}"),
        "CSS": _CSS,
        "LAST": str(last),
        "GRAPH": graph,
        "ROWS": rows,
        "DATA": _json(data),
        "JS": _JS,
    }
    # One pass over the template: text put in (a label, the SVG) is never searched for markers.
    return re.sub(r"%%([A-Z]+)%%", lambda m: replacements[m.group(1)], _TEMPLATE)


class Explorer:
    """The recorded replay of backprop over one graph, and the page that steps through it.

    `.steps` holds every position of the page (start, one per forward node, one per backward node,
    end); `.grads` maps each value that takes a gradient to what `backward()` would give it, from a
    fresh start. `.html` is the page; `.save(path)` writes it; in Jupyter it shows inline.
    """

    def __init__(self, root: Value, recorder: _Recorder, svg: str | None) -> None:
        self.root = root
        self.steps: tuple[Step, ...] = tuple(recorder.steps)
        self.grads: dict[Value, float] = dict(recorder.grads)
        self.names: dict[Value, str] = dict(recorder.names)
        self.has_picture = svg is not None
        self.html: str = _page(recorder, svg)
        self._height = _frame_height(svg)

    def save(self, path: str | Path) -> Path:
        """Write the page to `path` (one self-contained .html file) and return the path."""
        path = Path(path)
        path.write_text(self.html, encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        # In an iframe the page keeps its own styles, script and keyboard handling, and several
        # explorers in one notebook do not meet. sandbox: scripts run, but with no access outside.
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" sandbox="allow-scripts" '
            f'title="{html.escape(f"chainrule explorer: {self.names[self.root]}", quote=True)}" '
            f'style="width: 100%; height: {self._height}px; border: 1px solid #d1d5db;"></iframe>'
        )

    def __repr__(self) -> str:
        return (
            f"<Explorer of {self.names[self.root]!r}: {len(self.names)} values, {len(self.steps) - 1} steps; "
            f".save('page.html') writes the page>"
        )


def _frame_height(svg: str | None) -> int:
    """A height for the notebook frame: the controls and panel, plus the picture up to a limit."""
    match = re.search(r'height="([\d.]+)pt"', svg or "")
    picture = int(float(match.group(1)) * 4 / 3) if match else 0
    return 470 + min(picture, 420)


def explore(
    root: Value,
    max_nodes: int = DEFAULT_MAX_NODES,
    rankdir: str = "LR",
    *,
    backend: str = "auto",
) -> Explorer:
    """Record the forward values and the backward sweep of `root`'s graph; returns an `Explorer`.

    The graph is not changed: no `.grad` is touched (the gradients live in the explorer). A graph
    with more than `max_nodes` values is refused with a ValueError (at most MAX_NODES_LIMIT).
    `rankdir` and `backend` are the drawing's (see `chainrule.draw_dot`).
    """
    _check(root, max_nodes, rankdir)
    recorder = _Recorder(root)
    recorder.run()
    svg = _svg(root, recorder, rankdir, backend)
    return Explorer(root, recorder, svg)


# --- the page's text: structure, looks, and a script that only displays the records -------------
_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>%%TITLE%%</title>
<style>%%CSS%%</style>
</head>
<body>
<header>
<h1>%%TITLE%%</h1>
<p class="cr-help">The forward pass computes each value; then the backward pass gives each node its
gradient, one node at a time, by the chain rule. Keys: <kbd>&larr;</kbd> <kbd>&rarr;</kbd> step,
<kbd>Space</kbd> play or pause, <kbd>Home</kbd> <kbd>End</kbd> first or last step.</p>
</header>
<div class="cr-controls" role="group" aria-label="Step controls">
<button type="button" id="cr-start" aria-keyshortcuts="Home">
 <span aria-hidden="true">&laquo;</span> Start</button>
<button type="button" id="cr-back" aria-keyshortcuts="ArrowLeft">
 <span aria-hidden="true">&#x25C0;</span> Back</button>
<button type="button" id="cr-play" aria-pressed="false" aria-keyshortcuts="Space">Play</button>
<button type="button" id="cr-next" aria-keyshortcuts="ArrowRight">
 Next <span aria-hidden="true">&#x25B6;</span></button>
<button type="button" id="cr-end" aria-keyshortcuts="End">
 End <span aria-hidden="true">&raquo;</span></button>
<label for="cr-slider">Step</label>
<input type="range" id="cr-slider" min="0" max="%%LAST%%" value="0" step="1">
<output id="cr-counter" for="cr-slider">Step 0 of %%LAST%%</output>
<button type="button" id="cr-fit" aria-pressed="true">Fit to width</button>
</div>
<section id="cr-panel" aria-live="polite" aria-atomic="true" aria-labelledby="cr-title">
<h2 id="cr-title">Loading the steps&hellip;</h2>
<ul id="cr-lines"></ul>
</section>
<div id="cr-graph" class="cr-graph cr-fit" tabindex="0" role="region" aria-label="The graph">%%GRAPH%%</div>
<p class="cr-legend">Thick outline and yellow: the current node. Dashed outline: its inputs.
Italic gradient: partial, more contributions are still to come. <q>?</q>: not computed yet.</p>
<details open>
<summary>All values</summary>
<table id="cr-table">
<thead><tr><th scope="col"><span class="cr-hidden">current</span></th><th scope="col">value</th>
<th scope="col">made by</th><th scope="col">data</th><th scope="col">grad</th>
<th scope="col">gradient</th></tr></thead>
<tbody>
%%ROWS%%
</tbody>
</table>
</details>
<script type="application/json" id="cr-data">%%DATA%%</script>
<script>%%JS%%</script>
</body>
</html>
"""

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; font-size: 16px;
  line-height: 1.45; color: #111827; background: #ffffff; margin: 0; padding: 12px 16px; }
h1 { font-size: 1.3rem; margin: 0 0 4px; }
.cr-help { margin: 0 0 10px; color: #374151; }
kbd { border: 1px solid #9ca3af; border-radius: 3px; padding: 0 4px; background: #f9fafb;
  font-family: inherit; }
.cr-controls { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; margin-bottom: 8px; }
button { font: inherit; padding: 4px 10px; border: 1px solid #6b7280; border-radius: 4px;
  background: #f3f4f6; color: #111827; cursor: pointer; }
button:hover { background: #e5e7eb; }
button[aria-pressed="true"] { background: #dbeafe; border-color: #1d4ed8; }
:focus-visible { outline: 3px solid #1d4ed8; outline-offset: 2px; }
#cr-slider { flex: 1 1 160px; min-width: 120px; }
#cr-counter { font-variant-numeric: tabular-nums; min-width: 14em; }
#cr-panel { border: 1px solid #d1d5db; border-left: 6px solid #b45309; border-radius: 4px;
  padding: 6px 12px; margin-bottom: 8px; min-height: 7.5em; background: #fffbeb; }
#cr-panel h2 { font-size: 1.05rem; margin: 2px 0 4px; }
#cr-lines { margin: 0; padding-left: 1.2em; font-size: 0.98rem;
  font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; }
.cr-graph { overflow: auto; max-height: 70vh; border: 1px solid #e5e7eb; border-radius: 4px; }
.cr-graph.cr-fit svg { max-width: 100%; height: auto; }
.node.cr-current polygon, .node.cr-current ellipse, .node.cr-current polyline {
  stroke: #92400e; stroke-width: 4px; }
.node.cr-current polygon, .node.cr-current ellipse { fill: #fde68a; }
.node.cr-touched polygon, .node.cr-touched ellipse, .node.cr-touched polyline {
  stroke: #b45309; stroke-width: 2.5px; stroke-dasharray: 6 3; }
.edge.cr-active path { stroke: #b45309; stroke-width: 3px; }
.edge.cr-active polygon { stroke: #b45309; fill: #b45309; }
.node text.cr-partial { font-style: italic; }
.node text.cr-unknown { fill: #6b7280; }
.cr-legend { color: #374151; font-size: 0.92rem; margin: 6px 0; }
.cr-note { padding: 8px 12px; margin: 0; }
table { border-collapse: collapse; font-size: 0.95rem; }
th, td { border-bottom: 1px solid #e5e7eb; padding: 2px 10px; text-align: left; }
td.cr-data, td.cr-grad { text-align: right; font-variant-numeric: tabular-nums;
  font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; }
td.cr-grad.cr-partial { font-style: italic; }
tr.cr-current { background: #fef3c7; font-weight: 600; }
tr.cr-current td.cr-mark::before { content: "\\25B6"; }
.cr-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);
  white-space: nowrap; }
"""

# The script reads the records (JSON made in Python) and shows the state at one step: which data
# are known, which gradients have arrived, the current node and the panel's text. It computes no
# number. Step k's state depends on k alone, so any order of Back/Next/slider gives the same view.
_JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("cr-data").textContent);
  var nodes = data.nodes, steps = data.steps, last = steps.length - 1;
  var byId = function (id) { return document.getElementById(id); };
  var slider = byId("cr-slider"), counter = byId("cr-counter"), play = byId("cr-play");
  var title = byId("cr-title"), lines = byId("cr-lines"), graph = byId("cr-graph"), fit = byId("cr-fit");
  var step = 0, timer = null;
  var edges = graph.querySelectorAll("g.edge");
  var views = nodes.map(function (n) {
    var group = byId("cr-" + n.id), row = byId("cr-row-" + n.id);
    var texts = group ? group.getElementsByTagName("text") : [];
    return {
      group: group,
      op: byId("cr-" + n.id + "_op"),
      data: texts.length >= 3 ? texts[texts.length - 2] : null,
      grad: texts.length >= 3 ? texts[texts.length - 1] : null,
      row: row,
      rowData: row ? row.querySelector(".cr-data") : null,
      rowGrad: row ? row.querySelector(".cr-grad") : null,
      rowStatus: row ? row.querySelector(".cr-status") : null
    };
  });

  function setText(el, text) { if (el && el.textContent !== text) { el.textContent = text; } }
  function mark(el, name, on) { if (el) { el.classList.toggle(name, on); } }
  function gradAt(n, k) {
    var found = null;
    for (var i = 0; i < n.grads.length && n.grads[i][0] <= k; i++) { found = n.grads[i]; }
    return found;
  }

  function show() {
    var s = steps[step];
    for (var i = 0; i < nodes.length; i++) {
      var n = nodes[i], v = views[i], known = n.dataStep <= step, g = gradAt(n, step);
      var current = s.node === n.id, touched = s.touched.indexOf(n.id) >= 0;
      setText(v.data, known ? n.dataText : data.unknownData);
      setText(v.grad, g ? g[1] : n.noGradText);
      mark(v.data, "cr-unknown", !known);
      mark(v.grad, "cr-unknown", !g);
      mark(v.grad, "cr-partial", !!(g && g[4]));
      mark(v.group, "cr-current", current);
      mark(v.op, "cr-current", current && s.phase === "backward");
      mark(v.group, "cr-touched", touched);
      mark(v.row, "cr-current", current);
      setText(v.rowData, known ? n.dataShort : data.unknownShort);
      if (v.rowData) { v.rowData.setAttribute("data-value", known ? n.dataExact : ""); }
      setText(v.rowGrad, g ? g[2] : n.noGradShort);
      if (v.rowGrad) { v.rowGrad.setAttribute("data-value", g ? g[3] : ""); }
      mark(v.rowGrad, "cr-partial", !!(g && g[4]));
      setText(v.rowStatus, g ? g[5] : "");
    }
    var op = s.node ? s.node + "_op" : null;
    for (var j = 0; j < edges.length; j++) {
      var to = edges[j].getAttribute("data-to"), from = edges[j].getAttribute("data-from");
      mark(edges[j], "cr-active", op !== null && (to === op || from === op));
    }
    setText(title, s.title);
    while (lines.firstChild) { lines.removeChild(lines.firstChild); }
    s.lines.forEach(function (text) {
      var li = document.createElement("li");
      li.textContent = text;
      lines.appendChild(li);
    });
    var where = "Step " + step + " of " + last + ": " + s.phaseText;
    setText(counter, where);
    slider.value = String(step);
    slider.setAttribute("aria-valuetext", where);
    if (s.node) { reveal(byId("cr-" + s.node)); }
  }

  function reveal(el) {
    if (!el || graph.classList.contains("cr-fit")) { return; }
    var box = graph.getBoundingClientRect(), r = el.getBoundingClientRect();
    if (r.left < box.left || r.right > box.right) { graph.scrollLeft += r.left - box.left - box.width / 3; }
    if (r.top < box.top || r.bottom > box.bottom) { graph.scrollTop += r.top - box.top - box.height / 3; }
  }

  function go(k) {
    step = Math.max(0, Math.min(last, k));
    show();
  }
  function pause() {
    if (timer !== null) { clearInterval(timer); timer = null; }
    setText(play, "Play");
    play.setAttribute("aria-pressed", "false");
  }
  function start() {
    if (step >= last) { go(0); }
    setText(play, "Pause");
    play.setAttribute("aria-pressed", "true");
    timer = setInterval(function () {
      if (step >= last) { pause(); } else { go(step + 1); }
    }, data.playMs);
  }
  function toggle() { if (timer === null) { start(); } else { pause(); } }
  function jump(k) { pause(); go(k); }

  byId("cr-start").addEventListener("click", function () { jump(0); });
  byId("cr-back").addEventListener("click", function () { jump(step - 1); });
  byId("cr-next").addEventListener("click", function () { jump(step + 1); });
  byId("cr-end").addEventListener("click", function () { jump(last); });
  play.addEventListener("click", toggle);
  slider.addEventListener("input", function () { jump(parseInt(slider.value, 10)); });
  fit.addEventListener("click", function () {
    var on = !graph.classList.contains("cr-fit");
    graph.classList.toggle("cr-fit", on);
    fit.setAttribute("aria-pressed", on ? "true" : "false");
    show();
  });
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) { return; }
    var t = e.target, tag = t && t.tagName ? t.tagName.toLowerCase() : "";
    if (tag === "input" || tag === "textarea" || tag === "select") { return; }  // the slider's own keys
    if (tag === "button" && (e.key === " " || e.key === "Enter")) { return; }  // a button's own click
    if (tag === "summary" && (e.key === " " || e.key === "Enter")) { return; }
    if (e.key === "ArrowRight") { jump(step + 1); }
    else if (e.key === "ArrowLeft") { jump(step - 1); }
    else if (e.key === "Home") { jump(0); }
    else if (e.key === "End") { jump(last); }
    else if (e.key === " " || e.key === "Spacebar") { toggle(); }
    else { return; }
    e.preventDefault();
  });
  go(0);
}());
"""


# --- the command --------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Configure the `chainrule explore` subcommand's arguments."""
    from .expr import add_expression_arguments

    add_expression_arguments(parser, "explore", "L.html")
    parser.add_argument(
        "-o", "--output", default="explorer.html", help="the page to write (.html; - prints it)"
    )
    parser.add_argument("--rankdir", default="LR", choices=list(_RANKDIRS), help="layout direction")
    parser.add_argument(
        "--max-nodes",
        type=int,
        default=DEFAULT_MAX_NODES,
        help=f"refuse graphs with more values (default {DEFAULT_MAX_NODES}, at most {MAX_NODES_LIMIT})",
    )
    parser.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "dot", "graphviz-pure"],
        help="renderer: system Graphviz dot if found, else pip's graphviz-pure (auto)",
    )


def _one_line(exc: BaseException) -> str:
    """The error as one line starting 'explore:' (the parser's own errors say 'draw:')."""
    message = " ".join(str(exc).split())
    if message.startswith("draw:"):
        message = "explore:" + message[len("draw:") :]
    return message if message.startswith("explore:") else f"explore: {message}"


def run(args: argparse.Namespace) -> int:
    """Run `chainrule explore`: build the expression safely, record it, write the page."""
    from .expr import build, parse_assignment

    try:
        if args.output != "-" and Path(args.output).suffix.lower() not in (".html", ".htm"):
            raise ValueError(
                f"explore: the page is HTML: give an output file ending in .html, got {args.output!r}"
            )
        values = dict(parse_assignment(item) for item in args.values)
        built = build(args.expression, values)
        root = built.output
        if not root.requires_grad:
            raise ValueError("explore: the expression depends on no input, so it has no gradients to show")
        explorer = explore(root, max_nodes=args.max_nodes, rankdir=args.rankdir, backend=args.backend)
        if args.output == "-":
            sys.stdout.write(explorer.html)
            return 0
        path = explorer.save(args.output)
    # One line for every way a user's input can fail, as `chainrule draw` does; anything else is a
    # bug and keeps its traceback.
    except (ValueError, ArithmeticError, RendererNotFound, OSError, subprocess.SubprocessError) as exc:
        print(f"chainrule {_one_line(exc)}", file=sys.stderr)
        return 2
    name = explorer.names[root]
    print(f"{name} = {root.data:.6g}")
    for input_name, leaf in built.inputs.items():
        print(f"d{name}/d{input_name} = {explorer.grads[leaf]:.6g}")
    if not explorer.has_picture:
        print(
            "chainrule explore: no Graphviz renderer found, so the page has no picture "
            "(pip install graphviz-pure)",
            file=sys.stderr,
        )
    print(f"wrote {path} ({len(explorer.steps) - 1} steps: open it in a browser)")
    return 0
