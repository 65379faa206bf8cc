"""Tests for chainrule.explorer without a browser: the recorded steps, the page's text, the command.

The page itself is driven in a real browser by tests/test_explore_browser.py.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import chainrule as cr
from chainrule import Value, drawing, explorer
from chainrule.cli import explore as explore_command
from chainrule.engine import topological_order
from chainrule.errors import DomainError
from chainrule.explorer import DEFAULT_MAX_NODES, MAX_NODES_LIMIT, explore
from op_cases import case

SEED001 = "e = a*b; d = e + c; L = d*f"
SEED001_VALUES = ("a=2", "b=-3", "c=10", "f=-2")
# The only URLs a page may contain: the SVG and XLink namespace names, which are never fetched.
NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


def seed001() -> tuple[Value, dict[str, Value]]:
    """The seed's L = (a*b + c) * f, labelled as in the seed notebook."""
    a = Value(2.0, label="a")
    b = Value(-3.0, label="b")
    c = Value(10.0, label="c")
    f = Value(-2.0, label="f")
    e = a * b
    e.label = "e"
    d = e + c
    d.label = "d"
    L = d * f
    L.label = "L"
    return L, {"a": a, "b": b, "c": c, "f": f, "e": e, "d": d, "L": L}


def neuron() -> tuple[Value, dict[str, Value]]:
    """The lecture's tanh neuron: o = tanh(x1*w1 + x2*w2 + b), with do/dn = 0.5."""
    x1, x2 = Value(2.0, label="x1"), Value(0.0, label="x2")
    w1, w2 = Value(-3.0, label="w1"), Value(1.0, label="w2")
    b = Value(6.8813735870195432, label="b")
    n = x1 * w1 + x2 * w2 + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    return o, {"x1": x1, "x2": x2, "w1": w1, "w2": w2, "b": b, "n": n, "o": o}


