"""The worked examples of the seed notebooks (../shared/seeds/), through chainrule's Value: same numbers.

000: L = e / (b + a**2) (checked there against PyTorch); 001: L = (a*b + c) * f and the tanh neuron of
micrograd's lecture; 004: every `Variable` example of the course notebook, written with `Value`.
"""

from __future__ import annotations

import math

import pytest

from chainrule import Value

approx = pytest.approx  # every printed number to 12 significant digits, most of them exactly


# --- seed 000 -----------------------------------------------------------------------------------
def test_000_e_over_b_plus_a_squared() -> None:
    a = Value(2.0, "a")
    b = Value(4.0, "b")
    c = a**2
    d = b + c
    e = Value(3.0, "e")
    L = e / d
    L.backward()
    assert (L.data, d.data, c.data) == (0.375, 8.0, 4.0)
    assert (a.grad, b.grad, e.grad) == (-0.1875, -0.046875, 0.125)


# --- seed 001 -----------------------------------------------------------------------------------
def test_001_a_times_b_plus_c_times_f() -> None:
    a, b, c, f = Value(2.0), Value(-3.0), Value(10.0), Value(-2.0)
    e = a * b
    d = e + c
    L = d * f
    L.backward()
    assert L.data == -8.0
    assert (f.grad, d.grad, c.grad, e.grad, a.grad, b.grad) == (4.0, -2.0, -2.0, -2.0, 6.0, -4.0)


def _neuron(bias: float, tanh_from_exp: bool = False) -> dict[str, Value]:
    x1, x2 = Value(2.0, "x1"), Value(0.0, "x2")
    w1, w2 = Value(-3.0, "w1"), Value(1.0, "w2")
    b = Value(bias, "b")
    x1w1 = x1 * w1
    x2w2 = x2 * w2
    x1w1x2w2 = x1w1 + x2w2
    n = x1w1x2w2 + b
    if tanh_from_exp:  # the lecture's second version: tanh spelled out with exp, - and /
        e = (2 * n).exp()
        o = (e - 1) / (e + 1)
    else:
        o = n.tanh()
    o.backward()
    return dict(x1=x1, x2=x2, w1=w1, w2=w2, b=b, x1w1=x1w1, x2w2=x2w2, x1w1x2w2=x1w1x2w2, n=n, o=o)


@pytest.mark.parametrize("tanh_from_exp", [False, True])
def test_001_tanh_neuron_of_the_lecture(tanh_from_exp: bool) -> None:
    v = _neuron(6.8813735870195432, tanh_from_exp)
    assert v["o"].data == approx(0.7071067811865476, rel=1e-12)  # 1/sqrt(2)
    half = approx(0.5, rel=1e-12)
    for name in ("n", "b", "x1w1x2w2", "x1w1", "x2w2"):
        assert v[name].grad == half, name
    assert v["x1"].grad == approx(-1.5, rel=1e-12) and v["w1"].grad == approx(1.0, rel=1e-12)
    assert v["x2"].grad == approx(0.5, rel=1e-12) and v["w2"].grad == 0.0


def test_001_tanh_neuron_of_the_seed() -> None:
    v = _neuron(6.787875467865)
    assert v["n"].data == 0.7878754678649997
    assert v["o"].data == approx(0.657203809653529, rel=1e-14)
    assert v["x1w1"].grad == approx(0.5680831525768881, rel=1e-14)


# --- seed 004: the course's Variable examples, in Value's spelling -----------------------------
def test_004_a_plus_b_times_c() -> None:
    a, b, c = Value(2), Value(3), Value(4)
    res = (a + b) * c
    res.backward()
    assert res.data == 20
    assert (a.grad, b.grad, c.grad) == (4.0, 4.0, 5.0)


def test_004_two_routes_then_backward_from_the_intermediate() -> None:
    a, b = Value(4), Value(3)
    c = a + b
    res = a * c
    res.backward()
    assert res.data == 28
    assert (a.grad, b.grad, c.grad) == (11.0, 4.0, 4.0)
    a.grad = b.grad = c.grad = 0
    c.backward()
    assert (a.grad, b.grad) == (1.0, 1.0)


def test_004_second_backward_accumulates_and_zero_grad_resets() -> None:
    a, b = Value(4), Value(3)
    res = (a + b) * a
    res.backward()
    assert (a.grad, b.grad) == (11.0, 4.0)
    res.backward()
    assert (a.grad, b.grad) == (22.0, 8.0)
    res.zero_grad()
    res.backward()
    assert (a.grad, b.grad) == (11.0, 4.0)


def test_004_requires_grad_false() -> None:
    a, b = Value(4, requires_grad=True), Value(3, requires_grad=False)
    res = (a + b) * a
    res.backward()
    assert (a.grad, b.grad) == (11.0, 0.0)


def test_004_power_division_exp() -> None:
    a, b = Value(4), Value(3)
    (a**b).backward()
    assert a.grad == 48.0 and b.grad == approx(88.722839111673, rel=1e-13)

    a, b = Value(4), Value(3)
    (a / b).backward()
    assert (a.grad, b.grad) == (0.3333333333333333, -0.4444444444444444)

    a, b = Value(2), Value(3)
    (a.exp() * 3).backward()
    assert (a.grad, b.grad) == (approx(22.16716829679195, rel=1e-15), 0.0)


def test_004_numbers_mixed_in() -> None:
    a = Value(4)
    ((a**2) * 2 * a).backward()
    assert a.grad == 96.0

    b = Value(3)
    (2 ** (3 * b)).backward()
    assert b.grad == approx(1064.674069340076, rel=1e-15)

    a = Value(4)
    (16 / a).exp().backward()
    assert a.grad == approx(-54.59815003314423, rel=1e-15)


def test_004_closures_section() -> None:
    a = Value(4)
    res = (3 + a) * a
    res.backward()
    assert a.grad == 11.0
    res.zero_grad()
    res.backward()
    assert a.grad == 11.0

    a, b = Value(4), Value(3)
    ((a / b) * 2).backward()
    assert (a.grad, b.grad) == (0.6666666666666666, -0.8888888888888888)

    a, b = Value(5), Value(3)
    c = a - b
    res = a * c
    res.backward()
    assert res.data == 10 and (a.grad, b.grad) == (7.0, -5.0)


def test_004_gradient_check_by_central_difference() -> None:
    eps = 0.001
    x = Value(3.2)
    f = 21 * (x**3)
    f1 = (21 * (x + eps) ** 3 - 21 * (x - eps) ** 3) / (2 * eps)
    f.backward()
    assert x.grad == approx(645.12, rel=1e-14)
    assert f1.data == approx(645.1200210000252, rel=1e-12)
    assert math.isclose(x.grad, f1.data, rel_tol=1e-7)
