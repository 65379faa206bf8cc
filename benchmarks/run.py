"""chainrule against micrograd, in one run: `python benchmarks/run.py` prints a table of figures and ratios.

(a) chains of 1,000, 10,000 and 100,000 mixed ops: build and backward, ns per op (a learner's
    expression or neuron is small, a long training graph is large: the ratio must hold at every size);
(b) micrograd's own demo step: two moons (100 samples), MLP(2, [16, 16, 1]), SVM max-margin loss with L2
    regularisation, forward over all samples + backward + SGD update, written exactly as micrograd's
    demo notebook writes it, run through each engine;
(c) memory, by tracemalloc, over building the same graph in both: bytes per op of a chain, and KiB
    of the demo's graph;
(d) the deepest chain whose backward survives at Python's default recursion limit.

Timings are medians of several repeats, with Python's garbage collector on, as users have it (a
`gc.collect()` before each repeat, untimed, so that one repeat's garbage is not billed to the next).
micrograd's recursive backward needs a raised recursion limit and a big thread stack for (a), so
every timed benchmark runs, for both engines alike, in a thread with a 1 GiB stack.
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import statistics
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import chainrule  # noqa: E402
import chainrule.nn  # noqa: E402
from moons import cpu_model  # noqa: E402

try:
    import micrograd.engine
    import micrograd.nn
except ImportError:  # pragma: no cover - the comparison is the point of this script
    sys.exit("benchmarks/run.py compares against micrograd: pip install micrograd==0.1.0")

CHAIN_SIZES = (1_000, 10_000, 100_000)
MEMORY_CHAIN_OPS = 10_000
TARGETS = {"chain": 3.0, "demo": 15.0, "memory": 4.0, "depth": 10**6}


# --- the workloads, written once for both engines ------------------------------------------------
def build_chain(value_cls: type, n: int) -> tuple[Any, Any]:
    """n ops, cycling through * + relu - / ** with numbers mixed in; returns (leaf, output)."""
    x = value_cls(1.0)
    y = x
    for i in range(n):
        k = i % 6
        if k == 0:
            y = y * 1.0001
        elif k == 1:
            y = y + 0.5
        elif k == 2:
            y = y.relu()
        elif k == 3:
            y = y - 0.25
        elif k == 4:
            y = y / 1.0001
        else:
            y = y**1
    return x, y


def demo_data() -> tuple[Any, Any]:
    """micrograd's demo dataset: make_moons(n_samples=100, noise=0.1), labels in {-1, 1}."""
    import numpy as np
    from sklearn.datasets import make_moons

    np.random.seed(1337)
    random.seed(1337)
    X, y = make_moons(n_samples=100, noise=0.1)
    return X, y * 2 - 1


def demo_loss(model: Any, value_cls: type, X: Any, y: Any) -> tuple[Any, float]:
    """The demo notebook's loss(), verbatim apart from the Value class passed in."""
    inputs = [list(map(value_cls, xrow)) for xrow in X]
    # forward the model to get scores
    scores = list(map(model, inputs))
    # svm "max-margin" loss
    losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(y, scores, strict=True)]
    data_loss = sum(losses) * (1.0 / len(losses))
    # L2 regularization
    alpha = 1e-4
    reg_loss = alpha * sum(p * p for p in model.parameters())
    total_loss = data_loss + reg_loss
    # also get accuracy
    accuracy = [(yi > 0) == (scorei.data > 0) for yi, scorei in zip(y, scores, strict=True)]
    return total_loss, sum(accuracy) / len(accuracy)


def demo_step(model: Any, value_cls: type, X: Any, y: Any, k: int) -> float:
    """One training step of the demo: forward, zero_grad, backward, SGD update. Returns the loss."""
    total_loss, _acc = demo_loss(model, value_cls, X, y)
    model.zero_grad()
    total_loss.backward()
    learning_rate = 1.0 - 0.9 * k / 100
    for p in model.parameters():
        p.data -= learning_rate * p.grad
    return total_loss.data


def twin_models() -> tuple[Any, Any]:
    """micrograd's MLP(2, [16, 16, 1]) and chainrule's, with chainrule's weights copied from micrograd's."""
    random.seed(1337)
    theirs = micrograd.nn.MLP(2, [16, 16, 1])
    ours = chainrule.nn.MLP(2, [16, 16, 1])
    assert repr(ours) == repr(theirs)
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        p.data = float(q.data)
    return ours, theirs


