"""Batch mode's numpy steps run from the public plan (issue "One chain rule", item 6).

The planner (`compiler.batch_plan`) produces a `compiler.plan.Plan`; the numpy steps are built from
its groups alone, as the JAX and torch exports read it. These tests hold that: one step per group,
in order, each holding the very group it runs; steps built from nothing but a `Plan` run batch mode
bit for bit; the steps' module reads nothing of the planner; and `Program.plan()` is that plan.
"""

from __future__ import annotations

import ast
import math
import random
import re
from pathlib import Path
from typing import Any

import pytest

import chainrule as cr
from chainrule import DomainError, Value, placeholder
from chainrule.compiler import batch_plan
from conftest import need
from test_compiler_sums import chain_program, layer_program
from test_differential import Compiled, Ops, choose_root, define_user_ops, make_case
from test_export import _mixed_program, _sparse_program, _two_neurons, moons_loss

np = need("numpy")

ROOT = Path(__file__).resolve().parent.parent


def programs() -> dict[str, cr.Program]:
    """Programs whose plans hold every kind of group: dense (padded or not, a view of the parameters
    or gathered, scaled), sparse, bias-only uniform sums, maps on one or several blocks."""
    random.seed(5)
    return {
        "moons": moons_loss(cr.nn.MLP(2, [8, 8, 1]), 16)[0],
        "mixed": _mixed_program(),
        "sparse": _sparse_program(),
        "two neurons": _two_neurons()[0],
        "layer": layer_program(random.Random(3), 5, 4)[0],
        "chains": chain_program(random.Random(4), 3, 4)[0],
    }


def steps_from_plan(plan: Any, describe: Any) -> list[Any]:
    """The numpy steps of `plan`, made from the plan and nothing else."""
    from chainrule.compiler.batch_steps import MapStep, SumsOfProductsStep
    from chainrule.compiler.plan import MapGroup

    return [
        MapStep(plan, i, describe) if isinstance(group, MapGroup) else SumsOfProductsStep(plan, i)
        for i, group in enumerate(plan.groups)
    ]


def run_plan(
    plan: Any, steps: list[Any], columns: list[Any], check: bool = False
) -> tuple[list[Any], list[Any], Any]:
    """Forward and backward (every output seeded with 1; `check`: the derivatives checked as batch
    mode's re-sweep does) of `steps` on a workspace laid out from the plan alone: (outputs, input
    gradients, parameter gradients in Program.parameters order)."""
    from chainrule.compiler.plan import FIXED_ROWS, UNIFORM, VARYING

    width = len(columns[0])
    n_uniform, n_varying = plan.block_starts[UNIFORM][-1], plan.block_starts[VARYING][-1]
    ws = batch_plan.Workspace(n_uniform, n_varying, width, len(steps))
    theta = np.array(plan.parameters)
    ordered = theta if plan.theta_order is None else theta[plan.arrays[plan.theta_order]]
    n = plan.n_parameters
    ws.values[UNIFORM][FIXED_ROWS : FIXED_ROWS + n, 0] = ordered
    ws.values[UNIFORM][FIXED_ROWS + n : FIXED_ROWS + n + len(plan.constants), 0] = plan.constants
    ws.values[VARYING][: plan.n_inputs] = np.array(columns)
    with np.errstate(all="ignore"):
        for step in steps:
            step.forward(ws)
        rows = [(r.buffer, int(plan.rows(r)[0])) for r in plan.outputs]
        outs = [np.broadcast_to(ws.values[b][r], (width,)).copy() for b, r in rows]
        for b, r in rows:
            ws.grads[b][r] += 1.0 if b == VARYING else width
        for step in reversed(steps):
            if step.requires_grad:
                step.backward(ws, check)
    grads = ws.grads[UNIFORM][FIXED_ROWS : FIXED_ROWS + n, 0]
    dtheta = grads.copy() if plan.theta_order is None else np.empty(n)
    if plan.theta_order is not None:
        dtheta[plan.arrays[plan.theta_order]] = grads
    return outs, [ws.grads[VARYING][i].copy() for i in range(plan.n_inputs)], dtheta


def same(a: Any, b: Any) -> bool:
    """Equal bit for bit, but for the sign of zero (a gradient added into 0.0 loses -0.0)."""
    a, b = np.asarray(a, dtype=np.float64) + 0.0, np.asarray(b, dtype=np.float64) + 0.0
    return a.shape == b.shape and a.tobytes() == b.tobytes()


def agree(got: tuple[list[Any], list[Any], Any], want: tuple[list[Any], list[Any], Any]) -> bool:
    """The same outputs, input gradients (where batch mode gives one) and parameter gradients."""
    outs = all(same(a, b) for a, b in zip(got[0], want[0], strict=True))
    inputs = all(b is None or same(a, b) for a, b in zip(got[1], want[1], strict=True))
    return outs and inputs and same(got[2], want[2])


