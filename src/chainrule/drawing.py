"""Pictures of computation graphs: DOT text (no dependency) and rendered SVG/PNG.

`to_dot(root)` writes the graph below `root` as Graphviz DOT text, the way the seed notebooks and
micrograd draw it: one record node `label | data | grad` per `Value`, one small node per operation,
edges in the direction the data flows. `draw_dot(root)` wraps the same text in a `graphviz.Digraph`,
which Jupyter displays.

Rendering needs a Graphviz layout program. A system Graphviz (`dot` on PATH) is used when there is
one; otherwise chainrule runs `graphviz-pure`, a self-contained port of Graphviz that installs from
PyPI (`pip install "chainrule[viz]"`), so a picture never needs more than pip. docs/drawing.md
explains the choice.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import sysconfig
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .engine import Value
from .errors import PlaceholderError

__all__ = ["RendererNotFound", "draw_dot", "find_renderer", "render_dot", "render_graph", "to_dot"]

DEFAULT_MAX_NODES = 500
"""Above this many values a drawing stops being readable; the rest collapse into one node."""

BACKENDS = ("auto", "dot", "graphviz-pure")
PURE_COMMAND = "graphviz-pure"
INSTALL_HINT = (
    "install one of: the pip renderer (pip install 'chainrule[viz]', or pip install graphviz-pure) "
    "or a system Graphviz that provides `dot` (apt install graphviz, brew install graphviz, "
    "conda install graphviz, or https://graphviz.org/download/)"
)

# Styles a teacher can tell apart at a glance: inputs and parameters (leaves that take a gradient)
# are filled blue, constants are grey and dashed, the output has a thick border.
_LEAF_STYLE = 'style=filled fillcolor="#dbeafe"'
_CONST_STYLE = 'style="filled,dashed" fillcolor="#f3f4f6" fontcolor="#555555"'
_ROOT_STYLE = "penwidth=2"
_MORE_STYLE = 'shape=box style=dashed fontcolor="#555555"'


# --- DOT text -----------------------------------------------------------------------------------
def _escape_string(text: str) -> str:
    """`text` made safe inside a DOT double-quoted string (backslashes and quotes escaped)."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_record(text: str) -> str:
    """`text` made safe as one field of a record label, where { } | < > are structure."""
    text = text.replace("\\", "\\\\")
    for ch in "{}|<>":
        text = text.replace(ch, "\\" + ch)
    # In a record label, \n is the line-break escape, so a user's newline is kept as a line break.
    return text.replace('"', '\\"').replace("\n", "\\n").replace("\r", "")


def _number(x: Any) -> str:
    """A value's data or grad formatted as the seeds do (%.4f); '?' for a placeholder's data."""
    if isinstance(x, Value):  # a grad made by backward(create_graph=True) is itself a Value
        x = x.data
    return f"{x:.4f}"


def _data_text(node: Value) -> str:
    try:
        return _number(node.data)
    except PlaceholderError:  # a placeholder or a node computed from one has no data yet
        return "?"


def _reading_order(root: Value) -> list[Value]:
    """Every value below `root`, inputs before the values made from them, first operands first.

    An iterative depth-first search (a graph of 10^5 nodes needs no recursion) that visits operands
    left to right, so `a*b + c` numbers a, b, a*b, c, ... in the order a reader meets them.
    """
    order: list[Value] = []
    seen = {root}
    stack: list[tuple[Value, int]] = [(root, 0)]
    while stack:
        node, i = stack[-1]
        children = node._prev
        # advance to the next operand not seen yet; when there is none, the node is finished
        while i < len(children) and children[i] in seen:
            i += 1
        if i == len(children):
            stack.pop()
            order.append(node)
            continue
        stack[-1] = (node, i + 1)
        seen.add(children[i])
        stack.append((children[i], 0))
    return order


def _select(root: Value, order: list[Value], max_nodes: int) -> set[Value] | None:
    """The `max_nodes` values nearest the root (breadth-first), or None when all of them fit."""
    if len(order) <= max_nodes:
        return None
    kept = {root}
    queue = deque([root])
    while queue and len(kept) < max_nodes:
        node = queue.popleft()
        for child in node._prev:
            if child not in kept:
                kept.add(child)
                queue.append(child)
                if len(kept) == max_nodes:
                    break
    return kept


