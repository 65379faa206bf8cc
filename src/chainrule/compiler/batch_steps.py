"""The steps of batch mode: each runs many instructions of a Program in one or two numpy calls.

A batch run keeps every value in one of two buffers (see `batch_plan`): the **uniform** buffer, one
column, for values that are the same for every sample (parameters, constants, and anything computed
from them only), and the **varying** buffer, one column per sample, for everything that depends on
an input. A step's results are consecutive rows of one buffer. There are two kinds of step:

- `MapStep`: k independent instructions of one op (`tanh` of k different rows), run as one call
  of the op's rule from `chainrule.ops` on a k-row block, operands gathered by `BufferRows`;
- `SumsOfProductsStep`: k sums of `weight * value` terms (a layer of neurons), run as one matrix
  product `W @ X` plus a bias, W read from the uniform buffer.

Each step is built from one group of the public plan (`compiler.plan.Plan`, which the planner
`batch_plan` produces): `MapStep(plan, i, describe)` runs `plan.groups[i]`, a `MapGroup`, and
`SumsOfProductsStep(plan, i)` a `SumsGroup`. A step reads nothing but its group, the plan's arrays
and where the plan puts each block in the whole buffer (`Plan.rows`), and turns them into what numpy
runs fastest: views for slices, W as a view of a contiguous block, index arrays where rows repeat.

Every step has `forward(workspace)` and `backward(workspace, check)`. The workspace (one per call,
so that threads never share one) holds the buffers, their gradients, and what a step saves between
its forward and its backward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..backends import FLOAT, numpy_backend
from ..errors import DomainError
from .instruction import with_context
from .plan import ONE_ROW, UNIFORM, VARYING, ZERO_ROW, MapGroup, Plan, SumsGroup

__all__ = ["ONE_ROW", "UNIFORM", "VARYING", "ZERO_ROW", "BufferRows", "MapStep", "SumsOfProductsStep"]

BUFFER_NAMES = "UV"  # how `describe` writes them


class BufferRows:
    """A fixed list of rows of one buffer, read and accumulated into as cheaply as its shape allows."""

    __slots__ = ("buffer", "indices", "kind", "start", "stop", "count")

    def __init__(self, buffer: int, indices: Any, kind: str | None = None) -> None:
        indices = np.asarray(indices, dtype=np.intp)
        self.buffer, self.indices, self.count = buffer, indices, len(indices)
        self.start = int(indices[0]) if self.count else 0
        self.stop = self.start + self.count
        if kind is not None:  # known from how the rows were made (`read_rows`)
            self.kind = kind
        elif self.count > 1 and (indices == indices[0]).all():
            self.kind = "one"  # the same row for every entry: broadcast it
        elif self.count == 0 or (indices == np.arange(self.start, self.stop)).all():
            self.kind = "slice"
        elif len(np.unique(indices)) == self.count:
            self.kind = "unique"
        else:
            self.kind = "repeats"

    def take(self, buf: Any) -> Any:
        """The rows (a view where possible; a 'one' row broadcasts against the others)."""
        kind = self.kind
        if kind == "slice":
            return buf[self.start : self.stop]
        if kind == "one":
            return buf[self.start : self.start + 1]
        return buf.take(self.indices, axis=0)

    def add(self, buf: Any, c: Any) -> None:
        """buf[rows] += c, adding (not overwriting) where a row appears more than once."""
        if c.shape[0] != self.count and self.kind != "one":
            c = np.broadcast_to(c, (self.count, buf.shape[1]))
        kind = self.kind
        if kind == "slice":
            buf[self.start : self.stop] += c
        elif kind == "one":
            buf[self.start] += c.sum(axis=0) if c.shape[0] == self.count else c[0] * self.count
        elif kind == "unique":
            buf[self.indices] += c
        else:
            np.add.at(buf, self.indices, c)


def read_rows(plan: Plan, read: Any, k: int = 1) -> BufferRows:
    """The buffer rows a plan's `read` names, read by k rows: a one-row read (an operand the same for
    every row) is repeated k times, so that `BufferRows` broadcasts it and sums its gradient.

    A read of one block's consecutive rows, as most are, is a slice or a broadcast row by how it was
    made, so its rows need no checking (a plan has many such reads, each checked once per program).
    """
    rows = plan.rows(read)
    if read.index is not None:  # a gather: its rows say what kind it is
        return BufferRows(read.buffer, rows)
    if len(rows) == 1 and k > 1:
        return BufferRows(read.buffer, np.full(k, rows[0], dtype=np.intp), kind="one")
    return BufferRows(read.buffer, rows, kind="slice")


def float_array(values: Any) -> Any:
    """A plan's coefficient array (an (n, 1) column) as the 1-d float64 array the steps multiply by."""
    return np.ascontiguousarray(np.asarray(values, dtype=np.float64).reshape(-1))


