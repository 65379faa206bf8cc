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


# --- every number the pictures show, against a computation that does not use chainrule -------------
def _numpy_demo(np, samples: int, seed: int, hidden: list[int], steps: int, lr: float) -> dict:
    """micrograd's demo written out in numpy by hand: the same data, initial weights and SGD steps.

    Returns the loss and accuracy of each step (before its update, as the demo records them) and
    the trained weights as [(W, b)] per layer, W of shape (nout, nin).
    """
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=samples, noise=0.1, random_state=seed)
    y = (y * 2 - 1).astype(float)
    random.seed(seed)  # MLP draws each neuron's weights from random.uniform(-1, 1); biases start at 0
    sizes = [2, *hidden, 1]
    layers = []
    for nin, nout in zip(sizes, sizes[1:], strict=False):
        W = np.array([[random.uniform(-1, 1) for _ in range(nin)] for _ in range(nout)])
        layers.append((W, np.zeros(nout)))
    losses, accuracies = [], []
    for k in range(steps):
        acts, pre = [X], []
        for i, (W, b) in enumerate(layers):
            z = acts[-1] @ W.T + b
            pre.append(z)
            acts.append(z if i == len(layers) - 1 else np.maximum(z, 0.0))
        scores = acts[-1][:, 0]
        margins = 1.0 - y * scores
        penalty = sum(float(np.sum(W * W) + np.sum(b * b)) for W, b in layers)
        losses.append(float(np.mean(np.maximum(margins, 0.0)) + demo.ALPHA * penalty))
        accuracies.append(float(np.mean((scores > 0) == (y > 0))))
        # backward by hand: d(mean relu(1 - y s))/ds, then through each layer
        grad = (-(y * (margins > 0)) / len(y))[:, None]
        updates = []
        for i in reversed(range(len(layers))):
            W, b = layers[i]
            if i != len(layers) - 1:
                grad = grad * (pre[i] > 0)
            updates.append((grad.T @ acts[i] + 2 * demo.ALPHA * W, grad.sum(axis=0) + 2 * demo.ALPHA * b))
            grad = grad @ W
        rate = lr * (1.0 - 0.9 * k / steps)
        layers = [
            (W - rate * dW, b - rate * db) for (W, b), (dW, db) in zip(layers, reversed(updates), strict=True)
        ]
    return {"X": X, "y": y, "loss": losses, "accuracy": accuracies, "layers": layers}


def _records(svg: str) -> list[tuple[str, str, str]]:
    """(label, data text, grad text) of every value record drawn in an SVG of a graph."""
    import html

    found = []
    for group in re.findall(r'<g id="[^"]+" class="node">(.*?)</g>', svg, re.S):
        texts = [html.unescape(t).strip() for t in re.findall(r"<text[^>]*>([^<]*)</text>", group)]
        if any(t.startswith("data ") for t in texts):
            label, data, grad = texts
            found.append((label, data, grad))
    return found


def _neuron_by_hand(np, reference: dict) -> list[tuple[str, float, float]]:
    """(name, value, d(out)/d(value)) for every value of the first neuron on its first active sample."""
    W, b = reference["layers"][0]
    w, bias = W[0], b[0]
    x = next(row for row in reference["X"] if float(row @ w + bias) > 0)
    z = float(bias + w[0] * x[0] + w[1] * x[1])
    # out = relu(b + w0 x0 + w1 x1) with out > 0: d(out)/d(w_i) = x_i, d(out)/d(x_i) = w_i, the rest 1
    return [
        ("L0.n0.b", bias, 1.0),
        *[(f"L0.n0.w{i}", w[i], x[i]) for i in range(2)],
        *[(f"x{i}", x[i], w[i]) for i in range(2)],
        *[("", w[i] * x[i], 1.0) for i in range(2)],  # the products
        ("", z, 1.0),  # the sum
        ("out", z, 1.0),
    ]


def test_every_number_of_every_demo_picture_is_right(tmp_path, capsys, monkeypatch):
    np = need("numpy")
    figures = []
    real_figure = demo._figure
    monkeypatch.setattr(demo, "_figure", lambda size: figures.append(real_figure(size)) or figures[-1])
    code, out, _ = _run(capsys, *QUICK, "--out", str(tmp_path))
    assert code == 0
    reference = _numpy_demo(np, samples=24, seed=1337, hidden=[4, 4], steps=3, lr=1.0)

    # training_curves.png: the loss and accuracy of each step
    curves, boundary = figures  # drawn in this order
    loss_axes, accuracy_axes = curves.axes
    assert list(loss_axes.lines[0].get_ydata()) == pytest.approx(reference["loss"], rel=1e-12)
    assert list(accuracy_axes.lines[0].get_ydata()) == pytest.approx([100 * a for a in reference["accuracy"]])
    assert f"final loss {reference['loss'][-1]:.4f}" in out

    # decision_boundary.png: its title's accuracy is the trained model's, as printed
    acts = reference["X"]
    for i, (W, b) in enumerate(reference["layers"]):
        acts = acts @ W.T + b if i == len(reference["layers"]) - 1 else np.maximum(acts @ W.T + b, 0.0)
    accuracy = float(np.mean((acts[:, 0] > 0) == (reference["y"] > 0)))
    assert boundary.axes[0].get_title() == f"chainrule MLP(2, [4, 4, 1]): {accuracy:.1%} training accuracy"
    assert out.strip().splitlines()[-1] == f"accuracy: {100 * accuracy:.1f}%"

    # neuron.svg and the graph on explorer.html: the neuron's own d(out)/d(value), nothing added from
    # training (the issue: w1's grad said 0.8968 where d(out)/dw1 = x1 = 0.8967)
    expected = sorted(
        (name, f"data {v:.4f}", f"grad {g:.4f}") for name, v, g in _neuron_by_hand(np, reference)
    )
    assert sorted(_records((tmp_path / "neuron.svg").read_text())) == expected
    page = (tmp_path / "explorer.html").read_text(encoding="utf-8")
    drawn = sorted(("" if re.fullmatch(r"n\d+", name) else name, d, g) for name, d, g in _records(page))
    assert drawn == expected  # the page names its unlabelled values n3, n6, ...

    # explorer.html's step-by-step records: every value's exact data and final gradient
    data = json.loads(
        re.search(r'<script type="application/json" id="cr-data">(.*?)</script>', page, re.S)[1]
    )
    shown = sorted(
        (
            node["name"] if not re.fullmatch(r"n\d+", node["name"]) else "",
            float(node["dataExact"]),
            float(node["grads"][-1][3]),
        )
        for node in data["nodes"]
    )
    by_hand = sorted(_neuron_by_hand(np, reference))
    assert [name for name, _, _ in shown] == [name for name, _, _ in by_hand]
    for (_, value, grad), (_, v, g) in zip(shown, by_hand, strict=True):
        assert value == pytest.approx(v, rel=1e-12, abs=1e-15) and grad == pytest.approx(
            g, rel=1e-12, abs=1e-15
        )


