"""`chainrule demo`: the command's face. The demo itself (training, pictures) is `chainrule.demo`."""

from __future__ import annotations

import argparse

from .. import demo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Configure the `chainrule demo` subcommand's arguments (declared by `chainrule.demo`)."""
    demo.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run `chainrule demo`; returns the exit code."""
    return demo.run(args)
