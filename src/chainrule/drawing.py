"""Pictures of computation graphs: DOT text (no dependency) and rendered SVG/PNG.

`to_dot(root)` writes the graph below `root` as Graphviz DOT text, the way the seed notebooks and
micrograd draw it: one record node `label | data | grad` per `Value`, one small node per operation,
edges in the direction the data flows. `draw_dot(root)` wraps the same text in a `Graph`, chainrule's
own small object used like a `graphviz.Digraph` (`.source`, `.pipe()`, `.render()`), which Jupyter
displays.

Rendering needs a Graphviz layout program. A system Graphviz (`dot` on PATH) is used when there is
one; otherwise chainrule runs `graphviz-pure`, a self-contained port of Graphviz that installs from
PyPI (`pip install graphviz-pure`), so a picture never needs more than pip. Every run of a layout
program has a time limit (`DEFAULT_TIMEOUT`). docs/drawing.md explains the choice.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .engine import Value, operation_of, reading_order
from .errors import PlaceholderError

__all__ = [
    "DEFAULT_TIMEOUT",
    "RANKDIRS",
    "Graph",
    "RenderError",
    "RenderTimeout",
    "RendererNotFound",
    "check_timeout",
    "draw_dot",
    "reading_order",
    "record_number",
    "find_renderer",
    "render_dot",
    "render_graph",
    "to_dot",
]

DEFAULT_MAX_NODES = 500
"""Above this many values a drawing stops being readable; the rest collapse into one node."""

RANKDIRS = ("LR", "RL", "TB", "BT")
"""The layout directions: left to right (the default), right to left, top to bottom, bottom to top."""
BACKENDS = ("auto", "dot", "graphviz-pure")
"""The renderers one can ask for: "auto" (a system `dot` if found, else graphviz-pure) or either one."""
PURE_COMMAND = "graphviz-pure"
# Every hint is a command that works as written (chainrule itself is installed from a checkout).
PURE_INSTALL = "pip install graphviz-pure"
SYSTEM_INSTALL = (
    "install a system Graphviz that provides `dot` (apt install graphviz, brew install graphviz, "
    "conda install graphviz, or https://graphviz.org/download/)"
)
INSTALL_HINT = (
    f"install one of: the pip renderer ({PURE_INSTALL}) or a system Graphviz that provides `dot` "
    "(apt install graphviz, brew install graphviz, conda install graphviz, or https://graphviz.org/download/)"
)

# Styles a teacher can tell apart at a glance, in `compile`'s words: parameters (leaves that take a
# gradient) are filled blue; a dashed outline means "takes no gradient": white for an input (data,
# a labelled leaf), grey for a constant (a number in the graph); the output has a thick border.
_LEAF_STYLE = 'style=filled fillcolor="#dbeafe"'
_INPUT_STYLE = 'style="filled,dashed" fillcolor="#ffffff"'
_CONST_STYLE = 'style="filled,dashed" fillcolor="#f3f4f6" fontcolor="#555555"'
_ROOT_STYLE = "penwidth=2"
_MORE_STYLE = 'shape=box style=dashed fontcolor="#555555"'
# %.4f shows 0.0000 below this and needless digits above the other: there, significant digits.
_SMALLEST_FIXED = 1e-4
_LARGEST_FIXED = 1e9


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


def record_number(x: Any) -> str:
    """A value's data or grad as a drawing shows it: %.4f as the seeds do (2.0000, -0.5000).

    Where %.4f would hide the number, three significant digits instead: 2.08e-07 rather than
    0.0000 for a tiny non-zero number, 1.23e+12 rather than thirteen digits for a huge one.
    """
    if isinstance(x, Value):  # a grad made by backward(create_graph=True) is itself a Value
        x = x.data
    x = float(x)
    if x != 0.0 and (abs(x) < _SMALLEST_FIXED or abs(x) >= _LARGEST_FIXED):  # inf and nan: %.4f
        return f"{x:.3g}"
    return f"{x:.4f}"


def _label_text(label: Any) -> str:
    """A node's label as text: None (or any other non-text a user assigned) never breaks a drawing."""
    if label is None:
        return ""
    return label if isinstance(label, str) else str(label)


