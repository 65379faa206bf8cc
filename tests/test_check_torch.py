"""chainrule.check.against_torch, and hessian against torch.autograd.functional.hessian."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from chainrule import TABLE, Op, Value, grad, hessian
from chainrule.check import TorchComparison, against_torch
from conftest import need
from op_cases import Fixed, case


def test_seed_000_graph_agrees_with_torch() -> None:
    need("torch")
    # seed 000: a = 2, b = 4, e = 3, L = e / (b + a**2); PyTorch printed (-0.1875, -0.046875, 0.125)
    result = against_torch(lambda a, b, e: e / (b + a**2), 2.0, 4.0, 3.0)
    assert isinstance(result, TorchComparison)
    assert result.ok and bool(result)
    assert result.value == result.torch_value == 0.375
    assert result.grads == result.torch_grads == (-0.1875, -0.046875, 0.125)
    assert result.max_difference == 0.0
    text = repr(result)
    assert text.splitlines()[0] == "against_torch: agree (max difference 0)"
    assert text.splitlines()[1].split() == ["chainrule", "torch", "difference"]
    assert [line.split()[0] for line in text.splitlines()[2:]] == ["value", "d/da", "d/db", "d/de"]


def test_every_value_method_runs_on_torch_too() -> None:
    need("torch")

    def f(x: Value, y: Value) -> Value:
        h = (x * y).tanh() + x.exp() - (y * y + 1).log() + x.sigmoid() * y.relu()
        return h * (x.sin() + y.cos()) / abs(y).sqrt() + (x - y).softplus() + (-x) ** 2 + 2**y

    result = against_torch(f, 0.4, 1.3)
    assert result.ok, result
    assert result.max_difference < 1e-12
    assert result.grads == pytest.approx(grad(f, (0, 1))(0.4, 1.3), abs=0)


@pytest.mark.parametrize("op", [op for op in TABLE if op.arity is not None], ids=lambda op: op.name)
def test_against_torch_knows_every_operator_and_method_of_the_table(op: Op) -> None:
    # Each row spelled as users write it (tests/op_cases.py), at its gradcheck points: a new row whose
    # method torch tensors lack must get one in chainrule.check's tensor class.
    need("torch")
    entry = case(op)
    for point in entry.gradcheck:
        free = [x for x in point if not isinstance(x, Fixed)]

        def f(*xs: Any, point: tuple[Any, ...] = point) -> Any:
            it = iter(xs)
            return entry.spell(*(p.x if isinstance(p, Fixed) else next(it) for p in point))

        result = against_torch(f, *free)
        assert result.ok and result.max_difference < 1e-12, (op.name, point, result)


def test_a_disagreement_is_reported() -> None:
    need("torch")
    result = against_torch(lambda x: x * x, 3.0, torch_f=lambda x: x * x + x)
    assert not result.ok and not bool(result)
    assert result.torch_value == 12.0 and result.torch_grads == (7.0,)
    assert result.max_difference == 3.0
    assert repr(result).startswith("against_torch: DISAGREE (max difference 3)")


def test_unused_arguments_and_constant_outputs() -> None:
    need("torch")
    assert against_torch(lambda x, y: x * 2, 1.0, 5.0).torch_grads == (2.0, 0.0)
    result = against_torch(lambda x: 4.0, 1.0)
    assert result.ok and result.torch_grads == (0.0,) and result.value == 4.0


def test_hessian_of_a_three_argument_function_matches_torch() -> None:
    torch = need("torch")

    def f(x, y, z):  # type: ignore[no-untyped-def] - runs on Values and on tensors alike
        return x * y * z + (x * y).sin() + (z**2 + x).log() + (y.tanh() * z).exp() + x**3 / (1 + y * y)

    point = (0.7, -0.4, 1.3)
    ours = hessian(f, argnums=(0, 1, 2))(*point)
    inputs = tuple(torch.tensor(p, dtype=torch.float64) for p in point)
    theirs = torch.autograd.functional.hessian(f, inputs)
    for i in range(3):
        for j in range(3):
            assert ours[i][j] == pytest.approx(theirs[i][j].item(), rel=1e-12, abs=1e-12)


def test_missing_torch_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(ImportError, match=r"pip install torch==2\.13\.0"):
        against_torch(lambda x: x, 1.0)
