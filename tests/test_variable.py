"""The course notebook 004's cells, run unchanged against chainrule.variable, print the notebook's output.

Each CELLS entry is a cell of the notebook that uses the API (the cells that define the API are
what chainrule.variable replaces) and the text the notebook printed for it.
"""

from __future__ import annotations

import contextlib
import io
import math
import textwrap

import pytest

import chainrule as cr
from chainrule import variable
from chainrule.variable import Variable, vAdd, vDiv, vExp, vMul, vRaise, vSub, vUnary

CELLS = {
    "74 d = (a + b) * c": (
        """
        a = Variable(2) # a = 2
        b = Variable(3) # b = 3
        c = Variable(4) # c = 4

        #d = (a + b) * c = 20
        d = vMul(vAdd(a, b), c)

        print(d)
        """,
        "Value: 20, Gradient: 0.0\n",  # the notebook's later __str__, which shows the gradient too
    ),
    "76 first backProp": (
        """
        a = Variable(2)           # a = 2
        b = Variable(3)           # b = 3
        c = Variable(4)           # c = 4
        res = vMul(vAdd(a, b), c) # res = (a + b) * c = 20

        print("Result =", res.value)

        # Call backprop on the result
        res.backProp()

        # Now all variables should contain in their "grad" the derivative d(res) / d(variable)
        print("The derivative of the result with respect to a is:", a.grad)
        print("The derivative of the result with respect to b is:", b.grad)
        print("The derivative of the result with respect to c is:", c.grad)
        """,
        """\
        Result = 20
        The derivative of the result with respect to a is: 4.0
        The derivative of the result with respect to b is: 4.0
        The derivative of the result with respect to c is: 5.0
        """,
    ),
    "77 two routes": (
        """
        a = Variable(4)  # a = 4
        b = Variable(3)  # b = 3
        c = vAdd(a, b)   # c = 4 + 3
        res = vMul(a, c) # res = a * c = 28

        print("Result =", res.value)

        # Call backprop on the result
        res.backProp()

        # Now all variables should contain in their "grad" the derivative d(res) / d(variable)
        print("The derivative of the result with respect to a is:", a.grad)
        print("The derivative of the result with respect to b is:", b.grad)
        # Also for intermediate results
        print("The derivative of the result with respect to c is:", c.grad)

        a.grad = b.grad = c.grad = 0
        c.backProp()
        print("The derivative of c with respect to a is:", a.grad)
        print("The derivative of c with respect to b is:", b.grad)
        """,
        """\
        Result = 28
        The derivative of the result with respect to a is: 11.0
        The derivative of the result with respect to b is: 4.0
        The derivative of the result with respect to c is: 4.0
        The derivative of c with respect to a is: 1.0
        The derivative of c with respect to b is: 1.0
        """,
    ),
    "80 operators": (
        """
        a = Variable(4)  # a = 4
        b = Variable(3)  # b = 3
        c = a + b        # c = 4 + 3
        res = a * c      # res = a * c = 28

        print("Result =", res.value)

        # Call backprop on the result
        res.backProp()

        # Now all variables should contain in their "grad" the derivative d(res) / d(variable)
        print("The derivative of the result with respect to a is:", a.grad)
        print("The derivative of the result with respect to b is:", b.grad)
        # Also for intermediate results
        print("The derivative of the result with respect to c is:", b.grad)
        """,
        """\
        Result = 28
        The derivative of the result with respect to a is: 11.0
        The derivative of the result with respect to b is: 4.0
        The derivative of the result with respect to c is: 4.0
        """,
    ),
    "81 backProp accumulates": (
        """
        a = Variable(4)   # a = 4
        b = Variable(3)   # b = 3
        res = (a + b) * a # res = a * c = 28

        # Call backprop on the result
        res.backProp()
        print("The derivative of the result with respect to a is:", a.grad)
        print("The derivative of the result with respect to b is:", b.grad)

        # Call backprop on the result once more
        print("Second time")
        res.backProp()
        print("The derivative of the result with respect to a is:", a.grad)
        print("The derivative of the result with respect to b is:", b.grad)
        """,
        """\
        The derivative of the result with respect to a is: 11.0
        The derivative of the result with respect to b is: 4.0
        Second time
        The derivative of the result with respect to a is: 22.0
        The derivative of the result with respect to b is: 8.0
        """,
    ),
    "83 zeroGradsRecursively": (
        """
        a = Variable(4)   # a = 4
        b = Variable(3)   # b = 3
        res = (a + b) * a # res = a * c = 28

        # Call backprop on the result
        res.backProp()
        print("The derivative of the result with respect to a is:", a.grad)
        print("The derivative of the result with respect to b is:", b.grad)

        # Zero gradients
        res.zeroGradsRecursively()

        # Call backprop on the result once more
        print("Second time")
        res.backProp()
        print("The derivative of the result with respect to a is:", a.grad)
        print("The derivative of the result with respect to b is:", b.grad)
        """,
        """\
        The derivative of the result with respect to a is: 11.0
        The derivative of the result with respect to b is: 4.0
        Second time
        The derivative of the result with respect to a is: 11.0
        The derivative of the result with respect to b is: 4.0
        """,
    ),
    "85 requiresGrad": (
        """
        a = Variable(4,True)   # a = 4
        b = Variable(3,False)   # b = 3
        res = (a + b) * a # res = a * c = 28

        # Call backprop on the result
        res.backProp()
        print("The derivative of the result with respect to a is:", a.grad)
        print("The derivative of the result with respect to b is:", b.grad)
        """,
        """\
        The derivative of the result with respect to a is: 11.0
        The derivative of the result with respect to b is: 0.0
        """,
    ),
    "89 power": (
        """
        a = Variable(4)   # a = 4
        b = Variable(3)   # b = 3
        res = (a ** b)

        # Call backprop on the result
        res.backProp()
        print("The derivative of the result with respect to a is:", a.grad)
        print("The derivative of the result with respect to b is:", b.grad)
        # Zero gradients
        """,
        """\
        The derivative of the result with respect to a is: 48.0
        The derivative of the result with respect to b is: 88.722839111673
        """,
    ),
    "90 division": (
        """
        a = Variable(4)   # a = 4
        b = Variable(3)   # b = 3
        res = (a / b)

        # Call backprop on the result
        res.backProp()
        print("The derivative of the result with respect to a is:", a.grad)
        print("The derivative of the result with respect to b is:", b.grad)
        """,
        """\
        The derivative of the result with respect to a is: 0.3333333333333333
        The derivative of the result with respect to b is: -0.4444444444444444
        """,
    ),
    "91 exp": (
        """
        a = Variable(2)   # a = 4
        b = Variable(3)   # b = 3
        res = a.__exp__() * 3

        # Call backprop on the result
        res.backProp()
        print("The derivative of the result with respect to a is:", a.grad)
        print("The derivative of the result with respect to b is:", b.grad)
        """,
        """\
        The derivative of the result with respect to a is: 22.16716829679195
        The derivative of the result with respect to b is: 0.0
        """,
    ),
    "93 numbers mixed in": (
        """
        a = Variable(4)   # a = 4
        res = (a ** 2) * 2 * a # res = 2 * a**3

        # Call backprop on the result
        res.backProp()
        print("The derivative of the result with respect to a is:", a.grad)
        """,
        "The derivative of the result with respect to a is: 96.0\n",
    ),
    "94 number base": (
        """
        b = Variable(3)   # b = 3
        res = 2 ** (3 * b)

        # Call backprop on the result
        res.backProp()
        print("The derivative of the result with respect to b is:", b.grad)
        """,
        "The derivative of the result with respect to b is: 1064.674069340076\n",
    ),
    "95 exp of a quotient": (
        """
        a = Variable(4)   # a = 4
        res = (16 / a).__exp__()

        # Call backprop on the result
        res.backProp()
        print("The derivative of the result with respect to a is:", a.grad)
        """,
        "The derivative of the result with respect to a is: -54.59815003314423\n",
    ),
    "98 zeroing, closure version": (
        """
        a = Variable(4)   # a = 4
        res = (3 + a) * a # res = 28

        # Call backprop on the result
        res.backProp()
        print("The derivative of the result with respect to a is:", a.grad)

        # Zero gradients

        res.zeroGradsRecursively()
        # Call backprop on the result once more
        print("Second time")
        res.backProp()
        print("The derivative of the result with respect to a is:", a.grad)
        """,
        """\
        The derivative of the result with respect to a is: 11.0
        Second time
        The derivative of the result with respect to a is: 11.0
        """,
    ),
    "100 quotient times two": (
        """
        a = Variable(4)   # a = 4
        b = Variable(3)   # b = 3
        res = (a / b) * 2

        # Call backprop on the result
        res.backProp()
        print("The derivative of the result with respect to a is:", a.grad)
        print("The derivative of the result with respect to b is:", b.grad)
        """,
        """\
        The derivative of the result with respect to a is: 0.6666666666666666
        The derivative of the result with respect to b is: -0.8888888888888888
        """,
    ),
    "101 subtraction": (
        """
        a = Variable(5)  # a = 5
        b = Variable(3)  # b = 3
        c = a - b        # c = 5 - 3
        res = a * c      # res = a * c = 10

        print("Result =", res.value)

        # Call backprop on the result
        res.backProp()

        # Now all variables should contain in their "grad" the derivative d(res) / d(variable)
        print("The derivative of the result with respect to a is:", a.grad)
        print("The derivative of the result with respect to b is:", b.grad)
        """,
        """\
        Result = 10
        The derivative of the result with respect to a is: 7.0
        The derivative of the result with respect to b is: -5.0
        """,
    ),
    "102 check with a central difference": (
        """
        # Your Code Here
        eps = 0.001
        x = Variable(3.2)
        f = 21 * (x ** 3)
        f1 = (21*(x+eps)**3 - 21*(x-eps)**3) / (2*eps)
        f.backProp()
        print("The derivative of the f with respect to x is:", x.grad)
        print(f1.value)
        """,
        """\
        The derivative of the f with respect to x is: 645.1200000000001
        645.1200210000252
        """,
    ),
}