def _data_text(node: Value) -> str:
    try:
        return record_number(node.data)
    except PlaceholderError:  # a placeholder or a node computed from one has no data yet
        return "?"


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
    if rankdir not in RANKDIRS:
        raise ValueError(f"to_dot: rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")
    if max_nodes is not None and max_nodes < 1:
        raise ValueError(f"to_dot: max_nodes must be at least 1 (or None for no limit), got {max_nodes!r}")
    if not isinstance(root, Value):
        raise TypeError(f"to_dot: needs a chainrule Value to draw, got {type(root).__name__}: {root!r}")
    # Ids follow the traversal, which depends only on the graph's structure and operand order,
    # never on id(): the same graph always gives the same text.
    order = reading_order(root)
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
        fields = [_escape_record(_label_text(label)), f"data {_data_text(node)}"]
        if show_grad:
            fields.append(f"grad {record_number(grads.get(node, node.grad) if grads else node.grad)}")
        attrs = [f'label="{{ {" | ".join(fields)} }}"']
        if highlight:
            if operation_of(node) is None:
                if node.requires_grad:
                    attrs.append(_LEAF_STYLE)
                else:
                    attrs.append(_INPUT_STYLE if node.label else _CONST_STYLE)
            if node is root:
                attrs.append(_ROOT_STYLE)
        lines.append(f"\t{uid} [{' '.join(attrs)}]")
        if operation_of(node) is not None:
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
    fills parameters (leaves that take a gradient) blue, draws inputs (labelled leaves that take
    none) and constants (unlabelled numbers) dashed, white and grey, and gives the output a thick
    border.
    `labels` and `grads` show, for the values they hold, that text and gradient instead of
    `.label` and `.grad` (the explorer draws gradients it computed without touching the graph).
    """
    body = _body(root, rankdir, show_grad, max_nodes, highlight, labels, grads)
    # The same layout as graphviz.Digraph.source, so draw_dot(root).source == to_dot(root).
    return "digraph {\n" + "".join(line + "\n" for line in body) + "}\n"


# --- rendering ----------------------------------------------------------------------------------
DEFAULT_TIMEOUT = 30.0
"""Seconds a layout program may run before it is stopped (Graphviz can take minutes on some graphs)."""

# Graphviz's network-simplex placement is what takes minutes on long chains with a shared input
# (`x1 = x0*a; x2 = x1*a; ...`); one pass of it per node keeps those graphs to seconds and leaves
# small pictures byte for byte as they were.
LAYOUT_FLAGS = ("-Gnslimit=1",)

# File suffixes chainrule can write, and the Graphviz format for each ("dot" is the text itself).
FORMATS = {"svg": "svg", "png": "png", "jpg": "jpeg", "jpeg": "jpeg", "dot": "dot", "gv": "dot"}

try:  # only for the exception base classes, so code that catches graphviz's errors keeps working
    import graphviz as _graphviz

    _NotFoundBase: type[Exception] = _graphviz.ExecutableNotFound
    _FailedBase: type[subprocess.CalledProcessError] = _graphviz.CalledProcessError
except ImportError:  # pragma: no cover - the graphviz package is optional
    _NotFoundBase = RuntimeError
    _FailedBase = subprocess.CalledProcessError


class RendererNotFound(_NotFoundBase):  # type: ignore[misc, valid-type]
    """Neither a system Graphviz `dot` nor the pip renderer graphviz-pure could be found."""

    def __init__(self, message: str) -> None:
        # graphviz.ExecutableNotFound formats its own message from a command; ours says more.
        RuntimeError.__init__(self, message)


class RenderError(_FailedBase):  # type: ignore[misc, valid-type]
    """The layout program ran but failed (exit code and its first line of stderr in the message)."""

    def __str__(self) -> str:
        stderr = self.stderr.decode(errors="replace") if isinstance(self.stderr, bytes) else self.stderr
        first = (stderr or "").strip().splitlines()[:1]
        program = os.path.basename(str(self.cmd[0]))
        return f"draw: {program} failed (exit {self.returncode}){': ' + first[0] if first else ''}"


class RenderTimeout(TimeoutError):
    """The layout program ran longer than its time limit and was stopped."""


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
            other = (
                "; graphviz-pure is installed: use backend 'graphviz-pure' or 'auto'"
                if _pure_executable()
                else f"; or {PURE_INSTALL}"
            )
            raise RendererNotFound(
                f"draw: backend 'dot' was asked for but no `dot` is on PATH: {SYSTEM_INSTALL}{other}"
            )
    found = _pure_executable()
    if found:
        return found
    if backend == PURE_COMMAND:
        raise RendererNotFound(
            f"draw: backend 'graphviz-pure' was asked for but it is not installed: {PURE_INSTALL}"
        )
    raise RendererNotFound(f"draw: cannot render a picture: no Graphviz `dot` on PATH; {INSTALL_HINT}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill a layout program and anything it started, and collect it."""
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)  # its own process group: see _run
        else:  # pragma: no cover
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass


def _run(command: list[str], data: bytes, timeout: float) -> bytes:
    """Run a layout program on DOT bytes within `timeout` seconds; return what it prints."""
    try:
        # A new session: on a time-out the whole group goes, including anything the program
        # started (a wrapper script's child would otherwise keep running).
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=os.name == "posix",
        )
    except OSError as exc:  # found a moment ago but not runnable (wrong platform, permissions)
        raise RendererNotFound(f"draw: could not run {command[0]!r} ({exc}); {INSTALL_HINT}") from exc
    try:
        out, err = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(proc)
        raise RenderTimeout(
            f"draw: rendering took longer than the time limit of {timeout:g} s and was stopped; draw "
            "fewer values (max_nodes, or --max-nodes) or write the DOT text instead (a .dot file)"
        ) from None
    except BaseException:  # KeyboardInterrupt included: never leave the program running
        _stop(proc)
        raise
    if proc.returncode != 0:
        raise RenderError(proc.returncode, command, output=out, stderr=err)
    return out


def check_timeout(timeout: Any, command: str = "draw") -> float:
    """`timeout` as float seconds; a one-line ValueError naming `command` unless it is a positive number."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < float("inf"):
        raise ValueError(f"{command}: timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def render_dot(
    graph: Any,
    format: str = "svg",  # noqa: A002 - graphviz's and the seeds' name for it
    *,
    backend: str = "auto",
    engine: str = "dot",
    timeout: float = DEFAULT_TIMEOUT,
) -> bytes:
    """Render a graph (a Value, a drawing from `draw_dot`, or DOT text) to bytes: svg, png, ...

    `backend` is "auto" (a system `dot` if there is one, else graphviz-pure), "dot" or
    "graphviz-pure". "dot" as a format gives the DOT text itself, with no renderer needed. A
    layout running longer than `timeout` seconds is stopped with `RenderTimeout`.
    """
    source = _source_of(graph)
    if format in ("dot", "gv"):
        return source.encode()
    timeout = check_timeout(timeout)
    command = [find_renderer(backend), f"-K{engine}", f"-T{format}", *LAYOUT_FLAGS]
    return _run(command, source.encode(), timeout)


def _source_of(graph: Any) -> str:
    if isinstance(graph, Value):
        return to_dot(graph)
    if isinstance(graph, str):
        return graph
    source = getattr(graph, "source", None)
    if isinstance(source, str):
        return source
    raise TypeError(f"render: needs a Value, a graphviz graph or DOT text, got {type(graph).__name__}")


def format_of(path: str | os.PathLike[str]) -> str | None:
    """The format that a file name's suffix asks for (see FORMATS), or None if chainrule cannot write it."""
    return FORMATS.get(Path(path).suffix.lower().lstrip("."))


def render_graph(
    graph: Any, path: str | os.PathLike[str], *, backend: str = "auto", timeout: float = DEFAULT_TIMEOUT
) -> Path:
    """Write a picture of `graph` (a Value, a drawing or DOT text) to `path`; the suffix picks the format.

    `.svg`, `.png`, `.jpg`/`.jpeg` are rendered; `.dot`/`.gv` get the DOT text. Returns the path.
    """
    path = Path(path)
    fmt = format_of(path)
    if fmt is None:
        raise ValueError(
            f"render_graph: cannot tell the format from {str(path)!r}: use .svg, .png, .jpg or .dot"
        )
    data = render_dot(graph, fmt, backend=backend, timeout=timeout)
    path.write_bytes(data)
    return path


