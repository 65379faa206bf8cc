"""Tests for chainrule.drawing: DOT text (golden files), cut-offs, and real rendering with both renderers."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

import chainrule as cr
from chainrule import drawing
from chainrule.drawing import RendererNotFound, draw_dot, find_renderer, render_dot, render_graph, to_dot
from conftest import REQUIRE_ALL, need

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("CHAINRULE_UPDATE_GOLDEN") == "1"


def seed001() -> cr.Value:
    """The expression of seed notebooks 001/002/003: L = (a*b + c) * f, with labels, after backward."""
    a = cr.Value(2.0, label="a")
    b = cr.Value(-3.0, label="b")
    c = cr.Value(10.0, label="c")
    e = a * b
    e.label = "e"
    d = e + c
    d.label = "d"
    f = cr.Value(-2.0, label="f")
    L = d * f
    L.label = "L"
    L.backward()
    return L


def neuron() -> cr.Value:
    """Seed 001's neuron o = tanh(x1*w1 + x2*w2 + b), after backward."""
    x1, x2 = cr.Value(2.0, label="x1"), cr.Value(0.0, label="x2")
    w1, w2 = cr.Value(-3.0, label="w1"), cr.Value(1.0, label="w2")
    b = cr.Value(6.8813735870195432, label="b")
    n = x1 * w1 + x2 * w2 + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    o.backward()
    return o


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; rerun with CHAINRULE_UPDATE_GOLDEN=1 if on purpose"


def need_system_dot() -> str:
    """The system `dot`, or skip (fail in CI, which installs apt's graphviz)."""
    found = shutil.which("dot")
    if found is None:
        message = "no system Graphviz `dot` on PATH (apt install graphviz)"
        if REQUIRE_ALL:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def need_pure() -> str:
    found = drawing._pure_executable()
    if found is None:
        message = "graphviz-pure is not installed (pip install -e '.[viz]')"
        if REQUIRE_ALL:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def svg_texts(svg: str) -> list[str]:
    """The text elements of an SVG, as a reader sees them."""
    return [t.replace("&#45;", "-") for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]


# --- DOT text ---------------------------------------------------------------------------------------
def test_seed001_golden() -> None:
    check_golden("seed001.dot", to_dot(seed001()))


def test_seed001_forward_only_golden() -> None:
    check_golden("seed001_no_grad.dot", to_dot(seed001(), show_grad=False))


def test_neuron_golden_top_to_bottom_plain() -> None:
    check_golden("neuron_tb_plain.dot", to_dot(neuron(), rankdir="TB", highlight=False))


def test_cutoff_golden() -> None:
    check_golden("neuron_max6.dot", to_dot(neuron(), max_nodes=6))


def test_records_show_label_data_grad_and_one_op_node_per_operation() -> None:
    text = to_dot(seed001())
    assert '[label="{ a | data 2.0000 | grad 6.0000 }"' in text
    assert '[label="{ L | data -8.0000 | grad 1.0000 }"' in text
    assert len(re.findall(r"_op \[label=", text)) == 3  # *, +, *
    assert "graph [rankdir=LR]" in text


def test_edges_follow_the_data_flow() -> None:
    text = to_dot(seed001())
    ids = dict(re.findall(r"(n\d+) \[label=\"\{ (\w)", text))
    names = {v: k for k, v in ids.items()}
    # a and b flow into the op that makes e, and that op flows into e
    assert f"{names['a']} -> {names['e']}_op" in text
    assert f"{names['b']} -> {names['e']}_op" in text
    assert f"{names['e']}_op -> {names['e']}" in text
    assert f"{names['L']} ->" not in text  # the output flows nowhere


def test_ids_follow_reading_order_not_memory_addresses() -> None:
    first, second = to_dot(seed001()), to_dot(seed001())
    assert first == second
    assert str(id(seed001())) not in first
    assert re.search(r"n0 \[label=\"\{ a ", first)  # the first operand is met first


