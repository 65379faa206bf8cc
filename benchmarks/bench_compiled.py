"""Compiled programs against micrograd and PyTorch on micrograd's two-moons training step.

One training step = forward over 100 samples, SVM loss (mean hinge + 1e-4 L2 penalty), backward,
SGD update, exactly as in micrograd's demo notebook, for MLP(2, [16, 16, 1]). Each engine starts
from the same weights and runs in this one process, so the ratios are comparable even on a noisy
machine. Timings are medians of repeats with the garbage collector on.

    python benchmarks/bench_compiled.py [--repeats N] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import chainrule as cr  # noqa: E402
from chainrule.nn import MLP  # noqa: E402
from moons import ALPHA, cpu_model, eager_step, lr, moons, torch_update  # noqa: E402


def median_time(step: Callable[[int], None], repeats: int, warmup: int = 2) -> float:
    """Median seconds per call of step(k) (k counts calls, for the learning-rate schedule)."""
    for k in range(warmup):
        step(k)
    times = []
    for k in range(repeats):
        t0 = time.perf_counter()
        step(k)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --- the four engines ------------------------------------------------------------------------
def micrograd_step(X: np.ndarray, y: np.ndarray, weights: list[float]) -> Callable[[int], None]:
    """micrograd 0.1.0, eager: the demo notebook's loop body."""
    from micrograd.engine import Value as MValue
    from micrograd.nn import MLP as MMLP

    model = MMLP(2, [16, 16, 1])
    for p, w in zip(model.parameters(), weights, strict=True):
        p.data = w
    rows = [list(map(float, r)) for r in X]
    labels = [float(v) for v in y]

    def step(k: int) -> None:
        inputs = [list(map(MValue, r)) for r in rows]
        scores = list(map(model, inputs))
        losses = [(1 + -yi * si).relu() for yi, si in zip(labels, scores, strict=True)]
        data_loss = sum(losses) * (1.0 / len(losses))
        reg_loss = ALPHA * sum(p * p for p in model.parameters())
        total = data_loss + reg_loss
        model.zero_grad()
        total.backward()
        for p in model.parameters():
            p.data -= lr(k) * p.grad

    return step


def chainrule_model(weights: list[float]) -> MLP:
    model = MLP(2, [16, 16, 1])
    for p, w in zip(model.parameters(), weights, strict=True):
        p.data = w
    return model


def trace_loss(model: MLP, batch: int) -> tuple[cr.Value, list[cr.Value]]:
    """The per-sample loss on placeholders. Its batch sum is micrograd's total loss: the L2 term
    is parameter-only, so the compiled program computes it once per run, not once per sample."""
    # data, not trainable: no gradient is wanted for the inputs
    x0, x1, label = (cr.placeholder(name, requires_grad=False) for name in ("x0", "x1", "y"))
    score = model([x0, x1])
    reg = ALPHA * cr.sum([p * p for p in model.parameters()])
    per_sample = ((1 + -label * score).relu() + reg) * (1.0 / batch)
    return per_sample, [x0, x1, label]


def compiled_step(X: np.ndarray, y: np.ndarray, weights: list[float]) -> tuple[Callable[[int], None], dict]:
    """chainrule compiled, batch mode: one value_and_grad over all 100 samples."""
    model = chainrule_model(weights)
    params = model.parameters()
    t0 = time.perf_counter()
    loss, inputs = trace_loss(model, len(X))
    t1 = time.perf_counter()
    program = cr.compile(loss, inputs)
    t2 = time.perf_counter()
    x0, x1 = np.ascontiguousarray(X[:, 0]), np.ascontiguousarray(X[:, 1])
    program.value_and_grad(x0, x1, y)  # the first batch run builds the vectorised plan
    t3 = time.perf_counter()
    model.zero_grad()

    def step(k: int) -> None:
        model.zero_grad()
        program.value_and_grad(x0, x1, y)
        for p in params:
            p.data -= lr(k) * p.grad

    info = {"trace": t1 - t0, "compile": t2 - t1, "plan": t3 - t2, "instructions": len(program),
            "steps": len(program._plan().steps)}  # fmt: skip
    return step, info


def functional_step(X: np.ndarray, y: np.ndarray, weights: list[float]) -> Callable[[int], None]:
    """chainrule compiled, functional form: loss_and_grad on a parameter array, then the array SGD."""
    from chainrule.optim import SGD

    loss, inputs = trace_loss(chainrule_model(weights), len(X))
    program = cr.compile(loss, inputs)
    theta = program.parameter_array()
    optimizer = SGD(theta, lr=lr)  # the same schedule, read at each step
    x0, x1 = np.ascontiguousarray(X[:, 0]), np.ascontiguousarray(X[:, 1])
    program.loss_and_grad(theta, x0, x1, y)  # builds its plan

    def step(k: int) -> None:
        _total, dtheta = program.loss_and_grad(theta, x0, x1, y)
        optimizer.step(dtheta)

    return step


