"""Optimizers step by step against torch.optim on the same parameters, schedules, and bad settings."""

from __future__ import annotations

import math

import pytest

from chainrule import Value
from chainrule import optim as co
from chainrule.nn import MLP
from conftest import need

START = [0.5, -1.5, 2.0, 0.1]


def _loss_ours(ps: list[Value]) -> Value:
    # A loss with different curvature in every coordinate, so the optimizers' states differ.
    a, b, c, d = ps
    return (a - 1) ** 2 + (b * c).tanh() + (c * c + 1).log() + (d * 3).sin() + a * d


def _loss_torch(torch, t):
    a, b, c, d = t
    return (a - 1) ** 2 + torch.tanh(b * c) + torch.log(c * c + 1) + torch.sin(d * 3) + a * d


def _run_both(make_ours, make_theirs, steps: int = 6, schedule=None):
    """Train the same four numbers with both libraries; compare them after every step."""
    torch = need("torch")
    ours = [Value(x) for x in START]
    theirs = torch.tensor(START, dtype=torch.float64, requires_grad=True)
    opt, topt = make_ours(ours), make_theirs(torch, [theirs])
    tsched = torch.optim.lr_scheduler.LambdaLR(topt, schedule) if schedule else None
    for _ in range(steps):
        opt.zero_grad()
        _loss_ours(ours).backward()
        opt.step()
        topt.zero_grad()
        _loss_torch(torch, theirs).backward()
        topt.step()
        if tsched:
            tsched.step()
        assert [p.data for p in ours] == pytest.approx(theirs.tolist(), rel=1e-12, abs=1e-13)
    return ours


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.1},
        {"lr": 0.1, "momentum": 0.9},
        {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1},
        {"lr": 0.05, "momentum": 0.5, "dampening": 0.3, "weight_decay": 0.01},
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    ],
)
def test_sgd_matches_torch(kwargs):
    _run_both(lambda ps: co.SGD(ps, **kwargs), lambda torch, ps: torch.optim.SGD(ps, **kwargs))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.1},
        {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6},
        {"lr": 0.05, "weight_decay": 0.1},
    ],
)
def test_adam_matches_torch(kwargs):
    _run_both(lambda ps: co.Adam(ps, **kwargs), lambda torch, ps: torch.optim.Adam(ps, **kwargs))


def test_adamw_matches_torch():
    kwargs = {"lr": 0.05, "weight_decay": 0.1}
    _run_both(lambda ps: co.AdamW(ps, **kwargs), lambda torch, ps: torch.optim.AdamW(ps, **kwargs))


def test_scheduled_lr_matches_torch_lambda_lr():
    # torch's LambdaLR multiplies the initial lr by a factor of the step: the same as our callable.
    factor = co.linear(1.0, 0.1, 6)
    _run_both(
        lambda ps: co.SGD(ps, lr=lambda k: 0.2 * factor(k), momentum=0.9),
        lambda torch, ps: torch.optim.SGD(ps, lr=0.2, momentum=0.9),
        schedule=factor,
    )
    _run_both(
        lambda ps: co.Adam(ps, lr=lambda k: 0.2 * factor(k)),
        lambda torch, ps: torch.optim.Adam(ps, lr=0.2),
        schedule=factor,
    )


def test_sgd_step_is_plain_gradient_descent():
    p = Value(2.0)
    p.grad = 0.5
    opt = co.SGD([p], lr=0.1)
    opt.step()
    assert p.data == pytest.approx(1.95)
    assert opt.steps == 1


def test_zero_grad_and_modules():
    model = MLP(2, [3, 1])
    opt = co.SGD(model, lr=0.1)  # a Module is accepted in place of its parameter list
    assert opt.params == model.parameters()
    for p in model.parameters():
        p.grad = 1.0
    opt.zero_grad()
    assert all(p.grad == 0.0 for p in model.parameters())


def test_constants_are_not_updated():
    p, c = Value(1.0), Value(1.0, requires_grad=False)
    p.grad = c.grad = 1.0
    co.SGD([p, c], lr=0.5).step()
    assert (p.data, c.data) == (0.5, 1.0)


def test_lr_follows_the_schedule():
    opt = co.SGD([Value(0.0)], lr=lambda k: 1.0 - 0.9 * k / 100)
    seen = []
    for _ in range(3):
        seen.append(opt.lr)
        opt.step()
    assert seen == pytest.approx([1.0, 0.991, 0.982])
    opt.lr = 0.5
    assert opt.lr == 0.5