def batch_mode(program: cr.Program, columns: list[Any]) -> tuple[list[Any], list[Any], Any]:
    """Batch mode's own outputs, input gradients and parameter gradients (Program.parameters order)."""
    params = program.parameters
    saved = [(p.grad, p.requires_grad) for p in params]
    for p in params:
        p.grad, p.requires_grad = 0.0, True
    try:
        seeds = 1.0 if program.single else [1.0] * len(program.output_slots)
        outs, grads = program.value_and_grad(*columns, grad_output=seeds)
        dtheta = np.array([p.grad for p in params])
    finally:
        for p, (g, r) in zip(params, saved, strict=True):
            p.grad, p.requires_grad = g, r
    outs = [outs] if program.single else list(outs)
    return [np.asarray(o) for o in outs], list(grads), dtheta


# --- one step per group, in order --------------------------------------------------------------------
@pytest.mark.parametrize("name", list(programs()))
def test_each_numpy_step_holds_the_group_of_the_plan_it_runs(name: str) -> None:
    """Batch mode has one step per group of `Program.plan()`, in order, each holding that very group
    object (a MapStep a MapGroup, a SumsOfProductsStep a SumsGroup), and nothing else to run."""
    from chainrule.compiler.batch_steps import MapStep, SumsOfProductsStep
    from chainrule.compiler.plan import MapGroup, SumsGroup

    program = programs()[name]
    planned = program._plan()
    plan = program.plan()
    assert plan.groups is planned.plan.groups and plan.arrays is planned.plan.arrays
    assert len(planned.steps) == len(plan.groups)
    for step, group in zip(planned.steps, plan.groups, strict=True):
        assert step.group is group
        assert isinstance(step, MapStep) == isinstance(group, MapGroup)
        assert isinstance(step, SumsOfProductsStep) == isinstance(group, SumsGroup)
    assert [s.group for s in planned.backward_steps] == [g for g in reversed(plan.groups) if g.requires_grad]


def test_program_plan_is_the_plan_the_steps_run_with_todays_values() -> None:
    """`Program.plan()` shares the groups and arrays of the plan batch mode runs; it takes the
    parameters' and constants' values when it is called."""
    x = placeholder("x")
    w, b = Value(0.5), Value(-0.25)
    program = cr.compile((w * x + b).tanh(), [x])
    before = program.plan()
    w.data = 2.0
    after = program.plan()
    order = [program.parameters.index(p) for p in (w, b)]
    assert [before.parameters[i] for i in order] == [0.5, -0.25]
    assert [after.parameters[i] for i in order] == [2.0, -0.25]
    assert after.groups is before.groups is program._plan().plan.groups
    assert program(np.array([1.0])).tolist() == [math.tanh(2.0 - 0.25)]  # batch mode reads the Values


# --- the plan alone runs batch mode ------------------------------------------------------------------
@pytest.mark.parametrize("name", list(programs()))
def test_steps_made_from_the_plan_alone_run_batch_mode_bit_for_bit(name: str) -> None:
    """Steps built from `Program.plan()` and nothing of the planner, on a workspace laid out from the
    plan's blocks, give batch mode's outputs and gradients bit for bit, inf and NaN included."""
    program = programs()[name]
    plan = program.plan()
    rng = np.random.default_rng(11)
    n = plan.n_inputs
    hostile = [np.array([math.inf, 0.3, math.nan, -math.inf, 1e308, -2.0]) for _ in range(n)]
    for columns in ([rng.normal(size=6) * 2 for _ in range(n)], hostile):
        got = run_plan(plan, steps_from_plan(plan, program.describe), columns)
        assert agree(got, batch_mode(program, columns))
    # and those are the program's numbers: float mode's, sample by sample (n-ary sums may add in
    # another order, within a few ulps)
    columns = [rng.normal(size=4) for _ in range(n)]
    outs = run_plan(plan, steps_from_plan(plan, program.describe), columns)[0]
    for j in range(4):
        want = program(*(float(c[j]) for c in columns))
        want = [want] if program.single else list(want)
        assert np.allclose([o[j] for o in outs], want, rtol=1e-12, atol=1e-12), (j, outs, want)


def test_plan_rows_are_the_rows_of_the_concatenated_blocks() -> None:
    """`Plan.rows` of every read is what the plan's docstring says: rows `start:stop` of one block,
    or `arrays[index]` taken from the concatenation of the blocks, in the whole buffer's numbering."""
    kinds = set()
    for program in programs().values():
        plan = program.plan()
        reads = [r for g in plan.groups for r in g.reads()] + list(plan.outputs)
        kinds |= {"slice" if r.index is None else f"gather from {min(len(r.blocks), 2)}" for r in reads}
        for read in reads:
            starts = plan.block_starts[read.buffer]
            if read.index is None:
                want = np.arange(read.start, read.stop) + starts[read.blocks[0]]
            else:
                rows = np.concatenate([np.arange(starts[b], starts[b + 1]) for b in read.blocks])
                want = rows[plan.arrays[read.index]]
            assert plan.rows(read).tolist() == want.tolist(), read
        # each group's results are the next block of its buffer
        for i, group in enumerate(plan.groups):
            block = 1 + sum(g.buffer == group.buffer for g in plan.groups[:i])
            assert plan.group_starts[i] == plan.block_starts[group.buffer][block]
            assert plan.block_starts[group.buffer][block + 1] - plan.group_starts[i] == group.k
    assert kinds == {"slice", "gather from 1", "gather from 2"}


