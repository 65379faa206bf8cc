"""The number systems that the derivative table's rules run on.

Every rule in `chainrule.ops` is written once, as a function of a namespace `m` plus its operands.
Arithmetic (`+ - * / **`) works the same on floats, `Value`s and arrays; everything else a rule needs
(`m.exp`, `m.atan`, `m.step`, ...) comes from `m`. This module provides five `m`s, all `Backend`s:

- `FLOAT`: plain Python floats, for the eager engine's forward pass and first-order backward;
- `VALUE`: `Value`s, so that a backward pass builds a graph that can be differentiated again;
- `numpy_backend()`: numpy arrays, for compiled batches and `Tensor`;
- `jax_backend()`, `torch_backend()`: `jax.numpy` and `torch` arrays, for `Program.to_jax`/`to_torch`.

The contract: the functions whose numerics need care (`SPECIAL`: `pow` and its `power_rule`,
`xlogy`, `sigmoid`, `softplus`, `relu`, `step`, `sign`, `is_fractional`, with their NaN and inf
conventions, and `sinc_slope`, the derivative of numpy's sinc) are written out below, side by side
for every number system. The float and Value backends also write out what math and Values lack
(`sinc`, `floor_divide`: numpy's names, which the array libraries have). Every other name comes
from the library of that number system: for floats, every function of `math` is set in `FLOAT` at
import (with IEEE results where math raises); the others look a name up on first use and then cache
it, as the `Value` method of that name for `VALUE`, in `numpy`, `jax.numpy` or `torch` for arrays.
`ALIASES` is the one table of names that math and numpy spell differently (`atan`/`arctan`), so a
rule may call any elementary function both offer and run everywhere.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = [
    "ALIASES",
    "FLOAT",
    "SINC_SERIES_RADIUS",
    "SPECIAL",
    "VALUE",
    "Backend",
    "jax_backend",
    "numpy_backend",
    "require_module",
    "sinc_slope_series",
    "spellings",
    "torch_backend",
]

# Functions with conventions of their own (NaN and inf, slopes at kinks): each backend writes them out.
SPECIAL = (
    "pow",
    "power_rule",
    "xlogy",
    "sigmoid",
    "softplus",
    "relu",
    "step",
    "sign",
    "is_fractional",
    "sinc_slope",
)

# math's spelling -> numpy's (jax.numpy follows numpy; torch accepts both). Looked up both ways, so a
# rule may write `m.atan` or `m.arctan`.
ALIASES = {
    "atan": "arctan",
    "asin": "arcsin",
    "acos": "arccos",
    "atanh": "arctanh",
    "asinh": "arcsinh",
    "acosh": "arccosh",
    "atan2": "arctan2",
    "pow": "power",
    "radians": "deg2rad",
    "degrees": "rad2deg",
}
_MATH_SPELLING = {numpy_name: math_name for math_name, numpy_name in ALIASES.items()}


def spellings(name: str) -> tuple[str, ...]:
    """`name` and its other spelling in `ALIASES` (if it has one), in that order."""
    other = ALIASES.get(name) or _MATH_SPELLING.get(name)
    return (name,) if other is None else (name, other)


class Backend:
    """A namespace `m` for the table's rules: functions written out, and the rest found by name.

    `functions` are set as attributes; any other attribute is asked of `lookup(name)` once (which
    returns a function or None) and then cached on the instance, so later uses cost nothing extra.
    """

    def __init__(self, name: str, functions: dict[str, Any], lookup: Callable[[str], Any]) -> None:
        self.name = name
        self.lookup = lookup
        for key, fn in functions.items():
            setattr(self, key, fn)

    def __getattr__(self, attr: str) -> Any:
        # Called only for attributes not set yet. Dunders are never functions of a number system
        # (copy and pickle ask for them), and `lookup` itself may not be set yet while unpickling.
        if attr.startswith("__") or attr == "lookup":
            raise AttributeError(attr)
        fn = self.lookup(attr)
        if fn is None:
            raise AttributeError(
                f"the {self.name} backend has no function {attr!r} (a rule called m.{attr}); it offers "
                f"{', '.join(SPECIAL)} and the elementary functions of {_SOURCES.get(self.name, self.name)}"
            )
        setattr(self, attr, fn)
        return fn

    def __repr__(self) -> str:
        return f"<chainrule backend {self.name!r}>"


_SOURCES = {"value": "Value's methods", "jax": "jax.numpy"}


def require_module(module: str, extra: str, what: str) -> ModuleType:
    """Import `module`, or raise an ImportError naming `what` needs it and how to install `extra`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{what} needs {extra}, which is not installed: {HINTS[extra]}") from exc


