"""Compiled training at scale: chainrule's functional step against PyTorch and JAX.

One training step = forward over a batch of 256 samples through MLP(8, [h, h, 1]) (ReLU), summed
squared-error loss, backward, SGD update, for h = 16, 64, 128, 256:

- chainrule: `program.loss_and_grad(theta, *columns)` then `optim.SGD(theta).step(dtheta)`;
- PyTorch (float64, batched `nn.Linear` layers, `torch.optim.SGD`);
- JAX: the same step under `jax.jit` (float64), if jax is installed.

All three start from the same weights and see the same data; the script checks that their losses
agree. Timings are medians of repeats, all engines in one process, so the ratios are comparable on
a noisy machine. By default the script runs twice, in two child processes: with one thread per
library (OMP/OpenBLAS/MKL threads = 1 set before numpy is imported, `torch.set_num_threads(1)`,
XLA's CPU thread pool limited to one), and with each library's default threads.

    python benchmarks/bench_scale.py [--threads 1|default|both] [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", choices=["1", "default", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few repeats (a smoke test)")
    parser.add_argument("--sizes", default=None, help="hidden sizes, comma-separated (default 16,64,128,256)")
    args = parser.parse_args()
    if args.threads == "both":  # each setting in a fresh process: thread pools are fixed at import
        for threads in ("1", "default"):
            command = [sys.executable, __file__, "--threads", threads]
            command += ["--quick"] if args.quick else []
            command += ["--sizes", args.sizes] if args.sizes else []
            result = subprocess.run(command, check=False)
            if result.returncode:
                return result.returncode
        return 0
    if args.threads == "1":
        for name in THREAD_VARIABLES:
            os.environ[name] = "1"
        os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([4, 8] if args.quick else SIZES)
    run(args.threads, sizes, quick=args.quick)  # imports numpy: only now that the threads are set
    return 0


SIZES = [16, 64, 128, 256]
BATCH, NIN, LR = 256, 8, 1e-4


def run(threads: str, sizes: list[int], quick: bool) -> None:
    """Time every engine at every size and print one table (and the float-mode figures)."""
    import numpy as np

    from moons import cpu_model

    torch = _import("torch")
    jax = _import("jax")
    if torch is not None and threads == "1":
        torch.set_num_threads(1)
    print(f"machine: {cpu_model()}; Python {platform.python_version()}, numpy {np.__version__}", end="")
    print(f", torch {torch.__version__ if torch else 'not installed'}", end="")
    print(f", jax {jax.__version__ if jax else 'not installed'}")
    print(f"threads: {_thread_settings(threads, torch)}")
    if jax is None:
        print("jax: not installed")
    print(
        f"training step: MLP({NIN}, [h, h, 1]), ReLU, summed squared error, batch {BATCH}, SGD; "
        f"median ms per step"
    )
    header = "| h | parameters | chainrule ms | PyTorch ms | JAX jit ms | chainrule/PyTorch | chainrule/JAX |"
    print(header)
    print("|" + "---|" * 7)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(BATCH, NIN))
    Y = rng.normal(size=BATCH)
    for h in sizes:
        weights = _init(np, [NIN, h, h, 1], rng)
        steps = {"chainrule": _chainrule_step(np, weights, X, Y)}
        if torch is not None:
            steps["torch"] = _torch_step(torch, weights, X, Y)
        if jax is not None:
            steps["jax"] = _jax_step(jax, weights, X, Y)
        _check_losses(steps)
        repeats = 5 if quick else max(30, int(3000 / h))
        times = _interleaved_medians(steps, repeats)
        n_params = sum(W.size + b.size for W, b in weights)
        ours, pt, jx = times["chainrule"], times.get("torch"), times.get("jax")
        row = [f"{h}", f"{n_params:,}", f"{1000 * ours:.3f}"]
        row += [f"{1000 * pt:.3f}" if pt else "-", f"{1000 * jx:.3f}" if jx else "-"]
        row += [f"{ours / pt:.2f}" if pt else "-", f"{ours / jx:.2f}" if jx else "-"]
        print("| " + " | ".join(row) + " |")


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _thread_settings(threads: str, torch: Any) -> str:
    from threadpoolctl import threadpool_info

    pools = ", ".join(f"{p['internal_api']}={p['num_threads']}" for p in threadpool_info())
    env = " ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in THREAD_VARIABLES)
    text = f"{'one per library' if threads == '1' else 'library defaults'} ({env}; numpy's pools: {pools}"
    if torch is not None:
        text += f"; torch.get_num_threads()={torch.get_num_threads()}"
    xla = os.environ.get("XLA_FLAGS")
    return text + (f"; XLA_FLAGS={xla!r})" if xla else "; XLA default)")


def _init(np: Any, sizes: list[int], rng: Any) -> list[tuple[Any, Any]]:
    """PyTorch's default initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); W is (out, in)."""
    out = []
    for fan_in, fan_out in zip(sizes, sizes[1:], strict=False):
        bound = 1 / np.sqrt(fan_in)
        out.append((rng.uniform(-bound, bound, (fan_out, fan_in)), rng.uniform(-bound, bound, fan_out)))
    return out