def backward_grads(make) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The gradients `backward()` gives a fresh copy of the graph, by name."""
    root, named = make()
    root.backward()
    return {name: v.grad for name, v in named.items()}


def external_urls(page: str) -> list[str]:
    """Everything in the page that could make a browser fetch something from elsewhere."""
    found = [u for u in re.findall(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>)]*", page) if u not in NAMESPACES]
    found += re.findall(r"<(?:script|img|iframe|embed|object|audio|video|source)\b[^>]*\bsrc\s*=", page, re.I)
    found += [tag for tag in re.findall(r"<link\b[^>]*>", page, re.I) if 'href="data:' not in tag]
    found += re.findall(r"url\(\s*['\"]?(?!#)[^)]*\)|@import|srcset\s*=|\bhref\s*=\s*[\"']?//", page, re.I)
    return found


# --- the records ------------------------------------------------------------------------------
def test_seed001_steps_show_the_chain_rule_with_numbers() -> None:
    L, named = seed001()
    ex = explore(L)
    phases = [s.phase for s in ex.steps]
    # start, one forward step per value (7), one backward step per operation (3), end
    assert phases == ["start"] + ["forward"] * 7 + ["backward"] * 3 + ["end"]
    assert [s.node for s in ex.steps if s.phase == "forward"] == ["a", "b", "e", "c", "d", "f", "L"]
    assert "e = a * b = 2.0 * -3.0 = -6.0" in ex.steps[3].lines
    backward = [s for s in ex.steps if s.phase == "backward"]
    assert [s.node for s in backward] == ["L", "d", "e"]
    assert backward[0].lines[0] == "dL/dL = 1.0: the output's gradient with respect to itself."
    # the very line
    assert "dL/da = dL/de * ∂e/∂a = -2.0 * -3.0 = 6.0" in backward[2].lines
    assert "dL/db = dL/de * ∂e/∂b = -2.0 * 2.0 = -4.0" in backward[2].lines
    first = backward[2].contributions[0]
    assert (first.input, first.upstream, first.local, first.product, first.total) == (
        "a",
        -2.0,
        -3.0,
        6.0,
        6.0,
    )
    assert not first.accumulates
    assert ex.steps[-1].lines == ("L = -8.0", "dL/da = 6.0", "dL/db = -4.0", "dL/dc = -2.0", "dL/df = 4.0")


@pytest.mark.parametrize("make", [seed001, neuron])
def test_final_gradients_are_exactly_backwards(make) -> None:  # type: ignore[no-untyped-def]
    root, named = make()
    ex = explore(root)
    expected = backward_grads(make)
    assert {name: ex.grads[v] for name, v in named.items()} == expected  # exact, not approximate


def test_the_neuron_passes_half_through_tanh() -> None:
    o, named = neuron()
    ex = explore(o)
    step = next(s for s in ex.steps if s.phase == "backward" and s.node == "o")
    assert step.contributions[0].local == pytest.approx(0.5)
    # the local derivative from tanh's own rule, then the chain-rule product: no tautology
    assert step.lines[1:3] == (
        "local derivative ∂o/∂n = 1 - o * o = 0.5",
        "do/dn = do/do * ∂o/∂n = 1.0 * 0.5 = 0.5",
    )
    assert "o = tanh(n) = tanh(0.881374) = 0.707107" in next(s for s in ex.steps if s.node == "o").lines


def test_a_value_used_twice_accumulates_its_gradient() -> None:
    b = Value(3.0, label="b")
    y = b * b + b
    y.label = "y"
    ex = explore(y)
    contributions = [c for s in ex.steps for c in s.contributions if c.input == "b"]
    assert [(c.product, c.total, c.accumulates) for c in contributions] == [
        (1.0, 1.0, False),
        (3.0, 4.0, True),
        (3.0, 7.0, True),
    ]
    assert contributions[1].text == "dy/db += dy/dn1 * ∂n1/∂b = 1.0 * 3.0 = 3.0, so dy/db = 4.0"
    y.backward()
    assert ex.grads[b] == b.grad == 7.0
    # the page says which gradients are still partial: b's first two totals are, its last is not
    data = page_data(ex)
    grads = next(n for n in data["nodes"] if n["name"] == "b")["grads"]
    assert [(g[2], g[4], g[5]) for g in grads] == [
        ("1.0", True, "partial: 1 of 3 contributions"),
        ("4.0", True, "partial: 2 of 3 contributions"),
        ("7.0", False, "complete: the sum of 3 contributions"),
    ]


def test_every_table_operation_gives_backwards_gradients() -> None:
    def make() -> tuple[Value, dict[str, Value]]:
        x = Value(0.7, label="x")
        y = Value(1.9, label="y")
        terms = [x + y, x - y, x * y, x / y, -x, x**y, y**3, 2.0**x, x.exp(), y.log(), x.tanh()]
        terms += [(x - y).relu(), x.sigmoid(), y.softplus(), x.sin(), y.cos(), y.sqrt(), abs(x - y)]
        # rows added to the table since: each built as tests/op_cases.py's recipe builds it from (y, x),
        # which moves the operands into the row's domain (arcsin(1.9) would raise)
        covered = {n._operation.name for t in terms for n in topological_order(t) if n._operation is not None}
        terms += [case(op).build(op, y, x, x, 0.5) for op in cr.TABLE if op.name not in covered]
        out = cr.sum(terms) * x
        out.label = "out"
        return out, {"x": x, "y": y}

    ops_used = {
        node._operation.name for node in drawing.reading_order(make()[0]) if node._operation is not None
    }
    assert ops_used == {op.name for op in cr.TABLE}  # the test covers every row of the table
    root, named = make()
    ex = explore(root)
    assert {name: ex.grads[v] for name, v in named.items()} == backward_grads(make)


def test_explore_leaves_the_graph_untouched() -> None:
    L, named = seed001()
    for i, v in enumerate(named.values()):
        v.grad = 100.0 + i  # whatever the user had there
    before = {name: (v.grad, v.data, v.label) for name, v in named.items()}
    ex = explore(L)
    assert {name: (v.grad, v.data, v.label) for name, v in named.items()} == before
    assert ex.grads[named["a"]] == 6.0  # a fresh backward's numbers, not added to the old ones


def test_constants_and_unlabelled_values_get_names() -> None:
    x = Value(3.0, label="x")
    y = (2 * x).tanh() - x / 4
    ex = explore(y)
    # named by their place in the reading order: 2.0, x, n2 = 2.0 * x, n3 = tanh(n2), 4.0, ...
    assert ex.names[y] == "n6" and ex.names[y._prev[0]] == "n3"
    step = next(s for s in ex.steps if s.phase == "backward" and s.node == "n2")
    assert "2.0 takes no gradient (a constant): nothing flows into it." in step.lines
    assert "dn6/dx = dn6/dn2 * ∂n2/∂x = 2.45765e-05 * 2.0 = 4.91531e-05" in step.lines
    data = page_data(ex)
    constant = next(n for n in data["nodes"] if n["name"] == "2.0")
    assert constant["grads"] == [] and constant["noGradText"] == "no grad"


def test_a_generated_name_never_takes_a_users_label() -> None:
    a = Value(1.0, label="n2")
    out = a * a + a
    ex = explore(out)
    assert sorted(ex.names.values()) == ["n1", "n2", "n2'"]


def test_a_leaf_output_and_a_sum_node() -> None:
    leaf = Value(5.0, label="w")
    ex = explore(leaf)
    assert [s.phase for s in ex.steps] == ["start", "forward", "backward", "end"]
    assert ex.grads[leaf] == 1.0
    xs = [Value(float(i), label=f"x{i}") for i in range(3)]
    total = cr.sum(xs)
    ex = explore(total)
    assert "n3 = x0 + x1 + x2 = 0.0 + 1.0 + 2.0 = 3.0" in ex.steps[4].lines
    assert [c.local for c in ex.steps[5].contributions] == [1.0, 1.0, 1.0]


# --- refusals ---------------------------------------------------------------------------------
def test_a_graph_above_max_nodes_is_refused_with_its_size() -> None:
    big = Value(1.0, label="x")
    for _ in range(200):
        big = big * 1.5
    with pytest.raises(ValueError, match=f"has 401 values, more than max_nodes={DEFAULT_MAX_NODES}"):
        explore(big)
    assert len(explore(big, max_nodes=401).steps) == 1 + 401 + 200 + 1
    with pytest.raises(ValueError, match="has 401 values, more than max_nodes=10 "):
        explore(big, max_nodes=10)


def test_a_huge_graph_is_refused_without_walking_all_of_it() -> None:
    huge = Value(1.0, label="x")
    for _ in range(60_000):
        huge = huge + 1.0
    with pytest.raises(ValueError, match="more than 100000 values"):
        explore(huge)


@pytest.mark.parametrize("bad", [0, -1, MAX_NODES_LIMIT + 1, True, 2.5, "10", None])
def test_max_nodes_must_be_a_sensible_integer(bad: object) -> None:
    with pytest.raises(ValueError, match="explore: max_nodes must be an integer from 1 to 2000"):
        explore(Value(1.0), max_nodes=bad)  # type: ignore[arg-type]


def test_other_refusals_are_clear() -> None:
    with pytest.raises(TypeError, match="explore: needs a chainrule Value, got float"):
        explore(2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="explore: rankdir must be one of LR, RL, TB, BT"):
        explore(Value(1.0), rankdir="XY")
    with pytest.raises(ValueError, match="does not require grad"):
        explore(cr.constant(2.0) * 3)
    with pytest.raises(ValueError, match="placeholders with no data yet"):
        explore(cr.placeholder("x") * 2)
    x = Value(0.0, label="x")
    with pytest.raises(DomainError, match=r"explore: sqrt: the derivative is undefined at \(0.0,\)"):
        explore(x.sqrt())
    with pytest.raises(DomainError):  # the engine agrees
        x.sqrt().backward()


def test_hand_built_operations_are_replayed_with_their_own_backward() -> None:
    """A node built by hand (micrograd's way) shows the local derivative its _backward gives."""
    x = Value(1.5, label="x")
    cube = Value(x.data**3, (x,), "cube", label="c")

    def _backward() -> None:
        x.grad += 3 * x.data**2 * cube.grad

    cube._backward = _backward
    sq = Value(x.data * x.data, (x, x), "square", label="s")

    def _square_backward() -> None:
        x.grad += x.data * sq.grad
        x.grad += x.data * sq.grad

    sq._backward = _square_backward
    L = (cube + sq.tanh()) * 2.0
    L.label = "L"
    ex = explore(L)
    L.backward()
    assert ex.grads[x] == x.grad and ex.grads[cube] == cube.grad
    assert x.grad != 0.0 and cube.grad == 2.0  # explore left .grad alone: these are backward()'s
    text = "\n".join(line for step in ex.steps for line in step.lines)
    assert "dL/dc * ∂c/∂x = 2.0 * 6.75 = 13.5" in text
    assert "c = cube(x)" in text


# --- the page ---------------------------------------------------------------------------------
def page_data(ex: explorer.Explorer) -> dict:  # type: ignore[type-arg]
    match = re.search(r'<script type="application/json" id="cr-data">(.*?)</script>', ex.html, re.S)
    assert match
    return json.loads(match.group(1))


def test_the_page_is_self_contained() -> None:
    L, _ = seed001()
    page = explore(L).html
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<svg" in page and "<script>" in page and "<style>" in page
    assert external_urls(page) == []
    assert "default-src 'none'" in page  # and the browser is told to fetch nothing
    assert "DOCTYPE svg" not in page and "svg11.dtd" not in page  # graphviz's prolog is gone


def test_the_url_scan_finds_what_it_should() -> None:
    for bad in (
        '<script src="https://cdn.example/x.js"></script>',
        '<link rel="stylesheet" href="https://cdn.example/x.css">',
        "<style>body { background: url(https://example.org/a.png) }</style>",
        "<style>@import 'x.css';</style>",
        '<img src="x.png">',
        '<a href="//example.org">',
    ):
        assert external_urls(bad), bad
    assert external_urls('<svg xmlns="http://www.w3.org/2000/svg"><path fill="url(#g)"/></svg>') == []


def test_labels_cannot_inject_markup_or_script() -> None:
    a = Value(2.0, label='</script><script>alert("a")</script>')
    b = Value(3.0, label="<b>bold</b> & {x|y}")
    out = a * b
    out.label = "out"
    page = explore(out).html
    assert "<script>alert" not in page and "<b>bold" not in page
    assert page.count("<script") == 2  # the data and the page's own script
    data = page_data(explore(out))
    assert {n["name"] for n in data["nodes"]} >= {a.label, b.label}  # the JSON still holds the text
    assert external_urls(page) == []


def test_the_page_holds_the_records_and_the_svg_ids_match() -> None:
    L, named = seed001()
    ex = explore(L)
    data = page_data(ex)
    ids = [n["id"] for n in data["nodes"]]
    assert ids == [f"n{i}" for i in range(7)]
    for node_id in ids:
        assert f'<g id="cr-{node_id}" class="node">' in ex.html
        assert f'<tr id="cr-row-{node_id}">' in ex.html
    assert '<g id="cr-n2_op" class="node">' in ex.html
    assert '<g class="edge" data-from="n0" data-to="n2_op">' in ex.html
    # the drawing was laid out with the final gradients, so the boxes fit them
    assert "grad 6.0000" in ex.html and "grad 0.0000" not in ex.html
    # every number comes from Python: gradients arrive at their steps, as text and exactly
    a = next(n for n in data["nodes"] if n["name"] == "a")
    assert a["grads"] == [[10, "grad 6.0000", "6.0", "6.0", False, "complete"]]
    assert a["dataStep"] == 1 and a["dataText"] == "data 2.0000"
    assert [s["node"] for s in data["steps"]][8:11] == ["n6", "n4", "n2"]
    assert data["steps"][10]["touched"] == ["n0", "n1"]
    assert [s["lines"] for s in data["steps"]] == [list(s.lines) for s in ex.steps]


def test_save_repr_and_jupyter_view(tmp_path: Path) -> None:
    L, _ = seed001()
    ex = explore(L)
    path = ex.save(tmp_path / "page.html")
    assert path.read_text(encoding="utf-8") == ex.html
    assert repr(ex) == "<Explorer of 'L': 7 values, 11 steps; .save('page.html') writes the page>"
    frame = ex._repr_html_()
    assert frame.startswith("<iframe srcdoc=") and 'sandbox="allow-scripts"' in frame
    assert html.unescape(re.search(r'srcdoc="([^"]*)"', frame).group(1)) == ex.html  # type: ignore[union-attr]
    assert explore(L).html == ex.html  # deterministic


def test_top_to_bottom_and_both_renderers() -> None:
    L, _ = seed001()
    assert "<svg" in explore(L, rankdir="TB").html
    if drawing._pure_executable() is not None:
        assert '<g id="cr-n6" class="node">' in explore(L, backend="graphviz-pure").html


def test_without_a_renderer_the_page_still_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(backend: str = "auto") -> str:
        raise drawing.RendererNotFound("no renderer here")

    monkeypatch.setattr(drawing, "find_renderer", missing)
    L, _ = seed001()
    ex = explore(L)
    assert not ex.has_picture and "<svg" not in ex.html and "No picture" in ex.html
    assert ex.grads[L._prev[0]] == -2.0


def test_to_dot_shows_given_labels_and_grads() -> None:
    x = Value(2.0)
    y = x * 3
    text = cr.to_dot(y, labels={x: "x"}, grads={y: 1.0, x: 3.0})
    assert "{ x | data 2.0000 | grad 3.0000 }" in text and "grad 1.0000" in text
    assert x.label == "" and x.grad == 0.0


# --- the command ------------------------------------------------------------------------------
def run_explore(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="chainrule explore")
    explore_command.add_arguments(parser)
    return explore_command.run(parser.parse_args(list(argv)))


def test_the_command_writes_the_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "L.html"
    assert run_explore(SEED001, *SEED001_VALUES, "-o", str(out)) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[:5] == ["L = -8", "dL/da = 6", "dL/db = -4", "dL/dc = -2", "dL/df = 4"]
    assert printed[5] == f"wrote {out} (11 steps: open it in a browser)"
    L, _ = seed001()
    assert out.read_text(encoding="utf-8") == explore(L).html  # the same page as from Python
    assert run_explore("o = tanh(x*w + b)", "x=2", "w=-3", "b=6.88", "-o", "-") == 0
    assert capsys.readouterr().out.startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["__import__('os').system('ls')"], "explore: only the functions exp, log"),
        (["a.b", "a=1"], "explore: attribute access is not allowed"),
        (["L = a*q", "a=1"], "explore: unknown name 'q'"),
        (["L = a*b", "a=1", "b=x"], "explore: the value of 'b' must be a number"),
        (["2 * 3"], "explore: the expression depends on no input"),
        (["sqrt(x)", "x=0"], "explore: sqrt: the derivative is undefined at (0.0,)"),
        (["L = a*b", "a=1", "b=2", "-o", "L.svg"], "explore: the page is HTML"),
        (
            ["L = a*b*c*d", "a=1", "b=2", "c=3", "d=4", "--max-nodes", "3"],
            "has 7 values, more than max_nodes=3",
        ),
        (["L = a*b", "a=1", "b=2", "--max-nodes", "0"], "max_nodes must be an integer from 1 to"),
    ],
)
def test_the_command_refuses_in_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if "-o" not in argv:
        argv = [*argv, "-o", str(tmp_path / "page.html")]
    assert run_explore(*argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("chainrule explore: ") and message in err
    assert err.count("\n") == 1
    assert not (tmp_path / "page.html").exists()


def test_the_installed_command_runs_explore(tmp_path: Path) -> None:
    code = (
        "import sys; from chainrule import cli; "
        f"rc = cli.main(['explore', 'L = a*b', 'a=2', 'b=3', '-o', {str(tmp_path / 'p.html')!r}]); "
        "print('demo' if 'chainrule.demo' in sys.modules else 'no-demo', rc)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "no-demo 0"  # only the chosen command is imported
    assert (tmp_path / "p.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    refused = subprocess.run(
        [sys.executable, "-m", "chainrule", "explore", "open('x')", "-o", str(tmp_path / "q.html")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("chainrule explore: ")


def test_numbers_are_formatted_for_reading() -> None:
    assert [
        explorer.recorder.format_number(x) for x in (-2.0, 6.0, 0.5, 1 / 3, 1e-7, 2.5e10, math.inf, -0.0)
    ] == [
        "-2.0",
        "6.0",
        "0.5",
        "0.333333",
        "1e-07",
        "2.5e+10",
        "inf",
        "-0.0",
    ]


def test_docs_examples_run_and_print_what_they_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "explore.md").read_text(encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # the example saves a page
    block = re.search(r"```python\n(.*?)```", doc, re.S).group(1)  # type: ignore[union-attr]
    exec(compile(block, "docs/explore.md", "exec"), {})
    printed = re.search(r"prints\n\n```\n(.*?)```", doc, re.S).group(1)  # type: ignore[union-attr]
    assert capsys.readouterr().out == printed
    assert (tmp_path / "L.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    # the command's transcript, as the doc shows it
    console = re.search(r"```console\n\$ chainrule explore (.*?)\n(.*?)\$", doc, re.S)
    assert console is not None
    assert run_explore(SEED001, *SEED001_VALUES, "-o", "L.html") == 0
    assert capsys.readouterr().out == console.group(2)
    assert console.group(1) == f'"{SEED001}" {" ".join(SEED001_VALUES)} -o L.html'


def test_chainrule_explore_is_the_function_even_after_the_module_is_imported() -> None:
    import chainrule
    import chainrule.explorer  # noqa: F401 - the CLI imports it; the attribute must stay the function

    assert callable(chainrule.explore) and chainrule.explore is chainrule.explorer.explore


@pytest.mark.slow
def test_a_wheel_carries_the_page_files_and_explore_runs_from_it(tmp_path: Path) -> None:
    """A non-editable install (a wheel built from the sdist, in a fresh venv that sees no other
    chainrule) writes a whole page."""
    root = Path(__file__).resolve().parents[1]
    source = tmp_path / "source"  # a copy: building writes build/ and egg-info, never into the checkout
    shutil.copytree(root / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "PIP_"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    # As `python -m build` does: an sdist first, then the wheel from the unpacked sdist, so both
    # must carry the page files. Built by this (the test's) Python, which has setuptools; no network.
    sdist = subprocess.run(
        [sys.executable, "-c", "import setuptools.build_meta as b; print(b.build_sdist('dist'))"],
        capture_output=True, text=True, check=True, env=env, cwd=source, timeout=300,
    )  # fmt: skip
    with tarfile.open(source / "dist" / sdist.stdout.split()[-1]) as archive:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python 3.11.4 and later
        archive.extractall(tmp_path / "unpacked", **safe)
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*build, "-w", str(wheels), str(unpacked)], check=True, env=env, timeout=300)
    (wheel,) = wheels.glob("chainrule-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    for asset in ("page.html", "page.css", "page.js"):
        assert f"chainrule/explorer/assets/{asset}" in shipped
    # a plain fresh venv: not --system-site-packages, so the editable install of the checkout is unseen
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env, timeout=300)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
    subprocess.run([*pip, str(wheel)], check=True, env=env, timeout=300)
    work = tmp_path / "work"
    work.mkdir()
    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import chainrule; print(chainrule.__file__)"],
        capture_output=True, text=True, check=True, env=env, cwd=work, timeout=120,
    )  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(venv)
    done = subprocess.run(
        [str(bin_dir / "chainrule"), "explore", "a*b", "a=2", "b=3", "-o", "page.html"],
        capture_output=True, text=True, env=env, cwd=work, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    page = (work / "page.html").read_text(encoding="utf-8")
    css = (root / "src" / "chainrule" / "explorer" / "assets" / "page.css").read_text(encoding="utf-8")
    js = (root / "src" / "chainrule" / "explorer" / "assets" / "page.js").read_text(encoding="utf-8")
    assert f"<style>{css}</style>" in page and f"<script>{js}</script>" in page
    assert "%%" not in page


# --- issue 18: each step explains itself, in compile's words -------------------------------------
def test_no_step_is_a_tautology_the_local_derivative_is_the_ops_rule() -> None:
    L, _ = seed001()
    first = next(s for s in explore(L).steps if s.phase == "backward")
    # L = d * f: the local derivative of L with respect to d is f = -2.0; then the chain-rule product
    assert first.lines[1:3] == (
        "local derivative ∂L/∂d = f = -2.0",
        "dL/dd = dL/dL * ∂L/∂d = 1.0 * -2.0 = -2.0",
    )
    for make in (seed001, neuron):
        for step in explore(make()[0]).steps:
            for c in step.contributions:
                assert c.local_text.startswith("local derivative ∂") and c.local_text in step.lines
                # gradients are written d.../d..., local derivatives ∂.../∂...: never the same symbol
                _, rhs = c.text.split(" = ", 1)
                assert "∂" in rhs.split(" = ")[0], c.text


def test_every_local_formula_evaluates_to_the_number_shown() -> None:
    """The formulas are read off the table's rules: evaluated, each gives the local derivative."""
    x = Value(0.7, label="x")
    w = Value(-1.3, label="w")
    k = Value(2.5, label="k", requires_grad=False)
    parts = [x * w, x / w, x**3, x**w, x.exp(), x.log(), x.tanh(), x.relu(), x.sigmoid(), x.softplus()]
    parts += [x.sin(), x.cos(), x.sqrt(), abs(w), -x, x - w, k * x, cr.sum([x, w, x * k])]
    names = {f"p{i}": p for i, p in enumerate(parts)}
    for name, p in names.items():
        p.label = name
    y = cr.sum(parts)
    y.label = "y"
    ex = explore(y)
    scope = {n: v.data for n, v in {**names, "x": x, "w": w, "k": k, "y": y}.items()}
    scope |= {"log": math.log, "exp": math.exp, "sin": math.sin, "cos": math.cos, "tanh": math.tanh}
    scope |= {"sign": lambda v: math.copysign(1.0, v), "sigmoid": lambda v: 1 / (1 + math.exp(-v))}
    checked = 0
    for step in ex.steps:
        for c in step.contributions:
            head, _, rest = c.local_text.partition(" = ")
            parts_of = rest.split(" = ")
            if len(parts_of) == 2:  # formula = number (a rule that is a number shows the number only)
                formula = parts_of[0]
                assert eval(formula, {"__builtins__": {}}, scope) == pytest.approx(c.local, rel=1e-12), (
                    formula
                )
                checked += 1
            assert float(parts_of[-1]) == pytest.approx(c.local, rel=1e-5)
    assert checked >= 15


def test_the_words_are_compiles_parameters_inputs_constants() -> None:
    w = Value(0.5, label="w")  # requires_grad=True: a parameter
    x = Value(3.0, label="x", requires_grad=False)  # labelled, no gradient: an input (data)
    y = w * x * 2  # the 2 is a number in the graph: a constant
    y.label = "y"
    ex = explore(y)
    lines = [line for s in ex.steps for line in s.lines]
    assert "w is a parameter: a leaf that takes a gradient." in lines
    assert "x is an input: data, a leaf that takes no gradient." in lines
    assert "2.0 is a constant: a number in the graph, it takes no gradient." in lines
    assert "x takes no gradient (an input): nothing flows into it." in lines
    assert "2.0 takes no gradient (a constant): nothing flows into it." in lines
    made_by = dict(re.findall(r'<th scope="row">([^<]*)</th><td>([^<]*)</td>', ex.html))
    assert made_by["w"] == "parameter" and made_by["x"] == "input" and made_by["2.0"] == "constant"
    assert "an input: a leaf that takes a gradient" not in ex.html
    # one gradient column; the partial/complete state lives in the cell's data-state, not a column
    assert ex.html.count('<th scope="col">gradient</th>') == 1 and '<th scope="col">grad</th>' not in ex.html
    assert "cr-status" not in ex.html
    # the drawing says the same: parameters blue, inputs white and dashed, constants grey and dashed
    dot = cr.to_dot(y)
    assert 'fillcolor="#dbeafe"' in next(line for line in dot.splitlines() if "{ w |" in line)
    assert 'style="filled,dashed" fillcolor="#ffffff"' in next(
        line for line in dot.splitlines() if "{ x |" in line
    )
    assert 'fillcolor="#f3f4f6"' in next(line for line in dot.splitlines() if "data 2.0000" in line)


def test_small_numbers_keep_their_digits_in_the_drawing_and_the_panel() -> None:
    x = Value(8.0, label="x")
    y = x.tanh() * 3.0
    y.label = "y"
    ex = explore(y)
    grad = ex.grads[x]
    assert 0 < grad < 1e-4
    assert f"grad {grad:.3g}</text>" in html.unescape(ex.html)  # the drawing: not grad 0.0000
    node = next(n for n in page_data(ex)["nodes"] if n["name"] == "x")
    assert node["grads"][-1][1] == f"grad {grad:.3g}" and node["grads"][-1][
        2
    ] == explorer.recorder.format_number(grad)
    numbers = (2.0, -0.5, 0.0, 1e-4, 2.08435e-07, -3e-9, 2.5e12, math.inf)
    assert [drawing.record_number(v) for v in numbers] == [
        "2.0000", "-0.5000", "0.0000", "0.0001", "2.08e-07", "-3e-09", "2.5e+12", "inf",
    ]  # fmt: skip


# --- issue 17: a picture out of time, and labels no page can show ----------------------------------
def test_a_picture_out_of_time_leaves_a_page_with_steps_and_a_note() -> None:
    chain = Value(0.5, label="x")
    for _ in range(1999):
        chain = chain.tanh()
    chain.label = "y"
    ex = explore(chain, max_nodes=2000, timeout=1e-3)  # allowed, and far too big to lay out in 1 ms
    assert not ex.has_picture and "<svg" not in ex.html
    assert "time limit of 0.001 s" in ex.picture_note and "No picture: the drawing took longer" in ex.html
    assert ex.step_count == 1 + 2000 + 1999 and '<tr id="cr-row-n1999">' in ex.html
    with pytest.raises(ValueError, match="explore: timeout must be a positive number of seconds, got 0"):
        explore(chain, max_nodes=2000, timeout=0)


@pytest.mark.parametrize(
    ("label", "words"),
    [
        (3, r"explore: a label must be text \(a str\), got int: 3; write label='3'"),
        ("a\udcff", r"explore: the label 'a\\udcff' holds a lone surrogate \(U\+DCFF\)"),
        ("a\x00b", r"explore: the label 'a\\x00b' holds a NUL character"),
    ],
)
def test_labels_no_page_can_show_are_refused_in_one_line(label: object, words: str) -> None:
    a = Value(2.0, label="a")
    b = Value(3.0)
    b.label = label  # type: ignore[assignment]
    out = a * b
    out.label = "out"
    with pytest.raises(ValueError, match=words) as refused:
        explore(out)
    assert "\n" not in str(refused.value)


def test_the_command_refuses_a_name_given_twice_and_a_missing_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_explore("a*b", "a=1", "a=5", "b=1", "-o", str(tmp_path / "p.html")) == 2
    err = capsys.readouterr().err
    assert err.startswith("chainrule explore: 'a' is given twice (a=1 and a=5)") and err.count("\n") == 1
    assert not (tmp_path / "p.html").exists()
    missing = tmp_path / "no" / "such" / "p.html"
    assert run_explore("a*b", "a=1", "b=1", "-o", str(missing)) == 2
    err = capsys.readouterr().err
    folder = str(missing.parent)
    assert err == f"chainrule explore: cannot write {str(missing)!r}: the folder {folder!r} does not exist\n"


def test_the_command_writes_a_page_without_a_picture_when_out_of_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.html"
    assert run_explore(SEED001, *SEED001_VALUES, "-o", str(out), "--timeout", "0.000001") == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("chainrule explore: the page has no picture: the drawing took longer")
    assert captured.err.count("\n") == 1 and "No picture" in out.read_text(encoding="utf-8")


def test_the_command_the_page_and_the_explorer_count_steps_alike(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.html"
    assert run_explore(SEED001, *SEED001_VALUES, "-o", str(out)) == 0
    L, _ = seed001()
    ex = explore(L)
    n = ex.step_count
    assert n == 11 and len(ex.steps) == n + 1 and ex.steps[0].phase == "start"  # steps[0] is step 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {out} ({n} steps: open it in a browser)"
    page = out.read_text(encoding="utf-8")
    assert f'max="{n}"' in page and f"Step 0 of {n}" in page
