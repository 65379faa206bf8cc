"""The course notebook's `Variable` API, as a thin layer over chainrule's engine.

The autograd practical this mirrors builds a `Variable` class step by step: `.value`, `.grad`,
`.backProp()`, `.zeroGrad()`, `.zeroGradsRecursively()`, the functions `vAdd vMul vSub vDiv vRaise
vUnary vExp`, and operators that call them. Here every `Variable` wraps one `chainrule.Value`
(its `.node`), every operation is a row of the derivative table, and `backProp()` is the engine's
backward pass, so the notebook's cells run unchanged and print the notebook's numbers:

    >>> a = Variable(4); b = Variable(3)
    >>> res = (a + b) * a
    >>> res.backProp()
    >>> print(a, "|", b)
    Value: 4, Gradient: 11.0 | Value: 3, Gradient: 4.0

Behaviours kept on purpose, because the notebook teaches them:
- Results of +, -, *, ** on ints are ints (`Value: 20`), as Python's own arithmetic gives.
- `backProp()` adds into `.grad`: calling it twice doubles every gradient (zero them first).
- `requiresGrad=False` blocks the route: such a Variable gets no gradient and passes none on.
  A Variable made by an operation requires grad, as in the notebook, whatever its inputs.
One difference: a plain number mixed into an operation (`a * 2`) becomes a constant that takes no
gradient. The notebook gives it one that nobody can read; this way `x ** 2` also works for x < 0,
where the notebook's `vRaise` fails computing log(x) for the exponent's route.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Union

from .engine import Value, gradients

__all__ = ["Variable", "vAdd", "vDiv", "vExp", "vMul", "vRaise", "vSub", "vUnary"]

Operand = Union["Variable", int, float]

_EXACT_INT = 2**53  # below this, a float holds an integer exactly


class Variable:
    """A number that remembers how it was computed, so `backProp()` can find every gradient."""

    __slots__ = ("node", "_raw", "_is_int")

    def __init__(self, value: Any, requiresGrad: bool = True) -> None:  # the course's name
        if isinstance(value, Variable):
            raise TypeError("Variable: got a Variable; use it directly instead of wrapping it again")
        if not isinstance(value, numbers.Real):
            raise TypeError(f"Variable needs a real number, got {type(value).__name__}: {value!r}")
        self.node = Value(value, requires_grad=bool(requiresGrad))
        self._raw: Any = value  # shown as given: Variable(4) prints 4, Variable(4.3) prints 4.3
        self._is_int = isinstance(value, numbers.Integral)

    @classmethod
    def _result(cls, node: Value, is_int: bool) -> Variable:
        """Wrap a node made by an operation; like the notebook's results, it requires grad."""
        out = cls.__new__(cls)
        node.requires_grad = True
        out.node = node
        out._raw = None
        # An int result stays an int only while the float the engine holds is exactly that int.
        out._is_int = is_int and math.isfinite(node.data) and abs(node.data) < _EXACT_INT
        return out

    # --- the notebook's attributes ----------------------------------------------------------------
    @property
    def value(self) -> Any:
        """The number this Variable holds (an int when the notebook's arithmetic would give one)."""
        if self._raw is not None:
            return self._raw
        return int(self.node.data) if self._is_int else self.node.data

    @value.setter
    def value(self, number: Any) -> None:
        # Like the notebook: changes this Variable only; results computed from it keep their values.
        self.node.data = float(number)
        self._raw = number
        self._is_int = isinstance(number, numbers.Integral)

    @property
    def grad(self) -> Any:
        """d(whatever backProp() started from) / d(this Variable), accumulated."""
        return self.node.grad

    @grad.setter
    def grad(self, number: Any) -> None:
        self.node.grad = number

    @property
    def requiresGrad(self) -> bool:  # the course's name
        """Whether gradients flow into (and through) this Variable."""
        return self.node.requires_grad

    @requiresGrad.setter
    def requiresGrad(self, flag: bool) -> None:
        self.node.requires_grad = bool(flag)

    # --- gradients ----------------------------------------------------------------------------
    def backProp(self, route_val: float = 1.0) -> None:  # the course's name
        """Add route_val * d(self)/d(v) into `v.grad` for every Variable v this one was computed from."""
        if not self.node.requires_grad:  # the notebook's `if self.requiresGrad:` guard
            return
        # One reverse sweep gives every node's gradient (not one walk per path as the notebook's
        # recursion does; the sums are the same), and we add it, scaled, into .grad.
        for node, g in gradients(self.node).items():
            node.grad += route_val * g

    def zeroGrad(self) -> None:  # the course's name
        """Set this Variable's gradient to 0."""
        self.node.grad = 0.0

    def zeroGradsRecursively(self) -> None:  # the course's name
        """Set the gradient of this Variable and of everything it was computed from to 0."""
        self.node.zero_grad()

    # --- operators: each one calls the notebook's function ------------------------------------
    def __add__(self, b: Operand) -> Variable:
        return vAdd(self, b)

    def __radd__(self, b: Operand) -> Variable:
        return vAdd(self, b)

    def __mul__(self, b: Operand) -> Variable:
        return vMul(self, b)

    def __rmul__(self, b: Operand) -> Variable:
        return vMul(self, b)

    def __sub__(self, b: Operand) -> Variable:
        return vSub(self, b)

    def __rsub__(self, b: Operand) -> Variable:
        return vSub(b, self)

    def __truediv__(self, b: Operand) -> Variable:
        return vDiv(self, b)

    def __rtruediv__(self, b: Operand) -> Variable:
        return vDiv(b, self)

    def __pow__(self, b: Operand) -> Variable:
        return vRaise(self, b)

    def __rpow__(self, b: Operand) -> Variable:
        return vRaise(b, self)

    def __neg__(self) -> Variable:
        return vUnary(self)

    def __exp__(self) -> Variable:
        """e ** self (the notebook's name: Python has no `__exp__` hook, so call it directly)."""
        return vExp(self)

    def __str__(self) -> str:
        return f"Value: {self.value}, Gradient: {self.grad}"

    def __repr__(self) -> str:
        return f"Variable(value={self.value!r}, grad={self.grad!r}, requiresGrad={self.requiresGrad})"


