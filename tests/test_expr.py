"""Tests for chainrule.expr (the safe expression parser) and `chainrule draw` (chainrule.cli.draw)."""

from __future__ import annotations

import argparse
import ast
import builtins
import math
from pathlib import Path

import pytest

import chainrule as cr
from chainrule import drawing
from chainrule.cli import draw as draw_command
from chainrule.expr import FUNCTIONS, ExprError, build, parse_assignment
from conftest import REQUIRE_ALL, need

GOLDEN = Path(__file__).parent / "golden"
SEED001 = "e = a*b; d = e + c; L = d*f"
SEED001_VALUES = {"a": 2.0, "b": -3.0, "c": 10.0, "f": -2.0}


def need_pure() -> None:
    """Skip without graphviz-pure (fail in CI, where the viz extra is installed)."""
    if drawing._pure_executable() is None:
        message = "graphviz-pure is not installed (pip install -e '.[viz]')"
        if REQUIRE_ALL:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def draw(*argv: str) -> int:
    """Run `chainrule draw ARGV` through the command's own parser and runner."""
    parser = argparse.ArgumentParser(prog="chainrule draw")
    draw_command.add_arguments(parser)
    return draw_command.run(parser.parse_args(list(argv)))


def test_seed001_expression_reproduces_the_seed_picture() -> None:
    built = build(SEED001, SEED001_VALUES)
    L = built.output
    assert L.label == "L" and L.data == -8.0
    L.backward()
    grads = {name: v.grad for name, v in built.names.items()}
    assert grads == {"a": 6.0, "b": -4.0, "e": -2.0, "c": -2.0, "d": -2.0, "f": 4.0, "L": 1.0}
    # the very same DOT text as the graph built by hand in Python (tests/test_drawing.py)
    assert cr.to_dot(L) == (GOLDEN / "seed001.dot").read_text()


def test_newlines_separate_statements_and_functions_come_from_the_table() -> None:
    built = build(
        "n = x1*w1 + x2*w2 + b\no = tanh(n)", {"x1": 2, "x2": 0, "w1": -3, "w2": 1, "b": 6.8813735870195432}
    )
    built.output.backward()
    assert built.output.label == "o"
    assert built.output._op == "tanh"
    assert math.isclose(built.inputs["x1"].grad, -1.5, rel_tol=1e-6)
    assert math.isclose(built.inputs["w1"].grad, 1.0, rel_tol=1e-6)
    # every one-input row of the derivative table can be called, plus n-ary sum
    assert set(FUNCTIONS) == {op.name for op in cr.TABLE if op.arity == 1 and op.name != "neg"} | {"sum"}
    assert {"tanh", "exp", "log", "relu", "sigmoid", "sin", "cos", "sqrt", "abs"} <= set(FUNCTIONS)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("exp(x)", math.exp(0.5)),
        ("log(x)", math.log(0.5)),
        ("relu(-x) + sigmoid(x)", 1 / (1 + math.exp(-0.5))),
        ("sin(x)**2 + cos(x)**2", 1.0),
        ("sqrt(x) * abs(-x)", math.sqrt(0.5) * 0.5),
        ("sum(x, 2*x, 3)", 4.5),
        ("-x / 2 - +x", -0.75),
        ("2 ** (3 * x)", 2**1.5),
    ],
)
def test_allowed_syntax_computes_the_right_value(text: str, value: float) -> None:
    assert math.isclose(build(text, {"x": 0.5}).output.data, value, rel_tol=1e-12)


def test_unlabelled_output_is_called_out_and_aliases_keep_their_name() -> None:
    built = build("y = x; x * 2", {"x": 1.0})
    assert built.output.label == "out"
    assert built.names["y"] is built.inputs["x"] and built.inputs["x"].label == "x"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x.data", "attribute access is not allowed in 'x.data'"),
        ("__import__('os').system('touch pwned')", "only the functions exp, log"),
        ("__import__('os')", "unknown function '__import__'"),
        ("open('secret')", "unknown function 'open'"),
        ("(lambda: 1)()", "only the functions"),
        ("lambda: x", "a lambda is not allowed"),
        ("x[0]", "a subscript is not allowed"),
        ("x if x else 1", "an if-expression is not allowed"),
        ("x < 1", "a comparison is not allowed"),
        ("[x for x in (1, 2)]", "a comprehension is not allowed"),
        ("import os", "import is not allowed"),
        ("x += 1", "augmented assignment is not allowed"),
        ("f'{x}'", "an f-string is not allowed"),
        ("'text' * x", "only numbers are allowed as constants, got 'text'"),
        ("True * x", "only numbers are allowed as constants, got True"),
        ("x ** 10000", "the exponent in '10000' is too large"),
        ("x ** -1000", "the exponent in '-1000' is too large"),
        ("9 ** 9 ** 9 * x", "the exponent in '9 ** 9' is too large"),
        ("x * 1e999", "the number in '1e999' is too large"),
        ("x * y", "unknown name 'y': give it a value (y=1.5) or assign it first"),
        ("exp * x", "'exp' is a function: call it, like exp(x)"),
        ("tanh(x, x)", "tanh() takes 1 argument, got 2"),
        ("tanh(x=x)", "tanh() takes plain positional arguments"),
        ("sum()", "sum() needs at least one argument"),
        ("x = 1; x * 2", "'x' is already defined"),
        ("a, b = x, x", "assign to one plain name"),
        ("tanh = x", "'tanh' is a function and cannot be assigned to"),
        ("x +", "not a valid expression"),
        ("   ", "the expression is empty"),
        ("x" + "+x" * 1000, "too long"),
        ("-" * 300 + "x", "nested too deeply"),
        ("+".join(["x"] * 300), "nested too deeply"),
        ("x*x;" * 150, "too big"),
        ("(" * 250 + "x" + ")" * 250, "not a valid expression: too many nested parentheses"),
    ],
)
def test_everything_else_is_refused_with_one_line(text: str, message: str) -> None:
    with pytest.raises(ExprError) as info:
        build(text, {"x": 2.0})
    assert message in str(info.value)
    assert str(info.value).startswith("draw: ") and "\n" not in str(info.value)