def index_array(plan: Plan, entry: int | None) -> Any:
    """`plan.arrays[entry]` as numpy indices (empty for None: nothing listed)."""
    return np.zeros(0, dtype=np.intp) if entry is None else np.asarray(plan.arrays[entry], dtype=np.intp)


class MapStep:
    """k independent instructions of one op, run as one call of the op's rule on a k-row block.

    It runs `plan.groups[index]` (a `MapGroup`); `describe(slot)` names a row's instruction in
    error messages (`Program.describe`)."""

    def __init__(self, plan: Plan, index: int, describe: Callable[[int], str]) -> None:
        group = plan.groups[index]
        if not isinstance(group, MapGroup):  # pragma: no cover - the planner pairs each group with its step
            raise TypeError(f"MapStep runs a MapGroup, got {type(group).__name__}")
        op = group.op
        self.group, self.op, self.buffer, self.describe_slot = group, op, group.buffer, describe
        self.start = plan.group_starts[index]
        self.stop = self.start + group.k
        self.operands = [read_rows(plan, r, group.k) for r in group.operands]
        # gradients are computed only for operand positions where some row needs one
        self.grad_positions = list(group.grad_operands())
        self.requires_grad = group.requires_grad
        self.invalid = op.invalid
        self.forward_rule = op.forward
        self.derivatives = [op.derivative(j) for j in range(len(group.operands))]
        self.m = numpy_backend()

    def forward(self, ws: Any) -> None:
        """Compute the k rows from the operands (raising the op's domain error where it applies)."""
        values = ws.values
        xs = [r.take(values[r.buffer]) for r in self.operands]
        if self.invalid is not None:
            bad = self.invalid(self.m, *xs)
            if bad is not False and bad.any():
                self._domain_error(bad, xs, ws.offset)
        values[self.buffer][self.start : self.stop] = self.forward_rule(self.m, *xs)

    def backward(self, ws: Any, check: bool = False) -> None:
        """Add each operand's share of the rows' gradients, by the table's derivative rules."""
        values, grads = ws.values, ws.grads
        g = grads[self.buffer][self.start : self.stop]
        out = values[self.buffer][self.start : self.stop]
        xs = [r.take(values[r.buffer]) for r in self.operands]
        for j in self.grad_positions:
            c = self.derivatives[j](self.m, g, out, *xs)
            if check:
                self._check_derivative(j, c, g, out, xs, ws.offset)
            if getattr(c, "shape", None) != g.shape:  # a rule may return a constant or a smaller block
                c = np.broadcast_to(c, g.shape)
            target = self.operands[j]
            if target.buffer != self.buffer:  # a per-sample gradient reaching a uniform slot: sum it
                c = c.sum(axis=1, keepdims=True)
            target.add(grads[target.buffer], c)

    def _instruction(self, r: int) -> str:
        return self.describe_slot(self.group.slots[r])

    def _domain_error(self, bad: Any, xs: list[Any], offset: int) -> None:
        shape = (self.stop - self.start, xs[0].shape[1] if self.buffer == VARYING else 1)
        for x in xs:
            shape = np.broadcast_shapes(shape, x.shape)
        r, col = (int(i) for i in np.argwhere(np.broadcast_to(bad, shape))[0])
        values = [float(np.broadcast_to(x, shape)[r, col]) for x in xs]
        where = f"at batch index {offset + col}, " if self.buffer == VARYING else ""
        try:
            self.op.check(FLOAT, *values)
        except (ArithmeticError, ValueError) as exc:
            raise with_context(exc, f"{where}in {self._instruction(r)}") from None
        raise DomainError(f"{self.op.name}: invalid operands {values} ({where}in {self._instruction(r)})")

    def _check_derivative(self, j: int, c: Any, g: Any, out: Any, xs: list[Any], offset: int) -> None:
        """Raise as the eager engine would where a rule gave NaN or inf (eager raises on some)."""
        shape = g.shape
        c = np.broadcast_to(c, shape)
        needs = self.group.operand_needs[j]
        for r, col in np.argwhere(~np.isfinite(c))[:1000]:
            if not needs[r]:
                continue
            values = [float(np.broadcast_to(x, shape)[r, col]) for x in xs]
            try:  # the float rule is what eager backward() runs: it raises exactly where eager would
                self.derivatives[j](FLOAT, float(g[r, col]), float(out[r, col]), *values)
            except (ArithmeticError, ValueError) as exc:
                where = f"at batch index {offset + col}, " if self.buffer == VARYING else ""
                raise DomainError(
                    f"{self.op.name}: the derivative is undefined at {tuple(values)}: {exc} "
                    f"({where}in {self._instruction(int(r))})",
                    op=self.op.name,
                    value=tuple(values),
                ) from exc

    def describe(self) -> str:
        kinds = "".join(BUFFER_NAMES[r.buffer] for r in self.operands)
        return f"{BUFFER_NAMES[self.buffer]} {self.op.name}({kinds}) x{self.stop - self.start}"


