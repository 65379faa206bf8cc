"""Loss functions and regularisation for training with chainrule's scalar engine.

Every loss takes a batch (a list of predictions and a list of targets, or a single prediction and
target) and returns one `Value` (or a list of them with `reduction="none"`). They are built only from
the derivative table's operations, so their gradients come from `chainrule.ops` like everything else.
Sums are single n-ary `chainrule.sum` nodes, not chains of additions.

Targets may be plain numbers (checked: a clear error for a label a loss cannot use) or `Value`s,
including placeholders, so a loss can be traced once and compiled (`chainrule.compile`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

from .engine import Value
from .engine import sum as value_sum
from .errors import PlaceholderError

__all__ = [
    "binary_cross_entropy_with_logits",
    "bce_with_logits",
    "cross_entropy",
    "hinge_loss",
    "l2_regularization",
    "mse_loss",
    "svm_loss",
]

REDUCTIONS = ("mean", "sum", "none")


def _as_batch(x: Any) -> list[Any]:
    """A single prediction or target as a batch of one; a sequence as a list."""
    if isinstance(x, Value | numbers.Real):
        return [x]
    try:
        return list(x)
    except TypeError:
        raise TypeError(f"expected a Value, a number or a sequence of them, got {type(x).__name__}") from None


def _pair(name: str, predictions: Any, targets: Any) -> tuple[list[Any], list[Any]]:
    """Predictions and targets as equally long, non-empty lists (or a clear error naming the loss)."""
    preds, targs = _as_batch(predictions), _as_batch(targets)
    if len(preds) != len(targs):
        raise ValueError(f"{name}: got {len(preds)} predictions but {len(targs)} targets")
    if not preds:
        raise ValueError(f"{name}: the batch is empty")
    return preds, targs


def _number(name: str, what: str, x: Any) -> float | None:
    """The value of a plain-number target (None for a Value, which is not checked); rejects junk."""
    if isinstance(x, Value):
        return None
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name}: {what} must be a number or a Value, got {type(x).__name__}: {x!r}")
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"{name}: {what} must be finite, got {x!r}")
    return x


def _reduce(name: str, terms: list[Value], reduction: str) -> Value | list[Value]:
    """Combine per-sample losses as PyTorch's `reduction` argument does."""
    if reduction == "none":
        return terms
    total = value_sum(terms)
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total * (1.0 / len(terms))
    raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def mse_loss(predictions: Any, targets: Any, reduction: str = "mean") -> Value | list[Value]:
    """Mean squared error: the mean of (prediction - target) ** 2, for regression."""
    preds, targs = _pair("mse_loss", predictions, targets)
    for t in targs:
        _number("mse_loss", "a target", t)
    # d*d rather than d**2: a multiplication is the cheapest node and needs no domain check.
    terms = [d * d for d in (p - t for p, t in zip(preds, targs, strict=True))]
    return _reduce("mse_loss", [_as_value(t) for t in terms], reduction)


def svm_loss(scores: Any, labels: Any, reduction: str = "mean") -> Value | list[Value]:
    """micrograd's max-margin (hinge) loss: the mean of relu(1 - label * score), labels -1 or +1."""
    preds, targs = _pair("svm_loss", scores, labels)
    for y in targs:
        value = _number("svm_loss", "a label", y)
        if value is not None and value not in (-1.0, 1.0):
            raise ValueError(f"svm_loss: labels must be -1 or +1, got {y!r}")
    terms = [_as_value(1 - y * s).relu() for s, y in zip(preds, targs, strict=True)]
    return _reduce("svm_loss", terms, reduction)


hinge_loss = svm_loss


def binary_cross_entropy_with_logits(
    logits: Any, targets: Any, reduction: str = "mean"
) -> Value | list[Value]:
    """Binary cross-entropy of sigmoid(logit) against targets in [0, 1], computed from the logits.

    -[t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))] = t softplus(-z) + (1 - t) softplus(z), and
    the table's softplus never overflows or takes log(0): a confident wrong prediction costs |z|,
    not inf, and its gradient is sigmoid(z) - t.
    """
    preds, targs = _pair("binary_cross_entropy_with_logits", logits, targets)
    terms = []
    for z, t in zip(preds, targs, strict=True):
        value = _number("binary_cross_entropy_with_logits", "a target", t)
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"binary_cross_entropy_with_logits: targets must lie in [0, 1], got {t!r}")
        z = _as_value(z)
        if value == 1.0:  # hard labels: one softplus node instead of two
            terms.append((-z).softplus())
        elif value == 0.0:
            terms.append(z.softplus())
        else:
            terms.append(t * (-z).softplus() + (1 - t) * z.softplus())
    return _reduce("binary_cross_entropy_with_logits", terms, reduction)