HINTS = {
    "numpy": "pip install numpy",
    "jax": 'pip install -e ".[jax]" in a chainrule checkout (or pip install "jax>=0.4.30")',
    "torch": 'pip install -e ".[torch]" in a chainrule checkout (or pip install torch==2.13.0)',
}


def _from_module(module: Any) -> Callable[[str], Any]:
    """A lookup of a backend's other functions by name (either spelling) in an array library."""

    def lookup(name: str) -> Any:
        for spelling in spellings(name):
            fn = getattr(module, spelling, None)
            if callable(fn):
                return fn
        return None

    return lookup


# --- numpy's sinc: sin(pi x) / (pi x), and its derivative --------------------------------------------
# sinc'(x) = (cos(pi x) - sinc(x)) / x loses all its digits to cancellation near 0 (and is 0 / 0 at 0),
# so there its Maclaurin series is used instead: sum over k >= 1 of (-1)^k pi^(2k) 2k x^(2k-1) / (2k+1)!.
# Fourteen terms within |x| < 1/2 leave an error below 1e-25; on the VALUE backend the series is a
# polynomial of Values, so derivatives of derivatives near 0 are its own (exact at 0 up to order 28).
SINC_SERIES_RADIUS = 0.5
_SINC_SLOPE_COEFFICIENTS = tuple(
    (-1) ** k * math.pi ** (2 * k) * 2 * k / math.factorial(2 * k + 1) for k in range(1, 15)
)


def sinc_slope_series(x: Any) -> Any:
    """sinc'(x) by its series (for |x| < `SINC_SERIES_RADIUS`), on any number system: arithmetic only."""
    x2 = x * x
    total = _SINC_SLOPE_COEFFICIENTS[-1]
    for c in reversed(_SINC_SLOPE_COEFFICIENTS[:-1]):
        total = c + x2 * total  # Horner's rule in x^2
    return x * total


# --- floats -------------------------------------------------------------------------------------
def _exp(x: float) -> float:
    # math.exp raises OverflowError past ~709; IEEE arithmetic (and PyTorch) say inf.
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _sigmoid(x: float) -> float:
    # Two branches so that exp() is only ever taken of a non-positive number: no overflow.
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _softplus(x: float) -> float:
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): exact for large |x|, no overflow.
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _relu(x: float) -> float:
    # Written so that a NaN input stays NaN (max-style code would turn it into 0).
    return 0.0 if x < 0.0 else x


def _step(x: float) -> float:
    # relu's slope: 0 up to and at 0, 1 above, and 1 at NaN, as PyTorch's relu backward gives it
    # (it zeroes the gradient only where the output is <= 0, and NaN <= 0 is false).
    return 0.0 if x <= 0.0 else 1.0


def _sign(x: float) -> float:
    return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)


def _is_fractional(x: float) -> bool:
    # A finite non-integer. NaN and inf are not "fractional": they propagate instead of raising.
    return math.isfinite(x) and not x.is_integer()


def _pow(a: float, b: float) -> float:
    try:
        return a**b
    except OverflowError:  # IEEE (and PyTorch) say inf, with the sign of an odd power
        return -math.inf if a < 0 and b % 2 == 1 else math.inf


def _power_rule(a: float, b: float) -> float:
    # d(a**b)/da = b * a**(b-1). For b == 0, a**b is the constant 1 even at a == 0, where the formula
    # would be 0 * inf: the slope is 0 (PyTorch agrees), so that x**0 in a polynomial has a gradient.
    return 0.0 if b == 0.0 else b * _pow(a, b - 1)


def _sin(x: float) -> float:
    try:
        return math.sin(x)
    except ValueError:  # sin(inf): NaN, as IEEE says, rather than math's exception
        return math.nan


def _cos(x: float) -> float:
    try:
        return math.cos(x)
    except ValueError:
        return math.nan


def _sinc(x: float) -> float:
    # numpy's normalised sinc; 1 at 0, its limit
    if x == 0.0:
        return 1.0
    y = math.pi * x
    return _sin(y) / y