def run_cell(source: str) -> str:
    """Run a notebook cell (test input written by us, the course's text) and return what it printed."""
    namespace = {name: getattr(variable, name) for name in variable.__all__}
    namespace["math"] = math
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(textwrap.dedent(source), namespace)  # the course's own cells, as test input
    return out.getvalue()


@pytest.mark.parametrize("cell", list(CELLS))
def test_notebook_cell_prints_the_notebook_output(cell: str) -> None:
    source, expected = CELLS[cell]
    assert run_cell(source) == textwrap.dedent(expected)


def test_str_keeps_python_number_types() -> None:
    assert str(Variable(4.3)) == "Value: 4.3, Gradient: 0.0"
    assert str(vMul(vAdd(Variable(2), Variable(3)), Variable(4))) == "Value: 20, Gradient: 0.0"
    assert isinstance((Variable(2) + 3).value, int)
    assert isinstance((Variable(2) - 3).value, int) and (Variable(2) - 3).value == -1
    assert isinstance((Variable(2) ** 10).value, int) and (Variable(2) ** 10).value == 1024
    assert isinstance(-Variable(2), Variable) and (-Variable(2)).value == -2
    assert (Variable(4) / 2).value == 2.0 and isinstance((Variable(4) / 2).value, float)
    assert (Variable(4) ** -1).value == 0.25
    assert isinstance((Variable(2) * 1.5).value, float)
    assert isinstance(vExp(Variable(0)).value, float) and vExp(Variable(0)).value == 1.0
    assert repr(Variable(3)) == "Variable(value=3, grad=0.0, requiresGrad=True)"


