"""Batch mode for Programs: a whole batch of samples through the tape in a few numpy calls.

Interpreting the tape one instruction at a time would cost a numpy call per node. Instead, at
compile time:

1. Every slot is classified as *varying* (it depends on an input, so it has one value per sample)
   or *uniform* (parameters, constants and everything computed from them only, such as an L2
   penalty): uniform values are computed once per run, not once per sample.
2. Sums of products are recognised: an n-ary `sum` (or a tree of `add`/`sub`/`neg`) whose terms
   are `mul`s of a uniform weight and a varying value is one row of a matrix product. All such
   sums at the same depth of the graph become a single `W @ X`, the way a layer of neurons is.
3. The remaining instructions are grouped by (depth, op, operand kinds): each group is one call of
   the op's rule from `chainrule.ops` on a 2-d block (rows = nodes, columns = samples), with its
   operands gathered through index arrays (or plain slices, where they happen to be contiguous)
   prepared once.

Backward runs the groups in reverse, calling the table's derivative rules on the same blocks and
scattering the contributions back (slices, fancy-index `+=`, or `np.add.at` when rows repeat).
Gradients that reach a uniform slot are summed over the batch on the way, so a parameter receives
exactly what B separate eager `backward()` calls would give it.
"""

from __future__ import annotations

import math
import numbers
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np

from .backends import FLOAT, numpy_backend
from .errors import DomainError
from .ops import Op

if TYPE_CHECKING:
    from .compiler import Program

U, V = 0, 1  # the two buffers: uniform values (one column) and varying values (one column per sample)
ZERO, ONE = 0, 1  # fixed rows of the uniform buffer: padding for weight matrices, and coefficient 1
_MAX_CHUNK_FLOATS = 1 << 22  # longer batches run in chunks so the buffers stay around 32 MB
# A group of sums runs as a dense matrix product when its matrix is not much bigger than its
# number of terms (k * columns <= factor * terms + slack); otherwise as gathered sparse sums.
_DENSE_FACTOR, _DENSE_SLACK = 4, 256


# --- which ops are linear: declared by the table's rows (Op.linear, Op.bilinear) ------------------
def _coefficients(op: Op, n: int) -> tuple[float, ...] | None:
    """The coefficients c with op(xs) == sum(c_i x_i), as the row declares them, or None."""
    if op.linear is None:
        return None
    return op.linear * n if op.arity is None else op.linear


# --- rows of a buffer: how a group reads its operands and scatters gradients back ---------------
class _Rows:
    """A fixed list of rows of one buffer, read and accumulated into as cheaply as its shape allows."""

    __slots__ = ("space", "idx", "mode", "a", "b", "n")

    def __init__(self, space: int, idx: Any) -> None:
        idx = np.asarray(idx, dtype=np.intp)
        self.space, self.idx, self.n = space, idx, len(idx)
        self.a = int(idx[0]) if self.n else 0
        self.b = self.a + self.n
        if self.n > 1 and (idx == idx[0]).all():
            self.mode = "one"  # the same row for every node: broadcast it
        elif self.n == 0 or (idx == np.arange(self.a, self.b)).all():
            self.mode = "slice"
        elif len(np.unique(idx)) == self.n:
            self.mode = "unique"
        else:
            self.mode = "repeats"

    def take(self, buf: Any) -> Any:
        """The rows (a view where possible; a 'one' row broadcasts against the others)."""
        mode = self.mode
        if mode == "slice":
            return buf[self.a : self.b]
        if mode == "one":
            return buf[self.a : self.a + 1]
        return buf.take(self.idx, axis=0)

    def add(self, buf: Any, c: Any) -> None:
        """buf[rows] += c, adding (not overwriting) where a row appears more than once."""
        if c.shape[0] != self.n and self.mode != "one":
            c = np.broadcast_to(c, (self.n, buf.shape[1]))
        mode = self.mode
        if mode == "slice":
            buf[self.a : self.b] += c
        elif mode == "one":
            buf[self.a] += c.sum(axis=0) if c.shape[0] == self.n else c[0] * self.n
        elif mode == "unique":
            buf[self.idx] += c
        else:
            np.add.at(buf, self.idx, c)


