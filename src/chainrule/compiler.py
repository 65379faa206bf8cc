"""Define-then-run: trace a graph once with placeholders, compile it, run it for many inputs.

The eager engine rebuilds the graph for every sample. Here the graph is built once, on
`placeholder`s, and flattened into a `Program`: a list of instructions (`%7 = tanh %5`), the
"flat tape" of the course notebook. A Program runs in two ways:

- floats in, float out: straight-line Python generated from the derivative table (no numpy),
  several times faster than building and walking a fresh graph of Values;
- 1-d numpy arrays of length B in, an array of B out: the whole batch at once, with independent
  instructions of the same op grouped into one numpy call and sums of products run as matrix
  products (see `chainrule._batched`).

Both modes read their rules from `chainrule.ops`, so they compute what the eager engine computes.
Leaf `Value`s that are not inputs are parameters (if they require grad) or constants, and are read
by reference at every run: an optimizer's updates between runs are seen.
"""

from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .engine import Symbolic, Value, _symbolic, placeholder, topological_order
from .errors import DomainError
from .ops import OPS, Op

__all__ = ["Instruction", "Program", "compile", "jit"]

INPUT, PARAMETER, CONSTANT, INSTRUCTION = "input", "parameter", "constant", "instruction"


@dataclass(frozen=True)
class Instruction:
    """One step of a Program: `%slot = op %arg %arg ...`."""

    slot: int
    op: Op
    args: tuple[int, ...]
    label: str = ""

    def __str__(self) -> str:
        text = f"%{self.slot} = {self.op.name} " + " ".join(f"%{a}" for a in self.args)
        return f"{text}  # {self.label}" if self.label else text


