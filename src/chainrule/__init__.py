"""chainrule: a small, dependable automatic-differentiation engine for learning and for work."""

from .engine import Value, constant, is_grad_enabled, no_grad, placeholder, sum
from .errors import DomainError, PlaceholderError
from .ops import OPS, TABLE, Op

__version__ = "0.1.0"

__all__ = [
    "OPS",
    "TABLE",
    "DomainError",
    "Op",
    "PlaceholderError",
    "Value",
    "constant",
    "is_grad_enabled",
    "no_grad",
    "placeholder",
    "sum",
]
