"""The `chainrule` command dispatcher: help, unknown commands, and lazy loading of command modules."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chainrule import cli


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bogus"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err


def test_only_the_chosen_command_module_is_imported() -> None:
    # `chainrule draw` must not import the demo (and with it scikit-learn and matplotlib).
    code = (
        "import sys; from chainrule import cli; "
        "rc = cli.main(['draw', 'L = a*b', 'a=2', 'b=3', '-o', '-']); "
        "print('demo' if 'chainrule.demo' in sys.modules else 'no-demo', rc)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "no-demo 0"


def test_python_dash_m_runs_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chainrule", "draw", "L = a*b", "a=2", "b=3", "-o", "-"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "digraph" in result.stdout


def test_import_chainrule_stays_pure_python_and_lazy() -> None:
    # The core needs no dependency: importing it must not pull numpy (or any optional module) in,
    # while the documented names still resolve on first use.
    code = (
        "import sys, chainrule as cr; before = 'numpy' in sys.modules; "
        "names = [cr.grad, cr.to_dot, cr.save, cr.ModelFileError, cr.optim.SGD, cr.nn.MLP, cr.losses]; "
        "print(before, all(names))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True"]
