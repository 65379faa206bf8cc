"""The tape's vocabulary, shared by the Program and both execution modes.

A Program numbers every value it handles with a *slot*: inputs first, then parameters, constants
and one slot per instruction (`%7 = tanh %5`). This module holds what every other module of the
compiler reads: the `Instruction` record, the names of the slot kinds, the helpers that add
"in %7 = tanh %5" to an error message, and what both float-mode runners share (the eager engine's
backward order over the tape, adding gradients into `.grad`). It imports nothing else from the
compiler.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..backends import FLOAT
from ..engine import add_gradients
from ..errors import DomainError, rule_failure, with_context
from ..ops import Op

INPUT, PARAMETER, CONSTANT, INSTRUCTION = "input", "parameter", "constant", "instruction"


class Instruction(NamedTuple):
    """One step of a Program: `%slot = op %arg %arg ...` (a named tuple: a Program holds one per
    instruction, and they are made fast)."""

    slot: int
    op: Op
    args: tuple[int, ...]
    label: str = ""

    def __str__(self) -> str:
        text = f"%{self.slot} = {self.op.name} " + " ".join(f"%{a}" for a in self.args)
        return f"{text}  # {self.label}" if self.label else text


# --- float mode: what generated code and the interpreter share ------------------------------------
def outside_domain(ins: Instruction, xs: Sequence[float]) -> Exception:
    """The op's own domain error for operands `xs` (which its `invalid` test rejected), naming `ins`."""
    try:
        ins.op.check(FLOAT, *xs)
    except (ArithmeticError, ValueError) as exc:
        return with_context(exc, f"in {ins}")
    requirement = ins.op.domain_text or "operands inside its domain"
    return with_context(
        outside_domain(ins.op.name, requirement, repr(tuple(xs)), tuple(xs), DomainError), f"in {ins}"
    )


def rule_failed(ins: Instruction, derivative: bool, xs: Sequence[float], exc: Exception) -> Exception:
    """An arithmetic failure of one of `ins`'s rules at operands `xs` as a DomainError naming it."""
    if isinstance(exc, DomainError):
        return exc
    return with_context(rule_failure(ins.op.name, tuple(xs), exc, derivative), f"in {ins}")


@dataclass(frozen=True)
class BackwardOrder:
    """The eager engine's backward sweep over a Program's tape, for float mode.

    `seeds` are (output index, slot) for the outputs that need a gradient. `steps` are
    (slot, needs), one per instruction `backward()` visits, in its order: `needs[i]` says whether
    input `i` takes a derivative (they are added in input order). `reached` holds every slot it
    visits: those that receive a gradient."""

    seeds: tuple[tuple[int, int], ...]
    steps: tuple[tuple[int, tuple[bool, ...]], ...]
    reached: frozenset[int]


def backward_order(program: Any) -> BackwardOrder:
    """The order in which `backward()` would add `program`'s derivatives (see `BackwardOrder`)."""
    needs = program.requires_grad
    seeds = tuple((k, slot) for k, slot in enumerate(program.output_slots) if needs[slot])
    masks: dict[tuple[bool, ...], tuple[bool, ...]] = {}  # one tuple per pattern, shared
    instructions, n_leaves = program.instructions, len(program.leaves)
    steps = []
    for slot in reversed(program.grad_order):
        if slot >= n_leaves:
            mask = tuple(map(needs.__getitem__, instructions[slot - n_leaves].args))
            steps.append((slot, masks.setdefault(mask, mask)))
    # `grad_order` holds the nodes reached from the outputs through nodes that need a gradient
    return BackwardOrder(seeds, tuple(steps), frozenset(program.grad_order))


def add_parameter_gradients(parameters: Sequence[Any], grads: Sequence[float]) -> None:
    """Add a float-mode run's gradients into its parameters' `.grad`, under the lock that makes
    threads' sums exact, and only into those that still require a gradient (one frozen after
    compiling gets none)."""
    add_gradients(parameters, grads)