class Program:
    """A graph flattened into instructions, runnable on floats or on numpy batches.

    Build one with `chainrule.compile(output, inputs)`. Slots are numbered inputs first, then
    parameters, constants and instructions; `print(program)` lists them.
    """

    def __init__(self, outputs: Sequence[Value], inputs: Sequence[Value], single: bool) -> None:
        self.inputs: tuple[Value, ...] = tuple(inputs)
        self.outputs: tuple[Value, ...] = tuple(outputs)
        self._single = single
        self._names = tuple(_name(x, i) for i, x in enumerate(self.inputs))
        order, grad_order = _order(self.outputs)
        input_set = set(self.inputs)
        params: list[Value] = []
        consts: list[Value] = []
        nodes: list[Value] = []
        for node in order:
            if node._fn is not None:
                if node._fn.hand_built:
                    raise _hand_built_error(node)
                nodes.append(node)
            elif node in input_set:
                continue
            elif isinstance(node, Symbolic):
                raise ValueError(
                    f"compile: the output depends on placeholder {node.label!r}, which is not among the "
                    f"inputs ({', '.join(repr(n) for n in self._names) or 'none'}); add it to the inputs"
                )
            elif node.requires_grad:
                params.append(node)
            else:
                consts.append(node)
        self.parameters: tuple[Value, ...] = tuple(params)
        self.constants: tuple[Value, ...] = tuple(consts)
        # slot numbers: inputs, parameters, constants, then instructions in topological order
        self.leaves: tuple[Value, ...] = (*self.inputs, *params, *consts)
        self.slot_of: dict[Value, int] = {v: i for i, v in enumerate(self.leaves)}
        n_leaves = len(self.leaves)
        for i, node in enumerate(nodes):
            self.slot_of[node] = n_leaves + i
        slot_of = self.slot_of
        self.instructions: tuple[Instruction, ...] = tuple(
            Instruction(slot_of[node], node._fn, tuple(slot_of[c] for c in node._prev), node.label)
            for node in nodes
        )
        self.output_slots: tuple[int, ...] = tuple(slot_of[o] for o in self.outputs)
        self.kinds: tuple[str, ...] = (
            (INPUT,) * len(self.inputs) + (PARAMETER,) * len(params) + (CONSTANT,) * len(consts)
            + (INSTRUCTION,) * len(nodes)
        )  # fmt: skip
        # an instruction needs a gradient if any of its arguments does (inputs unless they were made
        # with requires_grad=False, which is how data such as labels skips its gradient)
        needs = [x.requires_grad for x in self.inputs] + [
            k != CONSTANT for k in self.kinds[len(self.inputs) : n_leaves]
        ]
        for ins in self.instructions:
            needs.append(any(needs[a] for a in ins.args))
        self.requires_grad: tuple[bool, ...] = tuple(needs)
        # the order the eager engine's backward() visits nodes in, so float mode matches it exactly
        self.grad_order: tuple[int, ...] = tuple(slot_of[n] for n in grad_order if n in slot_of)
        self._float: Any = None  # generated straight-line Python, built on first float run
        self._batched: Any = None  # the numpy plan, built on first batch run

    # --- inspection --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.instructions)

    def __repr__(self) -> str:
        counts = [
            (len(self.inputs), "input"),
            (len(self.parameters), "parameter"),
            (len(self.constants), "constant"),
            (len(self), "instruction"),
            (len(self.outputs), "output"),
        ]
        return "<Program: " + ", ".join(f"{n} {what}{'' if n == 1 else 's'}" for n, what in counts) + ">"

    def __str__(self) -> str:
        lines = [repr(self)]
        for slot, (kind, leaf) in enumerate(zip(self.kinds, self.leaves, strict=False)):
            text = f"%{slot} = {kind} {leaf.label!r}" if leaf.label else f"%{slot} = {kind}"
            if kind == CONSTANT:
                text += f" {leaf.data!r}"
            lines.append(text)
        lines.extend(str(ins) for ins in self.instructions)
        lines.append("return " + ", ".join(f"%{s}" for s in self.output_slots))
        return "\n".join(lines)

    def describe(self, slot: int) -> str:
        """The instruction (or leaf) that fills `slot`, as text, for error messages."""
        if slot < len(self.leaves):
            leaf = self.leaves[slot]
            return f"%{slot} = {self.kinds[slot]} {leaf.label!r}" if leaf.label else f"%{slot}"
        return str(self.instructions[slot - len(self.leaves)])

    def schedule(self) -> str:
        """The batched execution plan as text: which instructions run together in one numpy call."""
        return self._plan().describe()

    # --- running -----------------------------------------------------------------------------
    def __call__(self, *inputs: Any) -> Any:
        """The output(s) for these inputs: floats give a float, 1-d arrays of length B an array."""
        xs = self._floats(inputs)
        if xs is not None:
            return self._float_code().forward(*xs)
        return self._plan().run(self, inputs, want_grad=False, grad_output=None)[0]

    def value_and_grad(self, *inputs: Any, grad_output: Any = None) -> tuple[Any, tuple[Any, ...]]:
        """`(value, input_grads)`, adding the gradient of the output into every parameter's `.grad`.

        For a batch the gradient is that of the output summed over the batch, so the parameters
        receive exactly what B separate eager `backward()` calls would give them, and
        `input_grads` holds one array of per-sample gradients per input (a float for an input
        given as a number; None for a placeholder made with `requires_grad=False`).
        `grad_output` weights the outputs (default 1.0 each: the gradient of their sum): a
        number, an array of B, or for several outputs a list of those (None = 0); e.g.
        `grad_output=1 / B` gives the gradient of the batch mean.
        """
        xs = self._floats(inputs)
        if xs is not None:
            return self._float_code().value_and_grad(xs, self._seeds(grad_output))
        return self._plan().run(self, inputs, want_grad=True, grad_output=grad_output)

    # --- helpers -----------------------------------------------------------------------------
    def _check_count(self, args: Sequence[Any]) -> None:
        if len(args) != len(self.inputs):
            names = ", ".join(self._names)
            raise TypeError(f"this Program takes {len(self.inputs)} inputs ({names}), got {len(args)}")

    def _floats(self, args: Sequence[Any]) -> list[float] | None:
        """The inputs as floats if they are all numbers (float mode); None if any is an array."""
        self._check_count(args)
        out = []
        batch = False
        for name, x in zip(self._names, args, strict=True):
            if type(x) is float:
                out.append(x)
            elif isinstance(x, numbers.Real):
                out.append(float(x))
            elif isinstance(x, str | bytes | Value) or not _array_like(x):
                raise TypeError(
                    f"input {name!r} must be a number or a 1-d numpy array, got {type(x).__name__}: {x!r:.80}"
                )
            elif (
                getattr(x, "ndim", None) == 0
                and getattr(x, "dtype", None) is not None
                and x.dtype.kind in "biuf"
            ):
                out.append(float(x))
            else:
                batch = True  # checked in detail by the batch plan
        return None if batch else out

    def _seeds(self, grad_output: Any, batch: int | None = None) -> tuple[Any, ...]:
        """One backward seed per output: a number, or (for a batch of `batch`) an array of `batch`."""
        n = len(self.outputs)
        if grad_output is None:
            return (1.0,) * n
        seeds = [grad_output] if self._single else list(grad_output)
        if len(seeds) != n:
            raise ValueError(f"grad_output: this Program has {n} outputs, got {len(seeds)} weights")
        out = []
        for s in seeds:
            if s is None:
                out.append(0.0)
            elif isinstance(s, numbers.Real):
                out.append(float(s))
            elif batch is None:
                raise TypeError(f"grad_output: with float inputs each weight must be a number, got {s!r:.80}")
            else:
                import numpy as np

                arr = np.asarray(s, dtype=np.float64)
                if arr.shape not in ((), (batch,)):
                    raise ValueError(
                        f"grad_output: expected a number or an array of {batch}, got shape {arr.shape}"
                    )
                out.append(arr)
        return tuple(out)

    def _float_code(self) -> Any:
        if self._float is None:
            from ._pycode import FloatCode

            self._float = FloatCode(self)
        return self._float

    def _plan(self) -> Any:
        if self._batched is None:
            from ._batched import BatchPlan

            self._batched = BatchPlan(self)
        return self._batched


def _hand_built_error(node: Value) -> TypeError:
    """A hand-built node (its own `_backward` closure) has no rules a Program could run."""
    name = f"{node.label!r} " if node.label else ""
    return TypeError(
        f"compile: node {name}(op {node._op!r}) was built by hand with its own _backward, which runs on "
        f"one float at a time and cannot be compiled; define the operation with chainrule.defop (a row "
        f"of the derivative table) and the Program can run it"
    )