def _as_variable(x: Operand, where: str) -> Variable:
    if isinstance(x, Variable):
        return x
    if isinstance(x, numbers.Real):
        # A constant: it takes no gradient (see the module docstring for why this differs).
        constant = Variable(x, requiresGrad=False)
        return constant
    raise TypeError(f"{where} needs a Variable or a number, got {type(x).__name__}: {x!r}")


def _both_int(A: Variable, B: Variable) -> bool:
    return A._is_int and B._is_int


def vAdd(A: Operand, B: Operand) -> Variable:  # the course's name
    """A + B."""
    A, B = _as_variable(A, "vAdd"), _as_variable(B, "vAdd")
    return Variable._result(A.node + B.node, _both_int(A, B))


def vMul(A: Operand, B: Operand) -> Variable:
    """A * B."""
    A, B = _as_variable(A, "vMul"), _as_variable(B, "vMul")
    return Variable._result(A.node * B.node, _both_int(A, B))


def vSub(A: Operand, B: Operand) -> Variable:
    """A - B."""
    A, B = _as_variable(A, "vSub"), _as_variable(B, "vSub")
    return Variable._result(A.node - B.node, _both_int(A, B))


def vDiv(A: Operand, B: Operand) -> Variable:
    """A / B (always a float, as Python's / is)."""
    A, B = _as_variable(A, "vDiv"), _as_variable(B, "vDiv")
    return Variable._result(A.node / B.node, False)


def vRaise(A: Operand, B: Operand) -> Variable:
    """A ** B; both routes carry a gradient, the exponent's being log(A) * A ** B."""
    A, B = _as_variable(A, "vRaise"), _as_variable(B, "vRaise")
    # int ** int is an int in Python only for a non-negative exponent (4 ** -1 == 0.25)
    return Variable._result(A.node**B.node, _both_int(A, B) and B.node.data >= 0)


def vUnary(A: Operand) -> Variable:
    """-A."""
    A = _as_variable(A, "vUnary")
    return Variable._result(-A.node, A._is_int)


def vExp(A: Operand) -> Variable:
    """e ** A."""
    A = _as_variable(A, "vExp")
    # The notebook computes math.e ** A (not math.exp(A), which can differ in the last digit), so
    # this is the table's `pow` row with the constant base e: its exponent rule, out * log(e),
    # is exactly the notebook's route value math.e ** A.
    return Variable._result(Value(math.e, requires_grad=False) ** A.node, False)
