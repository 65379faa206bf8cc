"""Float mode: a Program run on plain Python floats as generated straight-line code.

Interpreting a tape node by node costs a Python call and some bookkeeping per node. Instead the
Program is written out as Python source, one line per instruction, with each rule of the
derivative table filled in from its traced template (see `rule_source`):

    %7 = tanh %5     becomes   s7 = M_tanh(s5)                  (forward)
                               g5 = g7 * (1 - s7 * s7)          (backward)

The generated code performs exactly the operations the rules perform, in the same order, so float
mode gives the eager engine's numbers bit for bit, with no second copy of any derivative.

Generating code takes far longer than one run (CPython compiles each line), so only a Program of
at most `GENERATE_MAX_INSTRUCTIONS` instructions gets it; a larger one runs on the interpreter of
`float_interpreter`, which is ready in microseconds per instruction and gives the same numbers
(`float_runner` chooses).

Each function (`forward`, `value_and_grad`) is generated the first time it is needed, so a caller
of `program(x)` never waits for backward code. A long function is cut into *segments* of at most
`SEGMENT_LINES` lines, each compiled on its own (CPython's compiler needs memory in proportion to
the largest function it compiles): values that cross a segment boundary travel in one list.
"""

from __future__ import annotations

import itertools
import linecache
import re
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import DomainError
from .float_interpreter import FloatInterpreter
from .instruction import add_parameter_gradients, backward_order, outside_domain, rule_failed
from .rule_source import DERIVATIVE, DOMAIN_TEST, FORWARD, RuleTemplates

# A Program of more instructions than this runs on the interpreter (`float_interpreter`) instead.
# Generating code costs 100-300 us per instruction (CPython's compile of its lines, mostly); it runs
# 1.2-4x faster than the interpreter, saving some 0.1-0.3 us per instruction and run: generating pays
# for itself after 300 to 3,000 runs, and up to this size it takes about half a second at most.
GENERATE_MAX_INSTRUCTIONS = 2_000
SEGMENT_LINES = 2000  # a generated function longer than this is compiled in segments of this many lines
_program_numbers = itertools.count(1)  # itertools.count is atomic under the GIL: unique file names
_builtin_compile = compile
_VARIABLE = re.compile(r"\b[sg]\d+\b")  # the variables a line of generated code reads


@dataclass(frozen=True)
class Line:
    """One line of generated code: its text, the variable it assigns, the variables it reads, and
    the instruction it belongs to (for error messages)."""

    text: str
    defines: str | None
    uses: tuple[str, ...]
    slot: int
    phase: str  # FORWARD (a forward line) or DERIVATIVE (a backward one)


def float_runner(program: Any) -> FloatCode | FloatInterpreter:
    """How `program` runs on floats: generated code, or the interpreter for a large program."""
    if len(program.instructions) > GENERATE_MAX_INSTRUCTIONS:
        return FloatInterpreter(program)
    return FloatCode(program)


def _forget(filenames: list[str]) -> None:
    """Drop generated sources from linecache (when their FloatCode is collected)."""
    for name in filenames:
        linecache.cache.pop(name, None)


