"""Batch mode: a whole batch of samples through a Program in a few numpy calls.

Interpreting the tape one instruction at a time would cost a numpy call per instruction. Instead a
`BatchPlan` is made once per Program:

1. Every slot is classified as *varying* (it depends on an input, so it has one value per sample)
   or *uniform* (parameters, constants and everything computed from them only, such as an L2
   penalty): uniform values are computed once per run, not once per sample.
2. Sums of products are recognised from what the derivative table declares (`Op.linear`: a sum
   with coefficients; `Op.bilinear`: a product): a linear node (an n-ary `sum`, or one `add`,
   `sub` or `neg`) whose operands are products of a uniform weight and a varying value is one row
   of a matrix product. All such sums at the same depth of the graph become one
   `SumsOfProductsStep`, the way a layer of neurons is one `W @ X`. A sum takes in only its own
   operands, never another linear node: merging `(x - x) + s` into one sum of x, -x, s would add in
   another order than the graph does (and give 0.0 for s at x = 1e16). Additions are therefore
   never re-associated across nodes; within one node the matrix product may add its terms in any
   order (`sum_error_bound`, in `plan`, is how far that can move a result).
3. The other instructions are grouped by (depth, op, operand buffers): each group is one
   `MapStep`, a call of the op's rule on a block of rows.
4. Rows are laid out so that each step's results are consecutive rows of their buffer, and the
   parameters so that each layer's weight matrix is one contiguous row-major block of the uniform
   buffer (W is then a view, and its gradient one slice addition).
5. The result is a `compiler.plan.Plan`, public engine-neutral data (`BatchPlan.plan`): each group
   with its reads, which rows and operands need a gradient, and which instruction each row is.
   The numpy steps (`batch_steps`) are built from its groups alone, one step per group, as the
   JAX and torch exports run it (`Program.plan()` returns it with the current parameter values).

Running copies the inputs into the varying buffer and the parameters into the uniform one (from
their Values, or for `loss_and_grad` from a 1-d array with one `take`), runs the steps forward, then
backward in reverse, and reads the gradients out. Every call gets its own `Workspace` (buffers
come from a small pool), so one plan serves several threads at once; batches longer than
`MAX_CHUNK_FLOATS` values per row run in chunks.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import threading
from collections import defaultdict
from typing import Any

import numpy as np

from ..engine import add_gradients
from ..ops import Op
from .batch_steps import MapStep, SumsOfProductsStep
from .instruction import CONSTANT, PARAMETER
from .plan import FIXED_ROWS, ONE_ROW, UNIFORM, VARYING, ZERO_ROW, MapGroup, Plan, PlanBuilder, SumsGroup

MAX_CHUNK_FLOATS = 1 << 22  # longer batches run in chunks so the buffers stay around 32 MB
MIN_CHUNK = 256  # ... but never in chunks of fewer samples than this
# A group of sums runs as a dense matrix product when its matrix is not much bigger than its
# number of terms (k * columns <= factor * terms + slack); otherwise as gathered sparse sums.
DENSE_FACTOR, DENSE_SLACK = 4, 256
POOL_SIZE = 8  # workspaces kept for reuse (one per thread that calls at the same time, usually)
SUMS = None  # the group key of sums of products (no op of the table is named None)


def coefficients(op: Op, n: int) -> tuple[float, ...] | None:
    """The coefficients c with op(xs) == sum(c_i x_i), as the table's row declares them, or None."""
    if op.linear is None:
        return None
    return op.linear * n if op.arity is None else op.linear


class Workspace:
    """One call's buffers: values and gradients of both buffers, and what steps save for backward."""

    __slots__ = ("width", "values", "grads", "saved", "offset")

    def __init__(self, n_uniform: int, n_varying: int, width: int, n_steps: int) -> None:
        self.width = width
        ubuf = np.zeros((n_uniform, 1))
        ubuf[ONE_ROW] = 1.0
        self.values = (ubuf, np.zeros((n_varying, width)))
        self.grads = (np.zeros((n_uniform, 1)), np.zeros((n_varying, width)))
        self.saved: list[Any] = [None] * n_steps
        self.offset = 0  # the batch index of this chunk's first sample, for error messages


