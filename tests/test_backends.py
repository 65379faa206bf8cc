"""The backends' contract (`chainrule.backends`): the special functions written out on every number
system, every other function found by name, and an op whose rules call any elementary function that
math and numpy both offer running everywhere: eager, grad(grad), compiled float and batch, Tensor,
to_jax and to_torch.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

import chainrule as cr
from chainrule import Value, placeholder
from chainrule.backends import ALIASES, FLOAT, SPECIAL, VALUE, jax_backend, numpy_backend, torch_backend
from conftest import need

np = need("numpy")

# Elementary functions of one argument that math and numpy both have (under one of ALIASES' spellings),
# each with points inside its domain.
ELEMENTARY = {
    "atan": (-3.0, 0.5, 40.0),
    "asin": (-0.9, 0.2, 0.7),
    "acos": (-0.9, 0.2, 0.7),
    "atanh": (-0.9, 0.2, 0.7),
    "asinh": (-3.0, 0.5, 40.0),
    "acosh": (1.0, 1.5, 40.0),
    "sinh": (-3.0, 0.5, 4.0),
    "cosh": (-3.0, 0.5, 4.0),
    "tan": (-1.0, 0.5, 1.2),
    "log1p": (-0.5, 0.0, 3.0),
    "expm1": (-3.0, 1e-9, 3.0),
    "log2": (0.5, 1.0, 8.0),
    "log10": (0.5, 1.0, 1000.0),
    "cbrt": (-8.0, 0.5, 27.0),
    "exp2": (-3.0, 0.5, 10.0),
    "fabs": (-3.0, 0.0, 2.5),
    "degrees": (-3.0, 0.0, 2.5),
    "radians": (-300.0, 0.0, 25.0),
}


def array_backends() -> list[Any]:
    return [
        pytest.param("numpy", id="numpy"),
        pytest.param("jax", id="jax"),
        pytest.param("torch", id="torch"),
    ]


def backend_and_array(engine: str) -> tuple[Any, Any]:
    """The backend called `engine` and a function making a float64 array of it from a list."""
    if engine == "numpy":
        return numpy_backend(), lambda xs: np.asarray(xs, dtype=np.float64)
    lib = need(engine)
    if engine == "jax":
        backend = jax_backend()
        return backend, lambda xs: lib.numpy.asarray(xs, dtype=lib.numpy.float64)
    return torch_backend(), lambda xs: lib.tensor(xs, dtype=lib.float64)


# --- the contract ---------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["float", "value", "numpy", "jax", "torch"])
def test_every_backend_writes_out_the_special_functions(engine: str) -> None:
    """The functions with conventions of their own are written out on each backend (set when it is
    made, not found by name), so no number system falls back to a library's different convention."""
    backend = {"float": FLOAT, "value": VALUE}.get(engine) or backend_and_array(engine)[0]
    missing = [name for name in SPECIAL if name not in vars(backend)]
    assert not missing, f"the {engine} backend does not write out {missing}"
    assert backend.name == engine


@pytest.mark.parametrize("engine", ["numpy", "jax", "torch"])
@pytest.mark.parametrize("name", sorted(ELEMENTARY))
def test_elementary_functions_resolve_by_name_on_arrays(engine: str, name: str) -> None:
    """Each array backend finds the function by either spelling and gives the float backend's numbers."""
    backend, array = backend_and_array(engine)
    points = list(ELEMENTARY[name])
    want = [getattr(FLOAT, name)(x) for x in points]
    for spelling in {name, ALIASES.get(name, name)}:
        got = [float(v) for v in np.asarray(getattr(backend, spelling)(array(points)))]
        assert np.allclose(got, want, rtol=1e-14, atol=0), (engine, spelling, got, want)


@pytest.mark.parametrize("name", sorted(ELEMENTARY))
def test_the_float_backend_is_math(name: str) -> None:
    points = ELEMENTARY[name]
    fn = getattr(math, name)
    assert [getattr(FLOAT, name)(x) for x in points] == [fn(x) for x in points]
    if name in ALIASES:  # numpy's spelling works on floats too
        assert [getattr(FLOAT, ALIASES[name])(x) for x in points] == [fn(x) for x in points]


def test_the_float_backend_gives_ieee_results_where_math_raises() -> None:
    # math raises OverflowError and ValueError; IEEE arithmetic (numpy, PyTorch) says inf and NaN.
    assert FLOAT.sinh(1000.0) == math.inf and FLOAT.sinh(-1000.0) == -math.inf
    assert FLOAT.cosh(-1000.0) == math.inf and FLOAT.expm1(1000.0) == math.inf
    assert math.isnan(FLOAT.acosh(0.5)) and math.isnan(FLOAT.asin(2.0)) and math.isnan(FLOAT.atanh(3.0))
    assert FLOAT.log1p(-1.0) == -math.inf


def test_value_backend_calls_the_value_method_of_that_name() -> None:
    v = Value(0.3)
    assert VALUE.tanh(v).data == math.tanh(0.3) and VALUE.exp(v).data == math.exp(0.3)
    assert VALUE.sigmoid(v).data == v.sigmoid().data


def test_a_looked_up_function_is_cached_on_the_backend() -> None:
    backend = numpy_backend()
    first = backend.arctan
    assert "arctan" in vars(backend) and backend.arctan is first is np.arctan
    atan = FLOAT.atan
    assert FLOAT.atan is atan and "atan" in vars(FLOAT)


