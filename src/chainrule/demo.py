"""`chainrule demo`: train a small neural network on the scalar engine and draw what it learned.

The default task is micrograd's demo: an MLP(2, [16, 16, 1]) learns to separate scikit-learn's two
moons with the max-margin loss, L2 regularisation and SGD whose learning rate decays from 1.0 to 0.1.
With the same seed it starts from micrograd's very numbers and reaches 100% training accuracy.
`--task digits` classifies scikit-learn's 8x8 handwritten digits with softmax cross-entropy: a real
(if small) problem that shows how fast the scalar engine is, and what `--engine compiled` changes.

The demo needs scikit-learn, matplotlib, tqdm and numpy (`pip install scikit-learn matplotlib tqdm
numpy`, or the `demo` extra of a checkout: `pip install -e '.[demo]'`). They are imported lazily,
so `chainrule --help` works without them.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engine import Value, no_grad, placeholder
from .losses import cross_entropy, l2_regularization, svm_loss
from .nn import MLP

# Each hint is a command that works as written: the pip name of every module the demo imports.
EXTRAS = {"numpy": "numpy", "sklearn": "scikit-learn", "matplotlib": "matplotlib", "tqdm": "tqdm"}
INSTALL_HINT = f"pip install {' '.join(EXTRAS.values())}"

# Bounds on what the command line may ask for, so a typo cannot start a run that never ends or
# fills the memory: the eager engine holds about 200 bytes per (sample, parameter) in one step.
MAX_SEED = 2**32 - 1  # scikit-learn's random_state range
MAX_STEPS = 100_000
MAX_SAMPLES = 100_000
MAX_LAYERS = 20
MAX_PARAMETERS = 1_000_000
MAX_WORK = {"eager": 5_000_000, "compiled": 50_000_000}  # samples x parameters in one step
DIGITS_TRAIN_MAX = 1797 - 100  # load_digits has 1797 images; 100 or more are held out

# Every file the demo may write into its folder. A run removes the ones it did not write this
# time (the other task's, or neuron.dot once neuron.svg can be drawn), so the folder never mixes
# pictures of two runs.
OUTPUT_NAMES = (
    "decision_boundary.png",
    "training_curves.png",
    "predictions.png",
    "neuron.svg",
    "neuron.dot",
    "explorer.html",
    "model.json",
)
ALPHA = 1e-4  # L2 regularisation strength, as in micrograd's demo
DIVERGENCE_FACTOR = 1000.0  # training stops when the loss grows past this times its start

# Per task: steps, samples, hidden sizes, optimizer and the learning rate for each optimizer. The
# digits settings were tuned (over seeds) for the eager engine: about a minute, ~88% held out.
DEFAULTS: dict[str, dict[str, Any]] = {
    "moons": {
        "steps": 100,
        "samples": 100,
        "hidden": [16, 16],
        "optimizer": "sgd",
        "lr": {"sgd": 1.0, "adam": 0.05},
    },
    "digits": {
        "steps": 50,
        "samples": 150,
        "hidden": [24],
        "optimizer": "adam",
        "lr": {"sgd": 1.0, "adam": 0.05},
    },
}


# --- sizes ------------------------------------------------------------------------------------------
def _parameter_count(nin: int, sizes: Sequence[int]) -> int:
    """How many parameters MLP(nin, sizes) has, without building it."""
    widths = [nin, *sizes]
    return sum((a + 1) * b for a, b in zip(widths, sizes, strict=False))


class DemoError(Exception):
    """A problem the user can fix (a missing extra, an unusable folder): reported without a traceback."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def run(args: argparse.Namespace) -> int:
    """Run `chainrule demo` with parsed arguments; returns the exit code."""
    try:
        return _run(args)
    except DemoError as exc:
        print(f"chainrule demo: {exc}", file=sys.stderr)
        return exc.code


def _import_extras() -> dict[str, Any]:
    """The demo's optional dependencies, or a DemoError with the install hint."""
    modules = {}
    for name, package in EXTRAS.items():
        try:
            modules[name] = importlib.import_module(name)
        except ImportError:
            raise DemoError(
                f"this needs {name}, which is not installed: pip install {package} "
                f"(everything the demo needs: {INSTALL_HINT})"
            ) from None
    return modules


