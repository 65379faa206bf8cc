"""The errors chainrule raises on purpose, so users can catch them by name."""

from __future__ import annotations

from typing import Any


class DomainError(ValueError):
    """An operation was given a value outside its domain, e.g. `log(-1)` or `sqrt(-2)`."""

    def __init__(self, message: str, op: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.op = op
        self.value = value


class PlaceholderError(RuntimeError):
    """A placeholder (a traced input with no data yet) was used as if it had a value."""


class BackwardClosureError(TypeError):
    """A hand-built node's `_backward` closure did what `backward()` cannot use (overwrote a `.grad`)."""


class GradcheckError(AssertionError):
    """`gradcheck` found an analytic gradient that disagrees with the numerical one."""


# --- the messages of an operation that fails: built here, for every engine ---------------------------
# Eager backward, compiled programs, Tensor, the explorer and the exports all report a failing op
# through these functions, so that the same failure reads the same everywhere.


def outside_domain(op: str, requirement: str, shown: str, value: Any, error: type[Exception]) -> Exception:
    """The error for operands outside op's domain: '<op>: requires <requirement>, got <shown>'."""
    message = f"{op}: requires {requirement}, got {shown}"
    if error is DomainError:
        return DomainError(message, op=op, value=value)
    return error(message)


def rule_failure(op: str, inputs: tuple[Any, ...], exc: BaseException, derivative: bool = True) -> Exception:
    """A rule of `op` that raised an arithmetic error at `inputs`, as a DomainError naming the op.

    For a derivative rule this reads '<op>: the derivative is undefined at <inputs>: <reason>'. A
    DomainError raised on purpose (by a domain check) is returned as it is.
    """
    if isinstance(exc, DomainError):
        return exc
    what = "the derivative is undefined" if derivative else "failed"
    return DomainError(f"{op}: {what} at {inputs}: {exc}", op=op, value=inputs)


def with_context(exc: BaseException, context: str) -> Exception:
    """The same kind of error as `exc` with `context` appended to its message: '... (in %7 = log %5)'."""
    message = f"{exc} ({context})"
    if isinstance(exc, DomainError):
        return DomainError(message, op=exc.op, value=exc.value)
    try:
        return type(exc)(message)
    except TypeError:  # an exception class with an unusual constructor
        return DomainError(message)
