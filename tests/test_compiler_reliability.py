"""Compiled programs under stress (issue 10): long batches, threads, many programs, frozen
parameters, large generated code, and the compiler package's own structure."""

from __future__ import annotations

import ast
import gc
import linecache
import math
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import chainrule as cr
from chainrule import DomainError, Value, placeholder
from chainrule.nn import MLP
from conftest import need

np = need("numpy")

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "chainrule" / "compiler"


# --- batches longer than one chunk ------------------------------------------------------------------
def test_forward_on_a_batch_longer_than_one_chunk():
    # issue 10 item 1, as reported: TypeError: 'NoneType' object is not iterable
    x = placeholder("x")
    program = cr.compile((x * 2).tanh(), [x])
    out = program(np.ones(1_398_102))  # 3 rows of this many values: more than one chunk holds
    assert out.shape == (1_398_102,) and np.all(out == math.tanh(2.0))


def test_chunked_runs_give_the_unchunked_numbers(monkeypatch):
    from chainrule.compiler import batch_plan

    random.seed(0)
    model = MLP(2, [6, 1])
    a, b = placeholder("a"), placeholder("b")
    program = cr.compile(model([a, b]).tanh(), [a, b])
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=700), rng.normal(size=700)
    full = program(A, B)
    values, grads = program.value_and_grad(A, B)
    theta = program.parameter_array()
    total, dtheta = program.loss_and_grad(theta, A, B)
    monkeypatch.setattr(batch_plan, "MAX_CHUNK_FLOATS", 1)  # chunks of 256 samples: three of them
    chunked = cr.compile(model([a, b]).tanh(), [a, b])
    assert chunked._plan().describe() and len(chunked._plan()._chunks(700)) == 3
    assert np.allclose(chunked(A, B), full, rtol=1e-14)
    c_values, c_grads = chunked.value_and_grad(A, B)
    assert np.allclose(c_values, values, rtol=1e-14)
    assert all(np.allclose(c, g, rtol=1e-14) for c, g in zip(c_grads, grads, strict=True))
    c_total, c_dtheta = chunked.loss_and_grad(theta, A, B)
    assert c_total == pytest.approx(total, rel=1e-13) and np.allclose(c_dtheta, dtheta, rtol=1e-12)


# --- threads --------------------------------------------------------------------------------------
def _in_threads(work, n_threads: int = 4):
    errors: list[BaseException] = []
    barrier = threading.Barrier(n_threads)

    def run(k: int) -> None:
        try:
            barrier.wait()
            work(k)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n_threads)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, so that any shared state shows
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        sys.setswitchinterval(interval)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors[0]


def test_one_program_called_from_several_threads_gives_each_the_serial_result():
    # issue 10 item 2: 924 of 1,200 results were wrong (shared buffers); mixed sizes broke broadcasts
    random.seed(1)
    model = MLP(3, [8, 8, 1])
    xs = [placeholder(f"x{i}") for i in range(3)]
    program = cr.compile(model(xs).tanh(), xs)
    rng = np.random.default_rng(1)
    batches = [[rng.normal(size=n) for _ in range(3)] for n in (5, 64, 300, 17, 64, 1, 128, 40)]
    expected = [program(*b) for b in batches]
    expected_grads = [program.value_and_grad(*b)[1] for b in batches]
    theta = program.parameter_array()
    expected_loss = [program.loss_and_grad(theta, *b) for b in batches]
    floats = [tuple(float(c[0]) for c in b) for b in batches]
    expected_floats = [program(*f) for f in floats]
    wrong: list[str] = []

    def work(k: int) -> None:
        for rep in range(25):
            i = (k + rep) % len(batches)
            if not np.array_equal(program(*batches[i]), expected[i]):
                wrong.append(f"forward {i}")
            _, grads = program.value_and_grad(*batches[i])
            if not all(np.array_equal(g, e) for g, e in zip(grads, expected_grads[i], strict=True)):
                wrong.append(f"input grads {i}")
            total, dtheta = program.loss_and_grad(theta, *batches[i])
            if total != expected_loss[i][0] or not np.array_equal(dtheta, expected_loss[i][1]):
                wrong.append(f"loss_and_grad {i}")
            if program(*floats[i]) != expected_floats[i]:
                wrong.append(f"float {i}")

    _in_threads(work)
    assert not wrong, f"{len(wrong)} wrong results, e.g. {wrong[:5]}"