# --- steps ------------------------------------------------------------------------------------
class _Map:
    """k independent instructions of one op, run as one call of the op's rule on a 2-d block."""

    def __init__(self, plan: BatchPlan, op: Op, slots: list[int], space: int, start: int) -> None:
        program = plan.program
        self.op, self.slots, self.space = op, slots, space
        self.a, self.b = start, start + len(slots)
        args = [program.instructions[s - plan.n_leaves].args for s in slots]
        n_args = len(args[0])
        self.operands = [_Rows(plan.space[args[0][j]], [plan.row[a[j]] for a in args]) for j in range(n_args)]
        self.arg_slots = [[a[j] for a in args] for j in range(n_args)]
        # gradients are computed only for operand positions where some node needs one
        self.grad_positions = [j for j in range(n_args) if any(program.requires_grad[a[j]] for a in args)]
        self.requires_grad = any(program.requires_grad[s] for s in slots)
        self.forward_rule = op.forward
        self.invalid = op.invalid
        self.derivatives = [op.derivative(j) for j in range(n_args)]
        self.plan = plan
        self.m = numpy_backend()

    def forward(self, bufs: tuple[Any, Any], offset: int) -> None:
        m = self.m
        xs = [r.take(bufs[r.space]) for r in self.operands]
        if self.invalid is not None:
            bad = self.invalid(m, *xs)
            if bad is not False and bad.any():
                self._domain_error(bad, xs, offset)
        bufs[self.space][self.a : self.b] = self.forward_rule(m, *xs)

    def backward(self, bufs: tuple[Any, Any], grads: tuple[Any, Any], check: bool = False) -> None:
        m = self.m
        g = grads[self.space][self.a : self.b]
        out = bufs[self.space][self.a : self.b]
        xs = [r.take(bufs[r.space]) for r in self.operands]
        for j in self.grad_positions:
            c = self.derivatives[j](m, g, out, *xs)
            if check:
                self._check_derivative(j, c, g, out, xs)
            if getattr(c, "shape", None) != g.shape:  # a rule may return a constant or a smaller block
                c = np.broadcast_to(c, g.shape)
            target = self.operands[j]
            if target.space != self.space:  # a per-sample gradient reaching a uniform slot: sum it
                c = c.sum(axis=1, keepdims=True)
            target.add(grads[target.space], c)

    def _instruction(self, r: int) -> str:
        return self.plan.program.describe(self.slots[r])

    def _domain_error(self, bad: Any, xs: list[Any], offset: int) -> None:
        shape = (self.b - self.a, xs[0].shape[1] if self.space == V else 1)
        for x in xs:
            shape = np.broadcast_shapes(shape, x.shape)
        r, col = (int(i) for i in np.argwhere(np.broadcast_to(bad, shape))[0])
        values = [float(np.broadcast_to(x, shape)[r, col]) for x in xs]
        where = f"at batch index {offset + col}, " if self.space == V else ""
        try:
            self.op.check(FLOAT, *values)
        except (ArithmeticError, ValueError) as exc:
            from .compiler import with_context

            raise with_context(exc, f"{where}in {self._instruction(r)}") from None
        raise DomainError(f"{self.op.name}: invalid operands {values} ({where}in {self._instruction(r)})")

    def _check_derivative(self, j: int, c: Any, g: Any, out: Any, xs: list[Any]) -> None:
        """Raise as the eager engine would where a rule gave NaN or inf (eager raises on some)."""
        shape = g.shape
        c = np.broadcast_to(c, shape)
        needs = self.plan.program.requires_grad
        for r, col in np.argwhere(~np.isfinite(c))[:1000]:
            if not needs[self.arg_slots[j][r]]:
                continue
            values = [float(np.broadcast_to(x, shape)[r, col]) for x in xs]
            try:  # the float rule is what eager backward() runs: it raises exactly where eager would
                self.derivatives[j](FLOAT, float(g[r, col]), float(out[r, col]), *values)
            except (ArithmeticError, ValueError) as exc:
                where = f"at batch index {self.plan.offset + col}, " if self.space == V else ""
                raise DomainError(
                    f"{self.op.name}: the derivative is undefined at {tuple(values)}: {exc} "
                    f"({where}in {self._instruction(int(r))})",
                    op=self.op.name,
                    value=tuple(values),
                ) from exc

    def describe(self) -> str:
        kinds = "".join("UV"[r.space] for r in self.operands)
        return f"{'UV'[self.space]} {self.op.name}({kinds}) x{len(self.slots)}"


