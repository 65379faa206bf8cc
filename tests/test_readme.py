"""Every Python example in the README runs, so the front page cannot rot."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import chainrule
import chainrule.userops
from conftest import need

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need("numpy")
    need("torch")
    need("jax")
    monkeypatch.chdir(tmp_path)  # examples may write files (model.json)
    defined_before = set(chainrule.OPS)
    try:
        exec(compile(BLOCKS[index], f"README.md example {index}", "exec"), {"__name__": "readme"})
    finally:  # forget the ops an example defines with defop: other tests iterate the table
        for name in set(chainrule.OPS) - defined_before:
            del chainrule.OPS[name]
            chainrule.userops._defined_here.discard(name)


def test_readme_first_example_prints_the_seed_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(BLOCKS[0], "README.md example 0", "exec"), {})
    assert capsys.readouterr().out.split() == ["-8.0", "6.0", "-4.0", "-2.0", "4.0"]


def test_readme_names_the_ci_test_command() -> None:
    # CI must run exactly the README's test command.
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    command = 'pip install -e ".[test]" && python -m pytest'
    assert command in README.read_text(encoding="utf-8")
    assert command in ci
    assert os.access(README.parent / ".ci" / "run", os.X_OK)
