"""Float mode's two runners: generated code for small programs, the interpreter for large ones.

Both must give eager `backward()`'s numbers bit for bit, the same errors with the same messages,
and stay correct when threads share a Program. The size threshold is forced with conftest's
`float_runner`, so both runners are exercised on small graphs (random graphs of every table op
are in tests/test_compiler_props.py, run with each runner).
"""

from __future__ import annotations

import functools
import math
import random
import re
import struct
import sys
import threading
import tracemalloc
from typing import Any

import pytest

import chainrule as cr
from chainrule import TABLE, Value, defop, placeholder
from chainrule.compiler import float_mode
from chainrule.compiler.float_interpreter import FloatInterpreter
from chainrule.compiler.float_mode import FloatCode
from chainrule.nn import MLP
from conftest import float_runner
from op_cases import case

RUNNERS = ["generated", "interpreted"]


def bits(x: Any) -> Any:
    """Numbers (nested in tuples and lists) as bit patterns: equal bits, same sign of zero."""
    if isinstance(x, list | tuple):
        return [bits(v) for v in x]
    return x if x is None else struct.pack("<d", x)


def outcome(run: Any, *args: Any) -> Any:
    """What a call gives: its result's bits, or its error's type and message."""
    try:
        return bits(run(*args))
    except Exception as exc:  # noqa: BLE001 - compared between runners
        return type(exc), str(exc)


def random_graph(rng: random.Random, leaves: list[Any], n: int) -> Any:
    """A random graph of `n` table ops on `leaves` (operands kept in each op's domain by
    tests/op_cases.py), summing every node nobody uses so that no op is dead code."""
    nodes = list(leaves)
    for _ in range(n):
        op = rng.choice(TABLE)
        a, b, c = (nodes[rng.randrange(max(0, len(nodes) - 6), len(nodes))] for _ in range(3))
        nodes.append(case(op).build(op, a, b, c, rng.uniform(-2, 2)))
    used = {c for node in nodes for c in node._prev}
    return cr.sum([node for node in nodes[len(leaves) :] if node not in used])


def test_float_mode_runs_large_programs_on_the_interpreter(monkeypatch):
    x = placeholder("x")
    small, large = cr.compile(x * 2 + 1, [x]), cr.compile(((x * 2 + 1) * 3).tanh(), [x])
    monkeypatch.setattr(float_mode, "GENERATE_MAX_INSTRUCTIONS", 3)
    assert small(1.0) == 3.0 and large(1.0) == math.tanh(9.0)
    assert isinstance(small._float_code(), FloatCode)
    assert isinstance(large._float_code(), FloatInterpreter)


@pytest.mark.parametrize("seed", range(6))
def test_random_graphs_equal_eager_in_both_runners(seed):
    rng = random.Random(seed)
    params = [Value(rng.uniform(-1, 1), label=f"p{i}") for i in range(5)]
    xs = [rng.uniform(-1.5, 1.5) for _ in range(3)]
    inputs = [Value(x) for x in xs]
    eager = random_graph(random.Random(seed), [*inputs, *params], 150)
    eager.backward()
    expected = bits([eager.data, [v.grad for v in inputs], [p.grad for p in params]])
    for runner in RUNNERS:
        holders = [placeholder(f"x{i}") for i in range(3)]
        program = cr.compile(random_graph(random.Random(seed), [*holders, *params], 150), holders)
        for p in params:
            p.grad = 0.0
        with float_runner(runner):
            value, grads = program.value_and_grad(*xs)
        assert bits([value, list(grads), [p.grad for p in params]]) == expected, runner
        assert bits(program(*xs)) == expected[0]


def test_an_mlp_with_shared_and_frozen_parameters_equals_eager():
    random.seed(3)
    model = MLP(3, [8, 8, 1])
    shared, frozen = model.parameters()[5], model.parameters()[7]
    frozen.requires_grad = False  # a constant of the program

    def loss(xs: list[Any], label: Any) -> Any:
        return (model(xs) - label) ** 2 + shared * 0.01  # `shared` used twice

    row = [0.3, -0.7, 1.1]
    ref_inputs = [Value(v) for v in row]
    out = loss(ref_inputs, 0.5)
    out.backward()
    expected = bits([out.data, [v.grad for v in ref_inputs], [p.grad for p in model.parameters()]])
    for runner in RUNNERS:
        xs, y = [placeholder(f"x{i}") for i in range(3)], placeholder("y", requires_grad=False)
        program = cr.compile(loss(xs, y), [*xs, y])
        model.zero_grad()
        with float_runner(runner):
            value, grads = program.value_and_grad(*row, 0.5)
        assert grads[3] is None
        assert bits([value, list(grads[:3]), [p.grad for p in model.parameters()]]) == expected, runner
        assert frozen.grad == 0.0


def test_the_sign_of_a_zero_gradient_is_eagers_in_both_runners():
    x, y = placeholder("x"), placeholder("y")
    ex, ey = Value(2.0), Value(3.0)
    (ex * -0.0 + ey * 0.0).backward()
    for runner in RUNNERS:
        with float_runner(runner):
            program = cr.compile(x * -0.0 + y * 0.0, [x, y])
            _, grads = program.value_and_grad(2.0, 3.0)
        assert bits(list(grads)) == bits([ex.grad, ey.grad]) == bits([0.0, 0.0])


