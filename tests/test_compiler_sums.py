"""Batch mode and the exports add as the graph says (issue #17, item 2).

Additions are never re-associated across nodes: a chain of binary `+`/`-` gives eager's result bit
for bit, in batch mode, `to_jax` and `to_torch`. Within one n-ary `sum` node (a neuron) the terms may
be added in another order (a matrix product), which moves the result at most
`chainrule.compiler.plan.sum_error_bound(terms)` = n * (2**-53 * sum(|terms|) + tiny) from eager's.
The values are hostile: cancelling pairs at 1e16 and 1e300, subnormals, zeros.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import chainrule as cr
from chainrule import Value, placeholder
from chainrule.compiler import batch_plan
from chainrule.compiler.plan import sum_error_bound
from conftest import need

SUBNORMALS = [5e-324, -1.5e-323, 2.5e-320, -1e-310, 2.0**-1060 * 3]
BIG = [1e16, -1e16, 1e300, -1e300, 3e15, 1e17]
PLAIN = [1.0, -1.0, 0.1, -0.7, 3.25, 0.0, 1e-300, -2e-8]
WEIGHTS = [1.0, -1.0, 0.5, 3.0, -0.75, 1e-5, 0.1]  # moderate: a product of a hostile value stays finite


def hostile(rng: random.Random, tiny: bool = True) -> float:
    """A value from the pools above, or a normal random number (no subnormal when not `tiny`)."""
    pools = [BIG, PLAIN, SUBNORMALS] if tiny else [BIG, PLAIN]
    if rng.random() < 0.2:
        return rng.gauss(0.0, 1.0) * 10 ** rng.randint(-5, 16)
    return rng.choice(rng.choice(pools))


def engines(program: cr.Program) -> dict[str, Callable[[list[Any]], list[Any]]]:
    """Each way of running `program` on a batch: batch mode, to_jax and to_torch, each returning
    the outputs as a list of float64 numpy arrays."""
    torch = need("torch")
    need("jax")
    fn, theta = program.to_jax()
    module = program.to_torch()

    def as_list(out: Any) -> list[Any]:
        outs = [out] if program.single else list(out)
        return [np.asarray(o.detach().numpy() if hasattr(o, "detach") else o, dtype=np.float64) for o in outs]

    return {
        "batch": lambda cols: as_list(program(*cols)),
        "jax": lambda cols: as_list(fn(theta, *cols)),
        "torch": lambda cols: as_list(module(*(torch.tensor(c, dtype=torch.float64) for c in cols))),
    }


# --- the two examples of the issue -------------------------------------------------------------------
def test_a_cancelling_pair_is_not_merged_into_the_next_sum() -> None:
    """(x - x) + sigmoid(z): merged into one sum of x, -x, s it gave 0.0 instead of 0.57 at x = 1e16
    (and errors of 5.6e-11 at 1e6, 3.5e-5 at 1e12); node by node it is eager's s, exactly."""
    x, z = placeholder("x"), placeholder("z")
    program = cr.compile((x - x) + z.sigmoid(), [x, z])
    xs = np.array([1e6, 1e12, 1e16, -1e16, 1e300, 3.0])
    zs = np.full(len(xs), 0.3)
    want = [((Value(a) - Value(a)) + Value(0.3).sigmoid()).data for a in xs.tolist()]
    assert want[0] == Value(0.3).sigmoid().data
    for name, run in engines(program).items():
        (got,) = run([xs, zs])
        assert got.tolist() == want, name


def test_a_sum_inside_softplus_keeps_its_own_order() -> None:
    """The fuzz's softplus(sum([x + 1e300, -1e300])) - (y - y): eager 0.693 (log 2: x is lost in
    x + 1e300); merged into one sum of x, 1e300, -1e300 batch mode gave softplus(x) = 1.915."""
    x, y = placeholder("x"), placeholder("y")

    def f(a: Any, b: Any) -> Any:
        return cr.sum([a + 1e300, -1e300]).softplus() - (b - b)

    program = cr.compile(f(x, y), [x, y])
    xs, ys = np.array([1.7556, -3.0, 0.0]), np.array([1e16, 2.0, -1e300])
    want = [f(Value(a), Value(b)).data for a, b in zip(xs.tolist(), ys.tolist(), strict=True)]
    assert want[0] == math.log(2.0)
    for name, run in engines(program).items():
        (got,) = run([xs, ys])
        assert got.tolist() == want, name


