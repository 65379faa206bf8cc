"""The lists of operations written in README.md and docs/*.md agree with the derivative table.

Each list is parsed out of the markdown and compared with `chainrule.TABLE` (the built-in rows): a
row missing from a list, or a name in a list that is not a row, fails here, naming the file. If a
sentence is reworded so that its list is no longer found, the test says so too (update the pattern).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chainrule import TABLE
from chainrule.check import _tensor_class
from chainrule.expr import FUNCTIONS
from conftest import need

ROOT = Path(__file__).resolve().parents[1]

# What the table offers, spelled as the docs spell it.
METHODS = {op.method for op in TABLE if op.arity == 1 and not op.method.startswith("__")}  # v.exp()
OPERATORS = {op.symbol for op in TABLE if op.arity == 2}  # + - * / **
UNARY_OPERATORS = {op.method for op in TABLE if op.arity == 1 and op.method.startswith("__")}


def _find(path: str, pattern: str) -> str:
    """The one text that `pattern` (with one group) captures in the file."""
    found = re.findall(pattern, (ROOT / path).read_text(encoding="utf-8"), re.S)
    assert len(found) == 1, (
        f"{path}: the list of operations ({pattern!r}) was found {len(found)} times; "
        "if the sentence was reworded, update the pattern in tests/test_doc_op_lists.py"
    )
    return found[0]


def _words(text: str) -> list[str]:
    return text.split()


def _same(path: str, what: str, listed: list[str], expected: set[str]) -> None:
    assert len(listed) == len(set(listed)), f"{path}: {what} lists a name twice: {listed}"
    missing = sorted(expected - set(listed))
    extra = sorted(set(listed) - expected)
    assert not missing, f"{path}: {what} lacks {missing} (rows of chainrule.TABLE): add them"
    assert not extra, f"{path}: {what} names {extra}, which chainrule.TABLE does not have"


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        ("README.md", r"Methods `([^`]+)`\."),
        ("docs/tensor.md", r"the methods\s+`Value` has: `([^`]+)`"),
    ],
)
def test_method_lists(path: str, pattern: str) -> None:
    _same(path, "the list of methods", _words(_find(path, pattern)), METHODS)


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        ("README.md", r"Operators `([^`]+)`, unary `-`, `abs\(\)`"),
        ("docs/tensor.md", r"entry by entry with numpy broadcasting: `([^`]+)` and `-t`, `abs\(t\)`"),
    ],
)
def test_operator_lists(path: str, pattern: str) -> None:
    _same(path, "the list of operators", _words(_find(path, pattern)), OPERATORS)


def test_the_unary_operators_are_the_ones_the_docs_name() -> None:
    # README.md and docs/tensor.md spell them out as `-` and `abs()`: a new operator row (a dunder
    # method such as __invert__) must be added there, and here.
    assert UNARY_OPERATORS == {"__neg__", "__abs__"}, (
        f"unary operator rows {sorted(UNARY_OPERATORS)}: name the new one in README.md's and "
        "docs/tensor.md's lists of operators, then here"
    )


def test_the_draw_command_functions() -> None:
    listed = _words(
        _find("docs/drawing.md", r"calls to the derivative table's functions \(`([^`]+)`, and `sum")
    )
    _same("docs/drawing.md", "the list of functions", listed, set(FUNCTIONS) - {"sum"})
    # and the parser offers every one-input row (neg is spelled `-x`)
    rows = {op.name for op in TABLE if op.arity == 1 and op.name != "neg"}
    assert rows <= set(FUNCTIONS), f"chainrule.expr lacks {sorted(rows - set(FUNCTIONS))}"


def test_against_torch_method_list() -> None:
    # docs/functional.md: the methods PyTorch tensors share, and the ones against_torch adds.
    text = _find("docs/functional.md", r"tensors \(which share\s+(.*?is added for you)\)")
    shared, added = text.split("the operators;")
    shared_names = re.findall(r"\.(\w+)\(\)", shared)
    added_names = re.findall(r"\.(\w+)\(\)", added)
    _same("docs/functional.md", "against_torch's list of methods", shared_names + added_names, METHODS)
    assert "`abs()`" in shared, "docs/functional.md: abs() is no longer named among the shared spellings"
    torch = need("torch")
    for name in shared_names:
        assert hasattr(torch.Tensor, name), f"docs/functional.md says torch tensors have .{name}()"
    extended = vars(_tensor_class(torch))
    for name in added_names:
        assert name in extended, f"docs/functional.md says against_torch adds .{name}()"


def _adding_an_operation() -> str:
    return _find("docs/architecture.md", r"\n## Adding an operation\n(.*?)(?=\n## |\Z)")


def test_architecture_says_how_to_add_an_operation() -> None:
    section = _adding_an_operation()
    for needed in (
        "ops.py",
        "tests/op_cases.py",
        "chainrule.defop",
        "_backward",
        "tests/test_doc_op_lists.py",
    ):
        assert needed in section, f"docs/architecture.md's 'Adding an operation' no longer mentions {needed}"
    # the doc lists it names are the ones this file checks
    for path in ("README.md", "docs/tensor.md", "docs/drawing.md", "docs/functional.md"):
        assert f"`{path}`" in section, path


@pytest.mark.usefixtures("user_ops_restored")
def test_architecture_examples_print_what_they_say(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", _adding_an_operation(), re.S)
    assert len(blocks) == 2  # defop, and a node with its own _backward
    for block in blocks:
        exec(compile(block, "docs/architecture.md", "exec"), {})  # noqa: S102 - our own docs
        said = [line.split("# ")[-1].split() for line in block.splitlines() if line.startswith("print(")]
        printed = [line.split() for line in capsys.readouterr().out.splitlines()]
        assert printed == said