class FloatCode:
    """A Program as generated Python: `forward(*xs)` and `value_and_grad(xs, seeds)`.

    `program` is any object with the Program's tape attributes (`inputs`, `leaves`,
    `instructions`, `output_slots`, `requires_grad`, `grad_order`, `single`)."""

    def __init__(self, program: Any) -> None:
        self.program = program
        self.number = next(_program_numbers)
        self._templates = RuleTemplates()
        self._namespace: dict[str, Any] = {"_fail": self._fail}
        for slot in range(len(program.inputs), len(program.leaves)):
            self._namespace[f"L{slot}"] = program.leaves[slot]
        self._functions: dict[str, Callable[..., Any]] = {}
        self._sources: dict[str, list[str]] = {}
        self.line_slots: dict[tuple[str, int], tuple[int, str]] = {}  # (file, line) -> (slot, phase)
        self._filenames: list[str] = []
        self._grad_leaves: list[Any] = []  # the parameters whose gradients value_and_grad returns
        self._grad_names: list[str] = []
        self._lock = threading.Lock()
        # the sources are shown in tracebacks through linecache, and removed from it with the code
        weakref.finalize(self, _forget, self._filenames)

    # --- running -------------------------------------------------------------------------------
    def forward(self, *xs: float) -> Any:
        """The output(s) for float inputs."""
        fn = self._functions.get("forward") or self._generate("forward")
        try:
            return fn(*xs)
        except (ArithmeticError, ValueError) as exc:
            raise self._explain(exc) from exc

    def value_and_grad(self, xs: Sequence[float], seeds: Sequence[float]) -> tuple[Any, tuple[Any, ...]]:
        """Forward and backward for float inputs; adds parameter gradients into `.grad`."""
        fn = self._functions.get("value_and_grad") or self._generate("value_and_grad")
        try:
            value, input_grads, param_grads = fn(*xs, *seeds)
        except (ArithmeticError, ValueError) as exc:
            raise self._explain(exc) from exc
        add_parameter_gradients(self._grad_leaves, param_grads)  # only once the sweep has succeeded
        return value, input_grads

    @property
    def source(self) -> str:
        """The generated Python source of both functions (generating them if needed)."""
        for name in ("forward", "value_and_grad"):
            if name not in self._functions:
                self._generate(name)
        return "".join(self._sources["forward"] + self._sources["value_and_grad"])

    # --- generating ------------------------------------------------------------------------------
    def _generate(self, name: str) -> Callable[..., Any]:
        with self._lock:  # two threads asking at once generate the code once
            if name not in self._functions:
                program = self.program
                params = [f"s{i}" for i in range(len(program.inputs))]
                lines = self._forward_lines()
                outs = [f"s{s}" for s in program.output_slots]
                result = outs[0] if program.single else "[" + ", ".join(outs) + "]"
                returned: list[str] = list(outs)
                if name == "value_and_grad":
                    seeds = [f"go{k}" for k in range(len(outs))]
                    params += seeds
                    back, grads = self._backward_lines(seeds)
                    lines += back
                    started = [g.removeprefix("0.0 + ") for g in grads if g.startswith("0.0 + ")]
                    returned += started + self._grad_names
                    result = f"{result}, ({', '.join(grads)}{',' if len(grads) == 1 else ''})"
                    result += f", ({', '.join(self._grad_names)}{',' if len(self._grad_names) == 1 else ''})"
                self._templates.bind(self._namespace)
                self._functions[name] = self._assemble(name, params, lines, result, returned)
        return self._functions[name]

    def _forward_lines(self) -> list[Line]:
        """One line per instruction (two with a domain test). A leaf (parameter or constant) is read
        from its Value just before its first use, so that long code stays local to its segments."""
        program = self.program
        expression = self._templates.expression
        n_in, n_leaves = len(program.inputs), len(program.leaves)
        lines: list[Line] = []
        loaded: set[int] = set()

        def load(slots: Sequence[int]) -> None:
            for a in slots:
                if n_in <= a < n_leaves and a not in loaded:
                    loaded.add(a)
                    lines.append(Line(f"s{a} = L{a}.data", f"s{a}", (), a, FORWARD))

        for ins in program.instructions:
            load(ins.args)
            xs = [f"s{a}" for a in ins.args]
            if ins.op.invalid is not None:
                cond = expression(ins.op, DOMAIN_TEST, 0, xs, self._namespace)
                text = f"if {cond}: _fail({ins.slot}, {', '.join(xs)})"
                lines.append(Line(text, None, tuple(xs), ins.slot, FORWARD))
            text = f"s{ins.slot} = {expression(ins.op, FORWARD, 0, xs, self._namespace)}"
            lines.append(Line(text, f"s{ins.slot}", tuple(xs), ins.slot, FORWARD))
        load(program.output_slots)  # an output that is a leaf itself
        return lines

    def _backward_lines(self, seeds: list[str]) -> tuple[list[Line], list[str]]:
        """The backward sweep in the eager engine's order, then the parameters' `.grad` updates.
        Returns the lines and the expressions of the input gradients."""
        program = self.program
        expression = self._templates.expression
        order = backward_order(program)
        started: set[int] = set()
        lines: list[Line] = []

        def accumulate(slot: int, expr: str, uses: tuple[str, ...], at: int) -> None:
            g = f"g{slot}"
            if slot in started:
                lines.append(Line(f"{g} += {expr}", g, (g, *uses), at, DERIVATIVE))
            else:
                started.add(slot)
                lines.append(Line(f"{g} = {expr}", g, uses, at, DERIVATIVE))

        for k, slot in order.seeds:
            accumulate(slot, seeds[k], (seeds[k],), slot)
        n_leaves = len(program.leaves)
        for slot, mask in order.steps:
            if slot not in started:  # not reached: its gradient would be 0.0
                continue
            ins = program.instructions[slot - n_leaves]
            operands = [f"g{slot}", f"s{slot}", *(f"s{x}" for x in ins.args)]
            for i, a in enumerate(ins.args):
                if mask[i]:
                    expr = expression(ins.op, DERIVATIVE, i, operands, self._namespace)
                    accumulate(a, expr, tuple(dict.fromkeys(_VARIABLE.findall(expr))), slot)
        # the parameters' gradients are returned, and added into `.grad` by value_and_grad
        leaves = range(len(program.inputs), n_leaves)
        self._grad_leaves = [program.leaves[s] for s in leaves if s in started]
        self._grad_names = [f"g{s}" for s in leaves if s in started]
        # eager backward() starts every gradient at 0.0: `0.0 + g` gives its sign of a zero gradient
        needs = program.requires_grad
        grads = [
            f"0.0 + g{i}" if i in started else ("0.0" if needs[i] else "None")
            for i in range(len(program.inputs))
        ]
        return lines, grads

    def _assemble(
        self, name: str, params: list[str], lines: list[Line], result: str, returned: list[str]
    ) -> Callable[..., Any]:
        """Compile `lines` into a function `name(*params)` returning `result`.

        Up to SEGMENT_LINES lines make one function. Longer code becomes segment functions run
        one after the other; a variable used outside the segment that assigns it is stored in the
        list `S` and loaded from it at the top of each segment that reads it."""
        base = f"<chainrule program {self.number}: {name}"
        if len(lines) <= SEGMENT_LINES:
            header = [f"def {name}({', '.join(params)}):"]
            self._compile(f"{base}>", header, lines, [f"    return {result}"], name)
            return self._namespace[name]
        segments = [lines[i : i + SEGMENT_LINES] for i in range(0, len(lines), SEGMENT_LINES)]
        last_use: dict[str, int] = {}
        for k, seg in enumerate(segments):
            for line in seg:
                for v in line.uses:
                    last_use[v] = k
        for v in returned:
            last_use[v] = len(segments) - 1
        position: dict[str, int] = {}  # variable -> its index in S
        stored: set[str] = set(params)
        for k, seg in enumerate(segments):
            defined: set[str] = set()
            live_in: dict[str, None] = {}  # read before assigned here, in first-read order
            for line in seg:
                for v in line.uses:
                    if v not in defined:
                        live_in.setdefault(v)
                if line.defines is not None:
                    defined.add(line.defines)
            if k == len(segments) - 1:
                for v in returned:
                    if v not in defined:
                        live_in.setdefault(v)
            live_out = [v for v in sorted(defined) if last_use.get(v, -1) > k]
            for v in (*live_in, *live_out):
                position.setdefault(v, len(position))
            header = [f"def {name}_{k}(S):"]
            header += [f"    {v} = S[{position[v]}]" for v in live_in if v in stored]
            footer = [f"    S[{position[v]}] = {v}" for v in live_out]
            stored.update(live_out)
            if k == len(segments) - 1:
                footer.append(f"    return {result}")
            self._compile(f"{base} part {k}>", header, seg, footer, name)
        entry = [f"def {name}({', '.join(params)}):", f"    S = [None] * {len(position)}"]
        entry += [f"    S[{position[p]}] = {p}" for p in params if p in position]
        entry += [f"    {name}_{k}(S)" for k in range(len(segments) - 1)]
        entry.append(f"    return {name}_{len(segments) - 1}(S)")
        self._compile(f"{base}>", entry, [], [], name)
        return self._namespace[name]

    def _compile(
        self, filename: str, header: list[str], body: list[Line], footer: list[str], name: str
    ) -> None:
        first = len(header) + 1
        for k, line in enumerate(body):
            self.line_slots[(filename, first + k)] = (line.slot, line.phase)
        text = [*header, *("    " + line.text for line in body), *footer]
        source = "\n".join(text) + "\n"
        self._sources.setdefault(name, []).append(source)
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        self._filenames.append(filename)
        exec(_builtin_compile(source, filename, "exec"), self._namespace)  # noqa: S102 - our own code

    # --- errors ------------------------------------------------------------------------------------
    def _fail(self, slot: int, *xs: float) -> None:
        """Raise the op's own domain error for the instruction at `slot`, naming the instruction."""
        error = outside_domain(self.program.instructions[slot - len(self.program.leaves)], xs)
        error._chainrule_explained = True  # type: ignore[attr-defined]
        raise error from None

    def _explain(self, exc: Exception) -> Exception:
        """An arithmetic failure inside generated code as a DomainError naming the instruction."""
        if getattr(exc, "_chainrule_explained", False) or isinstance(exc, DomainError):
            return exc
        tb = exc.__traceback__
        frame, where = None, None
        while tb is not None:
            key = (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
            if key in self.line_slots:
                frame, where = tb.tb_frame, self.line_slots[key]
            tb = tb.tb_next
        if frame is None or where is None:
            return exc
        slot, phase = where
        n_leaves = len(self.program.leaves)
        if slot < n_leaves:
            return exc
        ins = self.program.instructions[slot - n_leaves]
        return rule_failed(ins, phase == DERIVATIVE, [frame.f_locals.get(f"s{a}") for a in ins.args], exc)