# --- chains of binary additions: exactly eager's -------------------------------------------------------
def chain_program(rng: random.Random, n_in: int, k: int) -> tuple[cr.Program, Callable[..., list[Any]]]:
    """k micrograd-style chains (Python's builtin sum, + and -) of inputs, products weight * input,
    parameters and constants, each chain an output; and the function that builds them on Values."""
    params = [Value(rng.choice(WEIGHTS)) for _ in range(3 * n_in)]
    recipes = []
    for _ in range(k):
        recipe = []
        for _ in range(rng.randint(2, 9)):
            kind = rng.choice(["input", "product", "param", "const"])
            index = rng.randrange(n_in) if kind != "param" else rng.randrange(len(params))
            recipe.append((rng.choice("+-"), kind, index, rng.choice(BIG + PLAIN)))
        recipes.append(recipe)

    def build(xs: list[Any]) -> list[Any]:
        outs = []
        for recipe in recipes:
            acc: Any = None
            for sign, kind, i, c in recipe:
                if kind == "input":
                    term = xs[i]
                elif kind == "product":
                    term = params[i] * xs[i]
                else:
                    term = params[i] if kind == "param" else c
                if acc is None:
                    acc = xs[i] + term if kind == "const" else term  # a chain starts from a node
                else:
                    acc = acc + term if sign == "+" else acc - term
            outs.append(acc)
        return outs

    holders = [placeholder(f"x{i}") for i in range(n_in)]
    return cr.compile(build(holders), holders), build


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_chains_of_binary_additions_give_eagers_result_exactly(seed: int, layout: str, monkeypatch) -> None:
    if layout == "sparse":
        monkeypatch.setattr(batch_plan, "DENSE_FACTOR", 0)
        monkeypatch.setattr(batch_plan, "DENSE_SLACK", -1)
    rng = random.Random(seed)
    n_in, batch = 4, 40
    program, build = chain_program(rng, n_in, k=5)
    assert "sums" in program.schedule() or "matmul" in program.schedule()  # products are taken in
    runs = engines(program)
    for tiny in (False, True):
        cols = [np.array([hostile(rng, tiny) for _ in range(batch)]) for _ in range(n_in)]
        want = np.array([[o.data for o in build([Value(c[j]) for c in cols])] for j in range(batch)]).T
        for name, run in runs.items():
            got = np.array(run(cols))
            if name == "jax" and tiny:
                # JAX on CPU flushes subnormal numbers to zero: exact up to that, no more
                assert (np.abs(got - want) <= 2 * 9 * 2.0**-1022).all(), name
                continue
            assert np.array_equal(got, want, equal_nan=True), (name, tiny, np.argwhere(got != want)[:5])


# --- n-ary sums: any order, within the bound -----------------------------------------------------------
def layer_term(kind: str, w: Any, x: Any) -> Any:
    """One term of an n-ary sum: the bias `w`, a product `w * x`, `x`, `-x`, the constant `w` or the
    binary node `x + w` (whose own addition the sum must not take in)."""
    if kind == "bias":
        return w
    if kind == "product":
        return w * x
    if kind == "input":
        return x
    if kind == "neg":
        return -x
    return w if kind == "const" else x + w  # a float: a constant of the program