def _body(
    root: Value,
    rankdir: str,
    show_grad: bool,
    max_nodes: int | None,
    highlight: bool,
    labels: Mapping[Value, str] | None = None,
    grads: Mapping[Value, float] | None = None,
) -> list[str]:
    """The lines between `digraph {` and `}`, one statement per line, tab-indented."""
    if rankdir not in ("LR", "RL", "TB", "BT"):
        raise ValueError(f"to_dot: rankdir must be one of LR, RL, TB, BT, got {rankdir!r}")
    if max_nodes is not None and max_nodes < 1:
        raise ValueError(f"to_dot: max_nodes must be at least 1 (or None for no limit), got {max_nodes!r}")
    if not isinstance(root, Value):
        raise TypeError(f"to_dot: needs a chainrule Value to draw, got {type(root).__name__}: {root!r}")
    # Ids follow the traversal, which depends only on the graph's structure and operand order,
    # never on id(): the same graph always gives the same text.
    order = _reading_order(root)
    total = len(order)
    kept = _select(root, order, max_nodes) if max_nodes is not None else None
    if kept is not None:
        order = [node for node in order if node in kept]
    ids = {node: f"n{i}" for i, node in enumerate(order)}

    lines = [f"\tgraph [rankdir={rankdir}]", "\tnode [shape=record]"]
    edges: list[str] = []
    cut_ops: list[str] = []  # op nodes that have inputs hidden behind the "... N more" node
    for node in order:
        uid = ids[node]
        label = labels.get(node, node.label) if labels else node.label
        fields = [_escape_record(label), f"data {_data_text(node)}"]
        if show_grad:
            fields.append(f"grad {_number(grads.get(node, node.grad) if grads else node.grad)}")
        attrs = [f'label="{{ {" | ".join(fields)} }}"']
        if highlight:
            if node._fn is None:
                attrs.append(_LEAF_STYLE if node.requires_grad else _CONST_STYLE)
            if node is root:
                attrs.append(_ROOT_STYLE)
        lines.append(f"\t{uid} [{' '.join(attrs)}]")
        if node._fn is not None:
            op_id = f"{uid}_op"
            symbol = _escape_string(node._op)
            lines.append(f'\t{op_id} [label="{symbol}" shape=ellipse]')
            hidden = False
            # One edge per operand, in operand order: a*a shows two arrows into '*', as it should.
            for child in node._prev:
                if child in ids:
                    edges.append(f"\t{ids[child]} -> {op_id}")
                else:
                    hidden = True
            if hidden:
                cut_ops.append(op_id)
            edges.append(f"\t{op_id} -> {uid}")
    if kept is not None:
        lines.append(f'\tmore [label="... {total - len(order)} more" {_MORE_STYLE}]')
        edges.extend(f"\tmore -> {op_id}" for op_id in cut_ops)
    return lines + edges


def to_dot(
    root: Value,
    rankdir: str = "LR",
    *,
    show_grad: bool = True,
    max_nodes: int | None = DEFAULT_MAX_NODES,
    highlight: bool = True,
    labels: Mapping[Value, str] | None = None,
    grads: Mapping[Value, float] | None = None,
) -> str:
    """The graph below `root` as Graphviz DOT text: a record `label | data | grad` per Value.

    `rankdir` is LR (left to right, the default), TB, RL or BT. `show_grad=False` leaves out the
    grads (a picture of the forward pass). Beyond `max_nodes` values (None: no limit), only the
    ones nearest the output are drawn and the rest become one "... N more" node. `highlight`
    fills leaves that take a gradient blue, constants grey, and gives the output a thick border.
    `labels` and `grads` show, for the values they hold, that text and gradient instead of
    `.label` and `.grad` (the explorer draws gradients it computed without touching the graph).
    """
    body = _body(root, rankdir, show_grad, max_nodes, highlight, labels, grads)
    # The same layout as graphviz.Digraph.source, so draw_dot(root).source == to_dot(root).
    return "digraph {\n" + "".join(line + "\n" for line in body) + "}\n"


# --- rendering ----------------------------------------------------------------------------------
try:
    import graphviz as _graphviz

    _NotFoundBase: type[Exception] = _graphviz.ExecutableNotFound
except ImportError:  # pragma: no cover - the viz extra is missing; to_dot still works
    _graphviz = None
    _NotFoundBase = RuntimeError


def _import_graphviz() -> Any:
    if _graphviz is None:
        raise ImportError(
            "draw_dot needs the graphviz Python package: pip install 'chainrule[viz]' "
            "(to_dot(root) gives the DOT text without it)"
        )
    return _graphviz