# --- divergence ends the training at once ---------------------------------------------------------
@pytest.mark.parametrize("engine", ["eager", "compiled"])
def test_divergence_ends_training_at_once(tmp_path, capsys, monkeypatch, engine):
    # the issue: `--lr 100` ran all its steps and exited 0 with a loss of 3.9e29 and 50% accuracy
    checked = []
    real_check = demo.check_divergence
    monkeypatch.setattr(
        demo, "check_divergence", lambda losses: checked.append(len(losses)) or real_check(losses)
    )
    argv = ["--samples", "24", "--hidden", "4,4", "--lr", "100", "--engine", engine]
    code, out, err = _run(capsys, *argv, "--out", str(tmp_path))
    assert code == 1 and out == ""
    match = re.search(
        r"chainrule demo: training diverged at step (\d+) \(the loss grew from ([\d.]+) to (\S+), "
        r"more than 1000x its start\): try a smaller --lr\n",
        err,
    )
    assert match, err
    step = int(match[1])
    assert 1 <= step < 10 and float(match[3]) > 1000 * max(float(match[2]), 1.0)
    assert checked[-1] == step + 1 < 100  # no step ran after it (the default is 100 steps)
    assert "Traceback" not in err and not (tmp_path / "model.json").exists()


def test_check_divergence():
    demo.check_divergence([0.9, 1.7, 120.0, 899.0])  # high bumps of a rate that still converges
    demo.check_divergence([1e-3, 999.0])  # a small start is measured against 1.0
    with pytest.raises(
        demo.DemoError, match=r"^training diverged at step 2 \(the loss grew from 0.9 to 1e\+04"
    ):
        demo.check_divergence([0.9, 1.0, 1e4])
    with pytest.raises(
        demo.DemoError, match=r"^training diverged at step 1 \(the loss is nan\): try a smaller"
    ):
        demo.check_divergence([0.9, float("nan")])
    with pytest.raises(demo.DemoError, match=r"^training diverged at step 0 \(the loss is inf\)"):
        demo.check_divergence([float("inf")])


def test_every_number_of_the_digits_pictures_is_right(tmp_path, capsys, monkeypatch):
    # predictions.png: each held-out digit's title is the trained model's answer, computed here in
    # numpy from model.json; training_curves.png: the curve ends at the printed final loss
    np = need("numpy")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    figures = []
    real_figure = demo._figure
    monkeypatch.setattr(demo, "_figure", lambda size: figures.append(real_figure(size)) or figures[-1])
    argv = ["--task", "digits", "--steps", "3", "--samples", "40", "--hidden", "5"]
    code, out, _ = _run(capsys, *argv, "--out", str(tmp_path))
    assert code == 0
    curves, predictions = figures

    digits = load_digits()
    X, y = digits.data / 16.0, digits.target
    _, X_test, _, y_test = train_test_split(X, y, train_size=40, test_size=500, random_state=1337, stratify=y)
    state = json.loads((tmp_path / "model.json").read_text())["parameters"]
    acts = X_test
    for i, nout in enumerate([5, 10]):
        W = np.array([state[f"layers.{i}.neurons.{j}.w"] for j in range(nout)])
        b = np.array([state[f"layers.{i}.neurons.{j}.b"] for j in range(nout)])
        acts = acts @ W.T + b if i == 1 else np.maximum(acts @ W.T + b, 0.0)
    predicted = np.argmax(acts, axis=1)
    titles = [ax.get_title() for ax in predictions.axes]
    assert titles == [
        f"{p}" if p == t else f"{p} (is {t})" for p, t in zip(predicted[:24], y_test[:24], strict=True)
    ]
    assert (
        out.strip().splitlines()[-1]
        == f"accuracy: {100 * np.mean(predicted == y_test):.1f}% on 500 held-out digits"
    )
    loss_axes, _ = curves.axes
    assert f"final loss {loss_axes.lines[0].get_ydata()[-1]:.4f}" in out
    assert len(loss_axes.lines[0].get_ydata()) == 3
