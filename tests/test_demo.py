"""`chainrule demo` end to end: exit codes, printed accuracy, pictures, model file, reproducibility."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

import chainrule
from chainrule import cli, demo
from chainrule.nn import MLP
from conftest import need

PNG = b"\x89PNG\r\n\x1a\n"
QUICK = ["--steps", "3", "--samples", "24", "--hidden", "4,4"]


@pytest.fixture(autouse=True)
def _keep_random_state():
    # The demo seeds the global `random` (as micrograd's does); other tests keep their sequence.
    state = random.getstate()
    yield
    random.setstate(state)


@pytest.fixture(autouse=True)
def _extras():
    for name in ("numpy", "sklearn", "matplotlib", "tqdm"):
        need(name)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["demo", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == PNG


def test_demo_end_to_end_as_a_command(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "chainrule", "demo", *QUICK, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert re.fullmatch(r"accuracy: \d{1,3}\.\d%", lines[-1])
    assert "two moons: 24 samples, MLP(2, [4, 4, 1]) with 37 parameters, SGD, eager engine" in proc.stdout
    assert "training" in proc.stderr  # the tqdm progress bar
    for name in ("decision_boundary.png", "training_curves.png"):
        assert _is_png(out / name), name
    svg, dot = out / "neuron.svg", out / "neuron.dot"
    assert svg.exists() or dot.exists()
    if svg.exists():
        assert "<svg" in svg.read_text()[:2000] and "grad" in svg.read_text()
    else:
        assert dot.read_text().startswith("digraph")
    page = (out / "explorer.html").read_text(encoding="utf-8")  # the first neuron, step by step
    assert page.startswith("<!DOCTYPE html>") and "ReLU" in page
    assert f"{out / 'explorer.html'}" in proc.stdout
    model = chainrule.load(out / "model.json")
    assert isinstance(model, MLP) and model.config() == {"nin": 2, "nouts": [4, 4, 1]}


def test_quiet_prints_only_the_accuracy(tmp_path, capsys):
    code, out, err = _run(capsys, *QUICK, "--out", str(tmp_path), "--quiet")
    assert code == 0
    assert re.fullmatch(r"accuracy: \d{1,3}\.\d%\n", out)
    assert "training" not in err


def test_same_seed_same_model_other_seed_other_model(tmp_path, capsys):
    runs = {}
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        code, out, _ = _run(capsys, *QUICK, "--seed", seed, "--out", str(tmp_path / name), "--quiet")
        assert code == 0
        runs[name] = ((tmp_path / name / "model.json").read_bytes(), out)
    assert runs["a"] == runs["b"]
    assert runs["a"][0] != runs["c"][0]


def test_demo_starts_from_micrograds_numbers():
    # micrograd's demo prints "step 0 loss 0.8958441028683222, accuracy 50.0%" for seed 1337.
    history = demo.History()
    args = demo.argparse.Namespace(samples=100, seed=1337)
    random.seed(1337)
    task = demo._moons_task(args, [16, 16], need("numpy"))
    opt = demo._optimizer(demo.argparse.Namespace(optimizer="sgd"), task.model, 1.0, 100)
    demo._train_eager(task, opt, 1, _Bar(range(1)), need("numpy"), history)
    assert history.loss == [pytest.approx(0.8958441028683222, rel=1e-12)]
    assert history.accuracy == [0.5]


class _Bar:
    """Stands in for a tqdm bar."""

    def __init__(self, it):
        self.it = it

    def __iter__(self):
        return iter(self.it)

    def set_postfix(self, **kwargs):
        pass


def test_adam_and_options(tmp_path, capsys):
    code, out, _ = _run(capsys, *QUICK, "--optimizer", "adam", "--lr", "0.02", "--out", str(tmp_path))
    assert code == 0
    assert ", Adam, eager engine, seed 1337" in out
    assert "trained 3 steps in" in out


def test_digits_task(tmp_path, capsys):
    code, out, _ = _run(
        capsys, "--task", "digits", "--steps", "2", "--samples", "20", "--hidden", "3", "--out", str(tmp_path)
    )
    assert code == 0
    assert re.search(r"^accuracy: \d{1,3}\.\d% on 500 held-out digits$", out, re.M)
    assert re.search(r"trained 2 steps in [\d.]+ s \([\d.]+ ms/step", out)
    assert _is_png(tmp_path / "predictions.png") and _is_png(tmp_path / "training_curves.png")
    assert chainrule.load(tmp_path / "model.json").config() == {"nin": 64, "nouts": [3, 10]}


def test_compiled_engine_trains_exactly_like_eager(tmp_path, capsys):
    need("chainrule.compiler")
    argv = ["--steps", "4", "--samples", "30", "--hidden", "5,5"]
    assert _run(capsys, *argv, "--out", str(tmp_path / "eager"), "--quiet")[0] == 0
    code, out, _ = _run(capsys, *argv, "--engine", "compiled", "--out", str(tmp_path / "compiled"))
    assert code == 0
    assert re.search(r"the eager engine takes [\d.]+ ms/step: compiled is [\d.]+x faster", out)
    eager = chainrule.load(tmp_path / "eager" / "model.json").parameters()
    compiled = chainrule.load(tmp_path / "compiled" / "model.json").parameters()
    assert [p.data for p in compiled] == pytest.approx([p.data for p in eager], rel=1e-9, abs=1e-12)


def test_compiled_digits(tmp_path, capsys):
    need("chainrule.compiler")
    argv = ["--task", "digits", "--steps", "2", "--samples", "20", "--hidden", "3", "--engine", "compiled"]
    code, out, _ = _run(capsys, *argv, "--out", str(tmp_path))
    assert code == 0 and "on 500 held-out digits" in out


def test_compiled_engine_missing_is_a_clear_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo, "_compiler", lambda: None)
    code, out, err = _run(capsys, *QUICK, "--engine", "compiled", "--out", str(tmp_path))
    assert code == 2
    assert "--engine compiled needs chainrule.compiler" in err and "Traceback" not in err
    assert out == ""


@pytest.mark.parametrize("missing", ["sklearn", "matplotlib", "tqdm"])
def test_missing_extra_gives_the_install_hint(tmp_path, capsys, monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import missing` raise ImportError
    code, out, err = _run(capsys, *QUICK, "--out", str(tmp_path))
    assert code == 1
    package = {"sklearn": "scikit-learn"}.get(missing, missing)  # the name pip knows it by
    assert f"needs {missing}, which is not installed: pip install {package} " in err
    assert "pip install numpy scikit-learn matplotlib tqdm" in err
    assert "Traceback" not in err and out == ""


def test_unusable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = _run(capsys, *QUICK, "--out", str(blocker / "sub"))
    assert code == 1 and "cannot use" in err and "as the output folder" in err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--hidden", "16,0"], "expected layer sizes separated by commas"),
        (["--steps", "0"], "expected a positive integer, got '0'"),
        (["--lr", "-1"], "expected a positive number, got '-1'"),
        (["--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
        (["--samples", "1"], "--samples must be at least 2"),
        (["--task", "digits", "--samples", "5"], "--samples must be at least 10 for digits"),
    ],
)
def test_bad_options(tmp_path, capsys, argv, words):
    try:
        code = cli.main(["demo", *argv, "--out", str(tmp_path)])
    except SystemExit as exc:  # argparse reports usage errors by exiting with 2
        code = exc.code
    assert code == 2
    assert words in capsys.readouterr().err


def test_divergence_is_reported_not_a_traceback(tmp_path, capsys):
    code, out, err = _run(
        capsys, "--steps", "3", "--samples", "10", "--hidden", "3", "--lr", "1e300", "--out", str(tmp_path)
    )
    assert code == 1
    assert "training diverged" in err and "try a smaller --lr" in err and out == ""
    assert not (tmp_path / "model.json").exists()


@pytest.mark.slow
def test_full_demo_reaches_100_percent(tmp_path, capsys):
    code, out, _ = _run(capsys, "--out", str(tmp_path))
    assert code == 0
    assert out.strip().splitlines()[-1] == "accuracy: 100.0%"
    assert "trained 100 steps" in out
    model = chainrule.load(tmp_path / "model.json")
    assert json.loads((tmp_path / "model.json").read_text())["config"] == {"nin": 2, "nouts": [16, 16, 1]}
    assert len(model.parameters()) == 337


def test_training_doc_examples_run(tmp_path, monkeypatch):
    # Every ```python block of docs/training.md runs as written (in a scratch folder: one saves a file).
    doc = Path(__file__).resolve().parents[1] / "docs" / "training.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    for i, block in enumerate(blocks):
        exec(compile(block, f"{doc.name} block {i}", "exec"), {})
    assert chainrule.load(tmp_path / "model.json").config() == {"nin": 2, "nouts": [4, 1]}