def test_threads_sharing_parameters_leave_the_exact_sum_in_grad():
    w = Value(0.75)
    x = placeholder("x")
    program = cr.compile((x * w).tanh() * w, [x])
    batch = np.linspace(-1, 1, 50)
    program.value_and_grad(batch)
    program.value_and_grad(0.3)
    one_batch, one_float = 0.0, 0.0
    w.grad = 0.0
    program.value_and_grad(batch)
    one_batch, w.grad = w.grad, 0.0
    program.value_and_grad(0.3)
    one_float, w.grad = w.grad, 0.0

    def work(k: int) -> None:
        for _ in range(200):
            program.value_and_grad(batch)
            program.value_and_grad(0.3)

    _in_threads(work)
    assert w.grad == pytest.approx(800 * (one_batch + one_float), rel=1e-9)


# --- requires_grad changed after compiling ---------------------------------------------------------
def test_a_parameter_frozen_after_compiling_receives_no_gradient():
    # issue 10 item 11: a Program kept adding into .grad after requires_grad = False
    w, b = Value(0.5), Value(0.1)
    x = placeholder("x")
    program = cr.compile((x * w + b).tanh(), [x])
    w.requires_grad = False
    program.value_and_grad(0.7)  # float mode
    program.value_and_grad(np.array([0.7, -0.2]))  # batch mode
    assert w.grad == 0.0 and b.grad != 0.0
    w.requires_grad = True
    program.value_and_grad(0.7)
    assert w.grad != 0.0


# --- generated code: no leak, and long code in segments ------------------------------------------------
def _chainrule_files() -> set[str]:
    return {name for name in linecache.cache if name.startswith("<chainrule program")}


def test_generated_source_leaves_linecache_with_its_program():
    # issue 10 item 7: every Program's float-mode source stayed in linecache forever
    before = _chainrule_files()
    x, w = placeholder("x"), Value(0.3)
    out = x
    for _ in range(30):
        out = (out * w + 0.5).tanh()
    for _ in range(20):
        program = cr.compile(out, [x])
        program.value_and_grad(0.2)
        assert _chainrule_files() - before  # registered while the program lives (for tracebacks)
        del program
    gc.collect()
    assert _chainrule_files() - before == set()


def test_long_code_runs_in_segments_with_the_same_numbers(monkeypatch):
    from chainrule.compiler import float_mode

    random.seed(2)
    model = MLP(3, [6, 5, 1])
    xs = [placeholder(f"x{i}") for i in range(3)]
    row = [0.3, -1.2, 0.8]
    reference = cr.compile((model(xs) - 0.25).tanh(), xs)
    expected_value, expected_grads = reference.value_and_grad(*row)
    expected_params = [p.grad for p in model.parameters()]
    model.zero_grad()
    monkeypatch.setattr(float_mode, "SEGMENT_LINES", 7)
    program = cr.compile((model(xs) - 0.25).tanh(), xs)
    assert program(*row) == reference(*row)
    value, grads = program.value_and_grad(*row)
    assert (value, grads) == (expected_value, expected_grads)  # bit for bit
    assert [p.grad for p in model.parameters()] == expected_params
    assert "value_and_grad_3(S)" in program._float_code().source


def test_a_domain_error_inside_a_segment_names_the_instruction(monkeypatch):
    from chainrule.compiler import float_mode

    monkeypatch.setattr(float_mode, "SEGMENT_LINES", 3)
    x = placeholder("x")
    y = x
    for _ in range(6):
        y = y * 1.5 + 0.5
    program = cr.compile((y - 100.0).log(), [x])
    with pytest.raises(DomainError, match=r"log: .*in %\d+ = log %\d+"):
        program(1.0)
    with pytest.raises(DomainError, match=r"in %\d+ = log"):
        program.value_and_grad(1.0)


# --- hand-built nodes ------------------------------------------------------------------------------
def test_a_hand_built_node_is_refused_by_compile():
    w = Value(2.0, label="w")
    cube = Value(w.data**3, (w,), "cube", label="cube")  # micrograd-style: children, no table op

    def _backward() -> None:
        w.grad += 3 * w.data**2 * cube.grad

    cube._backward = _backward
    with pytest.raises(
        TypeError, match=r"compile: node 'cube' \(op 'cube'\).*built by hand.*chainrule\.defop"
    ):
        x = placeholder("x")
        cr.compile(cube * x, [x])


