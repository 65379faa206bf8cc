"""Running a planned Program (`chainrule.compiler.plan.Plan`) on an array engine such as JAX or torch.

The plan is public data (the same plan batch mode's numpy steps run): groups of one table row on
(k, width) blocks, and groups of sums of products. `run` walks it with whatever an `ArrayEngine`
offers (concatenate, take rows, segment sums, broadcast, and `map`: a row's forward with the row's
derivatives attached), so the JAX and PyTorch exports differ only in those few functions.
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..compiler.plan import MapGroup, Plan, Read

__all__ = [
    "ArrayEngine",
    "ConvertedArrays",
    "batch_size",
    "check_count",
    "input_error",
    "is_input",
    "plan_of",
    "run",
]


def plan_of(program: Any) -> Plan:
    """The `Plan` of `program` (a compiled Program, or anything with a `plan()` method), or a Plan itself."""
    if isinstance(program, Plan):
        return program
    make = getattr(program, "plan", None)
    plan = make() if callable(make) else None
    if not isinstance(plan, Plan):
        raise TypeError(
            f"expected a chainrule Program (from chainrule.compile), got {type(program).__name__}: "
            f"{program!r:.80}"
        )
    return plan


@dataclass(frozen=True)
class ArrayEngine:
    """What `run` needs of an array library."""

    arrays: Sequence[Any]  # the plan's `arrays`, converted for this engine (index and coefficient arrays)
    cat: Callable[[list[Any]], Any]  # concatenate along the rows
    take: Callable[[Any, Any], Any]  # rows by an index array
    segment_sum: Callable[[Any, Any, int], Any]  # rows summed per (sorted) segment, into k rows
    broadcast_to: Callable[[Any, tuple[int, ...]], Any]
    map: Callable[[Any, list[Any]], Any]  # a table row's forward on blocks, with its derivatives


class ConvertedArrays:
    """A plan's `arrays` converted for one engine and device, made once per key (thread-safe)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._made: dict[Any, list[Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, convert: Callable[[Any], Any]) -> list[Any]:
        """`plan.arrays` converted by `convert`, made on the first call with this `key`."""
        with self._lock:
            got = self._made.get(key)
            if got is None:
                got = self._made[key] = [convert(a) for a in self.plan.arrays]
            return got


def _get(blocks: list[list[Any]], read: Read, e: ArrayEngine) -> Any:
    """The rows `read` names, from the blocks computed so far."""
    if read.index is None:
        block = blocks[read.buffer][read.blocks[0]]
        if read.start == 0 and read.stop == block.shape[0]:
            return block  # the whole block: no slice, whose gradient would be a copy into zeros
        return block[read.start : read.stop]
    parts = [blocks[read.buffer][b] for b in read.blocks]
    return e.take(parts[0] if len(parts) == 1 else e.cat(parts), e.arrays[read.index])


def run(plan: Plan, e: ArrayEngine, uniform: Any, varying: Any, width: int) -> list[Any]:
    """The plan's groups on the leaves' blocks (uniform: (rows, 1); varying: (inputs, width)); returns
    the outputs as rows of `width` entries."""
    blocks: list[list[Any]] = [[uniform], [varying]]
    widths = (1, width)
    for group in plan.groups:
        shape = (group.k, widths[group.buffer])
        if isinstance(group, MapGroup):
            out = e.map(group.op, [_get(blocks, r, e) for r in group.operands])
        else:
            out = None
            if group.layout is not None:
                w = _get(blocks, group.weights, e)  # type: ignore[arg-type]
                x = _get(blocks, group.values, e)  # type: ignore[arg-type]
                if group.layout == "dense":
                    w = w.reshape(group.shape)
                    if group.scale is not None:
                        w = w * e.arrays[group.scale]
                    if group.padded:
                        # W @ X with padding is NaN where an input is inf or NaN (0.0 * inf): the real
                        # terms only, as gathered sums, so that every input gives eager's numbers
                        sums, columns = e.arrays[group.entry_sums], e.arrays[group.entry_columns]
                        terms = e.take(x, columns) * w[sums, columns][:, None]
                        out = e.segment_sum(terms, sums, group.k)
                    else:
                        out = w @ x
                else:
                    terms = x * (w * e.arrays[group.scale])
                    out = e.segment_sum(terms, e.arrays[group.segments], group.k)
            if group.bias is not None:
                bias = _get(blocks, group.bias, e)
                if group.bias_weights is not None:
                    bias = bias * _get(blocks, group.bias_weights, e)
                if group.bias_scale is not None:
                    bias = bias * e.arrays[group.bias_scale]
                if group.bias_segments is not None:
                    bias = e.segment_sum(bias, e.arrays[group.bias_segments], group.k)
                out = bias if out is None else out + bias
        blocks[group.buffer].append(out if tuple(out.shape) == shape else e.broadcast_to(out, shape))
    return [e.broadcast_to(_get(blocks, r, e)[0], (width,)) for r in plan.outputs]


def check_count(plan: Plan, inputs: Sequence[Any]) -> None:
    """Refuse a call with the wrong number of inputs, naming them."""
    if len(inputs) != plan.n_inputs:
        raise TypeError(
            f"this exported program takes {plan.n_inputs} inputs ({', '.join(plan.input_names)}), "
            f"got {len(inputs)}"
        )


def batch_size(plan: Plan, shapes: Sequence[tuple[int, ...]]) -> int | None:
    """The batch size B of inputs of these shapes (None if all are numbers); refuses bad shapes."""
    batch, first = None, ""
    for name, shape in zip(plan.input_names, shapes, strict=True):
        if len(shape) > 1:
            raise ValueError(
                f"input {name!r} must be a number or a 1-d array (one entry per sample), got shape "
                f"{tuple(shape)}"
            )
        if len(shape) == 1:
            if batch is not None and shape[0] != batch:
                raise ValueError(
                    f"inputs of unequal length: {first!r} has {batch} samples but {name!r} has {shape[0]}"
                )
            batch, first = int(shape[0]), name
    return batch


def is_input(x: Any) -> bool:
    """Whether `x` can be an input: a number or an array (not a string)."""
    return not isinstance(x, str | bytes) and (isinstance(x, numbers.Real) or hasattr(x, "shape"))


def input_error(name: str, x: Any, kind: str) -> TypeError:
    """The error for an input that is neither a number nor a 1-d `kind` (array or tensor)."""
    return TypeError(f"input {name!r} must be a number or a 1-d {kind}, got {type(x).__name__}: {x!r:.80}")
