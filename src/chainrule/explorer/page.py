"""The explorer's page: the recorder's steps, the drawing as inline SVG, and the page's own files.

`explore(root)` records the replay (`chainrule.explorer.recorder`), draws the graph, and puts both
into one self-contained HTML page: `assets/page.html` (the structure), `assets/page.css` (the looks)
and `assets/page.js` (a script that only displays the records; it computes no number), all inlined,
so the page needs no network. The asset files ship in the wheel as package data.
"""

from __future__ import annotations

import html
import json
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..drawing import (
    DEFAULT_TIMEOUT,
    RendererNotFound,
    RenderTimeout,
    check_timeout,
    record_number,
    render_dot,
    to_dot,
)
from ..engine import Value
from .recorder import DEFAULT_MAX_NODES, Recorder, Step, check_graph, format_number

__all__ = ["Explorer", "explore", "page_asset"]

_PLAY_MS = 900  # the pause between two steps while playing
MIN_TEXT_PX = 10
"""The smallest text the picture may show by default, in screen pixels: below it, no fit to width."""


@cache
def page_asset(name: str) -> str:
    """The text of one of the page's files (`page.html`, `page.css`, `page.js`), read once."""
    return resources.files("chainrule.explorer").joinpath("assets", name).read_text(encoding="utf-8")


_GROUP = re.compile(r'<g id="(?:node|edge)\d+" class="(node|edge)">\s*<title>([^<]*)</title>')
_ID = re.compile(r"n\d+(?:_op)?")


def _svg(
    root: Value, recorder: Recorder, rankdir: str, backend: str, timeout: float
) -> tuple[str | None, str]:
    """The graph as inline SVG, groups renamed for the page's script, or None and why there is none.

    Without a renderer, or when the layout takes longer than `timeout` seconds, the page still
    steps through everything but the picture: a note says why, in one line.
    """
    dot = to_dot(
        root,
        rankdir=rankdir,
        max_nodes=None,
        labels=recorder.generated,
        grads={node: recorder.grads.get(node, 0.0) for node in recorder.forward},
    )
    try:
        text = render_dot(dot, "svg", backend=backend, timeout=timeout).decode("utf-8")
    except RendererNotFound:
        return None, "no Graphviz renderer was found (pip install graphviz-pure)"
    except RenderTimeout:
        return None, (
            f"the drawing took longer than the time limit of {timeout:g} s "
            "(explore(..., timeout=) or --timeout gives it longer)"
        )
    start = text.find("<svg")
    if start < 0:  # pragma: no cover - a renderer that printed no SVG
        return None, "the renderer printed no SVG"
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
    return text.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1), ""


def _json(data: Any) -> str:
    """JSON that is safe inside a <script> element (no '</script>' or '<!--' can appear)."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _page(recorder: Recorder, svg: str | None, note: str) -> str:
    """The whole page: the template with the records, the table, the picture (or the note) inlined."""
    root_name = recorder.names[recorder.root]
    nodes = [recorder.nodes[node] for node in recorder.forward]
    steps = recorder.steps
    phase_text = {"start": "before the forward pass", "forward": "forward pass", "backward": "backward pass",
                  "end": "done"}  # fmt: skip
    data = {
        "unknownData": "data ?",
        "unknownShort": "?",
        "playMs": _PLAY_MS,
        "minTextPx": MIN_TEXT_PX,
        "nodes": [
            {
                "id": n.id,
                "name": n.name,
                "dataStep": n.data_step,
                "dataText": f"data {record_number(n.data)}",
                "dataShort": format_number(n.data),
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
        f'<td>{html.escape(n.how)}</td><td class="cr-data">?</td><td class="cr-grad">?</td></tr>'
        for n in nodes
    )
    if svg is None:
        graph = (
            f'<p class="cr-note">No picture: {html.escape(note)}. '
            "The steps and the table below work without it.</p>"
        )
    else:
        graph = svg
    last = len(steps) - 1
    replacements = {
        "TITLE": html.escape(f"chainrule explorer: {root_name}"),
        "CSS": page_asset("page.css"),
        "LAST": str(last),
        "GRAPH": graph,
        "ROWS": rows,
        "DATA": _json(data),
        "JS": page_asset("page.js"),
    }
    # One pass over the template: text put in (a label, the SVG) is never searched for markers.
    return re.sub(r"%%([A-Z]+)%%", lambda m: replacements[m.group(1)], page_asset("page.html"))


class Explorer:
    """The recorded replay of backprop over one graph, and the page that steps through it.

    `.steps` holds every position of the page (start, one per forward node, one per backward node,
    end); `.grads` maps each value that takes a gradient to what `backward()` would give it, from a
    fresh start. `.html` is the page; `.save(path)` writes it; in Jupyter it shows inline.
    """

    def __init__(self, root: Value, recorder: Recorder, svg: str | None, note: str = "") -> None:
        self.root = root
        self.steps: tuple[Step, ...] = tuple(recorder.steps)
        self.grads: dict[Value, float] = dict(recorder.grads)
        self.names: dict[Value, str] = dict(recorder.names)
        self.has_picture = svg is not None
        self.picture_note = note  # why the page has no picture ("" when it has one)
        self.html: str = _page(recorder, svg, note)
        self._height = _frame_height(svg)

    @property
    def step_count(self) -> int:
        """The number of steps, as the page and the command count them: `steps[0]` is step 0, the start."""
        return len(self.steps) - 1

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
            f"<Explorer of {self.names[self.root]!r}: {len(self.names)} values, {self.step_count} steps; "
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
    timeout: float = DEFAULT_TIMEOUT,
) -> Explorer:
    """Record the forward values and the backward sweep of `root`'s graph; returns an `Explorer`.

    The graph is not changed: no `.grad` is touched (the gradients live in the explorer). A graph
    with more than `max_nodes` values is refused with a ValueError (at most MAX_NODES_LIMIT).
    `rankdir` and `backend` are the drawing's (see `chainrule.draw_dot`). The picture may take
    `timeout` seconds to lay out; past that (or with no renderer) the page has everything but the
    picture, and `.picture_note` says why.
    """
    check_graph(root, max_nodes, rankdir)
    timeout = check_timeout(timeout, "explore")
    recorder = Recorder(root)
    recorder.run()
    svg, note = _svg(root, recorder, rankdir, backend, timeout)
    return Explorer(root, recorder, svg, note)
