"""Exported programs against chainrule's own compiled step and hand-written JAX and PyTorch.

One training step of micrograd's two-moons network, MLP(2, [16, 16, 1]) with the SVM loss (mean hinge
+ 1e-4 L2) and an SGD update, at micrograd's 100 samples and at a large batch, run by:

- chainrule compiled: `program.value_and_grad` on the batch (numpy), then the update on `p.data`;
- the same program exported to JAX (`to_jax`, the step under `jax.jit`), on one device and with the
  batch sharded over 4 devices (simulated on the CPU: XLA_FLAGS is set below before JAX starts);
- the same program exported to PyTorch (`to_torch`), autograd then the update on `theta`;
- the same network written by hand in JAX (matrices, `jax.jit`) and in PyTorch (`nn.Linear`).

Every engine starts from the same weights, in this one process; medians of repeats, with the ratio
to chainrule's compiled step. The machine is printed with the figures.

    python benchmarks/bench_export.py [--repeats N] [--large B] [--quick]
"""

from __future__ import annotations

import os

# JAX fixes its device count when it starts: 4 simulated CPU devices for the sharded runs.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import argparse  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import chainrule as cr  # noqa: E402
from bench_compiled import chainrule_model, compiled_step, median_time, torch_step, trace_loss  # noqa: E402
from chainrule.export import to_jax, to_torch  # noqa: E402
from moons import ALPHA, cpu_model, lr, moons, torch_update  # noqa: E402

try:
    import jax
    import jax.numpy as jnp
    import torch
except ImportError:  # pragma: no cover - the comparison is the point of this script
    sys.exit('bench_export.py needs JAX and PyTorch: pip install -e ".[jax,torch]" in a chainrule checkout')


def exported_program(X: np.ndarray, weights: list[float]) -> cr.Program:
    model = chainrule_model(weights)
    loss, inputs = trace_loss(model, len(X))
    return cr.compile(loss, inputs)


