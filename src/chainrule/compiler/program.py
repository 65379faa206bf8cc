"""The Program: a graph traced on placeholders, flattened into a list of instructions.

The eager engine rebuilds the graph for every sample. Here the graph is built once, on
`placeholder`s, and flattened into a `Program`: a list of instructions (`%7 = tanh %5`), the
"flat tape" of the course notebook. A Program runs in two modes:

- **float mode** (`float_mode`): floats in, float out, through straight-line Python generated from
  the derivative table; several times faster than building and walking a graph of Values;
- **batch mode** (`batch_plan`, `batch_steps`): 1-d numpy arrays of length B in, an array of B out,
  the whole batch at once, with independent instructions of one op grouped into one numpy call and
  sums of products run as matrix products.

Both modes read their rules from `chainrule.ops`, so they compute what the eager engine computes.
Leaf `Value`s that are not inputs are parameters (if they require grad) or constants, and are read
by reference at every run: an optimizer's updates between runs are seen. For training at scale,
`loss_and_grad(theta, *inputs)` runs with the parameters taken from a 1-d array instead, touching
no `Value` at all.
"""

from __future__ import annotations

import math
import numbers
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..engine import Symbolic, Value, operation_of, symbolic, topological_order
from ..ops import OPS
from .float_interpreter import FloatInterpreter
from .float_mode import FloatCode, float_runner
from .instruction import CONSTANT, INPUT, INSTRUCTION, PARAMETER, Instruction

if TYPE_CHECKING:  # pragma: no cover - for type hints only (plan.py needs numpy, imported on first use)
    from .plan import Plan

__all__ = ["Program", "compile", "classify_node"]


def classify_node(node: Value, inputs: set[Value], input_names: Sequence[str]) -> str:
    """What `node` becomes in a Program: INPUT, PARAMETER, CONSTANT or INSTRUCTION.

    This is the one place where compile decides what each node of a graph is, so every check on
    the nodes a graph may contain belongs here (a node the compiler cannot run is refused here,
    with an error naming it).
    """
    op = operation_of(node)
    if op is not None:
        if op.hand_built:
            raise _hand_built_error(node)
        return INSTRUCTION
    if node in inputs:
        return INPUT
    if isinstance(node, Symbolic):
        raise ValueError(
            f"compile: the output depends on placeholder {node.label!r}, which is not among the "
            f"inputs ({', '.join(repr(n) for n in input_names) or 'none'}); add it to the inputs"
        )
    return PARAMETER if node.requires_grad else CONSTANT


