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


def test_an_unknown_option_shows_the_commands_own_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "--bogus"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: chainrule demo ") and "--steps" in err  # not the top-level usage
    assert err.rstrip().endswith("chainrule demo: error: unrecognized arguments: --bogus")


def test_each_command_is_its_own_module_and_they_share_one_set_of_choices() -> None:
    import argparse

    from chainrule.cli import draw, explore

    assert [module for module, _ in cli.COMMANDS.values()] == [
        "chainrule.cli.demo",
        "chainrule.cli.draw",
        "chainrule.cli.explore",
    ]
    choices = {}
    for module in (draw, explore):
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        options = {a.dest: a for a in parser._actions}
        choices[module.__name__] = (options["rankdir"].choices, options["backend"].choices)
        assert options["timeout"].metavar == "SECONDS"  # both take --timeout
    assert choices["chainrule.cli.draw"] == choices["chainrule.cli.explore"]
    assert choices["chainrule.cli.draw"][0] == ["LR", "RL", "TB", "BT"]


def test_expr_is_only_the_parser() -> None:
    import chainrule.expr as expr

    assert not hasattr(expr, "run") and not hasattr(expr, "add_arguments")
    code = (
        "import sys, chainrule.expr; print(sorted(m for m in sys.modules if m.startswith('chainrule.cli')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"  # the parser does not pull the command line in
