"""`chainrule explore "EXPR" a=2 b=-3 -o page.html`: the explorer's page for an expression."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from ..drawing import DEFAULT_TIMEOUT, RendererNotFound
from ..explorer import DEFAULT_MAX_NODES, MAX_NODES_LIMIT, explore
from ..expr import build, parse_values
from .arguments import (
    add_expression_arguments,
    add_renderer_arguments,
    check_output_folder,
    one_line,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Configure the `chainrule explore` subcommand's arguments."""
    add_expression_arguments(parser, "explore", "L.html")
    parser.add_argument(
        "-o", "--output", default="explorer.html", help="the page to write (.html; - prints it)"
    )
    parser.add_argument(
        "--max-nodes",
        type=int,  # explore() itself names the allowed range in its refusal
        default=DEFAULT_MAX_NODES,
        help=f"refuse graphs with more values: the page steps through every value, so unlike draw "
        f"it never cuts the graph (default {DEFAULT_MAX_NODES}, at most {MAX_NODES_LIMIT})",
    )
    add_renderer_arguments(
        parser,
        f"give the picture this long to lay out ({DEFAULT_TIMEOUT:g}); past it the page has the steps "
        "and the table without the picture",
    )


def run(args: argparse.Namespace) -> int:
    """Run `chainrule explore`: build the expression safely, record it, write the page."""
    try:
        if args.output != "-":
            path = Path(args.output)
            if path.suffix.lower() not in (".html", ".htm"):
                raise ValueError(
                    f"explore: the page is HTML: give an output file ending in .html, got {args.output!r}"
                )
            check_output_folder("explore", path)
        built = build(args.expression, parse_values(args.values))
        root = built.output
        if not root.requires_grad:
            raise ValueError("explore: the expression depends on no input, so it has no gradients to show")
        timeout = args.timeout if args.timeout is not None else DEFAULT_TIMEOUT
        explorer = explore(
            root, max_nodes=args.max_nodes, rankdir=args.rankdir, backend=args.backend, timeout=timeout
        )
        if args.output == "-":
            sys.stdout.write(explorer.html)
            return 0
        path = explorer.save(args.output)
    # One line for every way a user's input can fail, as `chainrule draw` does; anything else is a
    # bug and keeps its traceback.
    except (ValueError, ArithmeticError, RendererNotFound, OSError, subprocess.SubprocessError) as exc:
        print(f"chainrule {one_line('explore', exc)}", file=sys.stderr)
        return 2
    name = explorer.names[root]
    print(f"{name} = {root.data:.6g}")
    for input_name, leaf in built.inputs.items():
        print(f"d{name}/d{input_name} = {explorer.grads[leaf]:.6g}")
    if not explorer.has_picture:
        print(f"chainrule explore: the page has no picture: {explorer.picture_note}", file=sys.stderr)
    print(f"wrote {path} ({explorer.step_count} steps: open it in a browser)")
    return 0