def _sinc_slope(x: float) -> float:
    if abs(x) < SINC_SERIES_RADIUS:  # False at NaN, which the formula keeps NaN
        return sinc_slope_series(x)
    y = math.pi * x
    return (_cos(y) - _sin(y) / y) / x


def _floor_divide(a: float, b: float) -> float:
    # numpy's floor_divide is Python's //: floor(a / b), rounded consistently with a % b
    return a // b


def _xlogy(x: float, y: float) -> float:
    # x * log(y) with the convention 0 * log(0) = 0 (the limit, and PyTorch's choice).
    return 0.0 if x == 0.0 else x * math.log(y)


def _ieee(fn: Callable[..., float], name: str) -> Callable[..., float]:
    """math's `fn`, but with the IEEE result where math raises (sinh(1000) is inf, acosh(0) NaN)."""

    def run(*xs: float) -> float:
        try:
            return fn(*xs)
        except (OverflowError, ValueError):
            # numpy computes IEEE results (inf, NaN) for exactly these cases; without numpy the
            # error stands, naming the function.
            if importlib.util.find_spec("numpy") is None:
                raise
            np = importlib.import_module("numpy")
            with np.errstate(all="ignore"):
                return float(_from_module(np)(name)(*xs))

    run.__name__ = run.__qualname__ = name
    return run


def _float_backend(written_out: dict[str, Any]) -> ModuleType:
    """`FLOAT`: the functions written out here and every function of math, set in a module object.

    Not a `Backend`: math's functions are all known in advance, so nothing is left to look up later,
    and a module is the namespace whose attribute lookups Python caches at each call site. `m.relu(a)`
    in a rule runs for nearly every node the eager engine builds or sweeps; on a `Backend`, whose
    `__getattr__` turns every lookup into the generic one, it costs several percent of building a
    graph (docs/performance.md). An unknown name is the module's own AttributeError.
    """
    functions = dict(written_out)
    for name in dir(math):
        fn = getattr(math, name)
        if not name.startswith("_") and callable(fn):
            wrapped = _ieee(fn, name)
            for spelling in spellings(name):
                functions.setdefault(spelling, wrapped)  # a function written out wins
    namespace = ModuleType("chainrule.backends.FLOAT", "Python floats: the eager engine's number system.")
    vars(namespace).update(functions, name="float")
    return namespace


FLOAT = _float_backend(
    {
        # the hot functions of the eager engine, written out so that they need no numpy
        "exp": _exp,
        "log": math.log,
        "tanh": math.tanh,
        "sin": _sin,
        "cos": _cos,
        "sqrt": math.sqrt,
        "abs": abs,
        "pow": _pow,
        "power_rule": _power_rule,
        "sigmoid": _sigmoid,
        "softplus": _softplus,
        "relu": _relu,
        "step": _step,
        "sign": _sign,
        "is_fractional": _is_fractional,
        "xlogy": _xlogy,
        "sinc_slope": _sinc_slope,
        # numpy's functions that math lacks
        "sinc": _sinc,
        "floor_divide": _floor_divide,
    }
)


# --- Values (for derivatives of derivatives) ----------------------------------------------------
def _data(x: Any) -> float:
    """The number in a Value (or the number itself: a rule may mix plain numbers in)."""
    return x if isinstance(x, float | int) else x.data


def _value_xlogy(x: Any, y: Any) -> Any:
    return 0.0 if x.data == 0.0 else x * y.log()


def _value_power_rule(a: Any, b: Any) -> Any:
    # Only the point a == b == 0 needs the constant: elsewhere b * a**(b-1) stays a graph, whose own
    # derivative in b (a**(b-1) * (1 + b log a), nonzero at b == 0) higher-order gradients need.
    return 0.0 if a.data == 0.0 and b.data == 0.0 else b * a ** (b - 1)


def _value_sinc_slope(x: Any) -> Any:
    # A graph, so that it can be differentiated again: the series near 0 (see `sinc_slope_series`),
    # the formula elsewhere, chosen by the data as FLOAT chooses.
    if abs(x.data) < SINC_SERIES_RADIUS:
        return sinc_slope_series(x)
    y = math.pi * x
    return (y.cos() - y.sin() / y) / x