class SumsOfProductsStep:
    """k sums of `coefficient * weight * value` terms at one depth, run as a matrix product plus a bias.

    It runs `plan.groups[index]` (a `SumsGroup`): a dense group is `W @ X`, W read from the uniform
    buffer (a view where its rows are one contiguous block), X the varying rows the sums read; a
    padded W adds each sum's real terms only where X or the gradient is not finite; a sparse group
    is gathered per-term products added per sum. Uniform terms make each sum's bias.
    """

    def __init__(self, plan: Plan, index: int) -> None:
        group = plan.groups[index]
        if not isinstance(group, SumsGroup):  # pragma: no cover - the planner pairs each group with its step
            raise TypeError(f"SumsOfProductsStep runs a SumsGroup, got {type(group).__name__}")
        self.group, self.buffer, self.index = group, group.buffer, index
        self.start = plan.group_starts[index]
        self.stop = self.start + group.k
        k = group.k
        n_varying = 0

        # --- the varying part: W @ X ---------------------------------------------------------------
        self.layout = group.layout  # "dense", "sparse", or None (no varying term: bias only)
        self.weight_block: tuple[int, int] | None = None  # W as a contiguous row-major uniform block
        self.weight_grad_rows: BufferRows | None = None  # uniform rows receiving the weights' gradients
        if group.layout is not None:
            assert group.weights is not None and group.values is not None
            weight_rows = plan.rows(group.weights).astype(np.intp)  # where each weight lives
            self.values_need_grad = group.values_need_grad
            # the terms whose weight needs a gradient, in order (row-major: a full block is a slice)
            self.weight_grad_entries: Any = index_array(plan, group.weight_grads)
            if len(self.weight_grad_entries):
                self.weight_grad_rows = BufferRows(UNIFORM, weight_rows[self.weight_grad_entries])
            if group.layout == "dense":
                self.inputs = read_rows(plan, group.values)  # the rows of X
                self.weight_rows = weight_rows.reshape(group.shape)  # where W[i, j] lives (ZERO_ROW: padding)
                self.scaled = group.scale is not None
                if self.scaled:
                    self.coefficients = np.asarray(plan.arrays[group.scale], dtype=np.float64)
                n_varying = weight_rows.size
                # W's real entries, sum by sum (the others are padding, 0.0). Where X holds an inf or a
                # NaN, 0.0 * inf would make NaN of sums that do not read it: those runs add the real
                # terms only (`_exact_forward`, `_exact_input_grads`).
                self.padded = group.padded
                if self.padded:
                    self.entry_sums = index_array(plan, group.entry_sums)
                    self.entry_columns = index_array(plan, group.entry_columns)
                    self.entry_value_rows = self.inputs.indices[self.entry_columns]
                    n_varying = len(self.entry_sums)
                first = int(weight_rows[0])
                if (weight_rows == np.arange(first, first + weight_rows.size)).all():
                    self.weight_block = (first, first + weight_rows.size)
                    if len(self.weight_grad_entries) == weight_rows.size:
                        self.weight_grad_entries = None  # every entry needs its gradient: no selection
            else:
                assert group.scale is not None and group.segments is not None
                self.term_sum = index_array(plan, group.segments)  # the sum each term is in
                self.sum_starts = np.searchsorted(self.term_sum, np.arange(k))  # first term of each sum
                self.term_values = read_rows(plan, group.values)
                self.term_weights = weight_rows
                self.term_coefficients = float_array(plan.arrays[group.scale])
                n_varying = len(self.term_sum)
        # --- the uniform part: a bias per sum, from terms whose value does not vary ------------------
        self.has_bias = group.bias is not None
        n_bias = 0
        if group.bias is not None:
            self.bias_value_rows = plan.rows(group.bias).astype(np.intp)
            n_bias = len(self.bias_value_rows)
            self.one_term_per_sum = group.bias_segments is None
            # the sum each term is in
            self.bias_sum = np.arange(k) if self.one_term_per_sum else index_array(plan, group.bias_segments)
            self.bias_unweighted = group.bias_weights is None
            self.bias_weight_rows = (
                np.full(n_bias, ONE_ROW, dtype=np.intp)
                if group.bias_weights is None
                else plan.rows(group.bias_weights).astype(np.intp)
            )
            self.bias_scaled = group.bias_scale is not None
            self.bias_coefficients = np.ones(n_bias)
            if group.bias_scale is not None:
                self.bias_coefficients = float_array(plan.arrays[group.bias_scale])
            self.bias_values = BufferRows(UNIFORM, self.bias_value_rows)
            self.bias_weight_grad_terms = index_array(plan, group.bias_weight_grads)
            self.bias_weight_grad_rows = (
                BufferRows(UNIFORM, self.bias_weight_rows[self.bias_weight_grad_terms])
                if len(self.bias_weight_grad_terms)
                else None
            )
            # the common case, one plain bias per sum: read the biases as they are (often a slice)
            self.plain_bias = self.one_term_per_sum and self.bias_unweighted and not self.bias_scaled
            self.bias_values_need_grad = group.bias_values_need_grad
        self.requires_grad = group.requires_grad
        self.n_terms = (n_varying, n_bias)

    def _bias(self, u: Any) -> Any:
        if self.plain_bias:
            return self.bias_values.take(u)
        vals = u[self.bias_value_rows]
        if not self.bias_unweighted:
            vals = vals * u[self.bias_weight_rows]
        if self.bias_scaled:
            vals = vals * self.bias_coefficients
        if self.one_term_per_sum:
            return vals
        return np.bincount(self.bias_sum, weights=vals, minlength=self.stop - self.start)

    def forward(self, ws: Any) -> None:
        """out = W @ X + bias; saves (W, X) in the workspace for the backward pass."""
        ubuf, vbuf = ws.values
        u = ubuf[:, 0]
        out = ws.values[self.buffer][self.start : self.stop]
        layout = self.layout
        if layout == "dense":
            if self.weight_block is not None:
                W = u[self.weight_block[0] : self.weight_block[1]].reshape(self.weight_rows.shape)
            else:
                W = u[self.weight_rows]
            if self.scaled:
                W = W * self.coefficients
            X = self.inputs.take(vbuf)
            ws.saved[self.index] = (W, X)
            if self.padded and not np.isfinite(X).all():  # one cheap pass, k times less work than W @ X
                self._exact_forward(W, X, out)
            else:
                np.matmul(W, X, out=out)
        elif layout == "sparse":
            X = self.term_values.take(vbuf)
            w = u[self.term_weights] * self.term_coefficients
            ws.saved[self.index] = (w, X)
            out[...] = np.add.reduceat(X * w[:, None], self.sum_starts, axis=0)
        if self.has_bias:
            bias = self._bias(u)[:, None]
            if layout is None:
                out[...] = bias
            else:
                out += bias

    def _exact_forward(self, W: Any, X: Any, out: Any) -> None:
        """out = W @ X from W's real entries only, each sum's terms added in order (no padding)."""
        terms = W[self.entry_sums, self.entry_columns][:, None] * X[self.entry_columns]
        out[...] = 0.0
        np.add.at(out, self.entry_sums, terms)

    def _exact_input_grads(self, W: Any, g: Any, gv: Any) -> None:
        """gv[X's rows] += W.T @ g from W's real entries only: a value gets gradient only from the sums
        that read it, as in eager backward (padding times an infinite gradient would be NaN)."""
        shares = W[self.entry_sums, self.entry_columns][:, None] * g[self.entry_sums]
        np.add.at(gv, self.entry_value_rows, shares)

    def backward(self, ws: Any, check: bool = False) -> None:
        """Gradients of X (W.T @ g), of the weights (g @ X.T, summed over the batch) and of the bias."""
        ubuf = ws.values[UNIFORM]
        gu, gv = ws.grads
        g = ws.grads[self.buffer][self.start : self.stop]
        layout = self.layout
        if layout == "dense":
            W, X = ws.saved[self.index]
            if self.values_need_grad:
                if self.padded and not np.isfinite(g).all():
                    self._exact_input_grads(W, g, gv)
                else:
                    self.inputs.add(gv, W.T @ g)
            if self.weight_grad_rows is not None:
                dW = g @ X.T
                if self.scaled:
                    dW *= self.coefficients
                dW = dW.reshape(-1, 1)
                entries = self.weight_grad_entries
                self.weight_grad_rows.add(gu, dW if entries is None else dW[entries])
        elif layout == "sparse":
            w, X = ws.saved[self.index]
            gt = g.take(self.term_sum, axis=0)
            if self.values_need_grad:
                self.term_values.add(gv, gt * w[:, None])
            if self.weight_grad_rows is not None:
                dw = np.einsum("ij,ij->i", gt, X) * self.term_coefficients
                self.weight_grad_rows.add(gu, dw[self.weight_grad_entries][:, None])
        if self.has_bias and (self.bias_values_need_grad or self.bias_weight_grad_rows is not None):
            u = ubuf[:, 0]
            gs = g.sum(axis=1) if g.shape[1] != 1 else g[:, 0]
            tg = gs if self.one_term_per_sum else gs[self.bias_sum]
            if self.bias_scaled:
                tg = tg * self.bias_coefficients
            if self.bias_values_need_grad:
                self.bias_values.add(
                    gu, (tg if self.bias_unweighted else tg * u[self.bias_weight_rows])[:, None]
                )
            if self.bias_weight_grad_rows is not None:
                share = (tg * u[self.bias_value_rows])[self.bias_weight_grad_terms]
                self.bias_weight_grad_rows.add(gu, share[:, None])

    def describe(self) -> str:
        k = self.stop - self.start
        nv, nu = self.n_terms
        if self.layout == "dense":
            n = self.weight_rows.shape[1]
            part = f"matmul {k}x{n} @ {n}xB"
        elif self.layout == "sparse":
            part = f"sparse sums of {nv} terms"
        else:
            part = f"{k} sums"
        return f"{BUFFER_NAMES[self.buffer]} {part}" + (f" + {nu} bias terms" if nu else "")
