"""The benchmarks stay runnable: each script runs end to end in its quickest mode (no timing asserted:
speed is judged from the figures they print, never by a test)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import need

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def test_shared_eager_step_trains() -> None:
    need("sklearn")
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from chainrule.nn import MLP
        from moons import eager_step, moons

        X, y = moons(20)
        step = eager_step(MLP(2, [4, 1]), X, y)
        losses = [step(k) for k in range(30)]
    finally:
        sys.path.remove(str(BENCHMARKS))
    assert losses[-1] < losses[0]


@pytest.mark.slow
def test_bench_tensor_runs() -> None:
    need("torch")
    need("sklearn")
    assert "chainrule.Tensor (numpy, float64)" in run("bench_tensor.py", "--quick")


@pytest.mark.slow
def test_bench_compiled_runs() -> None:
    need("torch")
    need("micrograd")
    out = run("bench_compiled.py", "--quick")
    assert "chainrule compiled, functional: loss_and_grad" in out
    assert "value_and_grad + a loop over parameter Values" in out
    assert "micrograd 0.1.0 eager" in out


@pytest.mark.slow
def test_bench_scale_runs() -> None:
    need("torch")
    need("threadpoolctl")
    out = run("bench_scale.py", "--quick", "--threads", "1")
    assert "threads: one per library" in out and "torch.get_num_threads()=1" in out
    assert "| 4 | " in out and "| 8 | " in out  # one table row per size
    assert "jax: not installed" in out or "JAX jit ms" in out


@pytest.mark.slow
def test_bench_float_scale_runs() -> None:
    out = run("bench_float_scale.py", "--quick")
    # both float-mode runners, at each size, for each shape, with the figures per instruction
    for shape in ("chain", "mlp"):
        for runner in ("FloatCode", "FloatInterpreter"):
            assert out.count(f"| {shape} | ") == 4 and f"| {runner} | " in out
    assert "us per instruction" in out


def test_bench_attributes_runs_and_the_three_layouts_take_what_they_claim() -> None:
    out = run("bench_attributes.py")
    assert [line.split()[0] for line in out.splitlines()[1:]] == [
        "PlainSlots",
        "SlotsAndDict",
        "SlotsAndHook",
    ]
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import bench_attributes as bench
    finally:
        sys.path.remove(str(BENCHMARKS))
    plain, with_dict, with_hook = (
        bench.make(cls, 1)[0] for cls in (bench.PlainSlots, bench.SlotsAndDict, bench.SlotsAndHook)
    )
    with pytest.raises(AttributeError):
        plain._vis_color = "red"
    for node in (with_dict, with_hook):
        node._vis_color = "red"
        assert node._vis_color == "red" and node._data == 1.0
