"""Plots a learner needs: a function with the derivative chainrule computes for it, and how good
finite differences are.

`plot_function(f, xs)` draws f and f' (the seed notebooks' f(x) = 3x**2 - 4x + 5 and its slope);
`plot_difference_error(f, x, hs)` draws the error of the forward and central difference quotients
against the step h on log axes (seed 003's experiment: the error falls with h until rounding takes
over). Both return a matplotlib `Figure` and can save it as a PNG.

The figures are made without pyplot, so they need no display and no GUI backend (saving uses Agg),
they do not pile up in pyplot's list of open figures, and Jupyter shows a returned figure as the
cell's result (after `%matplotlib inline` or `import matplotlib.pyplot`, which set up the display).
To draw into a window or a grid of your own, pass `ax=` from `plt.subplots()`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from .engine import Value
from .functional import grad, numerical_grad, value_and_grad

__all__ = ["plot_difference_error", "plot_function"]


def _imports() -> tuple[Any, Any]:
    try:
        import numpy as np
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("chainrule.plot needs matplotlib and numpy: pip install matplotlib numpy") from exc
    return np, Figure


def _axes(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any]:
    """The axes to draw on and its figure: the caller's, or a new pyplot-free figure."""
    if ax is not None:
        return ax.figure, ax
    _, Figure = _imports()
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _float(y: Any) -> float:
    return float(y.data if isinstance(y, Value) else y)


def _finish(fig: Any, save: str | os.PathLike[str] | None) -> Any:
    if save is not None:
        fig.savefig(save, dpi=120)  # the format follows the file name; .png is the intended one
    return fig


def plot_function(
    f: Callable[[Any], Any],
    xs: Iterable[float] | None = None,
    *,
    tangent_at: float | None = None,
    ax: Any = None,
    save: str | os.PathLike[str] | None = None,
    title: str | None = None,
) -> Any:
    """Draw f(x) and its derivative f'(x), computed by chainrule, over `xs`; return the figure.

    `f` takes one number (as a `Value`, so `.tanh()` etc. work) and returns a Value or a number.
    `xs` defaults to the seeds' np.arange(-5, 5, 0.25). `tangent_at=x0` also draws the tangent
    line at x0, whose slope is f'(x0). `save="f.png"` writes the picture.
    """
    np, _ = _imports()
    xs = np.arange(-5, 5, 0.25) if xs is None else np.asarray(list(xs), dtype=float)
    if xs.ndim != 1 or len(xs) < 2:
        raise ValueError(f"plot_function: xs must be at least two numbers, got {xs!r}")
    f_and_slope = value_and_grad(f)
    pairs = [f_and_slope(float(x)) for x in xs]  # one forward and one backward pass per point
    ys = np.array([_float(y) for y, _ in pairs])
    slopes = np.array([_float(d) for _, d in pairs])

    fig, ax = _axes(ax, (7.0, 4.5))
    name = getattr(f, "__name__", "f")
    name = "f" if name == "<lambda>" else name
    ax.plot(xs, ys, label=f"{name}(x)", color="tab:blue")
    ax.plot(xs, slopes, label=f"{name}'(x), by chainrule", color="tab:orange", linestyle="--")
    if tangent_at is not None:
        y0, slope = (_float(v) for v in f_and_slope(float(tangent_at)))
        half = (xs.max() - xs.min()) / 6
        tx = np.array([tangent_at - half, tangent_at + half])
        ax.plot(tx, y0 + slope * (tx - tangent_at), color="tab:red", label=f"tangent at x={tangent_at:g}")
        ax.plot([tangent_at], [y0], "o", color="tab:red")
        ax.annotate(f"slope {slope:.4g}", (tangent_at, y0), textcoords="offset points", xytext=(8, -14))
    ax.axhline(0.0, color="0.6", linewidth=0.8)
    ax.set_xlabel("x")
    ax.set_title(title if title is not None else f"{name} and its derivative")
    ax.grid(alpha=0.3)
    ax.legend()
    return _finish(fig, save)


def plot_difference_error(
    f: Callable[[Any], Any],
    x: float,
    hs: Iterable[float] | None = None,
    *,
    ax: Any = None,
    save: str | os.PathLike[str] | None = None,
    title: str | None = None,
) -> Any:
    """Draw |difference quotient - f'(x)| against the step h, for forward and central differences.

    f'(x) is chainrule's exact derivative; the quotients come from `chainrule.numerical_grad`.
    `hs` defaults to 10^-14 ... 10^-1. Log axes show both regimes: truncation error falling as h
    (forward) or h**2 (central), then rounding error growing as 1/h. An error of exactly 0 cannot
    be drawn on a log axis and is left out. Returns the figure; `save="err.png"` writes it.
    """
    np, _ = _imports()
    hs = np.logspace(-14, -1, 53) if hs is None else np.asarray(list(hs), dtype=float)
    if hs.ndim != 1 or len(hs) == 0 or not np.all(hs > 0):
        raise ValueError(f"plot_difference_error: hs must be positive step sizes, got {hs!r}")
    exact = _float(grad(f)(float(x)))

    def errors(method: str) -> Any:
        approx = np.array([numerical_grad(f, float(x), h=float(h), method=method)[0] for h in hs])
        err = np.abs(approx - exact)
        return np.where(err > 0, err, np.nan)  # log axes cannot show 0

    fig, ax = _axes(ax, (7.0, 4.5))
    ax.loglog(hs, errors("forward"), "o-", markersize=3, label="forward: (f(x+h) - f(x)) / h")
    ax.loglog(hs, errors("central"), "s-", markersize=3, label="central: (f(x+h) - f(x-h)) / 2h")
    ax.set_xlabel("step h")
    ax.set_ylabel("|difference quotient - f'(x)|")
    ax.set_title(title if title is not None else f"finite-difference error at x={x:g} (f'(x) = {exact:.6g})")
    ax.grid(which="both", alpha=0.3)
    ax.legend()
    return _finish(fig, save)