def test_every_function_matches_the_engine_and_mixes_numbers() -> None:
    a, b = Variable(1.5), Variable(-2.0)
    for fn, expected in [
        (vAdd, -0.5),
        (vSub, 3.5),
        (vMul, -3.0),
        (vDiv, -0.75),
        (vRaise, 1.5**-2.0),
    ]:
        assert fn(a, b).value == expected
    assert vUnary(a).value == -1.5 and vUnary(3).value == -3
    assert vExp(a).value == math.e**1.5
    assert (2 - a).value == 0.5 and (3 / Variable(2)).value == 1.5 and (2**a).value == 2**1.5
    x = Variable(2.0)
    y = vAdd(vMul(x, x), vSub(3, x))  # x*x + 3 - x
    y.backProp()
    assert x.grad == 3.0  # 2x - 1
    assert y.node._op == "+" and isinstance(y.node, cr.Value)  # each function is a table row


def test_requires_grad_false_blocks_the_route_like_the_notebook() -> None:
    # an intermediate marked requiresGrad=False stops the flow to everything behind it
    a, b = Variable(2.0), Variable(3.0)
    c = a * b
    c.requiresGrad = False
    res = c * a
    res.backProp()
    assert (a.grad, b.grad, c.grad) == (6.0, 0.0, 0.0)  # only the direct route into a
    # a result made from constants still takes a gradient itself, as in the notebook
    k = Variable(4, False) * Variable(3, False)
    k.backProp()
    assert k.grad == 1.0
    # backProp from a Variable that does not require grad does nothing, as in the notebook
    frozen = Variable(5.0, requiresGrad=False)
    frozen.backProp()
    assert frozen.grad == 0.0
    # one-input ops on constants are safe too
    n = -Variable(2.0, False)
    e = vExp(Variable(1.0, False))
    (n * e).backProp()
    assert n.grad == e.value


def test_backprop_route_value_and_zero_grad() -> None:
    a = Variable(3.0)
    res = a * a
    res.backProp(2.0)  # d(res)/da = 6, scaled by the incoming route value 2
    assert a.grad == 12.0 and res.grad == 2.0
    a.zeroGrad()
    assert a.grad == 0.0 and res.grad == 2.0
    res.zeroGradsRecursively()
    assert res.grad == 0.0
    # numbers are constants: x ** 2 works for negative x (the notebook's log(x) route would fail)
    x = Variable(-2)
    sq = x**2
    sq.backProp()
    assert x.grad == -4.0 and sq.value == 4


def test_bad_input_is_named() -> None:
    with pytest.raises(TypeError, match="Variable needs a real number, got str"):
        Variable("4")
    with pytest.raises(TypeError, match="vAdd needs a Variable or a number, got list"):
        vAdd(Variable(1), [1])
    with pytest.raises(ZeroDivisionError, match="truediv"):
        Variable(1) / 0
    with pytest.raises(cr.DomainError, match="pow"):
        Variable(-8.0) ** Variable(1 / 3)


def test_value_setter_and_drawing_the_node() -> None:
    a = Variable(4)
    a.value = 5
    assert str(a) == "Value: 5, Gradient: 0.0"
    res = (a + 2) * a
    res.backProp()
    assert a.grad == 12.0
    dot = cr.to_dot(res.node)
    assert "data 35.0000" in dot and "grad 12.0000" in dot


def test_module_docstring_example() -> None:
    import doctest

    result = doctest.testmod(variable)
    assert result.attempted >= 3 and result.failed == 0