@pytest.mark.parametrize("engine", ["float", "value", "numpy", "jax", "torch"])
def test_an_unknown_function_is_a_clear_attribute_error(engine: str) -> None:
    backend = {"float": FLOAT, "value": VALUE}.get(engine) or backend_and_array(engine)[0]
    if engine == "value":  # found when called: the Value class is asked then
        with pytest.raises(AttributeError, match=r"the value backend has no function 'no_such_fn'"):
            backend.no_such_fn(Value(1.0))
        return
    # FLOAT holds every function of math from the start (a module object): its own AttributeError
    message = (
        "no attribute 'no_such_fn'"
        if engine == "float"
        else f"the {engine} backend has no function 'no_such_fn'"
    )
    with pytest.raises(AttributeError, match=message):
        backend.no_such_fn  # noqa: B018 - the lookup is what is tested


def test_dunders_are_never_looked_up() -> None:
    # copy, pickle and friends ask for dunders: they are not functions of a number system
    assert not hasattr(FLOAT, "__deepcopy__") and not hasattr(numpy_backend(), "__array__")
    assert copy.copy(numpy_backend()).arctan(1.0) == math.atan(1.0)


# --- an op whose rules call m.atan, m.sinh, m.cosh: it runs on every number system ---------------
def _eager_slopes(f: Any, points: list[float]) -> tuple[list[float], list[float]]:
    values, slopes = [], []
    for p in points:
        x = Value(p)
        y = f(x)
        y.backward()
        values.append(y.data)
        slopes.append(x.grad)
    return values, slopes


def _everywhere(f: Any, points: list[float], want: list[float], slope: list[float]) -> None:
    """`f` (a function of one Value) gives `want` and `slope` in eager, float and batch mode, on a
    Tensor, and through to_jax and to_torch."""
    assert np.allclose(_eager_slopes(f, points), [want, slope], rtol=1e-14, atol=0)
    x = placeholder("x")
    program = cr.compile(f(x), [x])
    for p, w, s in zip(points, want, slope, strict=True):  # float mode
        value, (grad,) = program.value_and_grad(p)
        assert math.isclose(value, w, rel_tol=1e-14) and math.isclose(grad, s, rel_tol=1e-14)
    batch = np.asarray(points)
    value, (grad,) = program.value_and_grad(batch)  # batch mode
    assert np.allclose(value, want, rtol=1e-14, atol=0) and np.allclose(grad, slope, rtol=1e-14, atol=0)
    t = cr.Tensor(batch)
    out = f(t)
    out.sum().backward()
    assert np.allclose(out.data, want, rtol=1e-14, atol=0) and np.allclose(t.grad, slope, rtol=1e-14, atol=0)
    jax = need("jax")
    fn, theta = program.to_jax()
    got = jax.jit(fn)(theta, batch)
    d = jax.grad(lambda t, x: fn(t, x).sum(), argnums=1)(theta, batch)
    assert np.allclose(got, want, rtol=1e-14, atol=0) and np.allclose(d, slope, rtol=1e-14, atol=0)
    torch = need("torch")
    module = program.to_torch()
    xt = torch.tensor(points, dtype=torch.float64, requires_grad=True)
    out = module(xt)
    out.sum().backward()
    assert np.allclose(out.detach().numpy(), want, rtol=1e-14, atol=0)
    assert np.allclose(xt.grad.numpy(), slope, rtol=1e-14, atol=0)


@pytest.mark.usefixtures("user_ops_restored")
def test_a_defop_calling_m_atan_runs_everywhere() -> None:
    atan = cr.defop("atan_test", lambda m, x: m.atan(x), lambda m, g, out, x: g / (1 + x * x))
    points = [-3.0, -0.5, 0.0, 0.25, 2.0, 40.0]
    _everywhere(atan, points, [math.atan(p) for p in points], [1 / (1 + p * p) for p in points])
    # its second derivative (the rule on Values): -2x / (1 + x^2)^2
    for p in points:
        assert math.isclose(
            cr.grad(cr.grad(atan))(p), -2 * p / (1 + p * p) ** 2, rel_tol=1e-12, abs_tol=1e-300
        )


@pytest.mark.usefixtures("user_ops_restored")
def test_a_defop_calling_m_sinh_and_m_cosh_runs_everywhere() -> None:
    sinh = cr.defop("sinh_test", lambda m, x: m.sinh(x), lambda m, g, out, x: g * m.cosh(x))
    points = [-3.0, -0.5, 0.0, 0.25, 2.0]
    _everywhere(sinh, points, [math.sinh(p) for p in points], [math.cosh(p) for p in points])


@pytest.mark.usefixtures("user_ops_restored")
def test_grad_of_grad_resolves_value_methods_by_name() -> None:
    # m.tanh on the VALUE backend is found by name (Value.tanh), so a rule calling it differentiates twice
    wave = cr.defop(
        "wave_test",
        lambda m, x: x * m.tanh(x),
        lambda m, g, out, x: g * (m.tanh(x) + x * (1 - m.tanh(x) ** 2)),
    )
    assert VALUE.lookup("tanh")(Value(0.3)).data == math.tanh(0.3)  # the by-name path, not a written-out one
    for p in (-1.5, 0.3, 2.0):
        t = math.tanh(p)
        want = 2 * (1 - t * t) - 2 * p * t * (1 - t * t)
        assert math.isclose(cr.grad(cr.grad(wave))(p), want, rel_tol=1e-12)
