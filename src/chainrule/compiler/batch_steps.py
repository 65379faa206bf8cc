"""The steps of batch mode: each runs many instructions of a Program in one or two numpy calls.

A batch run keeps every value in one of two buffers (see `batch_plan`): the **uniform** buffer, one
column, for values that are the same for every sample (parameters, constants, and anything computed
from them only), and the **varying** buffer, one column per sample, for everything that depends on
an input. A step's results are consecutive rows of one buffer. There are two kinds of step:

- `MapStep`: k independent instructions of one op (`tanh` of k different rows), run as one call
  of the op's rule from `chainrule.ops` on a k-row block, operands gathered by `BufferRows`;
- `SumsOfProductsStep`: k sums of `weight * value` terms (a layer of neurons), run as one matrix
  product `W @ X` plus a bias, W read from the uniform buffer.

Every step has `forward(workspace)` and `backward(workspace, check)`. The workspace (one per call,
so that threads never share one) holds the buffers, their gradients, and what a step saves between
its forward and its backward.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends import FLOAT, numpy_backend
from ..errors import DomainError
from ..ops import Op
from .instruction import with_context
from .plan import ONE_ROW, UNIFORM, VARYING, ZERO_ROW, MapGroup, PlanBuilder, SumsGroup

__all__ = ["ONE_ROW", "UNIFORM", "VARYING", "ZERO_ROW", "BufferRows", "MapStep", "SumsOfProductsStep"]

BUFFER_NAMES = "UV"  # how `describe` writes them


class BufferRows:
    """A fixed list of rows of one buffer, read and accumulated into as cheaply as its shape allows."""

    __slots__ = ("buffer", "indices", "kind", "start", "stop", "count")

    def __init__(self, buffer: int, indices: Any) -> None:
        indices = np.asarray(indices, dtype=np.intp)
        self.buffer, self.indices, self.count = buffer, indices, len(indices)
        self.start = int(indices[0]) if self.count else 0
        self.stop = self.start + self.count
        if self.count > 1 and (indices == indices[0]).all():
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


class MapStep:
    """k independent instructions of one op, run as one call of the op's rule on a k-row block.

    `plan` provides `program`, `needs` (which slots need a gradient), `buffer_of` and `row`."""

    def __init__(self, plan: Any, op: Op, slots: list[int], buffer: int, start: int) -> None:
        program = plan.program
        n_leaves = len(program.leaves)
        self.plan, self.op, self.slots, self.buffer = plan, op, slots, buffer
        self.start, self.stop = start, start + len(slots)
        args = [program.instructions[s - n_leaves].args for s in slots]
        n_args = len(args[0])
        self.arg_slots = [[a[j] for a in args] for j in range(n_args)]  # operand j of every row
        self.operands = [
            BufferRows(plan.buffer_of[column[0]], [plan.row[a] for a in column]) for column in self.arg_slots
        ]
        needs = plan.needs
        # gradients are computed only for operand positions where some row needs one
        self.grad_positions = [j for j in range(n_args) if any(needs[a] for a in self.arg_slots[j])]
        self.requires_grad = any(needs[s] for s in slots)
        self.invalid = op.invalid
        self.forward_rule = op.forward
        self.derivatives = [op.derivative(j) for j in range(n_args)]
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
        return self.plan.program.describe(self.slots[r])

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
        needs = self.plan.needs
        for r, col in np.argwhere(~np.isfinite(c))[:1000]:
            if not needs[self.arg_slots[j][r]]:
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

    def group(self, builder: PlanBuilder) -> MapGroup:
        """This step as public plan data (`compiler.plan`), its reads relative to `builder`'s blocks."""
        reads = tuple(builder.read(r.buffer, r.indices) for r in self.operands)
        return MapGroup(self.buffer, self.stop - self.start, self.op, reads)

    def describe(self) -> str:
        kinds = "".join(BUFFER_NAMES[r.buffer] for r in self.operands)
        return f"{BUFFER_NAMES[self.buffer]} {self.op.name}({kinds}) x{len(self.slots)}"