# --- the package's structure -----------------------------------------------------------------------
def _imports(path: Path) -> set[str]:
    """The compiler modules that `path` imports (relative imports inside the package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


def test_the_compiler_package_has_no_import_circle():
    modules = {p.stem: _imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert {"program", "float_mode", "batch_plan", "batch_steps", "jit"} <= set(modules)
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", f"import circle: {' -> '.join([*path, name])}"
        state[name] = "open"
        for dep in modules.get(name, ()):
            visit(dep, [*path, name])
        state[name] = "done"

    for name in modules:
        visit(name, [])


@pytest.mark.parametrize("module", sorted(p.stem for p in PACKAGE.glob("*.py")))
def test_each_compiler_module_imports_on_its_own(module):
    name = "chainrule.compiler" if module == "__init__" else f"chainrule.compiler.{module}"
    src = str(PACKAGE.parents[1])
    code = f"import sys; sys.path.insert(0, {src!r}); import {name}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]


# --- bad arguments: one line naming what was wrong ----------------------------------------------------
def _one_line(info: pytest.ExceptionInfo[BaseException], *words: str) -> None:
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_an_input_too_large_for_a_float_is_one_line_naming_it() -> None:
    x = placeholder("x")
    program = cr.compile(x * x, [x])
    with pytest.raises(OverflowError) as info:
        program(10**400)  # was Python's bare "int too large to convert to float"
    _one_line(info, "input 'x'", "about 401 digits", "too large for a float")
    with pytest.raises(OverflowError) as info:
        program.value_and_grad(np.array([1.0, 2.0]), grad_output=10**400)
    _one_line(info, "grad_output", "too large for a float")


@pytest.mark.parametrize("weight", ["a", b"a", np.array(["a", "b"]), {"a": 1}])
def test_a_grad_output_that_is_not_numbers_is_one_line(weight: object) -> None:
    x = placeholder("x")
    program = cr.compile(x * x, [x])
    with pytest.raises(TypeError) as info:  # was numpy's "could not convert string to float: 'a'"
        program.value_and_grad(np.array([1.0, 2.0]), grad_output=weight)
    _one_line(info, "grad_output: each weight must be a number or an array of 2 real numbers")
    with pytest.raises(TypeError) as info:
        program.value_and_grad(1.0, grad_output=weight)
    _one_line(info, "grad_output: with float inputs each weight must be a number")


@pytest.mark.parametrize("inputs", [None, "x", 3])
def test_compile_with_inputs_that_are_not_a_list_of_placeholders_is_one_line(inputs: object) -> None:
    x = placeholder("x")
    with pytest.raises(TypeError) as info:  # None was "'NoneType' object is not iterable"
        cr.compile(x * x, inputs)  # type: ignore[arg-type]
    _one_line(info, "compile: inputs must be a placeholder or a list of them")
    assert cr.compile(x * 2.0, (x,))(3.0) == 6.0 and cr.compile(Value(2.0) * 3.0, [])() == 6.0


WITHOUT_NUMPY = """
import sys
sys.modules["numpy"] = None  # as if numpy were not installed
import chainrule as cr
x = cr.placeholder("x")
p = cr.compile((x * cr.Value(2.0)).tanh(), [x])
print(p(0.5))  # float mode needs no numpy
runs = [("batch", lambda: p([1.0, 2.0])), ("to_jax", p.to_jax), ("parameter_array", p.parameter_array),
        ("loss_and_grad", lambda: p.loss_and_grad([2.0], 1.0))]
for name, run in runs:
    try:
        run()
    except ImportError as exc:
        print(name, type(exc).__name__, exc)
"""


def test_batch_runs_and_exports_without_numpy_say_what_to_install() -> None:
    env = {"PYTHONPATH": str(PACKAGE.parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", WITHOUT_NUMPY], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert float(lines[0]) == pytest.approx(math.tanh(1.0))
    hint = "needs numpy, which is not installed: pip install numpy"
    assert lines[1:] == [
        f"batch ImportError a batch run (array inputs) {hint}",
        f"to_jax ImportError Program.to_jax() {hint}",
        f"parameter_array ImportError Program.parameter_array() {hint}",
        f"loss_and_grad ImportError Program.loss_and_grad() {hint}",
    ]
