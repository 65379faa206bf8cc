"""Checks generated from the derivative table: every op, every input, against PyTorch and finite differences.

The per-op data comes from tests/op_cases.py, which has one entry per row of `chainrule.TABLE`: the
PyTorch function that computes the same thing, the op's spelling through the `Value` API, sample points
(including points near the edge of the op's domain) and the inputs that lie outside the domain. Adding
an op to the table without adding an entry there makes
`test_every_table_row_has_an_entry_and_every_entry_a_row` fail, so a new op cannot ship untested.

Each rule is checked on all three backends it is written for: floats (eager backward), `Value`s
(`backward(create_graph=True)`, where the rules build graph nodes) and numpy arrays (a whole batch of
sample points at once).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

import chainrule
from chainrule import OPS, TABLE, DomainError, Op, Value
from chainrule.backends import FLOAT, numpy_backend
from chainrule.engine import apply
from conftest import need
from op_cases import CASES, Point, case, cases_for_table


# --- comparing numbers --------------------------------------------------------------------------
def close(got: float, want: float, rel: float = 1e-9, abs_tol: float = 1e-300) -> bool:
    """Equal up to `rel` (NaN equals NaN, infinities must match exactly)."""
    if math.isnan(want) or math.isnan(got):
        return math.isnan(want) and math.isnan(got)
    return math.isclose(got, want, rel_tol=rel, abs_tol=abs_tol)


def torch_reference(op: Op, point: Point) -> tuple[float, dict[int, float]]:
    """The value and the gradient with respect to every Value input, as PyTorch float64 computes them."""
    torch = need("torch")
    ts = [
        torch.tensor(x, dtype=torch.float64, requires_grad=i in point.inputs())
        for i, x in enumerate(point.xs)
    ]
    out = case(op).torch(*ts)
    out.backward()
    return out.item(), {i: ts[i].grad.item() for i in point.inputs()}


def central_difference(op: Op, xs: tuple[float, ...], i: int) -> float:
    """(f(x + h) - f(x - h)) / 2h in input i, on the table's own float forward."""
    h = 1e-6 * abs(xs[i]) or 1e-8  # relative, so that the step never crosses zero
    up = list(xs)
    down = list(xs)
    up[i] += h
    down[i] -= h
    return (op.forward(FLOAT, *up) - op.forward(FLOAT, *down)) / (2 * h)


# --- the generated cases ------------------------------------------------------------------------
def _params(fd_only: bool = False) -> list[Any]:
    """One pytest param per (op, sample point); `fd_only` leaves out kinks, overflows and subnormals."""
    params = []
    for op in TABLE:
        cases = CASES.get(op.name)
        if cases is None:  # a new op without samples: make a test that fails and says what to do
            params.append(pytest.param(op, None, id=f"{op.name}-NO-CASES"))
            continue
        for point in cases.points:
            if fd_only and not point.fd:
                continue
            params.append(pytest.param(op, point, id=f"{op.name}{point.xs}-wrt{list(point.inputs())}"))
    return params


def _fail_without_cases(op: Op, point: Point | None) -> Point:
    if point is None:
        case(op)  # fails, naming tests/op_cases.py
        raise AssertionError(f"op {op.name!r} has no sample points in tests/op_cases.py")
    return point


def test_every_table_row_has_an_entry_and_every_entry_a_row() -> None:
    # chainrule.TABLE, not chainrule.OPS: defop adds user ops to OPS at run time, and tests that
    # define ops must not change what the rest of the suite expects.
    missing, stale = cases_for_table()
    assert not missing, f"rows of chainrule.TABLE without an entry in tests/op_cases.py CASES: {missing}"
    assert not stale, f"entries in tests/op_cases.py CASES for ops that are not in chainrule.TABLE: {stale}"