class RendererNotFound(_NotFoundBase):  # type: ignore[misc, valid-type]
    """Neither a system Graphviz `dot` nor the pip renderer graphviz-pure could be found."""

    def __init__(self, message: str) -> None:
        # graphviz.ExecutableNotFound formats its own message from a command; ours says more.
        RuntimeError.__init__(self, message)


def _pure_executable() -> str | None:
    """The graphviz-pure program installed with this Python, else one on PATH."""
    # This Python's own scripts directory first: Jupyter kernels and `venv/bin/python` often run
    # without the venv's bin on PATH, and a PATH wrapper (pyenv's shims) adds ~0.1 s per call.
    for scripts in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        for name in (PURE_COMMAND, PURE_COMMAND + ".exe"):
            candidate = os.path.join(scripts, name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
    return shutil.which(PURE_COMMAND)


def find_renderer(backend: str = "auto") -> str:
    """The path of the layout program that `backend` selects ("auto": system dot, else graphviz-pure)."""
    if backend not in BACKENDS:
        raise ValueError(f"draw: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend in ("auto", "dot"):
        found = shutil.which("dot")
        if found:
            return found
        if backend == "dot":
            raise RendererNotFound(
                f"draw: backend='dot' was asked for but no `dot` is on PATH; {INSTALL_HINT}"
            )
    found = _pure_executable()
    if found:
        return found
    if backend == PURE_COMMAND:
        raise RendererNotFound(
            "draw: backend='graphviz-pure' was asked for but it is not installed: pip install graphviz-pure "
            "(or pip install 'chainrule[viz]')"
        )
    raise RendererNotFound(f"draw: cannot render a picture: no Graphviz `dot` on PATH; {INSTALL_HINT}")


def _run(command: list[str], data: bytes, quiet: bool = True) -> bytes:
    """Run a layout program on DOT bytes and return what it prints; a clear error if it fails."""
    try:
        proc = subprocess.run(command, input=data, capture_output=True, check=False)
    except OSError as exc:  # found a moment ago but not runnable (wrong platform, permissions)
        raise RendererNotFound(f"draw: could not run {command[0]!r} ({exc}); {INSTALL_HINT}") from exc
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip()
        if _graphviz is not None:
            raise _graphviz.CalledProcessError(proc.returncode, command, output=proc.stdout, stderr=message)
        raise RuntimeError(f"draw: {command[0]} failed (exit {proc.returncode}): {message}")
    if not quiet and proc.stderr:
        sys.stderr.write(proc.stderr.decode(errors="replace"))
    return proc.stdout


def render_dot(
    graph: Any,
    format: str = "svg",  # noqa: A002 - graphviz's and the seeds' name for it
    *,
    backend: str = "auto",
    engine: str = "dot",
) -> bytes:
    """Render a graph (a Value, a graphviz Digraph/Source, or DOT text) to bytes: svg, png, ...

    `backend` is "auto" (a system `dot` if there is one, else graphviz-pure), "dot" or
    "graphviz-pure". "dot" as a format gives the DOT text itself, with no renderer needed.
    """
    source = _source_of(graph)
    if format in ("dot", "gv"):
        return source.encode()
    command = [find_renderer(backend), f"-K{engine}", f"-T{format}"]
    return _run(command, source.encode())


def _source_of(graph: Any) -> str:
    if isinstance(graph, Value):
        return to_dot(graph)
    if isinstance(graph, str):
        return graph
    source = getattr(graph, "source", None)
    if isinstance(source, str):
        return source
    raise TypeError(f"render: needs a Value, a graphviz graph or DOT text, got {type(graph).__name__}")


def render_graph(graph: Any, path: str | os.PathLike[str], *, backend: str = "auto") -> Path:
    """Write a picture of `graph` (a Value, a Digraph or DOT text) to `path`; the suffix picks the format.

    `.svg`, `.png`, `.jpg`/`.jpeg` are rendered; `.dot`/`.gv` get the DOT text. Returns the path.
    """
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    formats = {"svg": "svg", "png": "png", "jpg": "jpeg", "jpeg": "jpeg", "dot": "dot", "gv": "dot"}
    if suffix not in formats:
        raise ValueError(
            f"render_graph: cannot tell the format from {str(path)!r}: use .svg, .png, .jpg or .dot"
        )
    data = render_dot(graph, formats[suffix], backend=backend)
    path.write_bytes(data)
    return path


def _pipe_lines(
    backend: str,
    engine: str,
    fmt: str,
    input_lines: Iterable[str],
    *,
    input_encoding: str,
    renderer: str | None = None,
    formatter: str | None = None,
    neato_no_op: Any = None,
    quiet: bool = False,
) -> bytes:
    """graphviz.backend.piping.pipe_lines, run by the layout program that `backend` selects."""
    flag = ":".join(part for part in (fmt, renderer, formatter) if part is not None)
    command = [find_renderer(backend), f"-K{engine}", f"-T{flag}"]
    if neato_no_op:
        command.append(f"-n{int(neato_no_op)}")
    return _run(command, "".join(input_lines).encode(input_encoding), quiet=quiet)


def _pipe_lines_string(
    backend: str, engine: str, fmt: str, input_lines: Iterable[str], *, encoding: str, **kwargs: Any
) -> str:
    """graphviz.backend.piping.pipe_lines_string, with our renderer choice."""
    return _pipe_lines(backend, engine, fmt, input_lines, input_encoding=encoding, **kwargs).decode(encoding)


def _render_file(
    backend: str,
    engine: str,
    fmt: str | None,
    filepath: Any,
    renderer: str | None = None,
    formatter: str | None = None,
    neato_no_op: Any = None,
    quiet: bool = False,
    *,
    outfile: Any = None,
    raise_if_result_exists: bool = False,
    overwrite_filepath: bool = False,
) -> str:
    """graphviz.backend.rendering.render (DOT file in, picture file out), with our renderer choice."""
    import graphviz
    from graphviz.backend import rendering

    filepath = Path(filepath)
    if outfile is not None:
        outfile = Path(outfile)
        fmt = rendering.get_format(outfile, format=fmt)
    else:
        outfile = rendering.get_outfile(filepath, format=fmt, renderer=renderer, formatter=formatter)
    if raise_if_result_exists and outfile.exists():
        raise graphviz.FileExistsError(f"output file exists: {os.fspath(outfile)!r}")
    data = _pipe_lines(
        backend,
        engine,
        fmt,
        [filepath.read_text(encoding="utf-8")],
        input_encoding="utf-8",
        renderer=renderer,
        formatter=formatter,
        neato_no_op=neato_no_op,
        quiet=quiet,
    )
    outfile.write_bytes(data)
    return os.fspath(outfile)


def _make_digraph_class() -> type:
    """A graphviz.Digraph subclass that renders with `find_renderer`'s choice of program."""
    graphviz = _import_graphviz()

    class Digraph(graphviz.Digraph):  # type: ignore[misc, name-defined]
        """A graphviz.Digraph whose pipe/render/Jupyter display also work with pip's graphviz-pure."""

        # graphviz runs `dot` through three small hooks (kept as properties so its tests can mock
        # them). Routing them through chainrule's renderer choice makes pipe(), render(), view()
        # and Jupyter's _repr_mimebundle_ work with either program, and changes nothing else.
        chainrule_backend = "auto"

        @property
        def _pipe_lines(self) -> Any:
            return functools.partial(_pipe_lines, self.chainrule_backend)

        @property
        def _pipe_lines_string(self) -> Any:
            return functools.partial(_pipe_lines_string, self.chainrule_backend)

        @property
        def _render(self) -> Any:
            return functools.partial(_render_file, self.chainrule_backend)

    Digraph.__module__ = __name__
    Digraph.__qualname__ = "Digraph"
    return Digraph


_DIGRAPH: type | None = None


def draw_dot(
    root: Value,
    format: str = "svg",  # noqa: A002 - graphviz's and the seeds' name for it
    rankdir: str = "LR",
    *,
    show_grad: bool = True,
    max_nodes: int | None = DEFAULT_MAX_NODES,
    highlight: bool = True,
    backend: str = "auto",
) -> Any:
    """The graph below `root` as a `graphviz.Digraph` (shows in Jupyter; `.source` is `to_dot`'s text).

    It renders with a system Graphviz when `dot` is on PATH and with pip's graphviz-pure otherwise;
    `backend="dot"` or `backend="graphviz-pure"` forces one. The other options are `to_dot`'s.
    """
    global _DIGRAPH
    if backend not in BACKENDS:
        raise ValueError(f"draw_dot: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if _DIGRAPH is None:
        _DIGRAPH = _make_digraph_class()
    body = _body(root, rankdir, show_grad, max_nodes, highlight)
    graph = _DIGRAPH(format=format)
    graph.chainrule_backend = backend
    graph.body.extend(line + "\n" for line in body)
    return graph
