"""The list of operations in README.md agrees with the derivative table, and is the only one.

The README's lists are parsed out of the markdown and compared with `chainrule.TABLE` (the built-in
rows): a row missing from a list, or a name in a list that is not a row, fails here, naming the file.
If a sentence is reworded so that its list is no longer found, the test says so too (update the
pattern). The pages in docs/ refer to the README's list instead of repeating it, which is checked
too: adding a row edits one list.
"""

from __future__ import annotations

import math
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


def test_readme_lists_every_method() -> None:
    path = "README.md"
    _same(path, "the list of methods", _words(_find(path, r"Methods `([^`]+)`\.")), METHODS)


def test_readme_lists_every_operator() -> None:
    path = "README.md"
    listed = _words(_find(path, r"Operators `([^`]+)`, unary `-`, `abs\(\)`"))
    _same(path, "the list of operators", listed, OPERATORS)


def test_the_unary_operators_are_the_ones_the_readme_names() -> None:
    # README.md spells them out as `-` and `abs()`: a new operator row (a dunder method such as
    # __invert__) must be added there, and here.
    assert UNARY_OPERATORS == {"__neg__", "__abs__"}, (
        f"unary operator rows {sorted(UNARY_OPERATORS)}: name the new one in README.md's list of "
        "operators, then here"
    )


# Three or more names of the table's methods in a row ("exp log tanh", ".tanh() .exp() .log()"): a
# copy of the README's list, which would go stale when a row is added.
_RUN_OF_METHODS = re.compile(rf"(?:\.?\b(?:{'|'.join(sorted(METHODS))})\b(?:\(\))?[\s,`]+){{3,}}")


@pytest.mark.parametrize("path", sorted(p.name for p in (ROOT / "docs").glob("*.md")))
def test_no_other_doc_repeats_the_list(path: str) -> None:
    """The README's list is the only one: other pages refer to it, so adding a row edits one list."""
    text = (ROOT / "docs" / path).read_text(encoding="utf-8")
    runs = [m.group(0).strip() for m in _RUN_OF_METHODS.finditer(text)]
    assert not runs, f"docs/{path} repeats the list of operations ({runs}): refer to the README's list"


def test_the_draw_command_offers_every_one_input_row() -> None:
    # the parser's functions are the table's one-input rows (neg is spelled `-x`) and sum
    rows = {op.name for op in TABLE if op.arity == 1 and op.name != "neg"}
    assert set(FUNCTIONS) == rows | {"sum"}, sorted(set(FUNCTIONS) ^ (rows | {"sum"}))


def test_against_torch_tensors_have_every_method_of_the_table() -> None:
    # the methods torch tensors lack are added from the torch backend, by name: no per-op edit
    torch = need("torch")
    cls = _tensor_class(torch)
    missing = sorted(name for name in METHODS if not callable(getattr(cls, name, None)))
    assert not missing, f"against_torch's tensors lack {missing}"
    x = torch.tensor(0.5, dtype=torch.float64).as_subclass(cls)
    assert float(x.softplus()) == pytest.approx(math.log1p(math.exp(0.5)), rel=1e-15)


def _adding_an_operation() -> str:
    return _find("docs/architecture.md", r"\n## Adding an operation\n(.*?)(?=\n## |\Z)")


def test_architecture_says_how_to_add_an_operation() -> None:
    section = _adding_an_operation()
    for needed in (
        "ops.py",
        "tests/op_cases.py",
        "`README.md`",
        "chainrule.defop",
        "_backward",
        "tests/test_doc_op_lists.py",
        "test_every_table_row_has_an_entry_and_every_entry_a_row",
        "three files",
    ):
        assert needed in section, f"docs/architecture.md's 'Adding an operation' no longer mentions {needed}"
    # the README's list is the only one: the recipe names no other doc to edit
    for path in ("docs/tensor.md", "docs/drawing.md", "docs/functional.md", "backends.py", "check.py"):
        assert f"`{path}`" not in section, (
            f"the recipe asks for an edit of {path}, which adding a row needs no more"
        )


@pytest.mark.usefixtures("user_ops_restored")
def test_architecture_examples_print_what_they_say(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", _adding_an_operation(), re.S)
    assert len(blocks) == 2  # defop, and a node with its own _backward
    for block in blocks:
        exec(compile(block, "docs/architecture.md", "exec"), {})  # noqa: S102 - our own docs
        said = [line.split("# ")[-1].split() for line in block.splitlines() if line.startswith("print(")]
        printed = [line.split() for line in capsys.readouterr().out.splitlines()]
        assert printed == said