def test_every_entry_is_complete() -> None:
    for op in TABLE:
        entry = case(op)
        assert entry.points, f"{op.name}: no sample points in tests/op_cases.py"
        assert entry.gradcheck, f"{op.name}: no gradcheck points in tests/op_cases.py"
        for xs in (*(point.xs for point in entry.points), *entry.invalid, *entry.gradcheck):
            fits = len(xs) >= 1 if op.arity is None else len(xs) == op.arity
            assert fits, f"{op.name}: point {xs} in tests/op_cases.py has the wrong number of inputs"
        if entry.ranges is not None:
            assert op.arity is not None and len(entry.ranges) == op.arity, f"{op.name}: ranges"
        if entry.numbers is not None:
            assert op.arity is not None and len(entry.numbers) == op.arity, f"{op.name}: numbers"


def test_ops_with_a_domain_have_invalid_cases() -> None:
    for op in TABLE:
        has_domain = op.invalid is not None
        assert has_domain == bool(case(op).invalid), f"{op.name}: invalid cases and domain disagree"


def test_table_rows_are_well_formed() -> None:
    assert len({op.name for op in TABLE}) == len(TABLE), "two ops share a name"
    assert all(OPS[op.name] is op for op in TABLE), "a row of TABLE is not the op OPS has by its name"
    for op in TABLE:
        assert op.doc and op.symbol, op.name
        assert len(op.derivatives) == (1 if op.arity is None else op.arity), op.name


class _Recorder:
    """The float backend, noting every function a rule asks it for."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        self.used.add(name)
        return getattr(FLOAT, name)


@pytest.mark.parametrize("op", TABLE, ids=lambda op: op.name)
def test_every_function_a_row_calls_exists_on_every_backend(op: Op) -> None:
    """Each `m.<name>` a row's rules call is one every backend has (written out or found by name), so
    the row runs on floats, Values, numpy, JAX and torch; a missing one is named here."""
    from chainrule.backends import VALUE, jax_backend, spellings, torch_backend

    m = _Recorder()
    for point in case(op).points:
        _run_rules_at(op, m, point.xs)
    backends = [numpy_backend()]
    for engine, make in (("jax", jax_backend), ("torch", torch_backend)):
        need(engine)
        backends.append(make())
    for name in sorted(m.used):
        for backend in (FLOAT, *backends):
            assert callable(getattr(backend, name, None)), (
                f"{op.name}: the {backend.name} backend lacks m.{name}"
            )
        # on Values: written out, or the method of that name (which a new row gives Value itself)
        has_method = any(hasattr(Value, n) for n in spellings(name))
        assert name in vars(VALUE) or has_method, f"{op.name}: Value has no method {name}"


def _run_rules_at(op: Op, m: Any, xs: tuple[float, ...]) -> None:
    """The row's forward, domain test and derivatives at `xs` (errors of the math itself ignored)."""
    try:
        out = op.forward(m, *xs)
        if op.invalid is not None:
            op.invalid(m, *xs)
        for i in range(len(xs)):
            op.derivative(i)(m, 1.0, out, *xs)
    except (ArithmeticError, ValueError):
        pass


@pytest.mark.parametrize(("op", "point"), _params())
def test_table_rules_match_torch(op: Op, point: Point | None) -> None:
    """The float forward and every float derivative rule agree with PyTorch float64."""
    point = _fail_without_cases(op, point)
    want_out, want_grads = torch_reference(op, point)
    out = op.forward(FLOAT, *point.xs)
    assert close(out, want_out), f"{op.name}{point.xs} = {out}, torch says {want_out}"
    for i, want in want_grads.items():
        got = op.derivative(i)(FLOAT, 1.0, out, *point.xs)
        assert close(got, want), f"d{op.name}/dx{i} at {point.xs} = {got}, torch says {want}"


@pytest.mark.parametrize(("op", "point"), _params(fd_only=True))
def test_table_rules_match_finite_differences(op: Op, point: Point | None) -> None:
    point = _fail_without_cases(op, point)
    out = op.forward(FLOAT, *point.xs)
    for i in point.inputs():
        got = op.derivative(i)(FLOAT, 1.0, out, *point.xs)
        want = central_difference(op, point.xs, i)
        assert math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-7), (
            f"d{op.name}/dx{i} at {point.xs}: rule {got}, finite difference {want}"
        )


