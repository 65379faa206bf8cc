"""`chainrule demo`: the command's face, its options and their bounds. The demo itself (training,
pictures) is `chainrule.demo`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from .. import demo
from .arguments import positive_int, positive_number


# --- the options ----------------------------------------------------------------------------------
def _sizes(text: str) -> list[int]:
    try:
        sizes = [positive_int(part) for part in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected layer sizes separated by commas, e.g. 16,16; got {text!r}"
        ) from None
    if len(sizes) > demo.MAX_LAYERS:
        raise argparse.ArgumentTypeError(f"at most {demo.MAX_LAYERS} hidden layers, got {len(sizes)}")
    return sizes


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= demo.MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to {demo.MAX_SEED}, got {text!r}")
    return value


def _bounded(limit: int) -> Callable[[str], int]:
    """A positive integer of at most `limit`, for argparse."""

    def parse(text: str) -> int:
        value = positive_int(text)
        if value > limit:
            raise argparse.ArgumentTypeError(f"at most {limit:,}, got {text!r}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of `chainrule demo`."""
    parser.add_argument(
        "--task", choices=sorted(demo.DEFAULTS), default="moons", help="two moons (default) or 8x8 digits"
    )
    parser.add_argument(
        "--steps", type=_bounded(demo.MAX_STEPS), help="training steps (moons 100, digits 50)"
    )
    parser.add_argument(
        "--lr", type=positive_number, help="initial learning rate; it decays linearly to 10%% of it"
    )
    parser.add_argument("--seed", type=_seed, default=1337, help="random seed for data and weights (1337)")
    parser.add_argument(
        "--samples", type=_bounded(demo.MAX_SAMPLES), help="training samples (moons 100, digits 150)"
    )
    parser.add_argument("--hidden", type=_sizes, help="hidden layer sizes (moons 16,16, digits 24)")
    parser.add_argument("--optimizer", choices=["sgd", "adam"], help="sgd or adam (moons sgd, digits adam)")
    parser.add_argument(
        "--engine",
        choices=["eager", "compiled"],
        default="eager",
        help="eager Values (default) or a compiled program run on the whole batch with numpy",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("chainrule-demo"), help="folder for pictures and model"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar; print only the accuracy")


def run(args: argparse.Namespace) -> int:
    """Run `chainrule demo`; returns the exit code."""
    return demo.run(args)