class BatchPlan:
    """The Program planned (`plan`, a `compiler.plan.Plan`) and run as the numpy steps of that plan.

    With `input_grads=False` no gradient is computed for the inputs (the plan `loss_and_grad` uses:
    it returns parameter gradients only).
    """

    def __init__(self, program: Any, input_grads: bool = True) -> None:
        self.program = program
        n_in = len(program.inputs)
        n_leaves = len(program.leaves)
        n_slots = n_leaves + len(program.instructions)
        instructions = program.instructions
        if input_grads:
            self.needs: tuple[bool, ...] = program.requires_grad
        else:
            needs = [False] * n_in + [k == PARAMETER for k in program.kinds[n_in:n_leaves]]
            for ins in instructions:
                needs.append(True in map(needs.__getitem__, ins.args))
            self.needs = tuple(needs)
        # An instruction varies over the batch if one of its operands does. (`map` and `in` look at
        # the operands without a generator per instruction: this loop runs once per instruction.)
        buffer_of = [VARYING] * n_in + [UNIFORM] * (n_leaves - n_in)
        for ins in instructions:
            buffer_of.append(VARYING if VARYING in map(buffer_of.__getitem__, ins.args) else UNIFORM)
        self.buffer_of = buffer_of
        self.terms = self._sums_of_products()
        groups = self._groups()

        # rows: varying buffer = [inputs, varying results]; uniform buffer = [0.0, 1.0, parameters,
        # constants, uniform results]. Each group's results are consecutive rows.
        order = sorted(groups, key=lambda k: (k[0], k[1], groups[k][0]))
        self.row = [0] * n_slots
        n_varying = n_in
        for i in range(n_in):
            self.row[i] = i
        for key in order:
            if key[0] == VARYING:
                for s in groups[key]:
                    self.row[s] = n_varying
                    n_varying += 1
        matrix_groups = [groups[k] for k in order if k[2] is SUMS and k[0] == VARYING]
        params = self._parameter_layout(matrix_groups)
        consts = [s for s in range(n_in, n_leaves) if program.kinds[s] == CONSTANT]
        n_uniform = FIXED_ROWS
        for s in params + consts:
            self.row[s] = n_uniform
            n_uniform += 1
        for key in order:
            if key[0] == UNIFORM:
                for s in groups[key]:
                    self.row[s] = n_uniform
                    n_uniform += 1
        # parameters: uniform rows FIXED_ROWS .. + n_params, in layout order. `theta_order[j]` is the
        # position in Program.parameters of the parameter at row FIXED_ROWS + j.
        self.n_params = len(params)
        self.param_values = [program.leaves[s] for s in params]
        self.const_values = [program.leaves[s] for s in consts]
        theta_order = np.array([s - n_in for s in params], dtype=np.int64)
        self.plan = self._make_plan([(key[0], groups[key], key[2] is SUMS) for key in order], theta_order)

        # the numpy steps, one per group of the plan, built from the plan alone
        plan = self.plan
        self.n_uniform, self.n_varying = plan.block_starts[UNIFORM][-1], plan.block_starts[VARYING][-1]
        self.steps: list[Any] = [
            MapStep(plan, i, program.describe) if isinstance(group, MapGroup) else SumsOfProductsStep(plan, i)
            for i, group in enumerate(plan.groups)
        ]
        self.backward_steps = [s for s in reversed(self.steps) if s.requires_grad]
        self.theta_in_order = plan.theta_order is None
        self.theta_order: Any = (
            None if plan.theta_order is None else np.asarray(plan.arrays[plan.theta_order], dtype=np.intp)
        )
        self.out_rows = [(r.buffer, int(plan.rows(r)[0])) for r in plan.outputs]
        self.input_needs = [self.needs[i] for i in range(n_in)]
        grad_inputs = [i for i in range(n_in) if self.needs[i]]
        self.grad_input_rows: Any = slice(0, n_in) if len(grad_inputs) == n_in else np.array(grad_inputs, int)
        self._pool: list[Workspace] = []
        self._pool_lock = threading.Lock()

    # --- planning ------------------------------------------------------------------------------
    def _sums_of_products(self) -> dict[int, list[tuple[float, int | None, int]]]:
        """Which instructions become rows of a matrix product, with their terms.

        A linear instruction absorbs those of its own operands that are products with a uniform
        factor and that nobody else uses; each term is (coefficient, weight slot or None, value
        slot). Absorbed instructions get no step of their own. A linear operand (another sum) is
        never absorbed: its terms would then be added in another order than eager's (issue #17)."""
        program, buffer_of = self.program, self.buffer_of
        instructions = program.instructions
        n_leaves = len(program.leaves)
        uses = [0] * (n_leaves + len(instructions))
        for ins in instructions:
            for a in ins.args:
                uses[a] += 1
        outputs = set(program.output_slots)
        terms_of: dict[int, list[tuple[float, int | None, int]]] = {}
        self.absorbed: set[int] = set()
        absorbed = self.absorbed
        for ins in reversed(instructions):
            if ins.op.linear is None or ins.slot in absorbed:  # most instructions: not a sum
                continue
            coeffs = coefficients(ins.op, len(ins.args)) or ()
            terms: list[tuple[float, int | None, int]] = []
            took: list[int] = []
            for s, coef in zip(ins.args, coeffs, strict=True):  # the terms in the node's own order
                if s >= n_leaves and uses[s] == 1 and s not in outputs:
                    sub = instructions[s - n_leaves]
                    if sub.op.bilinear:
                        a, b = sub.args
                        if buffer_of[a] == UNIFORM or buffer_of[b] == UNIFORM:
                            w, c = (a, b) if buffer_of[a] == UNIFORM else (b, a)
                            terms.append((coef, w, c))
                            took.append(s)
                            continue
                terms.append((coef, None, s))
            if ins.op.name == "sum" or took:
                terms_of[ins.slot] = terms
                absorbed.update(took)
        return terms_of

    def _groups(self) -> dict[tuple[Any, ...], list[int]]:
        """Instructions that run as one step: same buffer, depth, op (or "sums"), operand buffers and
        gradient need. A uniform operand of a varying instruction counts as depth 0."""
        program, buffer_of, needs = self.program, self.buffer_of, self.needs
        level = [0] * (len(program.leaves) + len(program.instructions))
        groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for ins in program.instructions:
            s = ins.slot
            if s in self.absorbed:
                continue
            if s in self.terms:
                deps = [d for _, w, c in self.terms[s] for d in (w, c) if d is not None]
                # n-ary sums (neurons) apart from binary ones: only binary ones must add as eager does
                key: tuple[Any, ...] = (SUMS, ins.op.arity is None)
            else:
                deps = list(ins.args)
                key = (ins.op.name, tuple(map(buffer_of.__getitem__, ins.args)))
            buffer = buffer_of[s]
            depth = 0  # the deepest operand in the same buffer (a plain loop: it runs per instruction)
            for d in deps:
                if buffer_of[d] == buffer and level[d] > depth:
                    depth = level[d]
            level[s] = depth + 1
            groups[(buffer, depth + 1, *key, needs[s])].append(s)
        return groups

    def _dense(self, slots: list[int]) -> bool:
        """Whether a group of sums runs as a dense matrix product (else as gathered sparse sums).

        A matrix product may add a row's terms in any order and fuse a product into an addition
        (one rounding instead of two): allowed within an n-ary `sum` node, whose terms have no order
        to keep (`plan.sum_error_bound`). A binary `add`/`sub` (or `neg`) must give eager's result
        exactly, so it runs dense only where that cannot change a bit: a row with one varying term,
        or varying terms that are all plain values (no product to fuse). Else sparse sums, which
        round each product first and add a binary node's two terms as eager does."""
        n_leaves = len(self.program.leaves)
        if self.program.instructions[slots[0] - n_leaves].op.arity is not None:
            for s in slots:
                varying = [w for _, w, c in self.terms[s] if self.buffer_of[c] == VARYING]
                if len(varying) > 1 and any(w is not None for w in varying):
                    return False
        pairs, n_terms, columns = set(), 0, set()
        for r, s in enumerate(slots):
            for _, _, c in self.terms[s]:
                if self.buffer_of[c] == VARYING:
                    pairs.add((r, c))
                    columns.add(c)
                    n_terms += 1
        return len(pairs) == n_terms and len(slots) * len(columns) <= DENSE_FACTOR * n_terms + DENSE_SLACK

    def _parameter_layout(self, matrix_groups: list[list[int]]) -> list[int]:
        """Parameter slots in buffer order: each dense weight block row-major, then its biases, then
        the other parameters."""
        program = self.program
        n_in, n_leaves = len(program.inputs), len(program.leaves)
        kinds = program.kinds
        placed: list[int] = []
        seen: set[int] = set()

        def place(block: list[int | None]) -> None:
            if all(s is not None and kinds[s] == PARAMETER and s not in seen for s in block) and len(
                set(block)
            ) == len(block):
                placed.extend(block)  # type: ignore[arg-type]
                seen.update(block)  # type: ignore[arg-type]

        for slots in matrix_groups:
            varying = [
                (r, w, c)
                for r, s in enumerate(slots)
                for _, w, c in self.terms[s]
                if self.buffer_of[c] == VARYING
            ]
            columns = sorted({self.row[c] for _, _, c in varying})
            column_of = {row: i for i, row in enumerate(columns)}
            block: list[int | None] = [None] * (len(slots) * len(columns))
            for r, w, c in varying:
                block[r * len(columns) + column_of[self.row[c]]] = w
            place(block)
            uniform = [
                (r, w, c)
                for r, s in enumerate(slots)
                for _, w, c in self.terms[s]
                if self.buffer_of[c] == UNIFORM
            ]
            if [r for r, _, _ in uniform] == list(range(len(slots))) and all(
                w is None for _, w, _ in uniform
            ):
                place([c for _, _, c in uniform])
        placed.extend(s for s in range(n_in, n_leaves) if kinds[s] == PARAMETER and s not in seen)
        return placed

    def _make_plan(self, groups: list[tuple[int, list[int], bool]], theta_order: Any) -> Plan:
        """The public plan (`compiler.plan.Plan`) of `groups` in run order, each (buffer, its slots,
        whether they are sums of products), with the parameters' and constants' values now."""
        program = self.program
        n_in = len(program.inputs)
        constants = tuple(float(c.data) for c in self.const_values)
        builder = PlanBuilder(FIXED_ROWS + self.n_params + len(constants), n_in)
        in_order = bool((theta_order == np.arange(self.n_params)).all())
        theta_entry = None if in_order else builder.array(theta_order)
        for buffer, slots, sums in groups:
            make = self._sums_group if sums else self._map_group
            group = make(builder, buffer, slots)
            builder.add(group, self.row[slots[0]], self.row[slots[0]] + len(slots))
        outputs = tuple(builder.read(self.buffer_of[s], [self.row[s]]) for s in program.output_slots)
        return Plan(
            input_names=program.input_names,
            parameters=tuple(float(p.data) for p in program.parameters),
            constants=constants,
            theta_order=theta_entry,
            arrays=tuple(builder.arrays),
            groups=tuple(builder.groups),
            outputs=outputs,
            single=program.single,
            n_instructions=len(program.instructions),
            unused_inputs=builder.unused_inputs(outputs, n_in),
        )

    def _map_group(self, builder: PlanBuilder, buffer: int, slots: list[int]) -> MapGroup:
        """k instructions of one op as a `MapGroup`: operand j of every row, read from the blocks so far."""
        program, needs = self.program, self.needs
        n_leaves = len(program.leaves)
        args = [program.instructions[s - n_leaves].args for s in slots]
        columns = [[a[j] for a in args] for j in range(len(args[0]))]  # operand j of every row
        return MapGroup(
            buffer=buffer,
            k=len(slots),
            op=program.instructions[slots[0] - n_leaves].op,
            operands=tuple(builder.read(self.buffer_of[c[0]], [self.row[a] for a in c]) for c in columns),
            slots=tuple(slots),
            requires_grad=any(needs[s] for s in slots),
            operand_needs=tuple(tuple(needs[a] for a in c) for c in columns),
        )

    def _sums_group(self, builder: PlanBuilder, buffer: int, slots: list[int]) -> SumsGroup:
        """k sums of products as a `SumsGroup` (`self.terms[slot]` lists a sum's terms as
        (coefficient, weight slot or None, value slot)): a term with a varying value is an entry of
        `W @ X`, dense (padded with the 0.0 row) or sparse as `_dense` decides; one with a uniform
        value is part of its sum's bias."""
        needs, row, buffer_of, terms = self.needs, self.row, self.buffer_of, self.terms
        k = len(slots)
        varying, uniform = [], []  # (sum's row in the group, coefficient, weight slot or None, value slot)
        for r, s in enumerate(slots):
            for coef, w, c in terms[s]:
                (varying if buffer_of[c] == VARYING else uniform).append((r, coef, w, c))

        def weight_row(w: int | None) -> int:
            return ONE_ROW if w is None else row[w]

        def weight_needs_grad(w: int | None) -> bool:
            return w is not None and needs[w]

        # --- the varying part: W @ X -----------------------------------------------------------------
        layout: str | None = None
        weights = values = None
        shape, scale, segments, entry_sums, entry_columns, weight_grads = (0, 0), None, None, None, None, None
        if varying:
            wanted: list[int] = []  # the terms whose weight needs a gradient
            if self._dense(slots):
                layout = "dense"
                columns = sorted({row[c] for _, _, _, c in varying})
                column_of = {rw: i for i, rw in enumerate(columns)}
                shape = (k, len(columns))
                weight_rows = np.full(shape, ZERO_ROW, dtype=np.int64)  # where W[i, j] lives
                factors = np.ones(shape)
                # each term's entry (r, p) of W, written in one go (numpy's item writes are slow)
                sums = [r for r, _, _, _ in varying]
                places = [column_of[row[c]] for _, _, _, c in varying]
                weight_rows[sums, places] = [weight_row(w) for _, _, w, _ in varying]
                factors[sums, places] = [coef for _, coef, _, _ in varying]
                wanted = [
                    r * len(columns) + p
                    for r, p, (_, _, w, _) in zip(sums, places, varying, strict=True)
                    if weight_needs_grad(w)
                ]
                weights = builder.read(UNIFORM, weight_rows.ravel(), exact=True)
                values = builder.read(VARYING, columns)
                if (factors != 1.0).any():
                    scale = builder.array(factors)
                real_sums, real_columns = np.nonzero(weight_rows != ZERO_ROW)
                if len(real_sums) < weight_rows.size:  # padded: the sums read different values
                    entry_sums = builder.array(real_sums.astype(np.int64))
                    entry_columns = builder.array(real_columns.astype(np.int64))
            else:
                layout = "sparse"
                varying.sort(key=lambda t: t[0])  # each sum's terms together, in the node's order
                weights = builder.read(UNIFORM, [weight_row(w) for _, _, w, _ in varying], exact=True)
                values = builder.read(VARYING, [row[c] for _, _, _, c in varying], exact=True)
                factors = np.array([coef for _, coef, _, _ in varying], dtype=np.float64)
                scale = builder.array(factors[:, None])
                segments = builder.array(np.array([r for r, _, _, _ in varying], dtype=np.int64))
                wanted = [i for i, (_, _, w, _) in enumerate(varying) if weight_needs_grad(w)]
            if wanted:
                weight_grads = builder.array(np.array(sorted(wanted), dtype=np.int64))
        # --- the uniform part: a bias per sum, from terms whose value does not vary --------------------
        bias = bias_weights = None
        bias_scale = bias_segments = bias_weight_grads = None
        if uniform:
            bias = builder.read(UNIFORM, [row[c] for _, _, _, c in uniform], exact=True)
            if any(w is not None for _, _, w, _ in uniform):
                bias_weights = builder.read(UNIFORM, [weight_row(w) for _, _, w, _ in uniform], exact=True)
            factors = np.array([coef for _, coef, _, _ in uniform], dtype=np.float64)
            if (factors != 1.0).any():
                bias_scale = builder.array(factors[:, None])
            bias_sum = [r for r, _, _, _ in uniform]  # the sum each term is in (in order)
            if bias_sum != list(range(k)):
                bias_segments = builder.array(np.array(bias_sum, dtype=np.int64))
            weighted = [i for i, (_, _, w, _) in enumerate(uniform) if weight_needs_grad(w)]
            if weighted:
                bias_weight_grads = builder.array(np.array(weighted, dtype=np.int64))
        return SumsGroup(
            buffer=buffer,
            k=k,
            layout=layout,
            weights=weights,
            shape=shape,
            scale=scale,
            values=values,
            segments=segments,
            bias=bias,
            bias_weights=bias_weights,
            bias_scale=bias_scale,
            bias_segments=bias_segments,
            entry_sums=entry_sums,
            entry_columns=entry_columns,
            slots=tuple(slots),
            requires_grad=any(needs[s] for s in slots),
            values_need_grad=any(needs[c] for _, _, _, c in varying),
            weight_grads=weight_grads,
            bias_values_need_grad=any(needs[c] for _, _, _, c in uniform),
            bias_weight_grads=bias_weight_grads,
        )

    def describe(self) -> str:
        """The steps, one per line: the buffer (U uniform, V per sample), op and group size."""
        sizes = f"{self.n_uniform} uniform rows, {self.n_varying} rows per sample"
        lines = [f"batch plan: {len(self.steps)} steps ({sizes})"]
        lines.extend(f"  {step.describe()}" for step in self.steps)
        return "\n".join(lines)

    def to_plan(self) -> Plan:
        """The plan the numpy steps run (`self.plan`: the same groups and arrays), with the parameters'
        and constants' current values: what `Program.plan()` returns and the exports run."""
        return dataclasses.replace(
            self.plan,
            parameters=tuple(float(p.data) for p in self.program.parameters),
            constants=tuple(float(c.data) for c in self.const_values),
        )

    # --- running: the three entry points ----------------------------------------------------------
    def forward(self, args: tuple[Any, ...]) -> Any:
        """The outputs for a batch (parameters and constants read from their Values)."""
        batch, values = self._inputs(args)
        leaf_data = self._leaf_data()
        parts = []
        for lo, hi in self._chunks(batch):
            ws = self._acquire(hi - lo)
            try:
                self._load(ws, leaf_data, values, lo, hi)
                self._forward(ws)
                parts.append(self._outputs(ws))
            finally:
                self._release(ws)
        outs = parts[0] if len(parts) == 1 else [np.concatenate(o) for o in zip(*parts, strict=True)]
        return outs[0] if self.program.single else outs

    def value_and_grad(self, args: tuple[Any, ...], grad_output: Any) -> tuple[Any, tuple[Any, ...]]:
        """Forward and backward; adds parameter gradients into `.grad` (of parameters that still
        require one) and returns (outputs, input gradients)."""
        batch, values = self._inputs(args)
        seeds = list(self.program.output_seeds(grad_output, batch))
        leaf_data = self._leaf_data()
        parts, grad_parts = [], []
        param_grads = np.zeros(self.n_params)
        for lo, hi in self._chunks(batch):
            ws = self._acquire(hi - lo)
            try:
                self._load(ws, leaf_data, values, lo, hi)
                self._forward(ws)
                parts.append(self._outputs(ws))
                self._backward(ws, seeds, lo, hi, with_inputs=True)
                ug, vg = ws.grads
                param_grads += ug[FIXED_ROWS : FIXED_ROWS + self.n_params, 0]
                grad_parts.append([vg[i].copy() if need else None for i, need in enumerate(self.input_needs)])
            finally:
                self._release(ws)
        outs = parts[0] if len(parts) == 1 else [np.concatenate(o) for o in zip(*parts, strict=True)]
        in_grads = [
            None if g[0] is None else (g[0] if len(g) == 1 else np.concatenate(g))
            for g in zip(*grad_parts, strict=True)
        ]
        grads = tuple(
            float(g.sum()) if g is not None and isinstance(x, float) else g
            for x, g in zip(values, in_grads, strict=True)
        )
        add_gradients(self.param_values, param_grads.tolist())  # frozen since compiling: nothing
        return (outs[0] if self.program.single else outs), grads

    def loss_and_grad(self, theta: Any, args: tuple[Any, ...]) -> tuple[float, Any]:
        """(the single output summed over the batch, its gradient with respect to `theta`), with the
        parameters read from `theta` (Program.parameters order) and no Value touched but constants."""
        batch, values = self._inputs(args)
        n = self.n_params
        consts = [c.data for c in self.const_values] if self.const_values else None
        seeds = [1.0]
        total = 0.0
        grad_rows: Any = None
        for lo, hi in self._chunks(batch):
            ws = self._acquire(hi - lo)
            try:
                u = ws.values[UNIFORM][:, 0]
                if self.theta_in_order:
                    u[FIXED_ROWS : FIXED_ROWS + n] = theta
                else:
                    np.take(theta, self.theta_order, out=u[FIXED_ROWS : FIXED_ROWS + n])
                if consts is not None:
                    u[FIXED_ROWS + n : FIXED_ROWS + n + len(consts)] = consts
                self._load_inputs(ws, values, lo, hi)
                self._forward(ws)
                buffer, r = self.out_rows[0]
                total += float(ws.values[buffer][r].sum()) * (1 if buffer == VARYING else hi - lo)
                self._backward(ws, seeds, lo, hi, with_inputs=False)
                rows = ws.grads[UNIFORM][FIXED_ROWS : FIXED_ROWS + n, 0]
                grad_rows = rows.copy() if grad_rows is None else grad_rows + rows
            finally:
                self._release(ws)
        if self.theta_in_order:
            return total, grad_rows
        dtheta = np.empty(n)
        dtheta[self.theta_order] = grad_rows
        return total, dtheta

    # --- running: the parts ------------------------------------------------------------------------
    def _chunks(self, batch: int) -> list[tuple[int, int]]:
        size = max(MIN_CHUNK, MAX_CHUNK_FLOATS // max(self.n_varying, 1))
        if batch <= size:
            return [(0, batch)]
        return [(lo, min(batch, lo + size)) for lo in range(0, batch, size)]

    def _acquire(self, width: int) -> Workspace:
        """A workspace for `width` samples that no other call is using."""
        with self._pool_lock:
            for i, ws in enumerate(self._pool):
                if ws.width == width:
                    return self._pool.pop(i)
        return Workspace(self.n_uniform, self.n_varying, width, len(self.steps))

    def _release(self, ws: Workspace) -> None:
        ws.saved = [None] * len(ws.saved)  # do not keep the batch's arrays alive
        with self._pool_lock:
            self._pool.append(ws)
            if len(self._pool) > POOL_SIZE:
                del self._pool[0]

    def _leaf_data(self) -> Any:
        """The parameters' and constants' current values, in buffer order (read once per call)."""
        return np.array(
            [v.data for v in self.param_values] + [v.data for v in self.const_values], dtype=np.float64
        )

    def _load(self, ws: Workspace, leaf_data: Any, values: list[Any], lo: int, hi: int) -> None:
        ws.values[UNIFORM][FIXED_ROWS : FIXED_ROWS + len(leaf_data), 0] = leaf_data
        self._load_inputs(ws, values, lo, hi)

    def _load_inputs(self, ws: Workspace, values: list[Any], lo: int, hi: int) -> None:
        ws.offset = lo
        vbuf = ws.values[VARYING]
        for i, x in enumerate(values):
            vbuf[i] = x if isinstance(x, float) else x[lo:hi]

    def _forward(self, ws: Workspace) -> None:
        with np.errstate(all="ignore"):  # IEEE arithmetic as the float engine does it: inf, not warnings
            for step in self.steps:
                step.forward(ws)

    def _outputs(self, ws: Workspace) -> list[Any]:
        values = ws.values
        return [
            values[VARYING][r].copy() if buffer == VARYING else np.full(ws.width, values[UNIFORM][r, 0])
            for buffer, r in self.out_rows
        ]

    def _backward(self, ws: Workspace, seeds: list[Any], lo: int, hi: int, with_inputs: bool) -> None:
        """The backward sweep, rerun with checks if any gradient came out NaN or inf, so that the
        rule that made a NaN out of finite numbers raises as it would in eager `backward()`."""
        with np.errstate(all="ignore"):
            self._sweep(ws, seeds, lo, hi, check=False)
            ug, vg = ws.grads
            finite = math.isfinite(ug[FIXED_ROWS : FIXED_ROWS + self.n_params, 0].sum())
            if finite and with_inputs:
                finite = math.isfinite(vg[self.grad_input_rows].sum())
            if not finite:  # one sum tells; an overflowing sum of finite numbers only costs a recheck
                self._sweep(ws, seeds, lo, hi, check=True)

    def _sweep(self, ws: Workspace, seeds: list[Any], lo: int, hi: int, check: bool) -> None:
        ug, vg = ws.grads
        ug.fill(0.0)
        vg.fill(0.0)
        for (buffer, r), seed in zip(self.out_rows, seeds, strict=True):
            if isinstance(seed, np.ndarray) and seed.ndim == 1:
                seed = seed[lo:hi]
            if buffer == VARYING:
                vg[r] += seed
            else:
                ug[r, 0] += float(np.sum(np.broadcast_to(seed, (hi - lo,))))
        for step in self.backward_steps:
            step.backward(ws, check)

    def _inputs(self, args: tuple[Any, ...]) -> tuple[int, list[Any]]:
        """Validate the inputs: each a number or a 1-d array, all arrays of one length B."""
        names = self.program.input_names
        values: list[Any] = []
        batch, first = None, None
        for name, x in zip(names, args, strict=True):
            if isinstance(x, numbers.Real):
                values.append(float(x))
                continue
            arr = x if isinstance(x, np.ndarray) else np.asarray(x)
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"input {name!r} must hold real numbers, got an array of dtype {arr.dtype}")
            if arr.ndim == 0:
                values.append(float(arr))
                continue
            if arr.ndim != 1:
                raise ValueError(
                    f"input {name!r} must be a number or a 1-d array (one entry per sample), "
                    f"got an array of shape {arr.shape}"
                )
            if batch is None:
                batch, first = len(arr), name
            elif len(arr) != batch:
                raise ValueError(
                    f"inputs of unequal length: {first!r} has {batch} samples but {name!r} has {len(arr)}"
                )
            values.append(arr)
        return (batch if batch is not None else 1), values