class Graph:
    """A drawing of a graph, used like a `graphviz.Digraph`: `.source`, `.pipe()`, `.render()`, Jupyter.

    chainrule's own small object (it depends on no other package's internals): it renders with a
    system Graphviz `dot` when there is one and with pip's graphviz-pure otherwise, each run limited
    to `timeout` seconds. The last line of a Jupyter cell shows it as SVG.
    """

    def __init__(
        self,
        source: str,
        format: str = "svg",  # noqa: A002 - graphviz's name for it
        *,
        backend: str = "auto",
        engine: str = "dot",
        timeout: float = DEFAULT_TIMEOUT,
        filename: str = "Digraph.gv",
    ) -> None:
        if not isinstance(source, str):
            raise TypeError(f"Graph: the source must be DOT text (a str), got {type(source).__name__}")
        if backend not in BACKENDS:
            raise ValueError(f"draw_dot: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self.source = source
        self.format = format
        self.backend = backend
        self.engine = engine
        self.timeout = check_timeout(timeout)
        self.filename = filename

    def __str__(self) -> str:
        return self.source

    def __repr__(self) -> str:
        lines = self.source.count("\n")
        return (
            f"<chainrule.drawing.Graph: {lines} lines of DOT, format {self.format!r}, "
            f"backend {self.backend!r}>"
        )

    def pipe(
        self,
        format: str | None = None,  # noqa: A002
        encoding: str | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """The rendered picture: bytes, or text with an `encoding` (`pipe(encoding="utf-8")` for SVG)."""
        data = render_dot(
            self.source,
            format or self.format,
            backend=self.backend,
            engine=self.engine,
            timeout=self.timeout if timeout is None else timeout,
        )
        return data.decode(encoding) if encoding is not None else data

    def save(self, filename: str | os.PathLike[str] | None = None, directory: Any = None) -> str:
        """Write the DOT text to `filename` (default `self.filename`) in `directory`; returns its path."""
        path = Path(directory or "") / (filename if filename is not None else self.filename)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.source, encoding="utf-8")
        return os.fspath(path)

    def render(
        self,
        filename: str | os.PathLike[str] | None = None,
        directory: Any = None,
        cleanup: bool = False,
        format: str | None = None,  # noqa: A002
        *,
        outfile: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
    ) -> str:
        """Save the DOT text and render it next to it, as graphviz does; returns the picture's path.

        `render("g")` writes `g` (DOT) and `g.svg`; `render(outfile="g.png")` writes `g.gv` and
        `g.png` (the format from the suffix). `cleanup=True` removes the DOT file afterwards.
        """
        if outfile is not None:
            out = Path(outfile)
            if format is None:
                format = format_of(out)  # noqa: A001
                if format is None:
                    raise ValueError(
                        f"render: cannot tell the format from {str(out)!r}: use .svg, .png, .jpg or .dot, "
                        "or pass format="
                    )
            if filename is None:
                filename = out.with_suffix(".gv").name
                directory = directory if directory is not None else out.parent
        fmt = format or self.format
        source_path = Path(self.save(filename, directory))
        if outfile is None:
            out = source_path.with_name(f"{source_path.name}.{fmt}")
        data = self.pipe(fmt, timeout=timeout)
        out.write_bytes(data)
        if cleanup:
            source_path.unlink(missing_ok=True)
        return os.fspath(out)

    def _repr_svg_(self) -> str:
        return self.pipe("svg", encoding="utf-8")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **_: Any) -> dict[str, str]:
        """What Jupyter shows: the SVG picture, or the one-line reason it could not be drawn."""
        try:
            return {"image/svg+xml": self._repr_svg_()}
        except (RendererNotFound, RenderTimeout, RenderError) as exc:
            return {"text/plain": str(exc)}


def draw_dot(
    root: Value,
    format: str = "svg",  # noqa: A002 - graphviz's and the seeds' name for it
    rankdir: str = "LR",
    *,
    show_grad: bool = True,
    max_nodes: int | None = DEFAULT_MAX_NODES,
    highlight: bool = True,
    backend: str = "auto",
    timeout: float = DEFAULT_TIMEOUT,
) -> Graph:
    """The graph below `root` as a drawing that Jupyter shows, used like a `graphviz.Digraph`.

    `.source` is `to_dot`'s text; `.pipe()` and `.render()` give the picture. It renders with a
    system Graphviz when `dot` is on PATH and with pip's graphviz-pure otherwise; `backend="dot"`
    or `backend="graphviz-pure"` forces one. The other options are `to_dot`'s.
    """
    if backend not in BACKENDS:
        raise ValueError(f"draw_dot: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    source = to_dot(root, rankdir, show_grad=show_grad, max_nodes=max_nodes, highlight=highlight)
    return Graph(source, format, backend=backend, timeout=timeout)