class SumsOfProductsStep:
    """k sums of `coefficient * weight * value` terms at one depth, run as a matrix product plus a bias.

    `plan.terms[slot]` lists each sum's terms as `(coefficient, weight slot or None, value slot)`: a term
    with a varying value is an entry of the matrix product `W @ X` (W read from the uniform buffer,
    X the varying rows the sums read), a term with a uniform value is part of the row's bias.
    `dense` chooses a dense W (padded with the uniform buffer's 0.0 row) over gathered sparse sums.
    """

    def __init__(self, plan: Any, slots: list[int], buffer: int, start: int, index: int, dense: bool) -> None:
        needs = plan.needs
        row = plan.row
        self.plan, self.slots, self.buffer, self.index = plan, slots, buffer, index
        self.start, self.stop = start, start + len(slots)
        k = len(slots)
        varying_terms, uniform_terms = (
            [],
            [],
        )  # (sum's row in the step, coefficient, weight slot or None, value slot)
        for r, s in enumerate(slots):
            for coef, w, c in plan.terms[s]:
                (varying_terms if plan.buffer_of[c] == VARYING else uniform_terms).append((r, coef, w, c))

        def weight_row(w: int | None) -> int:
            return ONE_ROW if w is None else row[w]

        # --- the varying part: W @ X ---------------------------------------------------------------
        self.layout: str | None = None  # "dense", "sparse", or None (no varying term: bias only)
        self.weight_block: tuple[int, int] | None = None  # W as a contiguous row-major uniform block
        self.weight_grad_rows: BufferRows | None = None  # uniform rows receiving the weights' gradients
        if varying_terms:
            self.scaled = any(coef != 1.0 for _, coef, _, _ in varying_terms)
            self.values_need_grad = any(needs[c] for _, _, _, c in varying_terms)
            if dense:
                self.layout = "dense"
                columns = sorted({row[c] for _, _, _, c in varying_terms})
                column_of = {rw: i for i, rw in enumerate(columns)}
                self.inputs = BufferRows(VARYING, columns)  # the rows of X
                self.weight_rows = np.full((k, len(columns)), ZERO_ROW, dtype=np.intp)  # where W[i, j] lives
                self.coefficients = np.ones((k, len(columns)))
                grad_entries, grad_rows = [], []
                for r, coef, w, c in varying_terms:
                    p = column_of[row[c]]
                    self.weight_rows[r, p] = weight_row(w)
                    self.coefficients[r, p] = coef
                    if w is not None and needs[w]:
                        grad_entries.append(r * len(columns) + p)
                        grad_rows.append(row[w])
                # W's real entries, sum by sum (the others are padding, 0.0). Where X holds an inf or a
                # NaN, 0.0 * inf would make NaN of sums that do not read it: those runs add the real
                # terms only (`_exact_forward`, `_exact_input_grads`).
                self.entry_sums, self.entry_columns = np.nonzero(self.weight_rows != ZERO_ROW)
                self.padded = len(self.entry_sums) < self.weight_rows.size
                self.entry_value_rows = self.inputs.indices[self.entry_columns]
            else:
                self.layout = "sparse"
                varying_terms.sort(key=lambda t: t[0])
                self.term_sum = np.array(
                    [t[0] for t in varying_terms], dtype=np.intp
                )  # the sum each term is in
                self.sum_starts = np.searchsorted(self.term_sum, np.arange(k))  # first term of each sum
                self.term_values = BufferRows(VARYING, [row[c] for _, _, _, c in varying_terms])
                self.term_weights = np.array([weight_row(w) for _, _, w, _ in varying_terms], dtype=np.intp)
                self.term_coefficients = np.array([s for _, s, _, _ in varying_terms], dtype=np.float64)
                grad_entries = [
                    i for i, (_, _, w, _) in enumerate(varying_terms) if w is not None and needs[w]
                ]
                grad_rows = [row[varying_terms[i][2]] for i in grad_entries]
            ordered = sorted(zip(grad_entries, grad_rows, strict=True))  # row-major: a full block is a slice
            self.weight_grad_entries: Any = np.array([p for p, _ in ordered], dtype=np.intp)
            if ordered:
                self.weight_grad_rows = BufferRows(UNIFORM, [w for _, w in ordered])
            if self.layout == "dense":
                flat = self.weight_rows.ravel()
                if (flat == np.arange(flat[0], flat[0] + flat.size)).all():
                    self.weight_block = (int(flat[0]), int(flat[0]) + flat.size)
                    if len(self.weight_grad_entries) == flat.size:
                        self.weight_grad_entries = None  # every entry needs its gradient: no selection
        # --- the uniform part: a bias per sum, from terms whose value does not vary ------------------
        self.has_bias = bool(uniform_terms)
        if uniform_terms:
            self.bias_sum = np.array([t[0] for t in uniform_terms], dtype=np.intp)  # the sum each term is in
            self.one_term_per_sum = len(uniform_terms) == k and (self.bias_sum == np.arange(k)).all()
            self.bias_unweighted = all(w is None for _, _, w, _ in uniform_terms)
            self.bias_weight_rows = np.array([weight_row(w) for _, _, w, _ in uniform_terms], dtype=np.intp)
            self.bias_value_rows = np.array([row[c] for _, _, _, c in uniform_terms], dtype=np.intp)
            self.bias_coefficients = np.array([s for _, s, _, _ in uniform_terms], dtype=np.float64)
            self.bias_scaled = bool((self.bias_coefficients != 1.0).any())
            self.bias_values = BufferRows(UNIFORM, self.bias_value_rows)
            weighted = [i for i, (_, _, w, _) in enumerate(uniform_terms) if w is not None and needs[w]]
            self.bias_weight_grad_terms = np.array(weighted, dtype=np.intp)
            self.bias_weight_grad_rows = (
                BufferRows(UNIFORM, self.bias_weight_rows[self.bias_weight_grad_terms]) if weighted else None
            )
            # the common case, one plain bias per sum: read the biases as they are (often a slice)
            self.plain_bias = self.one_term_per_sum and self.bias_unweighted and not self.bias_scaled
            self.bias_values_need_grad = any(needs[c] for _, _, _, c in uniform_terms)
        self.requires_grad = any(needs[s] for s in slots)
        self.n_terms = (len(varying_terms), len(uniform_terms))

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

    def group(self, builder: PlanBuilder) -> SumsGroup:
        """This step as public plan data (`compiler.plan`), its reads relative to `builder`'s blocks."""
        k = self.stop - self.start
        weights = values = None
        shape, scale, segments = (0, 0), None, None
        layout = self.layout
        if layout == "dense" and self.padded:
            # W @ X with padding is NaN where an input is inf or NaN (0.0 * inf): an array engine runs
            # the real terms only, as gathered sums, so that every input gives eager's numbers
            layout = "sparse"
            weights = builder.read(UNIFORM, self.weight_rows[self.entry_sums, self.entry_columns], exact=True)
            values = builder.read(VARYING, self.entry_value_rows, exact=True)
            factors = self.coefficients[self.entry_sums, self.entry_columns]
            scale = builder.array(np.asarray(factors, dtype=np.float64)[:, None])
            segments = builder.array(np.asarray(self.entry_sums, dtype=np.int64))
        elif layout == "dense":
            shape = self.weight_rows.shape
            weights = builder.read(UNIFORM, self.weight_rows.ravel(), exact=True)
            values = builder.read(VARYING, self.inputs.indices)
            if self.scaled:
                scale = builder.array(np.asarray(self.coefficients, dtype=np.float64))
        elif layout == "sparse":
            weights = builder.read(UNIFORM, self.term_weights, exact=True)
            values = builder.read(VARYING, self.term_values.indices, exact=True)
            scale = builder.array(np.asarray(self.term_coefficients, dtype=np.float64)[:, None])
            segments = builder.array(np.asarray(self.term_sum, dtype=np.int64))
        bias = bias_weights = None
        bias_scale = bias_segments = None
        if self.has_bias:
            bias = builder.read(UNIFORM, self.bias_value_rows, exact=True)
            if not self.bias_unweighted:
                bias_weights = builder.read(UNIFORM, self.bias_weight_rows, exact=True)
            if self.bias_scaled:
                bias_scale = builder.array(np.asarray(self.bias_coefficients, dtype=np.float64)[:, None])
            if not self.one_term_per_sum:
                bias_segments = builder.array(np.asarray(self.bias_sum, dtype=np.int64))
        return SumsGroup(
            self.buffer, k, layout, weights, (int(shape[0]), int(shape[1])), scale, values, segments,
            bias, bias_weights, bias_scale, bias_segments,
        )  # fmt: skip

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
