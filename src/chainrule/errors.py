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


class GradcheckError(AssertionError):
    """`gradcheck` found an analytic gradient that disagrees with the numerical one."""