def _value_method(name: str) -> Callable[..., Any]:
    """`m.<name>(v, *rest)` on Values: `v.<name>(*rest)`, under either spelling of `name`.

    Found when called (the `Value` class cannot be imported here: the engine imports this module), so
    a function works for derivatives of derivatives as soon as `Value` has the method of its name."""
    names = spellings(name)

    def call(v: Any, *rest: Any) -> Any:
        method = getattr(v, name, None)  # the common case first, without a loop
        if method is not None:
            return method(*rest)
        for spelling in names[1:]:
            method = getattr(v, spelling, None)
            if method is not None:
                return method(*rest)
        raise AttributeError(
            f"the value backend has no function {name!r}: {type(v).__name__} has no method "
            f"{' or '.join(names)}, which derivatives of derivatives of a rule calling m.{name} need"
        )

    call.__name__ = call.__qualname__ = name
    return call


VALUE = Backend(
    "value",
    {
        "abs": abs,
        "pow": lambda a, b: a**b,
        "power_rule": _value_power_rule,
        "sigmoid": _value_method("sigmoid"),
        "softplus": _value_method("softplus"),
        "relu": _value_method("relu"),
        # The derivatives of step and sign are zero almost everywhere: constants, not graph nodes.
        "step": lambda v: _step(v.data),
        "sign": lambda v: _sign(v.data),
        "is_fractional": lambda v: _is_fractional(v.data),
        "xlogy": _value_xlogy,
        "sinc_slope": _value_sinc_slope,
        # floor(a / b) is a step function (mod's slope in b): a constant, like step and sign
        "floor_divide": lambda a, b: _floor_divide(_data(a), _data(b)),
    },
    _value_method,
)


# --- arrays: numpy, JAX, PyTorch (each made on first use: the libraries are optional) ------------
_LOCK = threading.Lock()
_MADE: dict[str, Backend] = {}


def _once(name: str, make: Callable[[], Backend]) -> Backend:
    """The backend `name`, made by `make` the first time (under a lock: threads may race to it)."""
    backend = _MADE.get(name)
    if backend is None:
        with _LOCK:
            backend = _MADE.get(name)
            if backend is None:
                backend = _MADE[name] = make()
    return backend


def _array_sinc_slope(lib: Any) -> Callable[[Any], Any]:
    """`sinc_slope` on the arrays of `lib` (numpy, jax.numpy and torch spell abs, where, sin, cos alike)."""

    def sinc_slope(x: Any) -> Any:
        small = lib.abs(x) < SINC_SERIES_RADIUS
        # the formula's branch is computed at 1 where the series is taken, so that neither it nor
        # JAX's derivative of it (second order) divides by zero
        safe = lib.where(small, 1.0, x)
        y = math.pi * safe
        return lib.where(small, sinc_slope_series(x), (lib.cos(y) - lib.sin(y) / y) / safe)

    return sinc_slope


def _make_numpy() -> Backend:
    np = require_module("numpy", "numpy", "this feature")

    def xlogy(x: Any, y: Any) -> Any:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(x == 0.0, 0.0, x * np.log(y))

    def power_rule(a: Any, b: Any) -> Any:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(b == 0.0, 0.0, b * np.power(a, b - 1))

    special = {
        "pow": np.power,
        "power_rule": power_rule,
        "xlogy": xlogy,
        "sigmoid": lambda x: np.exp(-np.logaddexp(0.0, -x)),
        "softplus": lambda x: np.logaddexp(0.0, x),
        "relu": lambda x: np.maximum(x, 0.0),
        "step": lambda x: (~(x <= 0.0)).astype(np.float64),  # 1 at NaN, as FLOAT's step
        "sign": lambda x: np.where(np.isnan(x), 0.0, np.sign(x)),  # 0 at NaN, as FLOAT and PyTorch
        "is_fractional": lambda x: np.isfinite(x) & (np.mod(x, 1.0) != 0.0),
        "sinc_slope": _array_sinc_slope(np),
    }
    return Backend("numpy", special, _from_module(np))


def numpy_backend() -> Backend:
    """The backend on numpy arrays (numpy is imported on first use: it is an optional extra)."""
    return _once("numpy", _make_numpy)


