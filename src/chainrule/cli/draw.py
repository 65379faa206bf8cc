"""`chainrule draw "EXPR" a=2 b=-3`: build an expression's graph safely, run backward, draw it."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from ..drawing import DEFAULT_MAX_NODES, DEFAULT_TIMEOUT, RendererNotFound, format_of, render_graph, to_dot
from ..expr import ExprError, build, parse_values
from .arguments import (
    add_expression_arguments,
    add_renderer_arguments,
    check_output_folder,
    one_line,
    positive_int,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Configure the `chainrule draw` subcommand's arguments."""
    add_expression_arguments(parser, "draw", "L.svg")
    parser.add_argument(
        "-o",
        "--output",
        default=None,
        help="output file: .svg (default graph.svg), .png, .jpg, or .dot for the DOT text; - prints DOT",
    )
    parser.add_argument("--no-grad", action="store_true", help="draw the forward pass only (no backward)")
    parser.add_argument(
        "--max-nodes",
        type=positive_int,
        default=None,
        help=f"draw the values nearest the output and collapse the rest into one '... N more' node "
        f"(default {DEFAULT_MAX_NODES})",
    )
    add_renderer_arguments(
        parser, f"stop the renderer after this long ({DEFAULT_TIMEOUT:g}); a .dot file needs no renderer"
    )


def run(args: argparse.Namespace) -> int:
    """Run `chainrule draw`: build, backward, write the picture; returns the exit code."""
    try:
        path = Path(args.output or "graph.svg")
        if args.output != "-":  # before any work, and in the command's words
            if format_of(path) is None:
                raise ExprError(
                    f"draw: cannot write {str(path)!r}: the file name must end in .svg, .png, .jpg or .dot "
                    "(or use -o - for the DOT text on stdout)"
                )
            check_output_folder("draw", path)
        values = parse_values(args.values)
        built = build(args.expression, values)
        root = built.output
        if not args.no_grad:
            if not root.requires_grad:
                raise ExprError(
                    "draw: the expression depends on no input, so it has no gradients (use --no-grad)"
                )
            root.backward()
        max_nodes = args.max_nodes if args.max_nodes is not None else DEFAULT_MAX_NODES
        dot = to_dot(root, rankdir=args.rankdir, show_grad=not args.no_grad, max_nodes=max_nodes)
        if args.output == "-":
            sys.stdout.write(dot)
            return 0
        timeout = args.timeout if args.timeout is not None else DEFAULT_TIMEOUT
        render_graph(dot, path, backend=args.backend, timeout=timeout)
    # One line for every way a user's input can fail: refused syntax, unknown names, a domain
    # error (log(-1)), a bad file name, no renderer, a renderer out of time (RenderTimeout is an
    # OSError). Anything else is a bug and keeps its traceback.
    except (ValueError, ArithmeticError, RendererNotFound, OSError, subprocess.SubprocessError) as exc:
        print(f"chainrule {one_line('draw', exc)}", file=sys.stderr)
        return 2
    name = root.label
    print(f"{name} = {root.data:.6g}")
    if not args.no_grad:
        for input_name, leaf in built.inputs.items():
            print(f"d{name}/d{input_name} = {leaf.grad:.6g}")
    print(f"wrote {path}")
    return 0