class _Linear:
    """k sums of (weight * value) terms at the same depth, run as a matrix product plus a bias."""

    def __init__(self, plan: BatchPlan, slots: list[int], space: int, start: int) -> None:
        program = plan.program
        needs = program.requires_grad
        self.slots, self.space = slots, space
        self.a, self.b = start, start + len(slots)
        k = len(slots)
        vterms, uterms = [], []  # (row in group, sign, weight slot or None, column slot)
        for r, s in enumerate(slots):
            for sign, w, c in plan.terms[s]:
                (vterms if plan.space[c] == V else uterms).append((r, sign, w, c))

        def urow(w: int | None) -> int:
            return ONE if w is None else plan.row[w]

        # varying part: W @ X, with W gathered from the uniform buffer
        self.mode = None
        if vterms:
            cols = sorted({plan.row[c] for _, _, _, c in vterms})
            pairs = {(r, plan.row[c]) for r, _, _, c in vterms}
            dense = len(pairs) == len(vterms) and k * len(cols) <= _DENSE_FACTOR * len(vterms) + _DENSE_SLACK
            self.signed = any(sign < 0 for _, sign, _, _ in vterms)
            self.grad_x = any(needs[c] for _, _, _, c in vterms)
            if dense:
                self.mode = "dense"
                colpos = {row: i for i, row in enumerate(cols)}
                self.cols = _Rows(V, cols)
                self.Iw = np.full((k, len(cols)), ZERO, dtype=np.intp)
                self.S = np.ones((k, len(cols)))
                wpos, wrows = [], []
                for r, sign, w, c in vterms:
                    p = colpos[plan.row[c]]
                    self.Iw[r, p] = urow(w)
                    self.S[r, p] = sign
                    if w is not None and needs[w]:
                        wpos.append(r * len(cols) + p)
                        wrows.append(plan.row[w])
            else:
                self.mode = "sparse"
                vterms.sort(key=lambda t: t[0])
                self.trows = np.array([t[0] for t in vterms], dtype=np.intp)
                self.starts = np.searchsorted(self.trows, np.arange(k))
                self.tcols = _Rows(V, [plan.row[c] for _, _, _, c in vterms])
                self.tw = np.array([urow(w) for _, _, w, _ in vterms], dtype=np.intp)
                self.tsign = np.array([s for _, s, _, _ in vterms], dtype=np.float64)
                wpos = [i for i, (_, _, w, _) in enumerate(vterms) if w is not None and needs[w]]
                wrows = [plan.row[vterms[i][2]] for i in wpos]
            pairs_w = sorted(zip(wpos, wrows, strict=True))  # row-major, so a full block is a slice
            wpos, wrows = [p for p, _ in pairs_w], [w for _, w in pairs_w]
            self.wpos = np.array(wpos, dtype=np.intp)
            self.wrows = _Rows(U, wrows) if wrows else None
            self.wview = None  # (start, stop) when W is a contiguous block of the buffer, row-major
            if self.mode == "dense":
                flat = self.Iw.ravel()
                if (flat == np.arange(flat[0], flat[0] + flat.size)).all():
                    self.wview = (int(flat[0]), int(flat[0]) + flat.size)
                    if len(self.wpos) == flat.size:
                        self.wpos = None  # every entry needs its gradient: no selection
        # uniform part: a bias per row, summed from weight * value terms that do not vary
        self.uterms = bool(uterms)
        if uterms:
            self.urows = np.array([t[0] for t in uterms], dtype=np.intp)
            self.udirect = len(uterms) == k and (self.urows == np.arange(k)).all()
            self.uw_all_one = all(w is None for _, _, w, _ in uterms)
            self.uw = np.array([urow(w) for _, _, w, _ in uterms], dtype=np.intp)
            self.uc = np.array([plan.row[c] for _, _, _, c in uterms], dtype=np.intp)
            self.usign = np.array([s for _, s, _, _ in uterms], dtype=np.float64)
            self.usigned = bool((self.usign < 0).any())
            self.ucol_rows = _Rows(U, self.uc)
            uw_grad = [i for i, (_, _, w, _) in enumerate(uterms) if w is not None and needs[w]]
            self.uw_grad = np.array(uw_grad, dtype=np.intp)
            self.uw_rows = _Rows(U, self.uw[self.uw_grad]) if uw_grad else None
            # the common case, one bias per row: a plain (often contiguous) read of the biases
            self.ufast = self.udirect and self.uw_all_one and not self.usigned
            self.uc_grad = any(needs[c] for _, _, _, c in uterms)
        self.requires_grad = any(needs[s] for s in slots)
        self.n_terms = (len(vterms), len(uterms))

    def _bias(self, u: Any) -> Any:
        if self.ufast:
            return self.ucol_rows.take(u)
        vals = u[self.uc]
        if not self.uw_all_one:
            vals = vals * u[self.uw]
        if self.usigned:
            vals = vals * self.usign
        if self.udirect:
            return vals
        return np.bincount(self.urows, weights=vals, minlength=self.b - self.a)

    def forward(self, bufs: tuple[Any, Any], offset: int) -> None:
        ubuf, vbuf = bufs
        u = ubuf[:, 0]
        out = bufs[self.space][self.a : self.b]
        if self.mode == "dense":
            if self.wview is not None:
                a, b = self.wview
                W = u[a:b].reshape(self.Iw.shape)
            else:
                W = u[self.Iw]
            if self.signed:
                W = W * self.S
            X = self.cols.take(vbuf)
            self._W, self._X = W, X
            np.matmul(W, X, out=out)
        elif self.mode == "sparse":
            X = self.tcols.take(vbuf)
            wv = u[self.tw] * self.tsign
            self._W, self._X = wv, X
            out[...] = np.add.reduceat(X * wv[:, None], self.starts, axis=0)
        if self.uterms:
            bias = self._bias(u)[:, None]
            if self.mode is None:
                out[...] = bias
            else:
                out += bias

    def backward(self, bufs: tuple[Any, Any], grads: tuple[Any, Any], check: bool = False) -> None:
        ubuf, vbuf = bufs
        gu, gv = grads
        g = grads[self.space][self.a : self.b]
        if self.mode == "dense":
            W, X = self._W, self._X
            if self.grad_x:
                self.cols.add(gv, W.T @ g)
            if self.wrows is not None:
                dW = g @ X.T
                if self.signed:
                    dW *= self.S
                dW = dW.reshape(-1, 1)
                self.wrows.add(gu, dW if self.wpos is None else dW[self.wpos])
        elif self.mode == "sparse":
            wv, X = self._W, self._X
            gt = g.take(self.trows, axis=0)
            if self.grad_x:
                self.tcols.add(gv, gt * wv[:, None])
            if self.wrows is not None:
                dw = np.einsum("ij,ij->i", gt, X) * self.tsign
                self.wrows.add(gu, dw[self.wpos][:, None])
        if self.uterms and (self.uc_grad or self.uw_rows is not None):
            u = ubuf[:, 0]
            gs = g.sum(axis=1) if g.shape[1] != 1 else g[:, 0]
            tg = gs if self.udirect else gs[self.urows]
            if self.usigned:
                tg = tg * self.usign
            if self.uc_grad:
                self.ucol_rows.add(gu, (tg if self.uw_all_one else tg * u[self.uw])[:, None])
            if self.uw_rows is not None:
                self.uw_rows.add(gu, (tg * u[self.uc])[self.uw_grad][:, None])

    def describe(self) -> str:
        k = self.b - self.a
        nv, nu = self.n_terms
        if self.mode == "dense":
            part = f"matmul {k}x{self.Iw.shape[1]} @ {self.Iw.shape[1]}xB"
        elif self.mode == "sparse":
            part = f"sparse sums of {nv} terms"
        else:
            part = f"{k} sums"
        return f"{'UV'[self.space]} {part}" + (f" + {nu} bias terms" if nu else "")