@pytest.mark.parametrize(("op", "point"), _params())
def test_value_api_matches_torch(op: Op, point: Point | None) -> None:
    """The op spelled through Value (operators, methods, numbers mixed in) and backward() agree with torch."""
    point = _fail_without_cases(op, point)
    want_out, want_grads = torch_reference(op, point)
    args = [Value(x) if i in point.inputs() else x for i, x in enumerate(point.xs)]
    out = case(op).spell(*args)
    assert out._operation is op, f"{op.name}'s spelling made a {out._operation} node"
    assert close(out.data, want_out)
    out.backward()
    for i, want in want_grads.items():
        assert close(args[i].grad, want), f"d{op.name}/dx{i} at {point.xs}: {args[i].grad}, torch {want}"


@pytest.mark.parametrize(("op", "point"), _params())
def test_value_backend_rules_match_float_rules(op: Op, point: Point | None) -> None:
    """With create_graph=True the same rules run on Values: the gradients are nodes with the same data."""
    point = _fail_without_cases(op, point)
    args = [Value(x) if i in point.inputs() else chainrule.constant(x) for i, x in enumerate(point.xs)]
    out = apply(op, *args)
    out.backward(create_graph=True)
    for i in point.inputs():
        want = op.derivative(i)(FLOAT, 1.0, out.data, *point.xs)
        grad = args[i].grad
        got = grad.data if isinstance(grad, Value) else grad
        assert close(got, want, rel=1e-12), (
            f"d{op.name}/dx{i} at {point.xs}: {got} on Values, {want} on floats"
        )


@pytest.mark.parametrize("op", TABLE, ids=lambda op: op.name)
def test_numpy_backend_matches_float_rules(op: Op) -> None:
    """The rules on numpy arrays give, element by element, what they give on floats."""
    np = need("numpy")
    m = numpy_backend()
    cases = case(op)
    by_arity: dict[int, list[Point]] = {}
    for point in cases.points:
        by_arity.setdefault(len(point.xs), []).append(point)
    for points in by_arity.values():
        cols = [np.array(col, dtype=np.float64) for col in zip(*(p.xs for p in points), strict=True)]
        with np.errstate(over="ignore"):
            out = op.forward(m, *cols)
        op.check(m, *cols)  # every sample point is valid: no error
        for k, point in enumerate(points):
            assert close(float(out[k]), op.forward(FLOAT, *point.xs), rel=1e-12), (op.name, point.xs)
        ones = np.ones_like(cols[0])
        for i in range(len(cols)):
            rows = [k for k, p in enumerate(points) if i in p.inputs()]
            with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                grads = op.derivative(i)(m, ones, out, *cols) * ones  # a constant rule gives a scalar
            for k in rows:
                want = op.derivative(i)(FLOAT, 1.0, float(out[k]), *points[k].xs)
                assert close(float(grads[k]), want, rel=1e-12), (op.name, i, points[k].xs)


# --- the domain ---------------------------------------------------------------------------------
def _invalid_params() -> list[Any]:
    return [
        pytest.param(op, xs, id=f"{op.name}{xs}")
        for op in TABLE
        for xs in (CASES[op.name].invalid if op.name in CASES else ())
    ]


@pytest.mark.parametrize(("op", "xs"), _invalid_params())
def test_outside_the_domain_raises_naming_op_and_value(op: Op, xs: tuple[float, ...]) -> None:
    with pytest.raises(op.error) as info:
        op.check(FLOAT, *xs)
    message = str(info.value)
    assert op.name in message and repr(float(xs[0])) in message and repr(float(xs[-1])) in message, message
    if op.error is DomainError:
        assert info.value.op == op.name and isinstance(info.value, ValueError)
    # and the same through the Value API, before any node is made
    with pytest.raises(op.error, match=op.name):
        case(op).spell(*(Value(x) for x in xs))


@pytest.mark.parametrize(("op", "xs"), _invalid_params())
def test_numpy_domain_error_names_the_batch_index(op: Op, xs: tuple[float, ...]) -> None:
    np = need("numpy")
    m = numpy_backend()
    good = case(op).points[0].xs
    cols = [np.array([g, x]) for g, x in zip(good, xs, strict=True)]
    with pytest.raises(op.error, match=rf"{op.name}: .*at batch index 1"):
        op.check(m, *cols)


