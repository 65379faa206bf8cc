"""Tests for chainrule.plot: the plotted numbers are chainrule's derivatives and the figures save."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from conftest import need


def f(x: Any) -> Any:  # the seeds' function
    return 3 * x**2 - 4 * x + 5


def line_data(ax: Any, label_start: str) -> tuple[Any, Any]:
    line = next(line for line in ax.get_lines() if line.get_label().startswith(label_start))
    return line.get_xdata(), line.get_ydata()


def test_plot_function_draws_f_and_its_exact_derivative(tmp_path: Path) -> None:
    np = need("numpy")
    need("matplotlib")
    from chainrule.plot import plot_function

    fig = plot_function(f, tangent_at=2.0, save=tmp_path / "f.png")
    ax = fig.axes[0]
    xs, ys = line_data(ax, "f(x)")
    _, slopes = line_data(ax, "f'(x)")
    assert np.array_equal(xs, np.arange(-5, 5, 0.25))  # the seeds' grid
    assert np.allclose(ys, 3 * xs**2 - 4 * xs + 5, rtol=0, atol=1e-12)
    assert np.allclose(slopes, 6 * xs - 4, rtol=0, atol=1e-12)
    tx, ty = line_data(ax, "tangent at x=2")
    assert math.isclose((ty[1] - ty[0]) / (tx[1] - tx[0]), 8.0)  # f'(2) = 8
    assert (tmp_path / "f.png").read_bytes().startswith(b"\x89PNG")


def test_plot_function_accepts_value_methods_and_an_axes() -> None:
    np = need("numpy")
    need("matplotlib")
    from matplotlib.figure import Figure

    from chainrule.plot import plot_function

    fig = Figure()
    ax = fig.add_subplot()
    assert plot_function(lambda x: x.tanh(), [-1.0, 0.0, 2.0], ax=ax) is fig
    _, slopes = line_data(ax, "f'(x)")
    assert np.allclose(slopes, [1 - math.tanh(v) ** 2 for v in (-1.0, 0.0, 2.0)])
    with pytest.raises(ValueError, match="plot_function: xs"):
        plot_function(f, [1.0])


def test_difference_error_uses_chainrule_derivative_and_numerical_grad(tmp_path: Path) -> None:
    np = need("numpy")
    need("matplotlib")
    import chainrule as cr
    from chainrule.plot import plot_difference_error

    hs = [0.1, 0.001, 0.0001, 0.00001, 0.000001]  # seed 003's steps
    fig = plot_difference_error(f, 4.0, hs, save=tmp_path / "err.png")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    x_fwd, err_fwd = line_data(ax, "forward")
    _, err_central = line_data(ax, "central")
    assert np.array_equal(x_fwd, hs)
    expected = [abs(cr.numerical_grad(f, 4.0, h=h, method="forward")[0] - 20.0) for h in hs]
    assert np.allclose(err_fwd, expected)
    # forward differences of a parabola are off by exactly 3h: the plot shows that line
    assert np.allclose(err_fwd[:3], [0.3, 0.003, 0.0003], rtol=1e-6)
    # central differences are exact for a parabola up to rounding: far below the forward error
    assert np.all(np.nan_to_num(err_central, nan=0.0) < err_fwd / 100)
    assert (tmp_path / "err.png").read_bytes().startswith(b"\x89PNG")


def test_default_steps_show_the_rounding_regime() -> None:
    np = need("numpy")
    need("matplotlib")
    from chainrule.plot import plot_difference_error

    fig = plot_difference_error(lambda x: x.exp(), 1.0)
    hs, err = line_data(fig.axes[0], "central")
    assert hs.min() <= 1e-13 and hs.max() >= 1e-2
    best = hs[np.nanargmin(err)]
    assert 1e-7 < best < 1e-3  # too small an h loses to rounding, too big to truncation
    with pytest.raises(ValueError, match="hs must be positive"):
        plot_difference_error(f, 1.0, [0.1, 0.0])