def test_draw_dot_source_is_to_dot_text() -> None:
    root = seed001()
    graph = draw_dot(root, rankdir="TB", show_grad=False)
    assert graph.source == to_dot(root, rankdir="TB", show_grad=False) == str(graph)
    assert graph.format == "svg"
    # chainrule's own object, used like a graphviz.Digraph (issue 10 item 13: no private hooks)
    assert isinstance(graph, drawing.Graph)
    for name in ("source", "pipe", "render", "save", "_repr_mimebundle_", "_repr_svg_"):
        assert hasattr(graph, name), name


def test_leaves_that_take_a_gradient_look_different_from_constants() -> None:
    x = cr.Value(3.0, label="x")
    y = x * 2 + cr.Value(1.0, label="k", requires_grad=False)
    text = to_dot(y)
    x_line = next(line for line in text.splitlines() if "{ x |" in line)
    k_line = next(line for line in text.splitlines() if "{ k |" in line)
    two_line = next(line for line in text.splitlines() if "data 2.0000" in line)
    assert 'fillcolor="#dbeafe"' in x_line and "dashed" not in x_line
    assert "dashed" in k_line and "dashed" in two_line
    assert "dashed" not in to_dot(y, highlight=False) and "fillcolor" not in to_dot(y, highlight=False)


def test_repeated_operand_draws_one_edge_per_operand() -> None:
    a = cr.Value(3.0, label="a")
    text = to_dot(a * a)
    assert text.count("n0 -> n1_op") == 2


def test_max_nodes_keeps_the_values_nearest_the_output() -> None:
    x = cr.Value(1.0, label="x")
    y = x
    for i in range(20):
        y = y + 1
        y.label = f"s{i}"
    text = to_dot(y, max_nodes=5)
    records = re.findall(r"\{ (\w*) \| data", text)
    assert len(records) == 5
    assert "s19" in records and "s18" in records and "x" not in records
    total = len(cr.engine.topological_order(y))
    assert f'label="... {total - 5} more"' in text
    assert text.count("more ->") == 1  # one op has hidden inputs
    assert "more" not in to_dot(y, max_nodes=None)
    assert "more" not in to_dot(y, max_nodes=total)


def test_hundred_thousand_nodes_without_recursion() -> None:
    x = cr.Value(0.5, label="x")
    y = x
    for _ in range(50_000):
        y = y * 1.0  # 2 new values per step: the product and the constant
    start = time.perf_counter()
    text = to_dot(y, max_nodes=None)
    elapsed = time.perf_counter() - start
    assert text.count("| data") == 100_001
    assert text.count("_op [label=") == 50_000
    assert elapsed < 20  # linear; well under a second on a laptop
    assert text.count("| data") > to_dot(y).count("| data") == drawing.DEFAULT_MAX_NODES


def test_record_special_characters_in_labels_are_escaped() -> None:
    a = cr.Value(2.0, label='w{1}|<in> "q" \\ end\nline2')
    text = to_dot(a * 2)
    assert r'label="{ w\{1\}\|\<in\> \"q\" \\ end\nline2 | data 2.0000' in text


def test_placeholders_and_value_grads_are_drawn() -> None:
    p = cr.placeholder("x")
    text = to_dot(p * 2)
    assert "{ x | data ? | grad 0.0000 }" in text
    x = cr.Value(3.0, label="x")
    y = x * x
    y.backward(create_graph=True)  # x.grad is a Value now
    assert "{ x | data 3.0000 | grad 6.0000 }" in to_dot(y)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="rankdir.*'UP'"):
        to_dot(cr.Value(1.0), rankdir="UP")
    with pytest.raises(ValueError, match="max_nodes.*0"):
        to_dot(cr.Value(1.0), max_nodes=0)
    with pytest.raises(TypeError, match="to_dot.*float"):
        to_dot(1.5)  # type: ignore[arg-type]
    need("graphviz")
    with pytest.raises(ValueError, match="backend.*'cairo'"):
        draw_dot(cr.Value(1.0), backend="cairo")