def columns(X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    return [np.ascontiguousarray(X[:, 0]), np.ascontiguousarray(X[:, 1]), y]


def jax_exported_step(
    X: np.ndarray, y: np.ndarray, weights: list[float], devices: int = 1
) -> tuple[Callable[[int], None], float]:
    """The exported program under jax.jit: value_and_grad of the batch sum, then SGD. Returns
    (step, seconds of the first call, which traces and compiles)."""
    fn, theta = to_jax(exported_program(X, weights))
    data = [jnp.asarray(c) for c in columns(X, y)]
    if devices > 1:
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        mesh = Mesh(np.array(jax.devices()[:devices]), ("batch",))
        data = [jax.device_put(c, NamedSharding(mesh, PartitionSpec("batch"))) for c in data]

    @jax.jit
    def update(theta: Any, rate: Any, *data: Any) -> tuple[Any, Any]:
        loss, grad = jax.value_and_grad(lambda t: fn(t, *data).sum())(theta)
        return theta - rate * grad, loss

    state = {"theta": theta}

    def step(k: int) -> None:
        state["theta"], loss = update(state["theta"], lr(k), *data)
        loss.block_until_ready()

    t0 = time.perf_counter()
    step(0)
    return step, time.perf_counter() - t0


def jax_hand_step(X: np.ndarray, y: np.ndarray, weights: list[float]) -> Callable[[int], None]:
    """The same network written directly in JAX: three weight matrices, relu, the same loss."""
    params, it = [], iter(weights)
    for nin, nout in ((2, 16), (16, 16), (16, 1)):  # micrograd's order: neuron by neuron, weights then bias
        rows = [[next(it) for _ in range(nin + 1)] for _ in range(nout)]
        W = jnp.asarray([r[:nin] for r in rows])
        b = jnp.asarray([r[nin] for r in rows])
        params.append((W, b))
    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    def loss(params: Any) -> Any:
        h = Xj
        for i, (W, b) in enumerate(params):
            h = h @ W.T + b
            h = jax.nn.relu(h) if i < len(params) - 1 else h
        reg = ALPHA * sum((W * W).sum() + (b * b).sum() for W, b in params)
        return jax.nn.relu(1 - yj * h[:, 0]).mean() + reg

    @jax.jit
    def update(params: Any, rate: Any) -> tuple[Any, Any]:
        value, grads = jax.value_and_grad(loss)(params)
        return jax.tree_util.tree_map(lambda p, g: p - rate * g, params, grads), value

    state = {"params": params}

    def step(k: int) -> None:
        state["params"], value = update(state["params"], lr(k))
        value.block_until_ready()

    return step


def torch_exported_step(X: np.ndarray, y: np.ndarray, weights: list[float]) -> Callable[[int], None]:
    """The exported program as a torch Module: autograd through it, then the same SGD update."""
    module = to_torch(exported_program(X, weights))
    data = [torch.tensor(c) for c in columns(X, y)]

    def step(k: int) -> None:
        torch_update([module.theta], module(*data).sum(), k)

    return step


def check_same_numbers(X: np.ndarray, y: np.ndarray, weights: list[float]) -> float:
    """Largest difference between the parameter gradients of the program and of both exports."""
    program = exported_program(X, weights)
    data = columns(X, y)
    program.value_and_grad(*data)
    want = np.array([p.grad for p in program.parameters])
    fn, theta = to_jax(program)
    g_jax = np.asarray(jax.grad(lambda t: fn(t, *data).sum())(theta))
    module = to_torch(program)
    module(*(torch.tensor(c) for c in data)).sum().backward()
    return float(max(np.abs(g_jax - want).max(), np.abs(module.theta.grad.numpy() - want).max()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50, help="timed steps per engine")
    parser.add_argument("--large", type=int, default=10_000, help="the large batch (a multiple of 4)")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch intra-op threads")
    parser.add_argument("--quick", action="store_true", help="few repeats and small batches (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.large = 3, 200
    # One intra-op thread for PyTorch: with JAX's device threads in the same process on a small
    # machine, PyTorch's spinning OpenMP workers otherwise fight them (steps became 10-100x slower).
    torch.set_num_threads(args.threads)
    random.seed(1337)  # every engine starts from these weights
    weights = [p.data for p in cr.nn.MLP(2, [16, 16, 1]).parameters()]

    print(
        f"machine: {cpu_model()}, Python {platform.python_version()}, numpy {np.__version__}; "
        f"jax {jax.__version__} ({len(jax.devices())} simulated CPU devices); "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    for n in (100, args.large):
        X, y = moons(n)
        diff = check_same_numbers(X, y, weights)
        print(f"\nexported vs program gradients ({n} samples): max |difference| = {diff:.1e}")
        step_c, _ = compiled_step(X, y, weights)
        rows: list[tuple[str, float, str]] = [
            ("chainrule compiled (numpy batch)", median_time(step_c, args.repeats), "")
        ]
        step, first = jax_exported_step(X, y, weights)
        rows.append(
            ("exported to JAX, jit, 1 device", median_time(step, args.repeats), f"first call {first:.1f} s")
        )
        step, first = jax_exported_step(X, y, weights, devices=4)
        rows.append(
            (
                "exported to JAX, jit, sharded over 4 devices",
                median_time(step, args.repeats),
                f"first call {first:.1f} s",
            )
        )
        rows.append(
            (
                "exported to PyTorch (autograd)",
                median_time(torch_exported_step(X, y, weights), args.repeats),
                "",
            )
        )
        rows.append(("hand-written JAX, jit", median_time(jax_hand_step(X, y, weights), args.repeats), ""))
        rows.append(
            ("hand-written PyTorch (nn.Linear)", median_time(torch_step(X, y, weights), args.repeats), "")
        )
        base = rows[0][1]
        title = f"two-moons training step, {n} samples, MLP(2,[16,16,1])"
        print(f"\n| {title} | median | vs chainrule compiled | note |")
        print("|---|---|---|---|")
        for name, t, note in rows:
            ratio = (
                "1x" if t == base else (f"{base / t:.2f}x faster" if t < base else f"{t / base:.2f}x slower")
            )
            print(f"| {name} | {t * 1e3:.3f} ms | {ratio} | {note} |")


if __name__ == "__main__":
    main()