def test_several_outputs_grad_output_and_leaf_outputs():
    x, y = placeholder("x"), placeholder("y")
    w = Value(0.7)
    outputs = [(x * w).tanh() + y, x, (y * y).sqrt()]
    results = []
    for runner in RUNNERS:
        with float_runner(runner):
            program = cr.compile(outputs, [x, y])
            w.grad = 0.0
            results.append(
                (
                    outcome(program.value_and_grad, 0.4, -1.5),
                    outcome(
                        functools.partial(program.value_and_grad, grad_output=[0.5, None, 2.0]), 0.4, -1.5
                    ),
                    outcome(program, 0.4, -1.5),
                    bits(w.grad),
                )
            )
    assert results[0] == results[1]


# --- errors: identical in both runners -------------------------------------------------------------
def _program_of(op: Any, arity: int) -> cr.Program:
    holders = [placeholder(f"x{i}") for i in range(arity)]
    return cr.compile(case(op).spell(*holders) * 1.5, holders)


@pytest.mark.parametrize("op", TABLE, ids=lambda op: op.name)
def test_every_op_gives_the_same_values_and_errors_in_both_runners(op):
    # the table's points include each op's edges (a derivative undefined at 0, overflow), and its
    # invalid inputs must raise the op's own error naming the instruction
    points = [p.xs for p in case(op).points] + list(case(op).invalid)
    for xs in points:
        seen = []
        for runner in RUNNERS:
            with float_runner(runner):
                program = _program_of(op, len(xs))
                seen.append((outcome(program, *xs), outcome(program.value_and_grad, *xs)))
        assert seen[0] == seen[1], (op.name, xs)
    for xs in case(op).invalid:
        error, message = outcome(_program_of(op, len(xs)), *xs)
        assert error is op.error and message.startswith(f"{op.name}: requires"), message
        assert re.search(rf"\(in %\d+ = {op.name} %\d+", message), message


@pytest.mark.parametrize("runner", RUNNERS)
def test_domain_errors_name_the_instruction(runner):
    x = placeholder("x")
    with float_runner(runner):
        logp = cr.compile((x - 1).log(), [x])
        with pytest.raises(cr.DomainError, match=r"^log: requires x > 0, got -1\.0 \(in %3 = log %2\)$"):
            logp(0.0)
        root = cr.compile(x.sqrt() * 0.0 + x, [x])
        undefined = r"^sqrt: the derivative is undefined at \(0\.0,\): .*\(in %2 = sqrt %0\)$"
        with pytest.raises(cr.DomainError, match=undefined):
            root.value_and_grad(0.0)
        assert root(0.0) == 0.0
        ratio = cr.compile(x / (x - 2.0), [x])
        divisor = r"^truediv: requires a non-zero divisor, got 2\.0, 0\.0 \(in %3 = truediv %0 %2\)$"
        with pytest.raises(ZeroDivisionError, match=divisor):
            ratio(2.0)


@pytest.mark.usefixtures("user_ops_restored")
def test_own_ops_that_cannot_be_traced_run_in_both_runners():
    # a rule that branches on its operand cannot become a template: both runners call it
    clip = defop(
        "clip1",
        lambda m, a: a if a < 1.0 else 1.0,
        lambda m, g, out, a: g if a < 1.0 else 0.0,
        invalid=lambda m, a: a != a,  # noqa: PLR0124 - NaN
        domain="a is a number",
    )
    x = placeholder("x")
    results = []
    for runner in RUNNERS:
        with float_runner(runner):
            program = cr.compile(clip(x * x) * x, [x])
            results.append([outcome(program.value_and_grad, v) for v in (0.5, 2.0, math.nan)])
    assert results[0] == results[1]
    assert results[0][0] == bits([0.25 * 0.5, [3 * 0.25]])
    assert results[0][2][0] is cr.DomainError and "in %2 = clip1 %1" in results[0][2][1]


# --- threads and memory ------------------------------------------------------------------------------
def test_threads_share_an_interpreted_program():
    random.seed(5)
    model = MLP(2, [6, 6, 1])
    x0, x1 = placeholder("x0"), placeholder("x1")
    with float_runner("interpreted"):
        program = cr.compile(model([x0, x1]).tanh(), [x0, x1])
        rows = [(0.1 * k, -0.05 * k) for k in range(10)]
        model.zero_grad()
        expected = [program.value_and_grad(*r) for r in rows]
        one_pass = [p.grad for p in model.parameters()]
        model.zero_grad()
    wrong: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work() -> None:
        try:
            barrier.wait()
            for _ in range(20):
                for r, e in zip(rows, expected, strict=True):
                    if program.value_and_grad(*r) != e or program(*r) != e[0]:
                        wrong.append(repr(r))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors and not wrong
    for p, g in zip(model.parameters(), one_pass, strict=True):
        assert p.grad == pytest.approx(80 * g, rel=1e-12, abs=1e-12)


def test_the_interpreter_needs_little_memory_for_a_long_program():
    # generated code for this program takes about 3 KB per instruction (as tracemalloc sees it); the
    # interpreter about 250 bytes (the bound is generous: this checks the kind of runner, not its tuning)
    x, w = placeholder("x"), Value(0.5)
    v = x
    for _ in range(4000):
        v = (v * w + 0.1).tanh()
    program = cr.compile(v, [x])
    assert len(program) > float_mode.GENERATE_MAX_INSTRUCTIONS
    tracemalloc.start()
    try:
        value, _ = program.value_and_grad(0.3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(program._float_code(), FloatInterpreter)
    assert peak < 1000 * len(program), f"{peak / len(program):.0f} bytes per instruction"
    assert value == program(0.3)
