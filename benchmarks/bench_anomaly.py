"""What `chainrule.detect_anomaly()` costs: nothing when off, a constant factor when on.

Runs the same forward + backward workload in three fresh interpreters:

- never:  chainrule.anomaly was never imported;
- off:    it was imported and a detect_anomaly() block was entered and left before timing;
- on:     the workload runs inside detect_anomaly().

Usage: python benchmarks/bench_anomaly.py [--repeat 7] [--steps 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import timeit
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def workload(steps: int) -> int:
    """`steps` forward + backward passes of a small tanh network on a fixed batch; returns graph size."""
    from chainrule import Value

    params = [Value(0.01 * ((7 * i) % 13 - 6)) for i in range(4 * 16 + 16 + 16 + 1)]
    batch = [(0.1 * k, -0.05 * k, 0.3, 1.0 if k % 2 else -1.0) for k in range(16)]
    for _ in range(steps):
        loss = Value(0.0)
        for x0, x1, x2, target in batch:
            hidden = []
            for j in range(16):
                w = params[4 * j : 4 * j + 4]
                hidden.append((w[0] * x0 + w[1] * x1 + w[2] * x2 + w[3]).tanh())
            out = params[-1]
            for j, h in enumerate(hidden):
                out = out + params[64 + j] * h
            loss = loss + (out - target) ** 2
        for p in params:
            p.grad = 0.0
        loss.backward()
    from chainrule.engine import topological_order

    return len(topological_order(loss))


def run_mode(mode: str, repeat: int, steps: int) -> dict[str, object]:
    """Time the workload in this process, set up for `mode`; return the best time per step."""
    import chainrule.engine as engine

    originals = (engine.mode.STATE.observer, engine.fast_sweep.sweep_floats, engine.chain_rule.sweep)
    if mode in ("off", "on"):
        from chainrule import detect_anomaly

        with detect_anomaly():
            pass
    untouched = (
        engine.mode.STATE.observer,
        engine.fast_sweep.sweep_floats,
        engine.chain_rule.sweep,
    ) == originals
    if mode == "on":
        from chainrule import detect_anomaly

        with detect_anomaly():
            times = timeit.repeat(lambda: workload(steps), number=1, repeat=repeat)
    else:
        times = timeit.repeat(lambda: workload(steps), number=1, repeat=repeat)
    return {
        "mode": mode,
        "nodes": workload(1),
        "seconds_per_step": min(times) / steps,
        "engine_untouched": untouched,
        "anomaly_imported": "chainrule.anomaly" in sys.modules,
    }


def main() -> None:
    """Run every mode in its own interpreter and print a table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=7, help="timing repeats per mode (best is kept)")
    parser.add_argument("--steps", type=int, default=20, help="training steps per repeat")
    parser.add_argument("--rounds", type=int, default=3, help="fresh interpreters per mode (best is kept)")
    parser.add_argument("--mode", choices=["never", "off", "on"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.mode:  # child process: one mode, result as JSON on stdout
        sys.path.insert(0, str(SRC))
        print(json.dumps(run_mode(args.mode, args.repeat, args.steps)))
        return

    # Modes alternate over several rounds (each in a fresh interpreter) and the best round counts,
    # so that a busy machine slowing one process down does not decide the comparison.
    results: dict[str, dict] = {}
    for _ in range(args.rounds):
        for mode in ("never", "off", "on"):
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--mode",
                    mode,
                    "--repeat",
                    str(args.repeat),
                    "--steps",
                    str(args.steps),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            r = json.loads(child.stdout)
            if mode not in results or r["seconds_per_step"] < results[mode]["seconds_per_step"]:
                results[mode] = r

    base = results["never"]["seconds_per_step"]
    nodes = results["never"]["nodes"]
    print(
        f"detect_anomaly cost, best of {args.rounds} x {args.repeat} runs of {args.steps} steps "
        f"(forward + backward, {nodes} nodes)"
    )
    print(f"{'mode':<34}{'ms/step':>10}{'vs never':>10}")
    labels = {
        "never": "never imported",
        "off": "imported, block entered and left",
        "on": "inside detect_anomaly()",
    }
    for mode, label in labels.items():
        r = results[mode]
        ms = 1000 * r["seconds_per_step"]
        print(f"{label:<34}{ms:>10.2f}{r['seconds_per_step'] / base:>9.2f}x")
    off = results["off"]
    print(
        f"after the block the engine runs its original functions: {off['engine_untouched']} "
        f"(chainrule.anomaly imported: {off['anomaly_imported']})"
    )


if __name__ == "__main__":
    main()
