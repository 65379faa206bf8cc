"""The `chainrule` command: `chainrule demo`, `draw` and `explore` (see `--help`, `--version`)."""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from collections.abc import Sequence

# Each command lives in its own module, which offers `add_arguments(parser)` and `run(args) -> int`.
# Only the chosen command's module is imported, so one command's optional dependencies (or a
# broken module) never take another command down.
COMMANDS = {
    "demo": ("chainrule.demo", "train the two-moons classifier and write its pictures and model"),
    "draw": ("chainrule.expr", "draw an expression's graph with its gradients"),
    "explore": ("chainrule.explorer", "write a page that steps through backprop on an expression"),
}


# --- argument types the commands share ------------------------------------------------------------
def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_number(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _version() -> str:
    """The version of the chainrule that is running (not of some other installed copy)."""
    from . import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = argparse.ArgumentParser(prog="chainrule", description=__doc__)
    parser.add_argument("--version", action="version", version=f"chainrule {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    module = None
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(command_parser)
    args = parser.parse_args(argv)
    assert module is not None  # argparse has rejected anything but a known command
    return int(module.run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
