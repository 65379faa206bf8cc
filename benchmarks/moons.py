"""What the two-moons benchmarks share: micrograd's data, schedule and L2 strength, the eager
chainrule training step they all compare against, and the machine description for the record."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import chainrule as cr  # noqa: E402

ALPHA = 1e-4  # micrograd's L2 strength


def moons(n: int = 100, seed: int = 1) -> tuple[Any, Any]:
    """micrograd's data: sklearn's make_moons(n, noise=0.1), labels as -1 / +1 (float64 arrays)."""
    try:
        import numpy as np
        from sklearn.datasets import make_moons
    except ImportError:
        sys.exit("the two-moons benchmarks need numpy and scikit-learn: pip install numpy scikit-learn")
    X, y = make_moons(n_samples=n, noise=0.1, random_state=seed)
    return X.astype(np.float64), (y * 2 - 1).astype(np.float64)


def lr(k: int) -> float:
    """micrograd's demo schedule: the learning rate at step k, from 1.0 down to 0.1 over 100 steps."""
    return 1.0 - 0.9 * (k % 100) / 100


def eager_step(model: Any, X: Any, y: Any) -> Callable[[int], float]:
    """chainrule's eager Values: step(k) runs one demo training step on `model` and returns the loss."""
    params = model.parameters()
    rows, labels = X.tolist(), y.tolist()

    def step(k: int) -> float:
        scores = [model([cr.Value(a), cr.Value(b)]) for a, b in rows]
        losses = [(1 + -yi * si).relu() for yi, si in zip(labels, scores, strict=True)]
        total = cr.sum(losses) * (1.0 / len(losses)) + ALPHA * cr.sum([p * p for p in params])
        model.zero_grad()
        total.backward()
        for p in params:
            p.data -= lr(k) * p.grad
        return total.data

    return step


def torch_update(params: list[Any], total: Any, k: int) -> None:
    """PyTorch's half of a step: fresh gradients of `total`, then the same SGD update as the others."""
    import torch

    for p in params:
        p.grad = None
    total.backward()
    with torch.no_grad():
        for p in params:
            p -= lr(k) * p.grad


def cpu_model() -> str:
    """The CPU's model name (from lscpu where there is one) and the number of cores."""
    model = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next(
            line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")
        )
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores"