# --- rendering ----------------------------------------------------------------------------------
def assert_seed_svg(svg: str) -> None:
    assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
    texts = svg_texts(svg)
    for expected in ("a", "data 2.0000", "grad 6.0000", "grad -4.0000", "data -8.0000", "*", "+"):
        assert expected in texts, expected


@pytest.mark.parametrize("backend", ["dot", "graphviz-pure"])
def test_render_svg_and_png_with_each_renderer(backend: str, tmp_path: Path) -> None:
    need("graphviz")
    need_system_dot() if backend == "dot" else need_pure()
    graph = draw_dot(seed001(), backend=backend)
    assert_seed_svg(graph.pipe(encoding="utf-8"))
    assert graph.pipe(format="png").startswith(b"\x89PNG\r\n\x1a\n")
    bundle = graph._repr_mimebundle_()  # what Jupyter calls to show the graph
    assert_seed_svg(bundle["image/svg+xml"])
    out = graph.render(outfile=tmp_path / "seed.png")
    assert Path(out).read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "seed.gv").read_text() == graph.source


def test_pip_renderer_is_used_when_no_dot_is_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need("graphviz")
    pure = need_pure()
    monkeypatch.setenv("PATH", str(tmp_path))  # hides any system dot
    assert shutil.which("dot") is None
    assert find_renderer() == pure
    graph = draw_dot(seed001())
    assert_seed_svg(graph._repr_mimebundle_()["image/svg+xml"])
    path = render_graph(graph, tmp_path / "g.png")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_one_clear_error_without_any_renderer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    graphviz = need("graphviz")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(drawing, "_pure_executable", lambda: None)
    with pytest.raises(RendererNotFound) as info:
        draw_dot(seed001()).pipe()
    message = str(info.value)
    assert "pip install graphviz-pure" in message and "apt install graphviz" in message
    assert isinstance(info.value, graphviz.ExecutableNotFound)  # code catching graphviz's error still works
    # Jupyter shows the reason in one line instead of a traceback
    assert draw_dot(seed001())._repr_mimebundle_() == {"text/plain": message}
    with pytest.raises(RendererNotFound, match="backend 'graphviz-pure'.*: pip install graphviz-pure$"):
        render_dot(seed001(), backend="graphviz-pure")
    with pytest.raises(RendererNotFound, match="backend 'dot'.*no `dot`.*or pip install graphviz-pure$"):
        render_dot(seed001(), backend="dot")
    # DOT text needs no renderer at all
    assert render_graph(seed001(), tmp_path / "g.dot").read_text() == to_dot(seed001())


def test_both_renderers_draw_the_same_texts() -> None:
    need_system_dot()
    need_pure()
    system = svg_texts(render_dot(neuron(), backend="dot").decode())
    pure = svg_texts(render_dot(neuron(), backend="graphviz-pure").decode())
    assert sorted(system) == sorted(pure)
    assert "tanh" in pure and "grad 0.5000" in pure


def test_render_graph_picks_the_format_from_the_suffix(tmp_path: Path) -> None:
    need_pure()
    root = seed001()
    assert_seed_svg(render_graph(root, tmp_path / "a.svg", backend="graphviz-pure").read_text())
    png = render_graph(to_dot(root), tmp_path / "a.PNG", backend="graphviz-pure")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert render_graph(root, tmp_path / "a.jpg", backend="graphviz-pure").read_bytes()[:2] == b"\xff\xd8"
    with pytest.raises(ValueError, match=r"render_graph.*a\.pdf"):
        render_graph(root, tmp_path / "a.pdf")
    with pytest.raises(TypeError, match="render.*int"):
        render_dot(42)


def test_drawing_needs_no_graphviz_python_package() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['graphviz'] = None\n"  # as if the graphviz package were not installed
        "import chainrule as cr\n"
        "print(cr.to_dot(cr.Value(2.0, label='x') * 3).count('data'))\n"
        "graph = cr.draw_dot(cr.Value(1.0, label='one'))\n"
        "print(graph.source == cr.to_dot(cr.Value(1.0, label='one')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "True"]