def _array_like(x: Any) -> bool:
    return hasattr(x, "__array__") or isinstance(x, list | tuple)


def _name(x: Value, i: int) -> str:
    return x.label or f"input {i}"


def _order(outputs: Sequence[Value]) -> tuple[list[Value], list[Value]]:
    """All nodes below the outputs (inputs before users), and the order eager backward() uses."""
    if len(outputs) == 1:
        root = outputs[0]
        order = topological_order(root)
        grad = topological_order(root, only_requiring_grad=True) if root.requires_grad else []
        return order, grad
    # several outputs: order the graph below a throwaway node that sums them (never stored)
    root = _symbolic(OPS["sum"], tuple(outputs))
    order = topological_order(root)[:-1]
    grad = topological_order(root, only_requiring_grad=True)[:-1] if root.requires_grad else []
    return order, grad


def compile(output: Value | Sequence[Value], inputs: Value | Sequence[Value]) -> Program:  # noqa: A001
    """Flatten the graph below `output` (a Value or a list of them) into a Program of `inputs`."""
    single = isinstance(output, Value)
    if not single and not isinstance(output, list | tuple):
        raise TypeError(f"compile: output 0 must be a Value, got {type(output).__name__}: {output!r:.80}")
    outputs = [output] if single else list(output)
    if not outputs:
        raise ValueError("compile: no outputs given")
    for i, o in enumerate(outputs):
        if not isinstance(o, Value):
            raise TypeError(f"compile: output {i} must be a Value, got {type(o).__name__}: {o!r:.80}")
    ins = [inputs] if isinstance(inputs, Value) else list(inputs)
    seen: set[Value] = set()
    for i, x in enumerate(ins):
        if not isinstance(x, Value):
            raise TypeError(f"compile: input {i} must be a placeholder, got {type(x).__name__}: {x!r:.80}")
        if x._fn is not None:
            raise ValueError(
                f"compile: input {i} ({x.label or 'unlabelled'}) is computed by {x._fn.name}, not a "
                f"placeholder; inputs must be leaves such as chainrule.placeholder('x')"
            )
        if x in seen:
            raise ValueError(f"compile: input {x.label!r} is listed twice")
        seen.add(x)
    return Program(outputs, ins, single)


class JitFunction:
    """`f` traced with placeholders on its first call, then run as a compiled Program."""

    def __init__(self, f: Callable[..., Any]) -> None:
        self.f = f
        self.programs: dict[int, Program] = {}  # one program per number of arguments
        functools.update_wrapper(self, f)

    def trace(self, n: int) -> Program:
        """The Program for `n` arguments (traced now if it does not exist yet)."""
        program = self.programs.get(n)
        if program is None:
            xs = [placeholder(label) for label in _arg_names(self.f, n)]
            out = self.f(*xs)
            if isinstance(out, list | tuple):
                out = [o if isinstance(o, Value) else Value(o, requires_grad=False) for o in out]
            elif not isinstance(out, Value):
                out = Value(out, requires_grad=False)  # a function that ignores its arguments
            program = self.programs[n] = compile(out, xs)
        return program

    @property
    def program(self) -> Program | None:
        """The most recently traced Program (None before the first call)."""
        return next(reversed(self.programs.values()), None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise TypeError(f"{self.f.__name__}: a jit-compiled function takes positional arguments only")
        return self.trace(len(args))(*args)

    def value_and_grad(self, *args: Any, grad_output: Any = None) -> tuple[Any, tuple[Any, ...]]:
        """`(value, input_grads)` of the compiled function; adds parameter gradients into `.grad`."""
        return self.trace(len(args)).value_and_grad(*args, grad_output=grad_output)


def _arg_names(f: Callable[..., Any], n: int) -> list[str]:
    """Labels for `n` placeholders: `f`'s parameter names where they exist."""
    try:
        params = list(inspect.signature(f).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = []
    for i in range(n):
        if i < len(params) and params[i].kind in (params[i].POSITIONAL_ONLY, params[i].POSITIONAL_OR_KEYWORD):
            names.append(params[i].name)
        else:
            star = next((p.name for p in params if p.kind is p.VAR_POSITIONAL), "arg")
            names.append(f"{star}[{i}]")
    return names


def jit(f: Callable[..., Any]) -> JitFunction:
    """Decorator: trace `f` with placeholders on the first call, then reuse the compiled Program.

    The program is reused while the number of arguments stays the same (a new count retraces).
    `f` must be written without Python control flow on its arguments (`if x > 0` cannot be
    traced); parameters it closes over are read by reference at every call.
    """
    return JitFunction(f)


def with_context(exc: Exception, context: str) -> Exception:
    """The same kind of error as `exc` with `context` appended to its message."""
    message = f"{exc} ({context})"
    if isinstance(exc, DomainError):
        return DomainError(message, op=exc.op, value=exc.value)
    try:
        return type(exc)(message)
    except TypeError:  # an exception class with an unusual constructor
        return DomainError(message)