# --- the plan --------------------------------------------------------------------------------
class BatchPlan:
    """The Program grouped into vectorised steps, with buffers reused between runs."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.offset = 0
        n_in = len(program.inputs)
        n_leaves = self.n_leaves = len(program.leaves)
        n_slots = n_leaves + len(program.instructions)
        instructions = program.instructions
        space = [V] * n_in + [U] * (n_leaves - n_in)
        for ins in instructions:
            space.append(V if any(space[a] == V for a in ins.args) else U)
        self.space = space
        uses = [0] * n_slots
        for ins in instructions:
            for a in ins.args:
                uses[a] += 1
        outputs = set(program.output_slots)

        # 1. sums of products: which instructions become rows of a matrix product
        self.terms: dict[int, list[tuple[float, int | None, int]]] = {}
        absorbed: set[int] = set()
        for ins in reversed(instructions):
            if ins.slot in absorbed:
                continue
            coeffs = _coefficients(ins.op, len(ins.args))
            if coeffs is None:
                continue
            terms: list[tuple[float, int | None, int]] = []
            took: list[int] = []
            stack = list(zip(reversed(ins.args), reversed(coeffs), strict=True))
            while stack:
                s, sign = stack.pop()
                if s >= n_leaves and uses[s] == 1 and s not in outputs:
                    sub = instructions[s - n_leaves]
                    sub_coeffs = _coefficients(sub.op, len(sub.args))
                    if sub_coeffs is not None:
                        took.append(s)
                        stack.extend(
                            (a, sign * c)
                            for a, c in zip(reversed(sub.args), reversed(sub_coeffs), strict=True)
                        )
                        continue
                    if sub.op.bilinear:
                        a, b = sub.args
                        if space[a] == U or space[b] == U:
                            w, c = (a, b) if space[a] == U else (b, a)
                            terms.append((sign, w, c))
                            took.append(s)
                            continue
                terms.append((sign, None, s))
            if ins.op.name == "sum" or took:
                self.terms[ins.slot] = terms
                absorbed.update(took)

        # 2. depth of every remaining instruction (uniform inputs of a varying node count as depth 0)
        level = [0] * n_slots
        groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        needs = program.requires_grad
        for ins in instructions:
            s = ins.slot
            if s in absorbed:
                continue
            if s in self.terms:
                deps = [d for _, w, c in self.terms[s] for d in (w, c) if d is not None]
                key: tuple[Any, ...] = ("linear",)
            else:
                deps = list(ins.args)
                key = (ins.op.name, tuple(space[a] for a in ins.args))
            level[s] = 1 + max((level[d] for d in deps if space[d] == space[s]), default=0)
            groups[(space[s], level[s], *key, needs[s])].append(s)

        # 3. rows: varying buffer = [inputs, varying results]; uniform buffer = [0, 1, parameters,
        #    constants, uniform results]. Each group's results are contiguous rows.
        order = sorted(groups, key=lambda k: (k[0], k[1], groups[k][0]))
        self.row = [0] * n_slots
        size = [0, n_in]
        for i in range(n_in):
            self.row[i] = i
        for key in order:
            if key[0] == V:
                for s in groups[key]:
                    self.row[s] = size[V]
                    size[V] += 1
        # parameters are laid out so that each layer's weight matrix is one contiguous block of the
        # uniform buffer (W is then a view, and its gradient a slice addition), its biases another
        params = self._layout([groups[k] for k in order if k[2] == "linear" and k[0] == V], n_in, n_leaves)
        self.param_leaves = [program.leaves[s] for s in params]
        leaf_slots = params + [s for s in range(n_in, n_leaves) if program.kinds[s] != "parameter"]
        self.leaf_values = [program.leaves[s] for s in leaf_slots]
        size[U] = 2
        for s in leaf_slots:
            self.row[s] = size[U]
            size[U] += 1
        for key in order:
            if key[0] == U:
                for s in groups[key]:
                    self.row[s] = size[U]
                    size[U] += 1
        self.steps: list[Any] = []
        for key in order:
            slots = groups[key]
            sp, start = key[0], self.row[slots[0]]
            if key[2] == "linear":
                self.steps.append(_Linear(self, slots, sp, start))
            else:
                op = instructions[slots[0] - n_leaves].op
                self.steps.append(_Map(self, op, slots, sp, start))
        self.backward_steps = [s for s in reversed(self.steps) if s.requires_grad]
        self.n_u, self.n_v = size
        self.ubuf = np.zeros((self.n_u, 1))
        self.ubuf[ONE] = 1.0
        self.ugrad = np.zeros((self.n_u, 1))
        self.n_params = len(params)
        self._width = -1
        self.vbuf = self.vgrad = None
        self.out_rows = [(space[s], self.row[s]) for s in program.output_slots]
        self.grad_inputs = [i for i in range(n_in) if program.requires_grad[i]]
        self.input_needs = [program.requires_grad[i] for i in range(n_in)]
        self.grad_input_rows = (
            slice(0, n_in) if len(self.grad_inputs) == n_in else np.array(self.grad_inputs, int)
        )

    def _layout(self, linear_groups: list[list[int]], n_in: int, n_leaves: int) -> list[int]:
        """Parameter slots in buffer order: dense weight blocks row-major, then biases, then the rest."""
        kinds = self.program.kinds
        placed: list[int] = []
        seen: set[int] = set()

        def place(block: list[int | None]) -> None:
            if all(s is not None and kinds[s] == "parameter" and s not in seen for s in block) and len(
                set(block)
            ) == len(block):
                placed.extend(block)  # type: ignore[arg-type]
                seen.update(block)  # type: ignore[arg-type]

        for slots in linear_groups:
            vterms = [
                (r, w, c) for r, s in enumerate(slots) for _, w, c in self.terms[s] if self.space[c] == V
            ]
            cols = sorted({self.row[c] for _, _, c in vterms})
            colpos = {row: i for i, row in enumerate(cols)}
            block: list[int | None] = [None] * (len(slots) * len(cols))
            for r, w, c in vterms:
                block[r * len(cols) + colpos[self.row[c]]] = w
            place(block)
            uterms = [
                (r, w, c) for r, s in enumerate(slots) for _, w, c in self.terms[s] if self.space[c] == U
            ]
            if [r for r, _, _ in uterms] == list(range(len(slots))) and all(w is None for _, w, _ in uterms):
                place([c for _, _, c in uterms])
        placed.extend(s for s in range(n_in, n_leaves) if kinds[s] == "parameter" and s not in seen)
        return placed

    def describe(self) -> str:
        """The steps, one per line: the buffer (U uniform, V per sample), op and group size."""
        lines = [f"batch plan: {len(self.steps)} steps ({self.n_u} uniform rows, {self.n_v} rows per sample)"]
        lines.extend(f"  {step.describe()}" for step in self.steps)
        return "\n".join(lines)

    # --- running ---------------------------------------------------------------------------
    def _inputs(self, args: tuple[Any, ...]) -> tuple[int, list[Any]]:
        """Validate the inputs: each a number or a 1-d array, all arrays of one length B."""
        names = self.program._names
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

    def _buffers(self, width: int) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
        if width != self._width:
            self.vbuf = np.zeros((self.n_v, width))
            self.vgrad = np.zeros((self.n_v, width))
            self._width = width
        return (self.ubuf, self.vbuf), (self.ugrad, self.vgrad)

    def run(self, program: Program, args: tuple[Any, ...], want_grad: bool, grad_output: Any) -> Any:
        """Forward (and backward) over the whole batch; returns (values, input_grads)."""
        batch, values = self._inputs(args)
        seeds = list(program._seeds(grad_output, batch)) if want_grad else None
        # parameters and constants are read by reference, once per run
        self.ubuf[2 : 2 + len(self.leaf_values), 0] = [v.data for v in self.leaf_values]
        chunk = max(256, _MAX_CHUNK_FLOATS // max(self.n_v, 1))
        if batch <= chunk:  # the usual case: one pass over the whole batch
            outs, in_grads, param_grads = self._run_chunk(values, 0, batch, seeds)
        else:
            parts = [
                self._run_chunk(values, lo, min(batch, lo + chunk), seeds) for lo in range(0, batch, chunk)
            ]
            outs = [np.concatenate(o) for o in zip(*(p[0] for p in parts), strict=True)]
            in_grads = [
                None if g[0] is None else np.concatenate(g) for g in zip(*(p[1] for p in parts), strict=True)
            ]
            param_grads = None if seeds is None else np.sum([p[2] for p in parts], axis=0)
        value = outs[0] if program._single else outs
        if seeds is None:
            return value, None
        grads = tuple(
            float(g.sum()) if g is not None and isinstance(x, float) else g
            for x, g in zip(values, in_grads, strict=True)
        )
        for p, g in zip(self.param_leaves, param_grads.tolist(), strict=True):
            p.grad += g
        return value, grads

    def _run_chunk(
        self, values: list[Any], lo: int, hi: int, seeds: list[Any] | None
    ) -> tuple[Any, Any, Any]:
        """Samples lo:hi: (outputs, input gradients or None, parameter gradients or None)."""
        self.offset = lo
        width = hi - lo
        bufs, grads = self._buffers(width)
        vbuf = bufs[V]
        for i, x in enumerate(values):
            vbuf[i] = x if isinstance(x, float) else x[lo:hi]
        with np.errstate(all="ignore"):  # IEEE arithmetic as the float engine does it: inf, not warnings
            for step in self.steps:
                step.forward(bufs, lo)
            outs = [
                bufs[V][r].copy() if sp == V else np.full(width, bufs[U][r, 0]) for sp, r in self.out_rows
            ]
            if seeds is None:
                return outs, None, None
            self._backward(bufs, grads, seeds, lo, hi, check=False)
            ug, vg = grads
            pg = ug[2 : 2 + self.n_params, 0]
            # one sum tells whether any gradient is NaN or inf (an overflowing sum only costs a recheck)
            if not (math.isfinite(pg.sum()) and math.isfinite(vg[self.grad_input_rows].sum())):
                # find the rule (if any) that made a NaN or inf out of finite numbers, as eager would
                self._backward(bufs, grads, seeds, lo, hi, check=True)
        in_grads = [vg[i].copy() if needs else None for i, needs in enumerate(self.input_needs)]
        return outs, in_grads, pg.copy()  # a copy: the buffer is reused by the next chunk

    def _backward(self, bufs: Any, grads: Any, seeds: list[Any], lo: int, hi: int, check: bool) -> None:
        ug, vg = grads
        ug.fill(0.0)
        vg.fill(0.0)
        for (sp, r), seed in zip(self.out_rows, seeds, strict=True):
            if isinstance(seed, np.ndarray) and seed.ndim == 1:
                seed = seed[lo:hi]
            if sp == V:
                vg[r] += seed
            else:
                ug[r, 0] += float(np.sum(np.broadcast_to(seed, (hi - lo,))))
        for step in self.backward_steps:
            step.backward(bufs, grads, check)