def test_nothing_is_ever_evaluated_or_executed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_compile = builtins.compile

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("eval/exec called")

    def parse_only(
        source: str, filename: str, mode: str, flags: int = 0, *args: object, **kw: object
    ) -> object:
        # ast.parse compiles to a syntax tree only; compiling to code would be a way to run it
        assert flags & ast.PyCF_ONLY_AST, "compile() to code called"
        return real_compile(source, filename, mode, flags, *args, **kw)

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "compile", parse_only)
    monkeypatch.chdir(tmp_path)
    assert build("L = tanh(a*b) + 1", {"a": 1.0, "b": 2.0}).output.label == "L"
    with pytest.raises(ExprError):
        build("__import__('os').system('touch pwned')", {})
    assert not (tmp_path / "pwned").exists()


def test_values_must_be_named_numbers_and_all_used() -> None:
    assert parse_assignment("b=-3") == ("b", -3.0)
    assert parse_assignment(" w1 = 1e-3") == ("w1", 0.001)
    for bad, message in [
        ("b", "expected name=value"),
        ("1b=2", "expected name=value"),
        ("b=x", "the value of 'b' must be a number, got 'x'"),
        ("b=nan", "must be a finite number"),
        ("tanh=1", "'tanh' is a function"),
    ]:
        with pytest.raises(ExprError, match=message):
            parse_assignment(bad)
    with pytest.raises(ExprError, match="does not use: c, z"):
        build("a*b", {"a": 1, "b": 2, "c": 3, "z": 4})


def test_domain_errors_name_the_operation() -> None:
    with pytest.raises(cr.DomainError, match="log"):
        build("log(x)", {"x": -1.0})
    with pytest.raises(ZeroDivisionError, match="truediv"):
        build("x / 0", {"x": 1.0})


# --- the command ------------------------------------------------------------------------------------
def test_draw_writes_the_picture_and_prints_the_gradients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    need("graphviz")
    need_pure()
    monkeypatch.chdir(tmp_path)
    assert draw(SEED001, "a=2", "b=-3", "c=10", "f=-2") == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["L = -8", "dL/da = 6", "dL/db = -4", "dL/dc = -2", "dL/df = 4", "wrote graph.svg"]
    svg = (tmp_path / "graph.svg").read_text()
    assert "grad 6.0000" in svg and "data &#45;8.0000" in svg
    assert draw("tanh(x)", "x=0.5", "-o", str(tmp_path / "t.png"), "--backend", "graphviz-pure") == 0
    assert (tmp_path / "t.png").read_bytes().startswith(b"\x89PNG")


def test_draw_dot_output_no_grad_and_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert draw(SEED001, "a=2", "b=-3", "c=10", "f=-2", "-o", str(tmp_path / "L.dot")) == 0
    assert (tmp_path / "L.dot").read_text() == (GOLDEN / "seed001.dot").read_text()
    capsys.readouterr()
    assert draw(SEED001, "a=2", "b=-3", "c=10", "f=-2", "--no-grad", "-o", "-") == 0
    text = capsys.readouterr().out
    assert text == (GOLDEN / "seed001_no_grad.dot").read_text()
    assert draw("x*2", "x=1", "--rankdir", "TB", "--max-nodes", "2", "-o", "-") == 0
    text = capsys.readouterr().out
    assert "rankdir=TB" in text and "... 1 more" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["x.y", "x=1"], "chainrule draw: attribute access is not allowed in 'x.y'"),
        (["log(x)", "x=-1"], "chainrule draw: log: requires x > 0, got -1.0"),
        (["x/0", "x=1"], "chainrule draw: truediv: requires a non-zero divisor"),
        (["x", "x=1", "-o", "x.pdf"], "cannot write 'x.pdf': the file name must end in .svg"),
        (["2*3"], "depends on no input"),
        (["x"], "unknown name 'x'"),
    ],
)
def test_draw_errors_are_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert draw(*argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.err.count("\n") == 1 and captured.out == ""


def test_readme_picture_is_what_chainrule_draw_makes(tmp_path: Path) -> None:
    """docs/images/seed001.svg was written by `chainrule draw ... --backend graphviz-pure`."""
    need("graphviz")
    need_pure()
    out = tmp_path / "seed001.svg"
    assert draw(SEED001, "a=2", "b=-3", "c=10", "f=-2", "-o", str(out), "--backend", "graphviz-pure") == 0
    committed = Path(__file__).parents[1] / "docs" / "images" / "seed001.svg"
    assert out.read_text() == committed.read_text()


def test_the_installed_command_runs_draw(tmp_path: Path) -> None:
    """`python -m chainrule draw` goes through chainrule.cli to this module."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "chainrule", "draw", SEED001, "a=2", "b=-3", "c=10", "f=-2", "-o", "-"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (GOLDEN / "seed001.dot").read_text()
    refused = subprocess.run(
        [sys.executable, "-m", "chainrule", "draw", "__import__('os').getcwd()"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert refused.returncode == 2 and refused.stderr.startswith("chainrule draw: only the functions")


def test_draw_into_a_missing_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere" / "L.svg"
    assert draw("a*b", "a=2", "b=3", "-o", str(missing)) == 2
    err = capsys.readouterr().err
    assert err == (
        f"chainrule draw: cannot write {str(missing)!r}: the folder {str(missing.parent)!r} does not exist\n"
    )