def _make_jax() -> Backend:
    jax = require_module("jax", "jax", "chainrule's JAX backend")
    jnp = jax.numpy

    def power_rule(a: Any, b: Any) -> Any:
        # b * a**(b-1), and 0 where b == 0 (as FLOAT). The base is replaced where the branch is not
        # taken so that JAX's own derivative of this rule (second order) has no NaN.
        safe = jnp.where(b == 0.0, 1.0, a)
        return jnp.where(b == 0.0, 0.0, b * jnp.power(safe, b - 1))

    def xlogy(x: Any, y: Any) -> Any:
        # x * log(y) with 0 * log(anything) = 0, FLOAT's convention.
        return jnp.where(x == 0.0, 0.0, x * jnp.log(jnp.where(x == 0.0, 1.0, y)))

    special = {
        "pow": jnp.power,
        "power_rule": power_rule,
        "xlogy": xlogy,
        "sigmoid": jax.nn.sigmoid,
        "softplus": lambda x: jnp.logaddexp(0.0, x),
        "relu": lambda x: jnp.where(x < 0.0, 0.0, x),  # NaN stays NaN, as FLOAT's relu
        "step": lambda x: jnp.where(x <= 0.0, 0.0, 1.0),  # 1 at NaN, as FLOAT's step
        "sign": lambda x: jnp.where(jnp.isnan(x), 0.0, jnp.sign(x)),  # 0 at NaN, as FLOAT's sign
        "is_fractional": lambda x: jnp.isfinite(x) & (jnp.mod(x, 1.0) != 0.0),
        "sinc_slope": _array_sinc_slope(jnp),
        "transpose": lambda a, axes=None: jnp.transpose(a, axes),
    }
    return Backend("jax", special, _from_module(jnp))


def jax_backend() -> Backend:
    """The backend on `jax.numpy` arrays. Turns on JAX's float64 mode (chainrule computes in float64)."""
    jax = require_module("jax", "jax", "chainrule's JAX backend")
    jax.config.update("jax_enable_x64", True)
    return _once("jax", _make_jax)


def _make_torch() -> Backend:
    torch = require_module("torch", "torch", "chainrule's PyTorch backend")

    def power_rule(a: Any, b: Any) -> Any:
        return torch.where(b == 0.0, 0.0, b * torch.pow(a, b - 1))

    def xlogy(x: Any, y: Any) -> Any:
        return torch.where(x == 0.0, 0.0, x * torch.log(y))

    def softplus(x: Any) -> Any:
        # log(1 + e^x) exactly (torch.nn.functional.softplus switches to x above x = 20)
        return torch.logaddexp(x, torch.zeros((), dtype=x.dtype, device=x.device))

    def axes_of(axis: Any) -> Any:
        return (axis,) if isinstance(axis, int) else axis

    def reduce(fn: Callable[..., Any]) -> Callable[..., Any]:
        # numpy's signature (axis=, keepdims=) on torch's (dim=, keepdim=)
        def run(a: Any, axis: Any = None, keepdims: bool = False) -> Any:
            dims = tuple(range(a.ndim)) if axis is None else axes_of(axis)
            return fn(a, dim=dims, keepdim=keepdims) if dims else a.clone()

        return run

    def transpose(a: Any, axes: Any = None) -> Any:
        return a.permute(*(reversed(range(a.ndim)) if axes is None else axes))

    def expand_dims(a: Any, axis: Any) -> Any:
        # numpy's rule: each new axis is numbered in the result, so insert them in increasing order
        ndim = a.ndim + len(axes_of(axis))
        for ax in sorted(x % ndim for x in axes_of(axis)):
            a = a.unsqueeze(ax)
        return a

    special = {
        "pow": torch.pow,
        "power_rule": power_rule,
        "xlogy": xlogy,
        "sigmoid": torch.sigmoid,
        "softplus": softplus,
        "relu": torch.relu,
        "step": lambda x: (~(x <= 0.0)).to(x.dtype),  # 1 at NaN, as FLOAT's step
        "sign": lambda x: torch.where(torch.isnan(x), torch.zeros_like(x), torch.sign(x)),  # 0 at NaN
        "is_fractional": lambda x: torch.isfinite(x) & (torch.remainder(x, 1.0) != 0.0),
        "sinc_slope": _array_sinc_slope(torch),
        # elementary functions of math and numpy that torch lacks (degrees and radians it has, as
        # rad2deg and deg2rad: ALIASES finds them)
        "cbrt": lambda x: torch.sign(x) * torch.abs(x) ** (1.0 / 3.0),
        "fabs": torch.abs,
        # numpy's signatures for the tensor-only rules
        "transpose": transpose,
        "sum": reduce(torch.sum),
        "mean": reduce(torch.mean),
        "expand_dims": expand_dims,
    }
    return Backend("torch", special, _from_module(torch))


def torch_backend() -> Backend:
    """The backend on `torch` tensors."""
    return _once("torch", _make_torch)