def _chainrule_step(np: Any, weights: list[tuple[Any, Any]], X: Any, Y: Any) -> Callable[[], float]:
    """loss_and_grad on the parameter array, then the array SGD step."""
    import chainrule as cr
    from chainrule.nn import MLP

    model = MLP(NIN, [W.shape[0] for W, _ in weights])
    for layer, (W, b) in zip(model.layers, weights, strict=True):
        for neuron, w_row, b_i in zip(layer.neurons, W, b, strict=True):
            for p, w in zip(neuron.w, w_row, strict=True):
                p.data = float(w)
            neuron.b.data = float(b_i)
    xs = [cr.placeholder(f"x{i}", requires_grad=False) for i in range(NIN)]
    y = cr.placeholder("y", requires_grad=False)
    program = cr.compile((model(xs) - y) ** 2, [*xs, y])
    theta = program.parameter_array()
    opt = cr.optim.SGD(theta, lr=LR)
    columns = [np.ascontiguousarray(X[:, i]) for i in range(NIN)]

    def step() -> float:
        total, dtheta = program.loss_and_grad(theta, *columns, Y)
        opt.step(dtheta)
        return total

    return step


def _torch_step(torch: Any, weights: list[tuple[Any, Any]], X: Any, Y: Any) -> Callable[[], float]:
    layers: list[Any] = []
    for W, b in weights:
        linear = torch.nn.Linear(W.shape[1], W.shape[0]).double()
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W))
            linear.bias.copy_(torch.from_numpy(b))
        layers += [linear, torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers[:-1])
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    tx, ty = torch.from_numpy(X), torch.from_numpy(Y)

    def step() -> float:
        opt.zero_grad()
        loss = ((net(tx)[:, 0] - ty) ** 2).sum()
        loss.backward()
        opt.step()
        return loss.item()

    return step


def _jax_step(jax: Any, weights: list[tuple[Any, Any]], X: Any, Y: Any) -> Callable[[], float]:
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in weights]
    tx, ty = jnp.asarray(X), jnp.asarray(Y)

    def loss(params: Any, x: Any, y: Any) -> Any:
        for W, b in params[:-1]:
            x = jax.nn.relu(x @ W.T + b)
        W, b = params[-1]
        return jnp.sum(((x @ W.T + b)[:, 0] - y) ** 2)

    @jax.jit
    def update(params: Any, x: Any, y: Any) -> Any:
        value, grads = jax.value_and_grad(loss)(params, x, y)
        return jax.tree_util.tree_map(lambda p, g: p - LR * g, params, grads), value

    state = [params]

    def step() -> float:
        state[0], value = update(state[0], tx, ty)
        return float(value)  # waits for the result

    return step


def _check_losses(steps: dict[str, Callable[[], float]]) -> None:
    """Three steps of each engine from the same start must give the same losses."""
    losses = {name: [step() for _ in range(3)] for name, step in steps.items()}
    ours = losses["chainrule"]
    for name, theirs in losses.items():
        for a, b in zip(ours, theirs, strict=True):
            if abs(a - b) > 1e-9 * max(1.0, abs(b)):
                raise SystemExit(f"bench_scale: chainrule's losses {ours} differ from {name}'s {theirs}")


def _interleaved_medians(steps: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Median seconds per step of each engine, the engines taking turns (so load spikes hit all)."""
    for step in steps.values():
        for _ in range(3):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    sys.exit(main())
