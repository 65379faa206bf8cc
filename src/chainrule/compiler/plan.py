"""A planned Program as public, engine-neutral data: what `Program.plan()` returns.

Batch mode (`batch_plan`) runs a Program as a few array operations. This module describes that
plan with plain numbers, tuples and numpy index arrays, so that any array engine can run it (the
JAX and PyTorch exports, `chainrule.export`, do) without knowing chainrule's own step classes:

- values live in two *buffers*: `UNIFORM` (one value for the whole batch: the rows 0.0 and 1.0, then
  the parameters, the constants and everything computed from them only) and `VARYING` (one value
  per sample: the inputs, then everything computed from them);
- a buffer is a list of *blocks*: its leaves' block first (block 0), then one block per group that
  writes to it, in the order of `Plan.groups`;
- a `Read` names rows of one buffer: a slice of one block, or a gather from a few blocks;
- a `MapGroup` is k instructions of one op (one row of the derivative table), run as one call of
  the row's rule on (k, width) blocks of operands;
- a `SumsGroup` is k sums of `coefficient * weight * value` terms, run as one matrix product
  `W @ X` (dense) or as gathered per-sum sums (sparse), plus a bias from the uniform terms.

Each group also says which of its rows and operands need a gradient (`requires_grad`,
`operand_needs`, `values_need_grad`, `weight_grads`, ...), so that batch mode's backward skips the
rest, and which Program slot each row computes (`slots`, for error messages). An engine that
differentiates the whole plan itself, as the exports do, may ignore those fields.

A sum is one node of the graph and its own products, never several nodes merged (that would add in
another order than eager does). A binary `+`/`-` gives eager's result exactly; an n-ary `sum` node may
add its n terms in another order, which moves it at most `sum_error_bound(terms)` from eager's value.

This module imports nothing of the compiler. The planner (`batch_plan`) produces a `Plan` through
`PlanBuilder`; both batch mode's numpy steps (`batch_steps`, built from `Plan.groups`) and the exports
(`chainrule.export`) run from it, and need only this file to read it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

__all__ = [
    "FIXED_ROWS",
    "ONE_ROW",
    "UNIFORM",
    "VARYING",
    "ZERO_ROW",
    "MapGroup",
    "Plan",
    "PlanBuilder",
    "Read",
    "SumsGroup",
    "sum_error_bound",
]

UNIFORM, VARYING = 0, 1  # the two buffers: one value for the whole batch, or one per sample
ZERO_ROW, ONE_ROW = 0, 1  # fixed rows of the uniform buffer: 0.0 (padding in W) and 1.0 (coefficient 1)
FIXED_ROWS = 2  # the uniform buffer starts with ZERO_ROW and ONE_ROW, then the parameters


UNIT_ROUNDOFF = 2.0**-53  # the largest relative error of one float64 operation
SMALLEST_SUBNORMAL = 2.0**-1074  # the spacing of float64 numbers below the normal range
SMALLEST_NORMAL = 2.0**-1022  # below it, an engine that flushes subnormals to zero makes them 0.0


def sum_error_bound(terms: Iterable[float], flushes_subnormals: bool = False) -> float:
    """How far batch mode or an export may put one n-ary `sum` node from eager's value.

    `terms` are the n values eager adds (the node's operands, a product `w * x` as eager rounded it).
    The bound is `n * (2**-53 * sum(|terms|) + tiny)`: what adding them in another order can do,
    2**-53 per addition relative to the largest partial sum; and `tiny`, the absolute error of a
    product fused into an addition in the subnormal range (2**-1074), or 2**-1022 for an engine that
    flushes subnormal numbers to zero (`flushes_subnormals`, JAX on CPU). Infinite where a term is not
    finite or the absolute sum overflows: nothing is bounded there."""
    values = [abs(float(t)) for t in terms]
    if not all(math.isfinite(v) for v in values):
        return math.inf
    try:
        total = math.fsum(values)
    except OverflowError:  # fsum refuses an intermediate overflow: the absolute sum is past float64
        return math.inf
    tiny = SMALLEST_NORMAL if flushes_subnormals else SMALLEST_SUBNORMAL
    return len(values) * (UNIT_ROUNDOFF * total + tiny)


@dataclass(frozen=True)
class Read:
    """Rows of one buffer as a group reads them.

    With `index` None: rows `start:stop` of block `blocks[0]` (most reads: a layer reading the layer
    below, which costs nothing). Otherwise `Plan.arrays[index]` lists the rows to take from the
    concatenation of `blocks` (in that order), and `start`, `stop` are 0."""

    buffer: int
    blocks: tuple[int, ...]
    start: int
    stop: int
    index: int | None


@dataclass(frozen=True)
class MapGroup:
    """k instructions of one op, run as one call of the row's rules on (k, width) blocks.

    `op` is the row of the derivative table (`chainrule.ops.Op`): its `forward(m, *operands)` gives
    the k rows, its `derivative(i)` rules their gradients. An operand that is the same row for all
    k instructions is read as that one row (it broadcasts). `slots[r]` is the Program slot that row
    r computes (`Program.describe(slot)` names it in messages); `requires_grad` whether the rows
    need a gradient at all, and `operand_needs[j][r]` whether operand j of row r does."""

    buffer: int
    k: int
    op: Any
    operands: tuple[Read, ...]
    slots: tuple[int, ...]
    requires_grad: bool
    operand_needs: tuple[tuple[bool, ...], ...]

    def reads(self) -> tuple[Read, ...]:
        """Everything this group reads."""
        return self.operands

    def grad_operands(self) -> tuple[int, ...]:
        """The operand positions where some row needs a gradient (the others get none)."""
        return tuple(j for j, needs in enumerate(self.operand_needs) if any(needs))


@dataclass(frozen=True)
class SumsGroup:
    """k sums of `coefficient * weight * value` terms: `W @ X` (or sparse sums) plus a bias.

    `layout` "dense": W, of shape `shape`, is `weights` read row-major, times `arrays[scale]` (an
    array of that shape) if `scale` is not None; X is `values`. A dense W whose sums read different
    values is *padded*: the entries no term fills read the uniform buffer's 0.0 row. Then
    `entry_sums` and `entry_columns` are not None: the real entries (the terms) are
    `W[arrays[entry_sums][t], arrays[entry_columns][t]]`, row-major. As `0.0 * inf` is NaN, a padded
    W @ X would make NaN of sums that do not read an infinite value: run on such values it must add
    the real terms only, `X[entry_columns[t]] * W[entry_sums[t], entry_columns[t]]` into sum
    `entry_sums[t]` (batch mode does where X or the gradient is not finite; the exports always do).
    `layout` "sparse": term t is `values[t] * weights[t] * arrays[scale][t]`, added into sum
    `arrays[segments][t]` (sorted). `layout` None: no term varies, the sums are their bias only.
    The bias of sum i is the sum of `bias[t] * bias_weights[t] * arrays[bias_scale][t]` over the
    terms t with `arrays[bias_segments][t] == i` (each part omitted when None: weights and scales
    of 1, one term per sum in order).

    Gradients: `requires_grad` whether the sums need one at all; `values_need_grad` (and
    `bias_values_need_grad`) whether some varying value (bias value) does; `weight_grads` (and
    `bias_weight_grads`), if not None, the entry of `arrays` listing, in order, the terms whose
    weight does (dense: positions in W row-major; sparse and bias: term indices). `slots[r]` is
    the Program slot that sum r computes."""

    buffer: int
    k: int
    layout: str | None
    weights: Read | None
    shape: tuple[int, int]
    scale: int | None
    values: Read | None
    segments: int | None
    bias: Read | None
    bias_weights: Read | None
    bias_scale: int | None
    bias_segments: int | None
    entry_sums: int | None
    entry_columns: int | None
    slots: tuple[int, ...]
    requires_grad: bool
    values_need_grad: bool
    weight_grads: int | None
    bias_values_need_grad: bool
    bias_weight_grads: int | None

    @property
    def padded(self) -> bool:
        """Whether this is a dense W padded with 0.0 where no term is (see the class docstring)."""
        return self.entry_sums is not None

    def reads(self) -> tuple[Read, ...]:
        """Everything this group reads."""
        found = (self.weights, self.values, self.bias, self.bias_weights)
        return tuple(r for r in found if r is not None)


Group = MapGroup | SumsGroup


@dataclass(frozen=True, eq=False)
class Plan:
    """A Program as groups of array operations on two buffers (see the module's docstring).

    To run it: the uniform leaves' block is the column `[0.0, 1.0, *theta_in_buffer_order,
    *constants]` (theta is `parameters`, or an array in `Program.parameters` order, taken at
    `arrays[theta_order]` when `theta_order` is not None); the varying leaves' block has one row per
    input. Each group appends one block (k rows; width 1 in the uniform buffer, the batch's width in
    the varying one) to its buffer; `outputs` reads one row each.
    """

    input_names: tuple[str, ...]
    parameters: tuple[float, ...]  # the parameters' values when planned, in Program.parameters order
    constants: tuple[float, ...]  # in the uniform buffer's order
    theta_order: int | None  # an entry of `arrays`: theta reordered into the buffer (None: as it is)
    arrays: tuple[Any, ...]  # numpy index and coefficient arrays, which an engine converts once
    groups: tuple[Group, ...]
    outputs: tuple[Read, ...]
    single: bool  # one output (returned as is) rather than a tuple of them
    n_instructions: int
    unused_inputs: frozenset[int] = field(default_factory=frozenset)  # inputs no output depends on

    @property
    def n_inputs(self) -> int:
        """How many inputs the program takes."""
        return len(self.input_names)

    @cached_property
    def block_starts(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Per buffer (UNIFORM, VARYING), the first row of each of its blocks in the whole buffer,
        then the buffer's number of rows: for an engine that keeps a buffer as one array."""
        ends = [FIXED_ROWS + self.n_parameters + len(self.constants), self.n_inputs]
        starts: list[list[int]] = [[0], [0]]
        for group in self.groups:
            starts[group.buffer].append(ends[group.buffer])
            ends[group.buffer] += group.k
        return (tuple(starts[UNIFORM] + [ends[UNIFORM]]), tuple(starts[VARYING] + [ends[VARYING]]))

    @cached_property
    def group_starts(self) -> tuple[int, ...]:
        """The first row of each group's results in its whole buffer, in the order of `groups`."""
        seen = [1, 1]  # the next block of each buffer (block 0 holds the leaves)
        starts = []
        for group in self.groups:
            starts.append(self.block_starts[group.buffer][seen[group.buffer]])
            seen[group.buffer] += 1
        return tuple(starts)

    def rows(self, read: Read) -> Any:
        """The rows `read` names, as an int64 array of row numbers in its whole buffer."""
        starts = self.block_starts[read.buffer]
        if read.index is None:
            first = starts[read.blocks[0]] + read.start
            return np.arange(first, first + read.stop - read.start, dtype=np.int64)
        # the gather's rows count from the start of the concatenation of `read.blocks`
        sizes = [starts[b + 1] - starts[b] for b in read.blocks]
        bases = np.cumsum([0, *sizes[:-1]])
        local = np.asarray(self.arrays[read.index], dtype=np.int64)
        part = np.searchsorted(bases, local, side="right") - 1
        firsts = np.array([starts[b] for b in read.blocks], dtype=np.int64)
        return firsts[part] + local - bases[part]

    @property
    def n_parameters(self) -> int:
        """How many parameters (the length of theta)."""
        return len(self.parameters)


class PlanBuilder:
    """Collects the groups of a plan in order, turning buffer rows into block-relative `Read`s.

    `leaf_rows` are the sizes of the two buffers' leaf blocks (uniform, varying). The planner calls
    `add(group, start, stop)` for each group in run order (its rows in the whole buffer), and the
    groups are made with `read` and `array` against the blocks added so far."""

    def __init__(self, uniform_leaf_rows: int, n_inputs: int) -> None:
        self.starts: list[list[int]] = [[0], [0]]  # per buffer, the first row of each block
        self.ends = [uniform_leaf_rows, n_inputs]
        self.arrays: list[Any] = []
        self.groups: list[Group] = []

    def array(self, values: Any) -> int:
        """Store an index or coefficient array; returns its entry in `Plan.arrays`."""
        self.arrays.append(values)
        return len(self.arrays) - 1

    def read(self, buffer: int, rows: Any, exact: bool = False) -> Read:
        """How to read `rows` (of the whole buffer) from its blocks so far: one row (broadcast,
        unless `exact`), a slice of one block, or a gather from the blocks concerned."""
        starts = self.starts[buffer]
        if len(rows) == 1:  # most groups are one instruction: no array needed
            first = int(rows[0])
            b0 = bisect.bisect_right(starts, first) - 1
            return Read(buffer, (b0,), first - starts[b0], first - starts[b0] + 1, None)
        first, last, n = int(rows[0]), int(rows[-1]), len(rows)
        b0 = bisect.bisect_right(starts, first) - 1
        b0_end = starts[b0 + 1] if b0 + 1 < len(starts) else self.ends[buffer]
        if isinstance(rows, list):  # checked as a list: making an array of a long list costs more
            all_first = rows.count(first) == n
            consecutive = last - first == n - 1 and rows == list(range(first, last + 1))
        else:
            all_first = bool((rows == first).all())
            consecutive = last - first == n - 1 and bool((np.diff(rows) == 1).all())
        if not exact and all_first:
            return Read(buffer, (b0,), first - starts[b0], first - starts[b0] + 1, None)
        if consecutive and last < b0_end:
            return Read(buffer, (b0,), first - starts[b0], first - starts[b0] + n, None)
        rows = np.asarray(rows, dtype=np.int64)
        # a gather: rows counted from the start of the concatenation of the blocks concerned
        begins = np.asarray(starts, dtype=np.int64)
        ends = [*starts[1:], self.ends[buffer]]
        block = np.searchsorted(begins, rows, side="right") - 1
        blocks = sorted(set(block.tolist()))
        base = np.zeros(len(starts), dtype=np.int64)  # where each block starts in the concatenation
        at = 0
        for b in blocks:
            base[b] = at
            at += ends[b] - starts[b]
        local_rows = base[block] + rows - begins[block]
        return Read(buffer, tuple(blocks), 0, 0, self.array(local_rows))

    def add(self, group: Group, start: int, stop: int) -> None:
        """Append `group`, whose results are rows `start:stop` of its buffer (the next block)."""
        if start != self.ends[group.buffer]:  # pragma: no cover - the batch plan's layout guarantees it
            raise AssertionError("chainrule plan: a group does not follow the one before it in its buffer")
        self.groups.append(group)
        self.starts[group.buffer].append(start)
        self.ends[group.buffer] = stop

    def unused_inputs(self, outputs: tuple[Read, ...], n_inputs: int) -> frozenset[int]:
        """The inputs that no group and no output reads."""
        read = [False] * n_inputs
        for r in [r for g in self.groups for r in g.reads()] + list(outputs):
            if r.buffer == VARYING and r.blocks[0] == 0:
                rows = range(r.start, r.stop) if r.index is None else self.arrays[r.index].tolist()
                for i in rows:
                    if i < n_inputs:
                        read[i] = True
        return frozenset(i for i, used in enumerate(read) if not used)