def test_a_padded_product_is_marked_in_the_plan_and_run_dense_by_numpy() -> None:
    """The plan says "dense, padded, with these real entries"; the numpy step keeps the padded
    matrix product (its exact path only for inf and NaN), reading the entries from the plan."""
    from chainrule.compiler.plan import SumsGroup

    program = _two_neurons()[0]
    plan = program.plan()
    padded = [g for g in plan.groups if isinstance(g, SumsGroup) and g.padded]
    assert padded and all(g.layout == "dense" for g in padded)
    steps = {id(s.group): s for s in program._plan().steps}
    for group in padded:
        step = steps[id(group)]
        assert step.layout == "dense" and step.padded
        sums, columns = plan.arrays[group.entry_sums], plan.arrays[group.entry_columns]
        assert step.entry_sums.tolist() == sums.tolist() and step.entry_columns.tolist() == columns.tolist()
        weights = plan.rows(group.weights).reshape(group.shape)
        assert (weights[sums, columns] != 0).all()  # the real entries read weights, not the 0.0 row
        assert (np.delete(weights.ravel(), sums * group.shape[1] + columns) == 0).all()


def test_a_layers_weights_stay_a_view_and_its_gradient_one_slice() -> None:
    """Made from the plan, a dense layer's W is still a view of the parameters' contiguous block and
    its gradient needs no selection, as before the plan was public."""
    from chainrule.compiler.plan import FIXED_ROWS

    program = moons_loss(cr.nn.MLP(2, [8, 8, 1]), 16)[0]
    dense = [s for s in program._plan().steps if getattr(s, "layout", None) == "dense"]
    layers = [s for s in dense if s.weight_rows.min() >= FIXED_ROWS]  # W made of parameters
    assert [s.weight_rows.shape for s in layers] == [(8, 2), (8, 8), (1, 8)]
    assert all(s.weight_block is not None and s.weight_grad_entries is None for s in layers)


def test_a_domain_error_names_the_instruction_as_before() -> None:
    """Error messages come from the group's slots: the batch index and the instruction."""
    x = placeholder("x")
    program = cr.compile((x * Value(0.5)).log() + x, [x])
    with pytest.raises(DomainError) as info:
        program(np.array([1.0, 2.0, -1.0, 3.0]))
    assert str(info.value) == "log: requires x > 0, got -0.5 (at batch index 2, in %3 = log %2)"
    with pytest.raises(DomainError) as info:
        cr.compile(x.sqrt() * Value(2.0), [x]).value_and_grad(np.array([1.0, 0.0]))
    assert str(info.value) == (
        "sqrt: the derivative is undefined at (0.0,): float division by zero "
        "(at batch index 1, in %2 = sqrt %0)"
    )


@pytest.mark.parametrize("seed", range(0, 64, 3))
def test_random_programs_run_from_the_plan_as_batch_mode_does(seed: int, user_ops_restored: None) -> None:
    """The differential check's random graphs (every row of the table, defop ops, layers): steps made
    from the plan alone give batch mode's numbers, which test_differential holds to eager's."""
    ops = Ops(define_user_ops())
    c = make_case(seed, ops.names, ops.edges)
    choose_root(c, ops)
    try:
        program = Compiled(c, ops).program
    except (DomainError, ZeroDivisionError):
        return  # the weights alone leave a domain: nothing compiles (test_differential covers it)
    columns = [np.array([s[i] for s in c.samples]) for i in range(c.n_in)]
    plan = program.plan()
    try:
        want = batch_mode(program, columns)
    except (DomainError, ZeroDivisionError) as exc:
        # batch mode raised, in forward or in its checked re-sweep: the plan's steps raise the same
        with pytest.raises(type(exc), match=re.escape(str(exc))):
            run_plan(plan, steps_from_plan(plan, program.describe), columns, check=True)
        return
    assert agree(run_plan(plan, steps_from_plan(plan, program.describe), columns), want), seed


# --- the steps read the plan, not the planner --------------------------------------------------------
def test_the_steps_module_reads_only_the_public_plan() -> None:
    """batch_steps.py imports nothing of the planner and, of a plan, uses only `Plan`'s public
    names: renaming anything inside `BatchPlan` cannot change what the numpy steps run."""
    from chainrule.compiler.plan import Plan

    tree = ast.parse((ROOT / "src" / "chainrule" / "compiler" / "batch_steps.py").read_text(encoding="utf-8"))
    public = set(Plan.__dataclass_fields__) | {name for name in dir(Plan) if not name.startswith("_")}
    planner = {"program", "needs", "terms", "row", "buffer_of", "absorbed", "instructions"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.module not in ("batch_plan", "program"), node.module
        if isinstance(node, ast.Attribute):
            assert node.attr not in planner, f"batch_steps reads .{node.attr}, the planner's analysis"
            if isinstance(node.value, ast.Name) and node.value.id == "plan":
                assert node.attr in public, f"batch_steps reads plan.{node.attr}, not a public name of Plan"