def torch_step(X: np.ndarray, y: np.ndarray, weights: list[float]) -> Callable[[int], None]:
    """PyTorch, float64 tensors, the whole batch at once (its normal way of working)."""
    import torch

    layers = [torch.nn.Linear(2, 16), torch.nn.Linear(16, 16), torch.nn.Linear(16, 1)]
    model = torch.nn.Sequential(layers[0], torch.nn.ReLU(), layers[1], torch.nn.ReLU(), layers[2]).double()
    # micrograd's parameter order is neuron by neuron: weights then bias
    it = iter(weights)
    with torch.no_grad():
        for layer in layers:
            for j in range(layer.out_features):
                for i in range(layer.in_features):
                    layer.weight[j, i] = next(it)
                layer.bias[j] = next(it)
    params = list(model.parameters())
    Xt, yt = torch.tensor(X), torch.tensor(y)

    def step(k: int) -> None:
        scores = model(Xt).squeeze(1)
        total = torch.relu(1 - yt * scores).mean() + ALPHA * sum((p * p).sum() for p in params)
        torch_update(params, total, k)

    return step


def per_sample(X: np.ndarray, y: np.ndarray, weights: list[float]) -> tuple[float, float]:
    """One sample's forward + backward: float-mode program vs building and walking eager Values."""
    model = chainrule_model(weights)
    loss, inputs = trace_loss(model, 1)
    program = cr.compile(loss, inputs)
    (a, b), label = map(float, X[0]), float(y[0])
    program.value_and_grad(a, b, label)  # generates the straight-line code

    def compiled(k: int) -> None:
        program.value_and_grad(a, b, label)

    def eager(k: int) -> None:
        score = model([cr.Value(a), cr.Value(b)])
        reg = ALPHA * cr.sum([p * p for p in model.parameters()])
        ((1 + -label * score).relu() + reg).backward()

    return median_time(compiled, 200), median_time(eager, 50)


def check_same_gradients(X: np.ndarray, y: np.ndarray, weights: list[float]) -> float:
    """Largest difference between compiled and eager parameter gradients (they must agree)."""
    m1, m2 = chainrule_model(weights), chainrule_model(weights)
    loss, inputs = trace_loss(m1, len(X))
    cr.compile(loss, inputs).value_and_grad(X[:, 0].copy(), X[:, 1].copy(), y)
    scores = [m2([cr.Value(a), cr.Value(b)]) for a, b in X.tolist()]
    losses = [(1 + -yi * si).relu() for yi, si in zip(y.tolist(), scores, strict=True)]
    total = cr.sum(losses) * (1.0 / len(X)) + ALPHA * cr.sum([p * p for p in m2.parameters()])
    total.backward()
    return max(abs(p.grad - q.grad) for p, q in zip(m1.parameters(), m2.parameters(), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300, help="timed steps for the fast engines")
    parser.add_argument("--slow-repeats", type=int, default=5, help="timed steps for micrograd")
    parser.add_argument("--quick", action="store_true", help="few repeats (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.slow_repeats = 20, 1
    gc.enable()
    import torch

    X, y = moons()
    from micrograd.nn import MLP as MMLP

    random.seed(1337)  # micrograd's demo seed; every engine starts from these weights
    weights = [p.data for p in MMLP(2, [16, 16, 1]).parameters()]
    diff = check_same_gradients(X, y, weights)

    step_c, info = compiled_step(X, y, weights)
    t_comp = median_time(step_c, args.repeats)
    t_func = median_time(functional_step(X, y, weights), args.repeats)
    t_torch = median_time(torch_step(X, y, weights), args.repeats)
    t_eager = median_time(eager_step(chainrule_model(weights), X, y), max(args.slow_repeats, 3), warmup=1)
    t_micro = median_time(micrograd_step(X, y, weights), args.slow_repeats, warmup=1)
    t_float, t_float_eager = per_sample(X, y, weights)

    def ms(t: float) -> str:
        return f"{t * 1e3:.3f} ms"

    print(
        f"machine: {cpu_model()}, Python {platform.python_version()}, numpy {np.__version__}; "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    print(f"compiled vs eager gradients: max |difference| = {diff:.1e}")
    print()
    print("| two-moons training step (100 samples, MLP(2,[16,16,1])) | time | functional form is |")
    print("|---|---|---|")
    rows = [
        ("chainrule compiled, functional: loss_and_grad on a parameter array + array SGD", t_func),
        ("chainrule compiled, value_and_grad + a loop over parameter Values", t_comp),
        (f"PyTorch {torch.__version__}, batched float64 tensors", t_torch),
        ("chainrule eager Values", t_eager),
        ("micrograd 0.1.0 eager", t_micro),
    ]
    for name, t in rows:
        print(f"| {name} | {ms(t)} | {'' if t is t_func else f'{t / t_func:.2f}x faster'} |")
    print()
    print("| per sample: forward + backward of one sample's loss | time | ratio |")
    print("|---|---|---|")
    print(f"| chainrule compiled, float mode | {ms(t_float)} | {t_float_eager / t_float:.1f}x faster |")
    print(f"| chainrule eager Values (build + backward) | {ms(t_float_eager)} | 1x |")
    print()
    print(f"compile time: trace {ms(info['trace'])}, compile {ms(info['compile'])} "
          f"({info['instructions']} instructions), first batch run (builds the plan: "
          f"{info['steps']} vectorised steps) {ms(info['plan'])}")  # fmt: skip


if __name__ == "__main__":
    main()