def test_pow_base_zero_exponent_zero_has_slope_zero() -> None:
    # x ** 0 is the constant 1, also at x = 0 (where b * a ** (b - 1) would be 0 * inf):
    # a polynomial sum(c * x ** k) must be differentiable at 0.
    x = Value(0.0)
    y = chainrule.sum([3.0 * x**0, 2.0 * x**1, 5.0 * x**2])
    y.backward()
    assert y.data == 3.0 and x.grad == 2.0


def test_pow_derivative_for_the_exponent_of_a_negative_base_raises() -> None:
    # (-2) ** e has no real derivative in e (torch says NaN): a clear error instead of a silent NaN.
    base, e = Value(-2.0), Value(3.0)
    y = base**e
    assert y.data == -8.0
    with pytest.raises(DomainError, match=r"pow: the derivative is undefined at \(-2.0, 3.0\)"):
        y.backward()


def test_sqrt_slope_at_zero_is_an_error_not_a_nan() -> None:
    x = Value(0.0)
    y = x.sqrt()
    assert y.data == 0.0
    with pytest.raises(DomainError, match="sqrt"):
        y.backward()


@pytest.mark.parametrize("op", TABLE, ids=lambda op: op.name)
def test_nan_propagates_through_every_op(op: Op) -> None:
    # NaN is never "outside the domain": it flows through visibly instead of raising.
    arity = 3 if op.arity is None else op.arity
    out = op.forward(FLOAT, *([math.nan] * arity))
    assert math.isnan(out), f"{op.name}(nan, ...) = {out}"
    op.check(FLOAT, *([math.nan] * arity))


def test_domain_error_on_arrays_of_different_shapes_names_the_entry():
    # The invalid-mask of a / b has b's shape; the message must still find the offending entry.
    np = need("numpy")
    m = numpy_backend()
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([5.0, 0.0])
    with pytest.raises(ZeroDivisionError, match=r"got 2\.0, 0\.0 \(at batch index 1\)"):
        OPS["truediv"].check(m, a, b)


# --- the table's declared algebra (Op.linear, Op.bilinear) -------------------------------------
# The batch compiler fuses sums of products into matrix products because rows *declare* that they
# are linear or bilinear. These tests hold each declaration to the row's own rules, so a wrong
# declaration fails here instead of silently turning the fusion off (or giving wrong numbers).
_ALGEBRA_POINTS = [(1.5, -2.25, 3.0), (-0.75, 4.0, 0.5), (0.0, 7.0, -1.0)]


@pytest.mark.parametrize("op", [op for op in TABLE if op.linear is not None], ids=lambda op: op.name)
def test_declared_linear_rows_are_linear(op: Op) -> None:
    n = op.arity or 3
    coefficients = op.linear * n if op.arity is None else op.linear
    assert len(coefficients) == n
    for point in _ALGEBRA_POINTS:
        xs = point[:n]
        out = op.forward(FLOAT, *xs)
        assert out == sum(c * x for c, x in zip(coefficients, xs, strict=True))
        for i, c in enumerate(coefficients):
            assert op.derivative(i)(FLOAT, 2.0, out, *xs) == 2.0 * c


@pytest.mark.parametrize("op", [op for op in TABLE if op.bilinear], ids=lambda op: op.name)
def test_declared_bilinear_rows_are_products(op: Op) -> None:
    assert op.arity == 2
    for a, b, _ in _ALGEBRA_POINTS:
        out = op.forward(FLOAT, a, b)
        assert out == a * b
        assert op.derivative(0)(FLOAT, 2.0, out, a, b) == 2.0 * b
        assert op.derivative(1)(FLOAT, 2.0, out, a, b) == 2.0 * a


def test_the_fusion_has_its_algebra() -> None:
    # The rows the matrix-product fusion is built on must keep declaring it.
    assert OPS["add"].linear == (1.0, 1.0) and OPS["sub"].linear == (1.0, -1.0)
    assert OPS["neg"].linear == (-1.0,) and OPS["sum"].linear == (1.0,)
    assert OPS["mul"].bilinear
    assert all(op.linear is None and not op.bilinear for op in TABLE if op.name in ("truediv", "pow", "exp"))
