"""The tape's vocabulary, shared by the Program and both execution modes.

A Program numbers every value it handles with a *slot*: inputs first, then parameters, constants
and one slot per instruction (`%7 = tanh %5`). This module holds what every other module of the
compiler reads: the `Instruction` record, the names of the slot kinds, and the helper that adds
"in %7 = tanh %5" to an error message. It imports nothing else from the compiler.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine import GRAD_LOCK
from ..errors import DomainError
from ..ops import Op

INPUT, PARAMETER, CONSTANT, INSTRUCTION = "input", "parameter", "constant", "instruction"

# Programs add into parameters' `.grad` under the engine's lock, the one eager backward sweeps
# hold, so that runs and sweeps in several threads that share parameters leave the exact sum
# (`p.grad += g` is a read, an add and a write).
GRADIENT_LOCK = GRAD_LOCK


@dataclass(frozen=True)
class Instruction:
    """One step of a Program: `%slot = op %arg %arg ...`."""

    slot: int
    op: Op
    args: tuple[int, ...]
    label: str = ""

    def __str__(self) -> str:
        text = f"%{self.slot} = {self.op.name} " + " ".join(f"%{a}" for a in self.args)
        return f"{text}  # {self.label}" if self.label else text


def with_context(exc: Exception, context: str) -> Exception:
    """The same kind of error as `exc` with `context` appended to its message."""
    message = f"{exc} ({context})"
    if isinstance(exc, DomainError):
        return DomainError(message, op=exc.op, value=exc.value)
    try:
        return type(exc)(message)
    except TypeError:  # an exception class with an unusual constructor
        return DomainError(message)
