"""chainrule: a small, dependable automatic-differentiation engine for learning and for work.

The eager engine (`Value`, `no_grad`, ...) is imported at once and needs nothing but Python. The
rest is loaded on first use, so `import chainrule` stays fast and free of optional dependencies.
"""

from importlib import import_module as _import_module

from .engine import Value, constant, is_grad_enabled, no_grad, placeholder, sum  # noqa: A004, F401
from .errors import DomainError, GradcheckError, PlaceholderError
from .ops import OPS, TABLE, Op

__version__ = "0.1.0"

# public name -> the module (inside chainrule) that defines it
_LAZY = {
    "grad": "functional",
    "value_and_grad": "functional",
    "jacobian": "functional",
    "hessian": "functional",
    "numerical_grad": "functional",
    "gradcheck": "functional",
    "detect_anomaly": "anomaly",
    "AnomalyError": "anomaly",
    "to_dot": "drawing",
    "draw_dot": "drawing",
    "compile": "compiler",
    "Program": "compiler",
    "jit": "compiler",
    "save": "serialize",
    "load": "serialize",
    "ModelFileError": "serialize",
    "Tensor": "tensor",
    "defop": "userops",
    "explore": "explorer",
}

# submodules that `import chainrule` makes reachable as attributes on first use (chainrule.optim.SGD)
_SUBMODULES = {
    "nn",
    "losses",
    "optim",
    "functional",
    "check",
    "drawing",
    "plot",
    "variable",
    "compiler",
    "tensor",
    "userops",
    "explorer",
    "export",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        try:
            module = _import_module(f".{_LAZY[name]}", __name__)
        except ModuleNotFoundError as exc:  # an optional dependency (numpy for Tensor) is missing
            if exc.name is None or exc.name.startswith("chainrule"):
                raise
            raise ImportError(
                f"chainrule.{name} needs {exc.name}, which is not installed: pip install {exc.name}"
            ) from exc
        value = getattr(module, name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBMODULES:
        return _import_module(f".{name}", __name__)
    raise AttributeError(f"module 'chainrule' has no attribute {name!r}")


def __dir__() -> list[str]:
    # chainrule's own names only: not the helpers this file uses, nor Python's module attributes.
    own = [name for name in globals() if not name.startswith("_")]
    return sorted({*own, "__version__", *_LAZY, *_SUBMODULES})


__all__ = [
    "OPS",
    "TABLE",
    "DomainError",
    "GradcheckError",
    "Op",
    "PlaceholderError",
    "Value",
    "constant",
    "is_grad_enabled",
    "no_grad",
    "placeholder",
    # `sum` and `compile` stay out of `from chainrule import *`, which would shadow Python's own;
    # use them as chainrule.sum and chainrule.compile.
    *(name for name in _LAZY if name != "compile"),
]