bce_with_logits = binary_cross_entropy_with_logits


def _log_sum_exp(logits: list[Value]) -> Value:
    """log(sum(exp(l))) without overflow: shift by the largest logit, a constant that cancels."""
    try:
        shift = max(z.data for z in logits)
    except PlaceholderError:
        return _traced_log_sum_exp(logits)
    if not math.isfinite(shift):
        shift = 0.0  # let inf/nan propagate visibly rather than making inf - inf
    return shift + value_sum([(z - shift).exp() for z in logits]).log()


def _traced_log_sum_exp(logits: list[Value]) -> Value:
    """log-sum-exp for a traced graph, which has no data to take the maximum of.

    Folds log(e^a + e^b) = max(a, b) + softplus(-|a - b|) over the logits, with max(a, b) written
    as (a + b + |a - b|) / 2: only table ops, never an exp of a large number, and the gradient is
    the softmax (also where a == b, since |x|' = 0 at 0 gives each side half).
    """
    acc = logits[0]
    for z in logits[1:]:
        gap = abs(acc - z)
        acc = (acc + z + gap) * 0.5 + (-gap).softplus()
    return acc


def cross_entropy(logits: Any, targets: Any, reduction: str = "mean") -> Value | list[Value]:
    """Softmax cross-entropy for several classes: -log softmax(logits)[target], averaged over a batch.

    `logits` is one row of class scores or a list of rows; each target is a class index or a row of
    class probabilities (e.g. one-hot; these may be Values, as when the loss is compiled).
    """
    rows = _as_batch(logits)
    if rows and isinstance(rows[0], Value | numbers.Real):  # one sample, not a batch
        rows, targs = [rows], [targets]
    else:
        targs = _as_batch(targets) if not isinstance(targets, int) else [targets]
    if len(rows) != len(targs):
        raise ValueError(f"cross_entropy: got {len(rows)} rows of logits but {len(targs)} targets")
    if not rows:
        raise ValueError("cross_entropy: the batch is empty")
    terms = []
    for row, target in zip(rows, targs, strict=True):
        row = [_as_value(z) for z in _as_batch(row)]
        if not row:
            raise ValueError("cross_entropy: a row of logits is empty")
        lse = _log_sum_exp(row)
        if isinstance(target, numbers.Integral) and not isinstance(target, bool):
            if not 0 <= target < len(row):
                raise ValueError(
                    f"cross_entropy: class index {target!r} is out of range for {len(row)} classes"
                )
            terms.append(lse - row[int(target)])
        elif isinstance(target, Iterable) and not isinstance(target, str):
            probs = list(target)
            if len(probs) != len(row):
                raise ValueError(
                    f"cross_entropy: a target row has {len(probs)} probabilities for {len(row)} classes"
                )
            for p in probs:
                value = _number("cross_entropy", "a target probability", p)
                if value is not None and not 0.0 <= value <= 1.0:
                    raise ValueError(f"cross_entropy: target probabilities must lie in [0, 1], got {p!r}")
            # -sum p_k (l_k - lse) = lse * sum(p) - sum(p_k l_k); zero probabilities add no nodes.
            picked = [p * z for p, z in zip(probs, row, strict=True) if not (_is_number(p) and p == 0)]
            mass = float(sum(probs)) if all(_is_number(p) for p in probs) else value_sum(probs)
            terms.append((lse if isinstance(mass, float) and mass == 1.0 else lse * mass) - value_sum(picked))
        else:
            raise TypeError(
                f"cross_entropy: a target must be a class index or a row of probabilities, "
                f"got {type(target).__name__}: {target!r}"
            )
    return _reduce("cross_entropy", terms, reduction)


def l2_regularization(parameters: Iterable[Value] | Any, alpha: float) -> Value:
    """alpha * sum(p ** 2) over the parameters (a Module or a list of Values): weight decay as a loss."""
    if hasattr(parameters, "parameters"):
        parameters = parameters.parameters()
    if not _is_number(alpha) or isinstance(alpha, bool) or not 0 <= alpha < math.inf:
        raise ValueError(f"l2_regularization: alpha must be a non-negative number, got {alpha!r}")
    return float(alpha) * value_sum([p * p for p in parameters])


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, Value)


def _as_value(x: Any) -> Value:
    """A Value for x (a plain number becomes a constant), so every loss returns a Value."""
    return x if isinstance(x, Value) else Value(x, requires_grad=False)
