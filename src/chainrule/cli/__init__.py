"""The `chainrule` command: `chainrule demo`, `draw` and `explore` (see `--help`, `--version`).

One module per command (`cli/demo.py`, `cli/draw.py`, `cli/explore.py`), each offering
`add_arguments(parser)` and `run(args) -> int`; what they share is in `cli/arguments.py`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "main"]

# The subcommand table: name -> (module, one line of help). Only the chosen command's module is
# imported, so one command's optional dependencies (or a broken module) never take another down.
COMMANDS = {
    "demo": ("chainrule.cli.demo", "train the two-moons classifier and write its pictures and model"),
    "draw": ("chainrule.cli.draw", "draw an expression's graph with its gradients"),
    "explore": ("chainrule.cli.explore", "write a page that steps through backprop on an expression"),
}


def _version() -> str:
    """The version of the chainrule that is running (not of some other installed copy)."""
    from .. import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = argparse.ArgumentParser(prog="chainrule", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"chainrule {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    module = command_parser = None
    for name, (module_name, help_text) in COMMANDS.items():
        this_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module, command_parser = importlib.import_module(module_name), this_parser
            module.add_arguments(command_parser)
    args, unknown = parser.parse_known_args(argv)
    assert module is not None and command_parser is not None  # argparse rejected anything else
    if unknown:  # `chainrule demo --bogus`: the command's own usage, not the top-level one
        command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return int(module.run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