def test_schedules():
    assert co.constant(0.3)(7) == 0.3
    assert [co.linear(1.0, 0.0, 4)(k) for k in (0, 2, 4, 9)] == [1.0, 0.5, 0.0, 0.0]
    assert co.exponential(1.0, 0.5)(3) == 0.125
    cos = co.cosine(1.0, 0.0, 10)
    assert (cos(0), cos(5), cos(10), cos(20)) == pytest.approx((1.0, 0.5, 0.0, 0.0))
    assert cos(2) == pytest.approx((1 + math.cos(math.pi * 0.2)) / 2)


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda: co.SGD([], lr=0.1), ValueError, "SGD: got an empty parameter list"),
        (lambda: co.SGD([1.0], lr=0.1), TypeError, "SGD: parameters must be Values, got float"),
        (lambda: co.SGD([Value(1.0)], lr=-1), ValueError, "SGD: lr must be a number >= 0.0, got -1"),
        (lambda: co.SGD([Value(1.0)], lr="0.1"), ValueError, "lr must be a number"),
        (lambda: co.SGD([Value(1.0)], lr=0.1, momentum=-0.5), ValueError, "momentum"),
        (lambda: co.SGD([Value(1.0)], lr=0.1, nesterov=True), ValueError, "nesterov"),
        (lambda: co.Adam([Value(1.0)], betas=(0.9, 1.0)), ValueError, "Adam: betas[1] must be a number"),
        (lambda: co.Adam([Value(1.0)], betas=0.9), ValueError, "betas must be a pair"),
        (lambda: co.Adam([Value(1.0)], eps=math.nan), ValueError, "eps"),
        (lambda: co.Adam([Value(1.0)], eps=0), ValueError, "Adam: eps must be a number > 0"),
        (lambda: co.AdamW([Value(1.0)], eps=0.0), ValueError, "AdamW: eps must be a number > 0"),
    ],
)
def test_bad_settings_are_refused(make, error, words):
    with pytest.raises(error) as info:
        make()
    assert words in str(info.value)


def test_a_schedule_returning_nonsense_is_caught_at_the_step():
    opt = co.SGD([Value(1.0)], lr=lambda k: -1.0)
    with pytest.raises(ValueError, match="SGD: lr at step 0 must be"):
        opt.step()


# --- the array form: one 1-d numpy array updated in place by step(dtheta) ---------------------------
def _grad_array(np, theta):
    """The gradient of _loss_ours at theta, computed by the eager engine, as an array."""
    ps = [Value(float(x)) for x in theta]
    _loss_ours(ps).backward()
    return np.array([p.grad for p in ps])


OPTIMIZERS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "dampening": 0.3, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("Adam", {"lr": 0.1}),
    ("Adam", {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.05, "weight_decay": 0.1}),
]


@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZERS)
def test_array_form_matches_torch_and_the_value_form(name, kwargs):
    np = need("numpy")
    torch = need("torch")
    theta = np.array(START)
    values = [Value(x) for x in START]
    theirs = torch.tensor(START, dtype=torch.float64, requires_grad=True)
    opt, vopt = getattr(co, name)(theta, **kwargs), getattr(co, name)(values, **kwargs)
    topt = getattr(torch.optim, name)([theirs], **kwargs)
    before = theta
    for _ in range(6):
        opt.step(_grad_array(np, theta))
        vopt.zero_grad()
        _loss_ours(values).backward()
        vopt.step()
        topt.zero_grad()
        _loss_torch(torch, theirs).backward()
        topt.step()
        assert theta.tolist() == [p.data for p in values]  # the same rule, vectorised: the same numbers
        assert theta.tolist() == pytest.approx(theirs.tolist(), rel=1e-12, abs=1e-13)
    assert theta is before and opt.steps == 6  # updated in place


def test_array_form_follows_a_schedule():
    np = need("numpy")
    torch = need("torch")
    factor = co.linear(1.0, 0.1, 6)
    theta = np.array(START)
    theirs = torch.tensor(START, dtype=torch.float64, requires_grad=True)
    opt = co.Adam(theta, lr=lambda k: 0.2 * factor(k))
    topt = torch.optim.Adam([theirs], lr=0.2)
    sched = torch.optim.lr_scheduler.LambdaLR(topt, factor)
    for _ in range(6):
        opt.step(_grad_array(np, theta))
        topt.zero_grad()
        _loss_torch(torch, theirs).backward()
        topt.step()
        sched.step()
        assert theta.tolist() == pytest.approx(theirs.tolist(), rel=1e-12, abs=1e-13)


def test_array_form_refuses_bad_arrays_and_gradients():
    np = need("numpy")
    with pytest.raises(ValueError, match="1-d float64"):
        co.SGD(np.zeros(3, dtype=np.float32), lr=0.1)
    with pytest.raises(ValueError, match="1-d float64"):
        co.SGD(np.zeros((2, 2)), lr=0.1)
    with pytest.raises(ValueError, match="empty parameter array"):
        co.Adam(np.zeros(0))
    opt = co.SGD(np.zeros(3), lr=0.1)
    with pytest.raises(
        ValueError, match=r"SGD.step: dtheta must have the parameter array's shape \(3,\), got \(2,\)"
    ):
        opt.step(np.ones(2))
    with pytest.raises(TypeError, match=r"pass its gradient, step\(dtheta\)"):
        opt.step()
    with pytest.raises(TypeError, match="takes no gradient array"):
        co.SGD([Value(1.0)], lr=0.1).step(np.ones(1))
    assert opt.steps == 0


def test_a_parameter_listed_twice_is_updated_once():
    # issue 10: SGD([w, w]) moved w twice per step (and Adam kept two states for one parameter)
    w = Value(1.0)
    w.grad = 1.0
    opt = co.SGD([w, w], lr=0.5)
    opt.step()
    assert w.data == 0.5 and opt.params == [w]
    v = Value(1.0)
    v.grad = 1.0
    co.Adam([v, v], lr=0.1).step()
    assert v.data == pytest.approx(0.9)


def test_adam_refuses_eps_zero_instead_of_dividing_by_zero():
    # issue 10: Adam(eps=0) divided by zero at a zero gradient
    with pytest.raises(ValueError, match=r"eps must be a number > 0 .*got 0"):
        co.Adam([Value(1.0)], eps=0)
