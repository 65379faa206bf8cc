"""Float mode for large programs: the tape run by a compact interpreter instead of generated code.

Generated code (`float_mode.FloatCode`) runs a Program on floats fastest, but CPython takes
100-300 us per instruction to compile it: seconds, and hundreds of MB, for a program of 10^5
instructions. Above `float_mode.GENERATE_MAX_INSTRUCTIONS` instructions a Program runs on this
interpreter instead, which is ready in some 10 us per instruction and runs 1.2-4x slower.

Each rule the program uses becomes one small *kernel*, compiled once per (op, number of operands,
inputs needing a gradient) from its traced template (`rule_source`), that reads its operands from
the list of values by slot:

    %7 = tanh %5   forward:   def f_1_tanh(v, a):            called with (values, (5,))
                                  x0 = v[a[0]]
                                  return M_tanh(x0)
                   backward:  def b_1_tanh(G, v, s, a, t):   called with (grads, values, 7, (5,), (5,))
                                  out = v[s]
                                  g = G[s]
                                  G[a[0]] += g * (1 - out * out)

A forward run appends one value per instruction to the list (slots are consecutive); a backward
run calls one kernel per instruction, which adds its derivatives into a list of gradients that
start at 0.0, as the eager engine's `_g` slots do, in the order of its `backward()`
(`instruction.backward_order`). Both are the table's own arithmetic in the eager engine's order,
so the numbers are eager's bit for bit, as generated code's are. A rule that cannot be traced is
called instead. Every run has its own lists: threads may share an interpreter.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ..backends import FLOAT
from ..ops import Op
from .instruction import add_parameter_gradients, backward_order, outside_domain, rule_failed
from .rule_source import DERIVATIVE, DOMAIN_TEST, FORWARD, RuleTemplates, rule_of

_OPERAND = re.compile(r"\b(?:out|x\d+)\b")  # operand names a kernel loads from the values
ForwardKernel = Callable[[list[float], tuple[int, ...]], float]
BackwardKernel = Callable[[list[float], list[float], int, tuple[int, ...], tuple[int, ...]], None]
BackwardStep = tuple[BackwardKernel, int, tuple[int, ...], tuple[int, ...]]


class OutsideDomain(Exception):  # noqa: N818 - a signal, turned into the op's own error at once
    """Raised by a forward kernel whose operands fail the op's `invalid` test."""


class Kernels:
    """One compiled function per rule the program uses (see the module docstring)."""

    def __init__(self) -> None:
        self._templates = RuleTemplates()
        self._namespace: dict[str, Any] = {"OutsideDomain": OutsideDomain, "M": FLOAT}
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._ops: list[Op] = []  # keeps every op whose id is a cache key alive

    def forward(self, op: Op, n: int) -> ForwardKernel:
        """`kernel(values, args)`: the op's value on operands `values[a] for a in args`, raising
        OutsideDomain where its domain test fails."""
        key = (FORWARD, id(op), n)
        kernel = self._cache.get(key)
        if kernel is None:
            names = [f"x{k}" for k in range(n)]
            result = self._fill(op, FORWARD, 0, names)
            test = None if op.invalid is None else self._fill(op, DOMAIN_TEST, 0, names)
            body = [f"if {test}: raise OutsideDomain"] if test is not None else []
            kernel = self._define(op, key, f"f_{n}", "v, a", names, [*body, f"return {result}"])
        return kernel

    def backward(self, op: Op, n: int, needs: tuple[bool, ...]) -> BackwardKernel:
        """`kernel(grads, values, slot, args, targets)`: adds the instruction's derivatives (times
        its gradient `grads[slot]`) into `grads` of the inputs `needs` marks, in input order.

        An n-ary op has one rule for all inputs, not told which input it is for: its value is
        computed once and added into each slot of `targets`, as eager `backward()` does."""
        key = ("b", id(op), n) if op.arity is None else ("b", id(op), n, needs)
        kernel = self._cache.get(key)
        if kernel is None:
            names = [f"x{k}" for k in range(n)]
            if op.arity is None:
                d = self._fill(op, DERIVATIVE, 0, ["g", "out", *names])
                body = [f"d = {d}", "for j in t:", "    G[j] += d"]
            else:
                body = [
                    f"G[a[{i}]] += {self._fill(op, DERIVATIVE, i, ['g', 'out', *names])}"
                    for i in range(n)
                    if needs[i]
                ]
            kernel = self._define(op, key, f"b_{n}", "G, v, s, a, t", names, ["g = G[s]", *body])
        return kernel

    def _define(
        self, op: Op, key: tuple[Any, ...], name: str, params: str, names: list[str], body: list[str]
    ) -> Any:
        """Compile a kernel: `body`, after loading the operands it reads (`out`, `x0`, ...)."""
        used = set(_OPERAND.findall("\n".join(body)))
        lines = ["out = v[s]"] if "out" in used else []
        lines += [f"{x} = v[a[{k}]]" for k, x in enumerate(names) if x in used]
        name += "_" + re.sub(r"\W", "_", op.name)
        source = f"def {name}({params}):\n" + "".join(f"    {line}\n" for line in (*lines, *body))
        exec(compile(source, f"<chainrule kernel {name}>", "exec"), self._namespace)  # noqa: S102 - our own code
        self._ops.append(op)
        kernel = self._cache[key] = self._namespace.pop(name)
        return kernel

    def _fill(self, op: Op, kind: str, i: int, operands: list[str]) -> str:
        """Source for one rule: its template filled in with the operand names, or (a rule that
        cannot be traced) a call of the rule itself on all operands, gathered from the list."""
        template = self._templates.get(op, kind, i, len(operands) - (2 if kind == DERIVATIVE else 0))
        if template is not None:
            self._templates.bind(self._namespace)
            return template.format(*operands)
        rule = f"R{len(self._namespace)}"
        self._namespace[rule] = rule_of(op, kind, i)
        before = "g, v[s], " if kind == DERIVATIVE else ""
        return f"{rule}(M, {before}*map(v.__getitem__, a))"