# --- tasks -----------------------------------------------------------------------------------------
@dataclass
class Task:
    """A data set, a model and how to score it: the training loops run any task on either engine."""

    name: str
    title: str
    model: MLP
    xs: list[list[float]]  # training inputs
    ys: list[Any]  # training targets as the eager loss wants them
    data_loss: Callable[[list[Any], list[Any]], Value]  # (outputs, targets) -> mean loss
    sample_loss: Callable[[list[Value], list[Value]], Value]  # traced: outputs, target placeholders
    target_columns: list[Any]  # the targets as numpy columns, one per target placeholder
    accuracy: Callable[[Any, Any], float]  # (outputs as an (N, nout) array, targets) -> fraction right
    test: tuple[list[list[float]], list[Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _moons_task(args: argparse.Namespace, hidden: list[int], np: Any) -> Task:
    from sklearn.datasets import make_moons

    # make_moons(random_state=seed) draws exactly what micrograd's np.random.seed(1337) did.
    X, y = make_moons(n_samples=args.samples, noise=0.1, random_state=args.seed)
    y = y * 2 - 1  # labels -1 / +1 for the max-margin loss
    model = MLP(2, [*hidden, 1])
    xs, ys = X.tolist(), [int(v) for v in y]
    return Task(
        name="moons",
        title="two moons",
        model=model,
        xs=xs,
        ys=ys,
        data_loss=svm_loss,
        sample_loss=svm_loss,
        target_columns=[y.astype(float)],
        accuracy=lambda out, ys_: float(np.mean((out[:, 0] > 0) == (np.asarray(ys_) > 0))),
        extra={"X": X, "y": y},
    )


def _digits_task(args: argparse.Namespace, hidden: list[int], np: Any) -> Task:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()  # ships with scikit-learn: no download
    X = digits.data / 16.0  # pixel intensities 0..16 -> 0..1
    y = digits.target
    n = min(args.samples, len(X) - 100)  # DIGITS_TRAIN_MAX
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, train_size=n, test_size=min(500, len(X) - n), random_state=args.seed, stratify=y
    )
    model = MLP(64, [*hidden, 10])
    ys = [int(v) for v in y_train]
    return Task(
        name="digits",
        title="8x8 digits",
        model=model,
        xs=X_train.tolist(),
        ys=ys,
        data_loss=cross_entropy,
        # One-hot target placeholders: a traced graph must be the same for every sample.
        sample_loss=cross_entropy,
        target_columns=[(y_train == k).astype(float) for k in range(10)],
        accuracy=lambda out, ys_: float(np.mean(np.argmax(out, axis=1) == np.asarray(ys_))),
        test=(X_test.tolist(), [int(v) for v in y_test]),
        extra={"X_test": X_test, "y_test": y_test},
    )


# --- evaluation: many inputs through the model -----------------------------------------------------
class Predictor:
    """The model's outputs for a whole array of inputs: with a compiled program, or eagerly."""

    def __init__(self, model: MLP, nin: int, np: Any, compiled: bool) -> None:
        self.model, self.np = model, np
        self.program = None
        if compiled:
            inputs = [placeholder(f"x{i}") for i in range(nin)]
            # One program for all outputs. Parameters are read by reference at every run, so it
            # stays valid while training changes them.
            self.program = _compiler().compile(_as_list(model(inputs)), inputs)

    def __call__(self, X: Any) -> Any:
        """An (N, nout) array of outputs for the (N, nin) array X."""
        np = self.np
        if self.program is not None:
            columns = [np.ascontiguousarray(X[:, i], dtype=float) for i in range(X.shape[1])]
            return _stack(np, self.program(*columns), len(X))
        with no_grad(), _gc_paused():
            rows = [[o.data for o in _as_list(self.model(x))] for x in X.tolist()]
        return np.asarray(rows)


def _as_list(out: Any) -> list[Any]:
    """An MLP's output as a list: a single output neuron gives a bare Value."""
    return out if isinstance(out, list) else [out]


def _stack(np: Any, columns: Sequence[Any], n: int) -> Any:
    """Per-output arrays as one (n, outputs) array (an output that is constant comes back as a float)."""
    return np.stack([np.broadcast_to(np.asarray(c, dtype=float), (n,)) for c in columns], axis=1)


def _compiler() -> Any:
    """chainrule.compiler if it is available (it arrives with define-then-run), else None."""
    try:
        return importlib.import_module("chainrule.compiler")
    except ImportError:
        return None


# --- training --------------------------------------------------------------------------------------
@contextlib.contextmanager
def _gc_paused() -> Any:
    """Pause Python's cyclic garbage collector while training (graphs are freed without it).

    A training step allocates tens of thousands of nodes, and every 700 allocations the collector
    scans them for reference cycles; chainrule's graphs have none (nodes hold no closures), so
    those scans are pure cost: pausing them makes the forward pass several times faster.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class History:
    """What training recorded, step by step (loss and accuracy before each update, as micrograd prints)."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0  # time spent in training steps only
    eager_step: float | None = None  # for --engine compiled: the eager engine's time per step
    compile_seconds: float = 0.0


def _optimizer(args: argparse.Namespace, params: Any, lr: float, steps: int) -> Any:
    """The demo's optimizer on `params`: a model's Values, or (compiled) one array of all of them."""
    from .optim import SGD, Adam

    # micrograd's schedule: 1.0 - 0.9 * k / 100, i.e. from lr down to a tenth of it.
    schedule = lambda k: lr * (1.0 - 0.9 * k / steps)
    cls = Adam if args.optimizer == "adam" else SGD
    return cls(params.parameters() if hasattr(params, "parameters") else params, lr=schedule)


def _train_eager(task: Task, opt: Any, steps: int, bar: Any, np: Any, history: History) -> None:
    model = task.model
    for _ in bar:
        start = time.perf_counter()
        outputs = [model(x) for x in task.xs]
        loss = task.data_loss(outputs, task.ys) + l2_regularization(model, ALPHA)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.seconds += time.perf_counter() - start
        data = np.asarray([[o.data for o in out] if isinstance(out, list) else [out.data] for out in outputs])
        _record(history, bar, loss.data, task.accuracy(data, task.ys))


def _record(history: History, bar: Any, loss: float, accuracy: float) -> None:
    """Note one step's loss and accuracy; stop the training at once if the loss has diverged."""
    history.loss.append(loss)
    history.accuracy.append(accuracy)
    bar.set_postfix(loss=f"{loss:.4f}", accuracy=f"{accuracy:.1%}", refresh=False)
    check_divergence(history.loss)


def check_divergence(losses: Sequence[float]) -> None:
    """Raise DemoError if the last loss is not finite or grew far past the first one.

    "Far" is DIVERGENCE_FACTOR times the first loss (or times 1.0 if it started lower), well
    above the bumps of a learning rate that is high but still converges (tried over seeds: under
    150x), so a run that blows up ends at that step instead of after all of them.
    """
    step, loss = len(losses) - 1, losses[-1]
    limit = DIVERGENCE_FACTOR * max(losses[0], 1.0)
    if not math.isfinite(loss):
        raise DemoError(f"training diverged at step {step} (the loss is {loss}): try a smaller --lr")
    if loss > limit:
        raise DemoError(
            f"training diverged at step {step} (the loss grew from {losses[0]:.4g} to {loss:.4g}, "
            f"more than {DIVERGENCE_FACTOR:g}x its start): try a smaller --lr"
        )


def _train_compiled(
    task: Task,
    make_optimizer: Callable[[Any], Any],
    bar: Any,
    np: Any,
    history: History,
    predictor: Predictor,
) -> None:
    """Training through `Program.loss_and_grad` on a parameter array and an array optimizer."""
    model = task.model
    X = np.asarray(task.xs)
    batch = len(X)
    # The eager engine's time for the same step, for the comparison. Its cost is linear in the
    # number of samples, so timing a slice of the batch and scaling up is accurate and quick.
    part = min(batch, 32)
    times = []
    for _ in range(3):  # the best of three: the first pass also pays for growing Python's memory pools
        start = time.perf_counter()
        outputs = [model(x) for x in task.xs[:part]]
        loss = task.data_loss(outputs, task.ys[:part]) + l2_regularization(model, ALPHA)
        loss.backward()
        times.append(time.perf_counter() - start)
        del loss, outputs
    history.eager_step = min(times) * batch / part
    model.zero_grad()

    # Trace ONE sample on placeholders, once; the program then runs the whole batch as numpy arrays.
    start = time.perf_counter()
    xs = [placeholder(f"x{i}", requires_grad=False) for i in range(X.shape[1])]
    targets = [placeholder(f"y{k}", requires_grad=False) for k in range(len(task.target_columns))]
    # The L2 term goes into every sample's loss, and each sample's loss is weighted by 1/B: the
    # batch's sum is then the eager (mean) loss. The program sees that the L2 term depends on
    # parameters only, so it computes it once per run, not once per sample.
    sample_loss = task.sample_loss(_as_list(model(xs)), targets) + l2_regularization(model, ALPHA)
    program = _compiler().compile(sample_loss * (1.0 / batch), [*xs, *targets])
    history.compile_seconds = time.perf_counter() - start
    columns = [np.ascontiguousarray(X[:, i]) for i in range(X.shape[1])] + list(task.target_columns)
    # Training runs on one array of all parameters: loss_and_grad reads it and returns the gradient
    # as an array, and the optimizer updates it in place; no Value is touched during a step.
    theta = program.parameter_array()
    array_opt = make_optimizer(theta)  # the same optimizer and schedule, on the array

    for _ in bar:
        start = time.perf_counter()
        loss, dtheta = program.loss_and_grad(theta, *columns)
        history.seconds += time.perf_counter() - start
        program.set_parameters(theta)  # for the accuracy before the update (monitoring, not timed)
        accuracy = task.accuracy(predictor(X), task.ys)
        start = time.perf_counter()
        array_opt.step(dtheta)
        history.seconds += time.perf_counter() - start
        _record(history, bar, loss, accuracy)
    program.set_parameters(theta)  # the trained weights into the model, for its pictures and file


# --- pictures --------------------------------------------------------------------------------------
def _figure(size: tuple[float, float]) -> Any:
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    return Figure(figsize=size, dpi=100)


def _plot_boundary(task: Task, predictor: Predictor, accuracy: float, path: Path, np: Any, mpl: Any) -> Path:
    X, y = task.extra["X"], task.extra["y"]
    x_min, x_max = X[:, 0].min() - 1, X[:, 0].max() + 1
    y_min, y_max = X[:, 1].min() - 1, X[:, 1].max() + 1
    n = 200 if predictor.program is not None else 60  # the eager engine takes ~1 ms a point
    xx, yy = np.meshgrid(np.linspace(x_min, x_max, n), np.linspace(y_min, y_max, n))
    scores = predictor(np.c_[xx.ravel(), yy.ravel()])[:, 0].reshape(xx.shape)
    fig = _figure((6, 5))
    ax = fig.add_subplot()
    ax.contourf(xx, yy, scores > 0, cmap="Spectral", alpha=0.8, levels=[-0.5, 0.5, 1.5])
    ax.contour(xx, yy, scores, levels=[0.0], colors="k", linewidths=1)
    ax.scatter(X[:, 0], X[:, 1], c=y, s=40, cmap="Spectral", edgecolors="k")
    ax.set_xlim(x_min, x_max)
    ax.set_ylim(y_min, y_max)
    sizes = ", ".join(str(len(layer.neurons)) for layer in task.model.layers)
    ax.set_title(f"chainrule MLP(2, [{sizes}]): {accuracy:.1%} training accuracy")
    fig.tight_layout()
    fig.savefig(path)
    return path


def _plot_curves(task: Task, history: History, path: Path, mpl: Any) -> Path:
    fig = _figure((9, 3.5))
    steps = range(len(history.loss))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(steps, history.loss, color="tab:red")
    ax1.set_yscale("log")
    ax1.set(title="training loss", xlabel="step", ylabel="loss (log scale)")
    ax2.plot(steps, [100 * a for a in history.accuracy], color="tab:blue")
    ax2.set(title="training accuracy", xlabel="step", ylabel="accuracy (%)", ylim=(0, 101))
    ax1.grid(alpha=0.3)
    ax2.grid(alpha=0.3)
    fig.suptitle(f"chainrule demo: {task.title}")
    fig.tight_layout()
    fig.savefig(path)
    return path


def _plot_digits(task: Task, predictor: Predictor, path: Path, np: Any, mpl: Any) -> Path:
    X, y = task.extra["X_test"][:24], task.extra["y_test"][:24]
    predicted = np.argmax(predictor(X), axis=1)
    fig = _figure((8, 3.6))
    for i, ax in enumerate(fig.subplots(3, 8).ravel()):
        ax.imshow(X[i].reshape(8, 8), cmap="gray_r")
        ax.set_axis_off()
        right = predicted[i] == y[i]
        ax.set_title(
            f"{predicted[i]}" if right else f"{predicted[i]} (is {y[i]})",
            fontsize=9,
            color="black" if right else "tab:red",
        )
    fig.suptitle("held-out digits and what the model says (red: wrong)")
    fig.tight_layout()
    fig.savefig(path)
    return path


def _draw_neuron(task: Task, out_dir: Path) -> list[Path]:
    """The first neuron on one sample: its graph with gradients (SVG, else DOT) and explorer.html.

    Both show d(out)/d(each value) of this neuron alone, from the explorer's fresh replay of
    backprop: the picture never shows the training's gradients still held in `.grad`, and no
    `.grad` is touched.
    """
    try:
        drawing = importlib.import_module("chainrule.drawing")
    except ImportError:
        return []
    from .explorer import explore

    neuron = task.model.layers[0].neurons[0]  # its parameters are labelled L0.n0.w0, ..., L0.n0.b
    # The first sample that switches the neuron on: through an inactive ReLU every gradient is 0.
    with no_grad():
        sample = next((x for x in task.xs if neuron(x).data > 0), task.xs[0])
    # The inputs take gradients too, so every number in the picture is a true derivative of out.
    xs = [Value(v, label=f"x{i}") for i, v in enumerate(sample)]
    out = neuron(xs)
    out.label = "out"
    explorer = explore(out)  # the page that steps through this neuron's backprop
    page = explorer.save(out_dir / "explorer.html")
    source = drawing.to_dot(out, grads=explorer.grads)  # the page's gradients, not the .grad fields
    try:
        return [drawing.render_graph(source, out_dir / "neuron.svg"), page]
    except Exception:  # no renderer on this machine: the DOT text is still a useful picture
        (out_dir / "neuron.svg").unlink(missing_ok=True)
        return [drawing.render_graph(source, out_dir / "neuron.dot"), page]


# --- the command -----------------------------------------------------------------------------------
def _check_size(task: str, hidden: Sequence[int], samples: int, engine: str) -> None:
    """Refuse, before anything is built, a model or a step too big for this machine's memory."""
    nin, nout = (2, 1) if task == "moons" else (64, 10)
    if task == "digits":
        samples = min(samples, DIGITS_TRAIN_MAX)  # what _digits_task takes at most
    count = _parameter_count(nin, [*hidden, nout])
    if count > MAX_PARAMETERS:
        raise DemoError(
            f"--hidden {','.join(map(str, hidden))} makes a model of {count:,} parameters; at most "
            f"{MAX_PARAMETERS:,} (each one is a Python object in the scalar engine)",
            code=2,
        )
    work = samples * count
    if work > MAX_WORK[engine]:
        raise DemoError(
            f"{samples:,} samples x {count:,} parameters is too much for one {engine} step (at most "
            f"{MAX_WORK[engine]:,}, about a gigabyte): use fewer --samples or smaller --hidden layers",
            code=2,
        )


def _run(args: argparse.Namespace) -> int:
    mods = _import_extras()
    np, mpl, tqdm = mods["numpy"], mods["matplotlib"], mods["tqdm"]
    defaults = DEFAULTS[args.task]
    steps = args.steps or defaults["steps"]
    args.samples = args.samples or defaults["samples"]
    hidden = args.hidden or defaults["hidden"]
    args.optimizer = args.optimizer or defaults["optimizer"]
    lr = args.lr or defaults["lr"][args.optimizer]
    if args.task == "moons" and args.samples < 2:
        raise DemoError("--samples must be at least 2 for two moons", code=2)
    if args.task == "digits" and args.samples < 10:
        raise DemoError("--samples must be at least 10 for digits (one of each class)", code=2)
    _check_size(args.task, hidden, args.samples, args.engine)
    if args.engine == "compiled" and _compiler() is None:
        raise DemoError(
            "--engine compiled needs chainrule.compiler, which this installation does not have yet; "
            "use --engine eager",
            code=2,
        )
    out_dir = Path(args.out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DemoError(f"cannot use {str(out_dir)!r} as the output folder: {exc}") from None

    random.seed(args.seed)  # the weights: MLP draws them from `random`, as micrograd does
    make = _moons_task if args.task == "moons" else _digits_task
    task = make(args, hidden, np)
    model = task.model
    make_optimizer = lambda params: _optimizer(args, params, lr, steps)
    predictor = Predictor(model, len(task.xs[0]), np, compiled=args.engine == "compiled")

    history = History()
    bar = tqdm.tqdm(range(steps), desc="training", unit="step", disable=args.quiet, file=sys.stderr)
    with bar, _gc_paused():
        if args.engine == "compiled":
            _train_compiled(task, make_optimizer, bar, np, history, predictor)
        else:
            _train_eager(task, make_optimizer(model), steps, bar, np, history)

    if not all(math.isfinite(p.data) for p in model.parameters()):  # the last update blew up
        raise DemoError(
            f"training diverged at step {steps - 1} (loss {history.loss[-1]}, the parameters are no "
            "longer finite): try a smaller --lr"
        )
    train_accuracy = task.accuracy(predictor(np.asarray(task.xs)), task.ys)
    try:
        files = _write_outputs(task, history, predictor, train_accuracy, out_dir, np, mpl)
    except OSError as exc:
        raise DemoError(f"cannot write into {str(out_dir)!r}: {exc}") from None

    final = f"accuracy: {100 * train_accuracy:.1f}%"
    if task.test is not None:
        test_accuracy = task.accuracy(predictor(np.asarray(task.test[0])), task.test[1])
        final = f"accuracy: {100 * test_accuracy:.1f}% on {len(task.test[1])} held-out digits"
    if not args.quiet:
        _summary(args, task, history, steps, len(task.xs), train_accuracy, files)
    print(final)
    return 0


def _write_outputs(
    task: Task,
    history: History,
    predictor: Predictor,
    train_accuracy: float,
    out_dir: Path,
    np: Any,
    mpl: Any,
) -> list[Path]:
    """The pictures and the model file; returns their paths."""
    from .serialize import save

    files = [_plot_curves(task, history, out_dir / "training_curves.png", mpl)]
    if task.name == "moons":
        files.insert(
            0, _plot_boundary(task, predictor, train_accuracy, out_dir / "decision_boundary.png", np, mpl)
        )
        files.extend(_draw_neuron(task, out_dir))
    else:
        files.append(_plot_digits(task, predictor, out_dir / "predictions.png", np, mpl))
    files.append(save(task.model, out_dir / "model.json"))
    written = {f.name for f in files}
    for name in OUTPUT_NAMES:
        if name not in written:
            (out_dir / name).unlink(missing_ok=True)  # left by an earlier run of another task
    return files


def _summary(
    args: argparse.Namespace,
    task: Task,
    history: History,
    steps: int,
    samples: int,
    train_accuracy: float,
    files: Sequence[Path],
) -> None:
    model = task.model
    sizes = [len(layer.neurons) for layer in model.layers]
    nin = len(model.layers[0].neurons[0].w)
    per_step = history.seconds / steps
    print(
        f"{task.title}: {samples} samples, MLP({nin}, {sizes}) with {len(model.parameters())} parameters, "
        f"{'SGD' if args.optimizer == 'sgd' else 'Adam'}, {args.engine} engine, seed {args.seed}"
    )
    print(
        f"trained {steps} steps in {history.seconds:.2f} s ({1000 * per_step:.1f} ms/step, "
        f"{1e6 * per_step / samples:.0f} us per sample; the steps only, not imports, data, compiling or "
        f"pictures); "
        f"final loss {history.loss[-1]:.4f}"
    )
    if history.eager_step is not None:
        print(
            f"compiled in {history.compile_seconds:.2f} s; the eager engine takes "
            f"{1000 * history.eager_step:.1f} ms/step: compiled is "
            f"{history.eager_step / per_step:.1f}x faster"
        )
    if task.test is not None:
        print(f"training accuracy: {100 * train_accuracy:.1f}%")
    print("wrote " + ", ".join(str(f) for f in files))
