"""Float mode at scale: how long a large Program takes to get ready and to run on plain floats.

For programs of about 10^3, 10^4 and 10^5 instructions, of two shapes (a long chain mixing ops,
and MLP(8, [h, h, 1]) with a squared error, which is wide), it prints: `compile` time, the first
`program(...)` (which prepares forward code), the first `value_and_grad(...)` (which prepares the
backward), the steady time of each afterwards (best of 15 runs), and the peak memory growth of the
whole (compile included). Every
measurement runs in a fresh subprocess, so that the peak (`ru_maxrss`) is this program's alone.
Programs above `float_mode.GENERATE_MAX_INSTRUCTIONS` run on the interpreter (`float_interpreter`),
smaller ones as generated code; rows with the other runner forced show what the choice trades.

    python benchmarks/bench_float_scale.py [--quick] [--all]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def build(shape: str, n: int) -> tuple[object, list[object], list[float]]:
    """A graph of about `n` instructions on placeholders: (output, inputs, a float per input)."""
    import random

    import chainrule as cr
    from chainrule.nn import MLP

    if shape == "chain":  # 4 kinds of link, 3 instructions each on average, 100 parameters in turn
        x = cr.placeholder("x")
        ws = [cr.Value(0.5 + 0.01 * k) for k in range(100)]
        v = x
        for k in range(n // 3):
            w = ws[k % 100]
            match k % 4:
                case 0:
                    v = (v * w + 0.1).tanh()
                case 1:
                    v = (v * v + 1.0).log() - 0.25
                case 2:
                    v = v.sigmoid() * w
                case 3:
                    v = (v.relu() + 1.0).sqrt()
        return v, [x], [0.3]
    # MLP(8, [h, h, 1]): h^2 + 12 h instructions or so
    h = round((-12 + (144 + 4 * n) ** 0.5) / 2)
    random.seed(1)
    model = MLP(8, [h, h, 1])
    xs = [cr.placeholder(f"x{i}") for i in range(8)]
    y = cr.placeholder("y", requires_grad=False)
    loss = (model(xs) - y) ** 2
    return loss, [*xs, y], [0.1 * i - 0.3 for i in range(8)] + [0.5]


def measure(shape: str, n: int, runner: str) -> dict[str, object]:
    """One row, measured in this process (run by `main` in a subprocess of its own)."""
    import gc
    import resource

    import chainrule as cr
    from chainrule.compiler import float_mode

    if runner == "generated":
        float_mode.GENERATE_MAX_INSTRUCTIONS = 10**9
    elif runner == "interpreted":
        float_mode.GENERATE_MAX_INSTRUCTIONS = -1
    out, inputs, floats = build(shape, n)
    gc.collect()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux
    t0 = time.perf_counter()
    program = cr.compile(out, inputs)
    t1 = time.perf_counter()
    program(*floats)  # prepares forward only
    t2 = time.perf_counter()
    program.value_and_grad(*floats)  # prepares the backward
    t3 = time.perf_counter()
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
    steady = {}  # the best of 15 runs: on a shared machine the least disturbed one
    for name, run in [("forward", program), ("value_and_grad", program.value_and_grad)]:
        times = []
        for _ in range(15):
            s = time.perf_counter()
            run(*floats)
            times.append(time.perf_counter() - s)
        steady[name] = min(times)
    return {
        "instructions": len(program),
        "runner": type(program._float_code()).__name__,
        "compile": t1 - t0,
        "first_forward": t2 - t1,
        "first_vag": t3 - t2,
        "forward": steady["forward"],
        "vag": steady["value_and_grad"],
        "peak_mb": peak,
    }


def run_row(shape: str, n: int, runner: str) -> dict[str, object]:
    code = (
        f"import json, sys; sys.path[:0] = [{str(SRC)!r}, {str(Path(__file__).parent)!r}]; "
        f"from bench_float_scale import measure; print(json.dumps(measure({shape!r}, {n}, {runner!r})))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise SystemExit(f"{shape} {n} {runner} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small programs only (a smoke test)")
    parser.add_argument("--all", action="store_true", help="also generated code at 10^5 (slow: a minute)")
    args = parser.parse_args()
    sys.path.insert(0, str(SRC))
    import chainrule
    from chainrule.compiler import float_mode

    sizes = [300, 3_000] if args.quick else [1_000, 10_000, 100_000]
    print(
        f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"chainrule {chainrule.__version__}; generated code up to "
        f"{float_mode.GENERATE_MAX_INSTRUCTIONS:,} instructions, interpreted above"
    )
    print()
    print(
        "| graph | instructions | runner | compile s | first forward s | first value_and_grad s "
        "| forward ms | value_and_grad ms | peak memory growth MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    per_instruction: dict[tuple[str, str], list[str]] = {}
    for shape in ("chain", "mlp"):
        for n in sizes:
            rows = [run_row(shape, n, "auto")]
            if n < sizes[-1] or args.all or args.quick:  # the other runner (generating at 10^5: a minute)
                other = "interpreted" if rows[0]["runner"] == "FloatCode" else "generated"
                rows.append(run_row(shape, n, other))
            for row in rows:
                count, prepare = row["instructions"], row["first_forward"] + row["first_vag"]
                per_instruction.setdefault((shape, row["runner"]), []).append(
                    f"{count:,}: {row['compile'] / count * 1e6:.1f} / {prepare / count * 1e6:.1f}"
                )
                print(
                    f"| {shape} | {row['instructions']:,} | {row['runner']} | {row['compile']:.2f} "
                    f"| {row['first_forward']:.2f} | {row['first_vag']:.2f} | {row['forward'] * 1e3:.1f} "
                    f"| {row['vag'] * 1e3:.1f} | {row['peak_mb']:.0f} |",
                    flush=True,
                )
    print()
    print("us per instruction, compile / first forward + first value_and_grad (linear if they stay flat):")
    for (shape, runner), cells in per_instruction.items():
        print(f"  {shape}, {runner}: " + "; ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