class FloatInterpreter:
    """A Program run on floats by an interpreter loop: `forward(*xs)` and `value_and_grad(xs, seeds)`.

    `program` is any object with the Program's tape attributes (`inputs`, `leaves`,
    `instructions`, `output_slots`, `requires_grad`, `grad_order`, `single`). The loops are
    prepared on first use: forward for `program(x)`, backward on the first `value_and_grad`."""

    def __init__(self, program: Any) -> None:
        self.program = program
        self._n_leaves = len(program.leaves)
        self._kernels = Kernels()
        self._lock = threading.Lock()
        self._forward: list[tuple[ForwardKernel, tuple[int, ...]]] | None = None
        self._backward: list[BackwardStep] | None = None
        self._seeds: tuple[tuple[int, int], ...] = ()
        self._parameter_slots: list[int] = []  # the leaves (not inputs) that receive a gradient

    # --- running -------------------------------------------------------------------------------
    def forward(self, *xs: float) -> Any:
        """The output(s) for float inputs."""
        values = self._run_forward(xs)
        outs = [values[s] for s in self.program.output_slots]
        return outs[0] if self.program.single else outs

    def value_and_grad(self, xs: Sequence[float], seeds: Sequence[float]) -> tuple[Any, tuple[Any, ...]]:
        """Forward and backward for float inputs; adds parameter gradients into `.grad`."""
        steps = self._backward if self._backward is not None else self._prepare_backward()
        program = self.program
        values = self._run_forward(xs)
        grads = [0.0] * len(values)  # as the eager engine's `_g` scratch slots start
        for k, slot in self._seeds:
            grads[slot] += seeds[k]
        try:
            for kernel, slot, args, targets in steps:
                kernel(grads, values, slot, args, targets)
        except (ArithmeticError, ValueError) as exc:
            ins = program.instructions[slot - self._n_leaves]
            raise rule_failed(ins, True, [values[a] for a in ins.args], exc) from exc
        add_parameter_gradients(
            [program.leaves[s] for s in self._parameter_slots], [grads[s] for s in self._parameter_slots]
        )
        outs = [values[s] for s in program.output_slots]
        needs = program.requires_grad
        input_grads = tuple(grads[i] if needs[i] else None for i in range(len(program.inputs)))
        return (outs[0] if program.single else outs), input_grads

    def _run_forward(self, xs: Sequence[float]) -> list[float]:
        """Every slot's value: the inputs, the leaves' current `.data`, then one per instruction."""
        steps = self._forward if self._forward is not None else self._prepare_forward()
        program = self.program
        values = [*xs, *(leaf.data for leaf in program.leaves[len(xs) :])]
        append = values.append
        try:
            for kernel, args in steps:
                append(kernel(values, args))
        except (OutsideDomain, ArithmeticError, ValueError) as exc:
            ins = program.instructions[len(values) - self._n_leaves]
            operands = [values[a] for a in ins.args]
            if isinstance(exc, OutsideDomain):
                raise outside_domain(ins, operands) from None
            raise rule_failed(ins, False, operands, exc) from exc
        return values

    # --- preparing -------------------------------------------------------------------------------
    def _prepare_forward(self) -> list[tuple[ForwardKernel, tuple[int, ...]]]:
        with self._lock:  # two threads asking at once prepare once
            if self._forward is None:
                kernel = self._kernels.forward
                instructions = self.program.instructions
                self._forward = [(kernel(ins.op, len(ins.args)), ins.args) for ins in instructions]
        return self._forward

    def _prepare_backward(self) -> list[BackwardStep]:
        with self._lock:
            if self._backward is None:
                program = self.program
                order = backward_order(program)
                kernel = self._kernels.backward
                instructions, n_leaves = program.instructions, self._n_leaves
                steps = []
                for slot, needs in order.steps:
                    ins = instructions[slot - n_leaves]
                    args = ins.args
                    targets = args if all(needs) else tuple(itertools.compress(args, needs))
                    steps.append((kernel(ins.op, len(args), needs), slot, args, targets))
                self._seeds = order.seeds
                leaves = range(len(program.inputs), n_leaves)
                self._parameter_slots = [s for s in leaves if s in order.reached]
                self._backward = steps
        return self._backward