class Program:
    """A graph flattened into instructions, runnable on floats or on numpy batches.

    Build one with `chainrule.compile(output, inputs)`. Slots are numbered inputs first, then
    parameters, constants and instructions; `print(program)` lists them.
    """

    def __init__(self, outputs: Sequence[Value], inputs: Sequence[Value], single: bool) -> None:
        self.inputs: tuple[Value, ...] = tuple(inputs)
        self.outputs: tuple[Value, ...] = tuple(outputs)
        self.single = single  # one output (returned as is) rather than a list of them
        # the inputs' names in messages (their labels, or 'input i'), also read by batch mode
        self.input_names: tuple[str, ...] = tuple(_name(x, i) for i, x in enumerate(self.inputs))
        order, grad_order = _order(self.outputs)
        input_set = set(self.inputs)
        found: dict[str, list[Value]] = {PARAMETER: [], CONSTANT: [], INSTRUCTION: [], INPUT: []}
        for node in order:
            found[classify_node(node, input_set, self.input_names)].append(node)
        params, consts, nodes = found[PARAMETER], found[CONSTANT], found[INSTRUCTION]
        self.parameters: tuple[Value, ...] = tuple(params)
        self.constants: tuple[Value, ...] = tuple(consts)
        # slot numbers: inputs, parameters, constants, then instructions in topological order
        self.leaves: tuple[Value, ...] = (*self.inputs, *params, *consts)
        self.slot_of: dict[Value, int] = {v: i for i, v in enumerate(self.leaves)}
        n_leaves = len(self.leaves)
        for i, node in enumerate(nodes):
            self.slot_of[node] = n_leaves + i
        slot_of = self.slot_of
        slot = slot_of.__getitem__
        self.instructions: tuple[Instruction, ...] = tuple(
            Instruction(slot(node), operation_of(node), tuple(map(slot, node._prev)), node.label)
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
            needs.append(any(map(needs.__getitem__, ins.args)))
        self.requires_grad: tuple[bool, ...] = tuple(needs)
        # the order the eager engine's backward() visits nodes in, so float mode matches it exactly
        self.grad_order: tuple[int, ...] = tuple(slot_of[n] for n in grad_order if n in slot_of)
        self._lock = threading.Lock()  # the two modes are built once, on first use, by one thread
        self._float: FloatCode | FloatInterpreter | None = None
        self._batch: dict[bool, Any] = {}  # batch plans: with input gradients, and without (loss_and_grad)

    def __reduce__(self) -> tuple[Any, ...]:
        # A Program is pickled (and deep-copied) as its graph and inputs, and compiled again when
        # loaded: its generated code, plans and locks belong to this process.
        return (compile, (self.outputs[0] if self.single else list(self.outputs), list(self.inputs)))

    # --- export to other engines (chainrule.export) --------------------------------------------
    def to_jax(self, *, check: bool = False) -> tuple[Any, Any]:
        """`(fn, params)`: this program as a pure JAX function `fn(params, *inputs)` and its parameters."""
        require_numpy("Program.to_jax()")  # before JAX's own import fails with a less helpful message
        from ..export import to_jax

        return to_jax(self, check=check)

    def to_torch(self) -> Any:
        """This program as a float64 `torch.nn.Module` whose one parameter holds the parameters."""
        from ..export import to_torch

        return to_torch(self)

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

    def plan(self) -> Plan:
        """The batch plan as public, engine-neutral data (a `chainrule.compiler.plan.Plan`), with the
        parameters' and constants' current values: the groups batch mode's numpy steps run, and
        what `to_jax` and `to_torch` run."""
        return self._plan().to_plan()

    def schedule(self) -> str:
        """The batched execution plan as text: which instructions run together in one numpy call."""
        return self._plan().describe()

    # --- running -----------------------------------------------------------------------------
    def __call__(self, *inputs: Any) -> Any:
        """The output(s) for these inputs: floats give a float, 1-d arrays of length B an array."""
        xs = self._floats(inputs)
        if xs is not None:
            return self._float_code().forward(*xs)
        return self._plan().forward(inputs)

    def value_and_grad(self, *inputs: Any, grad_output: Any = None) -> tuple[Any, tuple[Any, ...]]:
        """`(value, input_grads)`, adding the gradient of the output into every parameter's `.grad`.

        For a batch the gradient is that of the output summed over the batch, so the parameters
        receive exactly what B separate eager `backward()` calls would give them, and
        `input_grads` holds one array of per-sample gradients per input (a float for an input
        given as a number; None for a placeholder made with `requires_grad=False`).
        `grad_output` weights the outputs (default 1.0 each: the gradient of their sum): a
        number, an array of B, or for several outputs a list of those (None = 0); e.g.
        `grad_output=1 / B` gives the gradient of the batch mean. A parameter whose
        `requires_grad` has been set to False since compiling receives nothing.
        """
        xs = self._floats(inputs)
        if xs is not None:
            return self._float_code().value_and_grad(xs, self.output_seeds(grad_output))
        return self._plan().value_and_grad(inputs, grad_output)

    # --- the functional form: parameters as one array ---------------------------------------------
    def parameter_array(self) -> Any:
        """A new 1-d float64 numpy array of the parameters' current `.data`, in `parameters` order."""
        np = require_numpy("Program.parameter_array()")

        return np.fromiter((p.data for p in self.parameters), dtype=np.float64, count=len(self.parameters))

    def set_parameters(self, theta: Any) -> None:
        """Write `theta` (as from `parameter_array`) back into the parameter Values' `.data`."""
        values = self._check_theta("set_parameters", theta).tolist()
        for p, x in zip(self.parameters, values, strict=True):
            p.data = x

    def loss_and_grad(self, theta: Any, *inputs: Any) -> tuple[float, Any]:
        """`(total, dtheta)`: the output summed over the batch, and its gradient with respect to `theta`.

        The parameters' values come from `theta` (a 1-d array in `parameters` order, as from
        `parameter_array()`), not from the Values: no Value and no `.grad` is read or written, so
        a training step costs no Python work per parameter. Inputs are as for `value_and_grad`
        (numbers or 1-d arrays of one length). The Program must have a single output.
        """
        if not self.single:
            raise ValueError(
                f"loss_and_grad: this Program has {len(self.outputs)} outputs; it needs one (the loss)"
            )
        theta = self._check_theta("loss_and_grad", theta)
        self._check_count(inputs)
        return self._plan(input_grads=False).loss_and_grad(theta, inputs)

    # --- helpers -----------------------------------------------------------------------------
    def _check_theta(self, where: str, theta: Any) -> Any:
        """`theta` as a 1-d float64 array of one entry per parameter, or a clear error."""
        np = require_numpy(f"Program.{where}()")

        if isinstance(theta, str | bytes) or not _array_like(theta):
            raise TypeError(
                f"{where}: theta must be a 1-d numpy array, got {type(theta).__name__}: {theta!r:.80}"
            )
        arr = np.asarray(theta)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{where}: theta must hold real numbers, got an array of dtype {arr.dtype}")
        if arr.shape != (len(self.parameters),):
            raise ValueError(
                f"{where}: theta must be a 1-d array of {len(self.parameters)} parameter values "
                f"(Program.parameter_array()), got shape {arr.shape}"
            )
        return arr if arr.dtype == np.float64 else arr.astype(np.float64)

    def _check_count(self, args: Sequence[Any]) -> None:
        if len(args) != len(self.inputs):
            names = ", ".join(self.input_names)
            raise TypeError(f"this Program takes {len(self.inputs)} inputs ({names}), got {len(args)}")

    def _floats(self, args: Sequence[Any]) -> list[float] | None:
        """The inputs as floats if they are all numbers (float mode); None if any is an array."""
        self._check_count(args)
        out = []
        batch = False
        for name, x in zip(self.input_names, args, strict=True):
            if type(x) is float:
                out.append(x)
            elif isinstance(x, numbers.Real):
                out.append(_number_to_float(x, f"input {name!r}"))
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

    def output_seeds(self, grad_output: Any, batch: int | None = None) -> tuple[Any, ...]:
        """One backward seed per output from `grad_output` (see `value_and_grad`), checked: a number,
        or (for a batch of `batch`) an array of `batch`."""
        n = len(self.outputs)
        if grad_output is None:
            return (1.0,) * n
        seeds = [grad_output] if self.single else list(grad_output)
        if len(seeds) != n:
            raise ValueError(f"grad_output: this Program has {n} outputs, got {len(seeds)} weights")
        out = []
        for s in seeds:
            if s is None:
                out.append(0.0)
            elif isinstance(s, numbers.Real):
                out.append(_number_to_float(s, "grad_output"))
            elif batch is None:
                raise TypeError(f"grad_output: with float inputs each weight must be a number, got {s!r:.80}")
            else:
                np = require_numpy("a batch run")
                arr = np.asarray(s) if _array_like(s) and not isinstance(s, str | bytes) else None
                if arr is None or arr.dtype.kind not in "biuf":
                    raise TypeError(
                        f"grad_output: each weight must be a number or an array of {batch} real numbers, "
                        f"got {type(s).__name__}: {s!r:.80}"
                    )
                arr = arr.astype(np.float64, copy=False)
                if arr.shape not in ((), (batch,)):
                    raise ValueError(
                        f"grad_output: expected a number or an array of {batch}, got shape {arr.shape}"
                    )
                out.append(arr)
        return tuple(out)

    def _float_code(self) -> FloatCode | FloatInterpreter:
        """Float mode, created on first use (its code is generated, or its interpreter loops
        prepared, when first run)."""
        if self._float is None:
            with self._lock:
                if self._float is None:
                    self._float = float_runner(self)
        return self._float

    def _plan(self, input_grads: bool = True) -> Any:
        """Batch mode, planned on first use (it needs numpy, which float mode does not). The plan
        for `loss_and_grad` computes no input gradients, so it is a separate one."""
        plan = self._batch.get(input_grads)
        if plan is None:
            require_numpy("a batch run (array inputs)")
            from .batch_plan import BatchPlan

            with self._lock:
                plan = self._batch.get(input_grads)
                if plan is None:
                    plan = self._batch[input_grads] = BatchPlan(self, input_grads)
        return plan


def _hand_built_error(node: Value) -> TypeError:
    """A hand-built node (its own `_backward` closure) has no rules a Program could run."""
    name = f"{node.label!r} " if node.label else ""
    return TypeError(
        f"compile: node {name}(op {node._op!r}) was built by hand with its own _backward, which runs on "
        f"one float at a time and cannot be compiled; define the operation with chainrule.defop (a row "
        f"of the derivative table) and the Program can run it"
    )


def require_numpy(what: str) -> Any:
    """The numpy module, or an ImportError saying that `what` needs it and how to install it."""
    try:
        import numpy
    except ImportError:
        raise ImportError(f"{what} needs numpy, which is not installed: pip install numpy") from None
    return numpy


def _number_to_float(x: Any, what: str) -> float:
    """A real number as a float, or one line naming `what` (an int too large for a float)."""
    try:
        return float(x)
    except OverflowError:
        # str() of a huge int is slow (and refused past 4300 digits): count its digits instead
        digits = int(x.bit_length() * math.log10(2)) + 1 if isinstance(x, int) else 0
        text = f"an integer of about {digits} digits" if digits else f"{x!r:.40}"
        raise OverflowError(f"{what} is {text}, too large for a float (at most about 1.8e308)") from None


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
    root = symbolic(OPS["sum"], tuple(outputs))
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
    if isinstance(inputs, Value):
        ins = [inputs]
    elif isinstance(inputs, Iterable) and not isinstance(inputs, str | bytes):
        ins = list(inputs)
    else:
        raise TypeError(
            f"compile: inputs must be a placeholder or a list of them (e.g. [x, y]; [] for none), "
            f"got {type(inputs).__name__}: {inputs!r:.80}"
        )
    seen: set[Value] = set()
    for i, x in enumerate(ins):
        if not isinstance(x, Value):
            raise TypeError(f"compile: input {i} must be a placeholder, got {type(x).__name__}: {x!r:.80}")
        if operation_of(x) is not None:
            raise ValueError(
                f"compile: input {i} ({x.label or 'unlabelled'}) is computed by {operation_of(x).name}, "
                f"not a placeholder; inputs must be leaves such as chainrule.placeholder('x')"
            )
        if x in seen:
            raise ValueError(f"compile: input {x.label!r} is listed twice")
        seen.add(x)
    return Program(outputs, ins, single)
