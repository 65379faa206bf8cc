"""chainrule.Tensor against PyTorch float64 (and chainrule's scalar Values) on the two-moons training step.

One training step = forward over 100 samples through MLP(2, [16, 16, 1]) with ReLU, micrograd's SVM
loss (mean hinge + 1e-4 L2 penalty), backward, SGD update, written the same way for every engine and
started from the same weights. The engines take turns, step by step, in this one process; a ratio is
the median of the per-step ratios, so both sides of it saw the same state of the machine. The losses
must agree to 1e-9 at every step (the same arithmetic, so the same trajectory), or the run fails.

    python benchmarks/bench_tensor.py [--repeats N] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import chainrule as cr  # noqa: E402
from chainrule.nn import MLP  # noqa: E402
from moons import ALPHA, eager_step, lr, moons, torch_update  # noqa: E402

SIZES = [2, 16, 16, 1]
Step = Callable[[int], float]


def initial_weights(seed: int = 1337) -> list[tuple[np.ndarray, np.ndarray]]:
    """(W, b) per layer, uniform in [-1, 1] as micrograd draws them; W is (inputs, outputs)."""
    rng = np.random.default_rng(seed)
    return [(rng.uniform(-1, 1, (i, o)), rng.uniform(-1, 1, o)) for i, o in pairwise(SIZES)]


# --- the engines: each returns step(k) -> loss ---------------------------------------------------
def tensor_step(X: np.ndarray, y: np.ndarray, weights: list[tuple[np.ndarray, np.ndarray]]) -> Step:
    """chainrule.Tensor: the whole batch at once, each layer one matmul."""
    layers = [(cr.Tensor(W), cr.Tensor(b)) for W, b in weights]
    params = [p for layer in layers for p in layer]

    def step(k: int) -> float:
        h = X
        for i, (W, b) in enumerate(layers):
            h = h @ W + b
            if i < len(layers) - 1:
                h = h.relu()
        scores = h.reshape(-1)
        total = (1 + -y * scores).relu().mean() + ALPHA * sum((p * p).sum() for p in params)
        for p in params:
            p.grad = None  # zeros again when next needed
        total.backward()
        for p in params:
            p.data -= lr(k) * p.grad
        return total.item()

    return step


def torch_step(X: np.ndarray, y: np.ndarray, weights: list[tuple[np.ndarray, np.ndarray]]) -> Step:
    """PyTorch float64 tensors, the same expressions."""
    import torch

    layers = [(torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)) for W, b in weights]
    params = [p for layer in layers for p in layer]
    Xt, yt = torch.tensor(X), torch.tensor(y)

    def step(k: int) -> float:
        h = Xt
        for i, (W, b) in enumerate(layers):
            h = h @ W + b
            if i < len(layers) - 1:
                h = h.relu()
        scores = h.reshape(-1)
        total = (1 + -yt * scores).relu().mean() + ALPHA * sum((p * p).sum() for p in params)
        torch_update(params, total, k)
        return total.item()

    return step


def value_step(X: np.ndarray, y: np.ndarray, weights: list[tuple[np.ndarray, np.ndarray]]) -> Step:
    """chainrule's scalar Values (chainrule.nn.MLP), one sample at a time, for scale."""
    model = MLP(SIZES[0], SIZES[1:])
    for layer, (W, b) in zip(model.layers, weights, strict=True):
        for j, neuron in enumerate(layer.neurons):
            for i, w in enumerate(neuron.w):
                w.data = float(W[i, j])
            neuron.b.data = float(b[j])
    return eager_step(model, X, y)


# --- measuring ------------------------------------------------------------------------------------
def run(engines: dict[str, Step], repeats: int) -> dict[str, list[float]]:
    """Seconds per step, per engine; the engines take turns and must compute the same loss each step."""
    times: dict[str, list[float]] = {name: [] for name in engines}
    for k in range(repeats):
        losses = {}
        for name, step in engines.items():
            gc.collect()
            t0 = time.perf_counter()
            losses[name] = step(k)
            times[name].append(time.perf_counter() - t0)
        first = next(iter(losses.values()))
        for name, loss in losses.items():
            if abs(loss - first) > 1e-9 * abs(first):
                raise AssertionError(f"step {k}: {name} computes loss {loss!r}, not {first!r}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed training steps (default 30)")
    parser.add_argument("--quick", action="store_true", help="a few steps (a smoke test)")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    import torch

    X, y = moons()
    weights = initial_weights()
    engines = {
        "tensor": tensor_step(X, y, weights),
        "torch": torch_step(X, y, weights),
        "value": value_step(X, y, weights),
    }
    warmup = 2  # the first steps pay for imports and caches: run them, do not count them
    times = {name: t[warmup:] for name, t in run(engines, warmup + repeats).items()}

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))

    def ms(name: str) -> str:
        return f"{statistics.median(times[name]) * 1e3:.3f} ms"

    threads = torch.get_num_threads()
    print(f"numpy {np.__version__}, torch {torch.__version__} ({threads} threads), {repeats} timed steps")
    print()
    print("| two-moons training step (100 samples, MLP(2,[16,16,1])) | time (median) | time / Tensor's |")
    print("|---|---|---|")
    print(f"| chainrule.Tensor (numpy, float64) | {ms('tensor')} | 1 |")
    print(
        f"| PyTorch {torch.__version__}, float64 tensors | {ms('torch')} | {ratio('torch', 'tensor'):.2f} |"
    )
    print(f"| chainrule Values (scalar engine) | {ms('value')} | {ratio('value', 'tensor'):.1f} |")


if __name__ == "__main__":
    main()