def layer_program(rng: random.Random, n_in: int, k: int) -> tuple[cr.Program, Callable[..., Any]]:
    """k n-ary sums (a layer of neurons and more): `cr.sum` of products weight * input, plain inputs,
    negated inputs, a bias, constants, and a binary node `x + c`, each sum an output. The builder
    returns (outputs, the terms of each sum as eager adds them)."""
    recipes = []
    for _ in range(k):
        recipe = [("bias", Value(rng.choice(BIG + PLAIN)), 0)]
        for i in rng.sample(range(n_in), rng.randint(1, n_in)):  # each input once: a dense matrix row
            kind = rng.choice(["product", "product", "input", "neg", "const", "node"])
            recipe.append((kind, Value(rng.choice(WEIGHTS)) if kind == "product" else
                           rng.choice(BIG + PLAIN), i))  # fmt: skip
        rng.shuffle(recipe)
        recipes.append(recipe)

    def build(xs: list[Any]) -> tuple[list[Any], list[list[Any]]]:
        outs, all_terms = [], []
        for recipe in recipes:
            terms = []
            for kind, w, i in recipe:
                terms.append(layer_term(kind, w, xs[i]))
            outs.append(cr.sum(terms))
            all_terms.append(terms)
        return outs, all_terms

    holders = [placeholder(f"x{i}") for i in range(n_in)]
    return cr.compile(build(holders)[0], holders), build


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_n_ary_sums_stay_within_the_reordering_bound(seed: int, layout: str, monkeypatch) -> None:
    dense = layout == "dense"
    monkeypatch.setattr(batch_plan, "DENSE_FACTOR", 100 if dense else 0)
    monkeypatch.setattr(batch_plan, "DENSE_SLACK", 0 if dense else -1)
    rng = random.Random(100 + seed)
    n_in, batch = 10, 60
    program, build = layer_program(rng, n_in, k=8)
    word = "matmul" if layout == "dense" else "sparse sums"
    assert word in program.schedule(), program.schedule()
    runs = engines(program)
    cols = [np.array([hostile(rng) for _ in range(batch)]) for _ in range(n_in)]
    for j in range(0, batch, 2):  # cancelling pairs: half the samples hold x1 = -x0, x3 = -x2
        cols[1][j], cols[3][j] = -cols[0][j], -cols[2][j]
    want, bounds, flushed = [], [], []
    for j in range(batch):
        outs, terms = build([Value(c[j]) for c in cols])
        want.append([o.data for o in outs])
        data = [[t.data if isinstance(t, Value) else t for t in ts] for ts in terms]
        bounds.append([sum_error_bound(ts) for ts in data])
        flushed.append([sum_error_bound(ts, flushes_subnormals=True) for ts in data])
    want_a, bound_a, flushed_a = np.array(want).T, np.array(bounds).T, np.array(flushed).T
    finite = np.isfinite(bound_a) & np.isfinite(want_a)
    assert finite.mean() > 0.5  # most samples are tested (the others overflow in eager too)
    moved = 0
    for name, run in runs.items():
        got = np.array(run(cols))
        limit = flushed_a if name == "jax" else bound_a
        error = np.abs(got - want_a)
        assert (error[finite] <= limit[finite]).all(), (name, np.argwhere(finite & (error > limit))[:5])
        moved += int((got[finite] != want_a[finite]).sum())
    assert moved > 0  # the engines do add in another order: the bound is what is tested


def test_sum_error_bound() -> None:
    """n * (2**-53 * sum(|terms|) + tiny), infinite where nothing is bounded."""
    assert sum_error_bound([1.0, -2.0, 1.0]) == 3 * (4.0 * 2.0**-53 + 2.0**-1074)
    assert sum_error_bound([1e16, -1e16], flushes_subnormals=True) == 2 * (2e16 * 2.0**-53 + 2.0**-1022)
    assert sum_error_bound([]) == 0.0
    assert sum_error_bound([1e308, 1e308]) == math.inf  # the absolute sum overflows
    assert sum_error_bound([1.0, math.nan]) == math.inf
    # the bound is what a change of order does: left to right vs right to left, within it
    rng = random.Random(1)
    for _ in range(2000):
        terms = [hostile(rng) for _ in range(rng.randint(2, 30))]
        ahead = sum(terms)
        behind = sum(reversed(terms))
        assert abs(ahead - behind) <= sum_error_bound(terms) or not math.isfinite(ahead + behind)
