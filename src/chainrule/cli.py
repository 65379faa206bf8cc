"""The `chainrule` command: `chainrule demo` and `chainrule draw` (see `--help`)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each command lives in its own module, which offers `add_arguments(parser)` and `run(args) -> int`.
COMMANDS = {
    "demo": ("chainrule.demo", "train the two-moons classifier and write its pictures and model"),
    "draw": ("chainrule.expr", "draw an expression's graph with its gradients"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen command; returns the exit code."""
    parser = argparse.ArgumentParser(prog="chainrule", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        modules[name] = module
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    return int(modules[args.command].run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