# --- measuring -----------------------------------------------------------------------------------
def in_big_thread(fn: Callable[[], Any]) -> Any:
    """Run fn in a thread with a 1 GiB stack and a raised recursion limit (micrograd's backward recurses)."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    old_limit = sys.getrecursionlimit()
    old_size = threading.stack_size(1 << 30)
    sys.setrecursionlimit(10**6)
    try:
        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
    finally:
        threading.stack_size(old_size)
        sys.setrecursionlimit(old_limit)
    if errors:
        raise errors[0]
    return result[0]


ENGINES = {"chainrule": chainrule.Value, "micrograd": micrograd.engine.Value}
clock = time.process_time  # CPU time of this process; main() switches to wall time with --wall


def chain_times(repeats: int, n: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    """Per engine and repeat: (ns per op to build, ns per op to backpropagate) a chain of n ops.

    The engines take turns, repeat by repeat, so that both see the same state of the machine. A
    repeat builds and differentiates the chain `rounds` times in a loop, as a training loop does:
    garbage that only the cyclic collector can free (micrograd's closures) is then collected during
    the timed loop, as it is in a user's. With rounds=1 each chain starts after a gc.collect().
    """
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in ENGINES}
    for _ in range(repeats):
        for name, cls in ENGINES.items():
            gc.collect()
            build = backward = 0.0
            for _ in range(rounds):
                start = clock()
                x, y = build_chain(cls, n)
                built = clock()
                y.backward()
                done = clock()
                build += built - start
                backward += done - built
                del x, y
            ops = n * rounds
            times[name].append((build / ops * 1e9, backward / ops * 1e9))
    return times


def demo_times(repeats: int) -> dict[str, Any]:
    """Per engine, seconds per demo training step (engines take turns); both must compute the same loss."""
    X, y = demo_data()
    models = dict(zip(("chainrule", "micrograd"), twin_models(), strict=True))
    times: dict[str, list[float]] = {name: [] for name in ENGINES}
    worst = 0.0
    for k in range(repeats):
        losses = {}
        for name, cls in ENGINES.items():
            gc.collect()
            start = clock()
            losses[name] = demo_step(models[name], cls, X, y, k)
            times[name].append(clock() - start)
        worst = max(worst, abs(losses["chainrule"] - losses["micrograd"]) / abs(losses["micrograd"]))
    if worst > 1e-9:
        raise AssertionError(f"the two engines disagree on the demo loss (relative difference {worst:.2e})")
    return times | {"loss_rel_diff": worst}


def graph_bytes(build: Callable[[], Any]) -> int:
    """Bytes still allocated after build() returns its graph (kept alive until measured)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        graph = build()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del graph
    return after - before


def memory_figures() -> dict[str, int]:
    """Bytes held by the graph of the chain (10,000 ops) and of one demo forward pass, both engines."""
    X, y = demo_data()
    ours, theirs = twin_models()
    figures = {}
    for name, cls, model in (
        ("chainrule", chainrule.Value, ours),
        ("micrograd", micrograd.engine.Value, theirs),
    ):
        figures[f"chain/{name}"] = graph_bytes(lambda cls=cls: build_chain(cls, MEMORY_CHAIN_OPS))
        figures[f"demo/{name}"] = graph_bytes(lambda cls=cls, model=model: demo_loss(model, cls, X, y)[0])
    return figures


def survives(value_cls: type, n: int) -> bool:
    """Whether backward through a chain of n additions works at the current recursion limit."""
    x = value_cls(1.0)
    y = x
    for _ in range(n):
        y = y + 1.0
    try:
        y.backward()
    except RecursionError:
        return False
    return x.grad == 1.0


def micrograd_depth() -> int:
    """The longest chain micrograd's backward survives at the default recursion limit (bisection)."""
    lo, hi = 1, 2
    while survives(micrograd.engine.Value, hi):
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if survives(micrograd.engine.Value, mid) else (lo, mid)
    return lo


def chainrule_depth(n: int) -> tuple[bool, float]:
    """Whether a chain of n additions builds and backpropagates at the default limit, and in how long."""
    start = clock()
    ok = survives(chainrule.Value, n)
    return ok, clock() - start


# --- report ----------------------------------------------------------------------------------------
def machine() -> str:
    """CPU model and Python version, for the record."""
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{cpu_model()}; {python}; {platform.system()}"


Row = tuple[str, str, str, float | None, str | None, bool | None]  # name, ours, theirs, ratio, target, met


def print_table(rows: list[Row]) -> None:
    """The rows as an aligned text table."""
    header = ("benchmark", "chainrule", "micrograd 0.1.0", "ratio", "target", "")
    cells = [header] + [
        (
            name,
            ours,
            theirs,
            "" if ratio is None else f"{ratio:.1f}x",
            target or "",
            "" if met is None else ("met" if met else "MISSED"),
        )
        for name, ours, theirs, ratio, target, met in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(6)]
    for k, c in enumerate(cells):
        print(" | ".join(c[i].ljust(widths[i]) if i in (0, 5) else c[i].rjust(widths[i]) for i in range(6)))
        if k == 0:
            print("-|-".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    """Run every benchmark, print the table, and return 1 if a target is missed."""
    global clock
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per benchmark (default 7)")
    parser.add_argument(
        "--wall", action="store_true", help="time with the wall clock instead of this process's CPU time"
    )
    args = parser.parse_args(argv)
    assert gc.isenabled(), "run with the garbage collector on, as users have it"
    clock = time.perf_counter if args.wall else time.process_time
    print(f"machine: {machine()}")
    print(
        f"chainrule {chainrule.__version__} vs micrograd 0.1.0; {args.repeats} repeats, the engines taking "
        f"turns; {'wall-clock' if args.wall else 'CPU'} time; gc on; figures are medians, and ratios are "
        f"medians of the per-repeat ratios (micrograd / chainrule)\n"
    )
    rows: list[Row] = []

    def timed_row(name: str, ours: list[float], theirs: list[float], fmt: str, target: float | None) -> None:
        ratio = statistics.median(t / o for o, t in zip(ours, theirs, strict=True))
        met = None if target is None else ratio >= target
        figures = fmt.format(statistics.median(ours)), fmt.format(statistics.median(theirs))
        rows.append((name, *figures, ratio, target and f">= {target:g}x", met))

    for n in CHAIN_SIZES:
        loop = max(1, 100_000 // n)  # short chains: 100,000 ops per repeat, in a loop
        for rounds in sorted({1, loop}):
            chain = in_big_thread(lambda n=n, rounds=rounds: chain_times(args.repeats, n, rounds))
            ours, theirs = chain["chainrule"], chain["micrograd"]
            size = f"{n:,} ops" + (f", {rounds} in a loop" if rounds > 1 else "")
            timed_row(
                f"(a) {size}: build, ns/op", [b for b, _ in ours], [b for b, _ in theirs], "{:.0f}", None
            )
            timed_row(
                f"(a) {size}: backward, ns/op", [w for _, w in ours], [w for _, w in theirs], "{:.0f}", None
            )
            timed_row(
                f"(a) {size}: build + backward, ns/op",
                [b + w for b, w in ours],
                [b + w for b, w in theirs],
                "{:.0f}",
                TARGETS["chain"],
            )

    demo = in_big_thread(lambda: demo_times(args.repeats))
    timed_row(
        "(b) demo step (fwd+bwd+SGD), ms",
        [t * 1e3 for t in demo["chainrule"]],
        [t * 1e3 for t in demo["micrograd"]],
        "{:.1f}",
        TARGETS["demo"],
    )

    # Memory for the same computation: the engines count nodes differently (chainrule keeps a
    # number operand inside its node, micrograd makes a Value of it), so compare bytes per op of
    # the chain and total bytes of the demo's graph rather than bytes per node.
    mem = memory_figures()
    ours_b, their_b = mem["chain/chainrule"], mem["chain/micrograd"]
    ratio = their_b / ours_b
    rows.append(
        (
            f"(c) chain of {MEMORY_CHAIN_OPS:,} ops, bytes per op",
            f"{ours_b / MEMORY_CHAIN_OPS:.0f}",
            f"{their_b / MEMORY_CHAIN_OPS:.0f}",
            ratio,
            f">= {TARGETS['memory']:g}x",
            ratio >= TARGETS["memory"],
        )
    )
    ours_b, their_b = mem["demo/chainrule"], mem["demo/micrograd"]
    rows.append(
        (
            "(c) demo step's graph, KiB",
            f"{ours_b / 1024:.0f}",
            f"{their_b / 1024:.0f}",
            their_b / ours_b,
            "",
            None,
        )
    )

    ok, seconds = chainrule_depth(TARGETS["depth"])
    depth = micrograd_depth()
    ours_depth = f"{TARGETS['depth']:,}: {'ok' if ok else 'FAILED'} in {seconds:.1f} s"
    rows.append(
        ("(d) deepest chain backward survives", ours_depth, f"{depth:,}", None, f"{TARGETS['depth']:,}", ok)
    )

    print_table(rows)
    print(f"\n(the two engines' demo losses agree to {demo['loss_rel_diff']:.1e} relative)")
    return 0 if all(met is not False for *_, met in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
