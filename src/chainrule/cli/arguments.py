"""What the `chainrule` commands share: argument types and the options every expression command takes."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..drawing import BACKENDS, RANKDIRS
from ..expr import FUNCTIONS

__all__ = [
    "add_expression_arguments",
    "add_renderer_arguments",
    "check_output_folder",
    "one_line",
    "positive_int",
    "positive_number",
]


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


def add_expression_arguments(parser: argparse.ArgumentParser, command: str, output: str) -> None:
    """The arguments every expression command takes (`draw`, `explore`): the expression and its values."""
    parser.epilog = (
        f'example: chainrule {command} "e = a*b; d = e + c; L = d*f" a=2 b=-3 c=10 f=-2 -o {output}   '
        f"(functions: {', '.join(FUNCTIONS)}; an expression that starts with - goes in parentheses: '(-a)*b')"
    )
    parser.add_argument("expression", help="e.g. 'tanh(x*w + b)' or 'e = a*b; L = e + c'")
    parser.add_argument(
        "values", nargs="*", metavar="name=value", help="a number for every input, e.g. a=2 b=-3"
    )


def add_renderer_arguments(parser: argparse.ArgumentParser, timeout_help: str) -> None:
    """The drawing options both picture commands take, with the same choices in the same order."""
    parser.add_argument("--rankdir", default="LR", choices=list(RANKDIRS), help="layout direction (LR)")
    parser.add_argument(
        "--backend",
        default="auto",
        choices=list(BACKENDS),
        help="renderer: system Graphviz dot if found, else pip's graphviz-pure (auto)",
    )
    parser.add_argument("--timeout", type=positive_number, default=None, metavar="SECONDS", help=timeout_help)


def check_output_folder(command: str, path: Path) -> None:
    """Refuse, before any work, an output file whose folder does not exist (instead of a bare Errno 2)."""
    folder = path.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ValueError(f"{command}: cannot write {str(path)!r}: the folder {str(folder)!r} {what}")


def one_line(command: str, exc: BaseException) -> str:
    """An error as one line starting with the command's name (`draw: ...`, `explore: ...`).

    The expression parser and the drawing speak as `draw:`; under another command the prefix
    is that command's, so the user reads the name of what they ran.
    """
    message = " ".join(str(exc).split())
    for prefix in ("draw:", "explore:"):
        if message.startswith(prefix):
            message = message[len(prefix) :].lstrip()
            break
    return f"{command}: {message}"
