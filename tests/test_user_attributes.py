"""Learners' code keeps data of its own on nodes (issue "Run the material learners already have").

micrograd's `Value` takes any attribute: Karpathy's course script colours nodes (`n._vis_color`) and
its optimizer keeps `p.m` and `p.v` on each parameter. chainrule's own names stay protected.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from chainrule import Tensor, Value


def test_user_attributes_on_leaves_and_computed_nodes() -> None:
    a = Value(2.0, label="a")
    b = a * 3.0 + 1.0
    a._vis_color = "red"
    b.m, b.v = 0.0, 0.0
    b._vis_color = "blue"
    assert (a._vis_color, b._vis_color, b.m, b.v) == ("red", "blue", 0.0, 0.0)
    b.backward()
    assert a.grad == 3.0  # attributes change nothing in the graph


def test_an_adam_style_optimizer_keeps_its_state_on_each_parameter() -> None:
    w = Value(1.0, label="w")
    for step in range(1, 4):
        w.grad = 0.0
        loss = (w - 3.0) ** 2
        loss.backward()
        if not hasattr(w, "m"):
            w.m = w.v = 0.0
        w.m = 0.9 * w.m + 0.1 * w.grad
        w.v = 0.999 * w.v + 0.001 * w.grad**2
        w.data -= 0.1 * (w.m / (1 - 0.9**step)) / ((w.v / (1 - 0.999**step)) ** 0.5 + 1e-8)
    assert 1.2 < w.data < 1.4


def test_chainrules_own_names_stay_protected() -> None:
    a = Value(2.0)
    with pytest.raises(TypeError, match="Value.data needs a real number"):
        a.data = "6"
    with pytest.raises(TypeError, match="Value.grad needs a real number"):
        a.grad = "6"
    with pytest.raises(TypeError, match="_prev must be a tuple, list or set of Values"):
        a._prev = 5  # the inputs are set through the layout, not replaced by a number
    assert a.data == 2.0 and a.grad == 0.0


def test_copies_and_pickles_keep_user_attributes() -> None:
    a = Value(2.0, label="a")
    a._vis_color = "red"
    b = (a * a).tanh()
    b.note = {"seen": [1, 2]}
    for twin in (copy.deepcopy(b), pickle.loads(pickle.dumps(b))):
        assert twin.note == {"seen": [1, 2]} and twin.note is not b.note
        assert twin._prev[0]._prev[0]._vis_color == "red"
    shallow = copy.copy(b)
    assert shallow.note is b.note


def test_a_node_without_label_or_attributes_stores_neither() -> None:
    import sys

    a = Value(2.0)
    b = a * a
    labelled = a * a
    labelled.label = "c"
    assert b.label == "" and labelled.label == "c"
    assert sys.getsizeof(b) == sys.getsizeof(labelled) - 0  # the object itself is the same size


def test_tensor_comparisons_are_entry_by_entry_and_take_no_gradient() -> None:
    a = Tensor([1.0, 2.0, 3.0])
    b = Tensor([1.0, 0.0, 5.0])
    assert (a == b).tolist() == [True, False, False]
    assert (a != b).tolist() == [False, True, True]
    assert (a < 2).tolist() == [True, False, False]
    assert (a <= b).tolist() == [True, False, True]
    assert (2 < a).tolist() == [False, False, True]
    assert (a >= np.array([0.0, 2.0, 9.0])).tolist() == [True, True, False]
    assert isinstance(a == b, np.ndarray) and (a == b).dtype == bool
    assert len({a, b}) == 2  # still nodes, hashed by identity
    with pytest.raises(TypeError, match="eq: a Tensor combines with numbers"):
        a == "x"  # noqa: B015


def test_bad_conversions_and_huge_ints_get_one_short_line() -> None:
    import chainrule
    from chainrule.engine import NoDataError

    v = Value(2.5)
    for convert in (float, int, round):
        with pytest.raises(TypeError, match=r"\(\) of Value\(data=2.5.*would detach it from the graph"):
            convert(v)
    with pytest.raises(OverflowError) as info:
        Value(10**400)
    assert "too large for a float" in str(info.value) and len(str(info.value)) < 150
    x = chainrule.placeholder("x")
    with pytest.raises(NoDataError, match="placeholder 'x' has no data yet") as caught:
        x.data  # noqa: B018
    assert isinstance(caught.value, chainrule.PlaceholderError)
    assert type(caught.value).__module__ == "chainrule.engine.placeholder"  # a public class, by its own name


def test_seed_000s_children_reads_like_prev() -> None:
    a, b = Value(2.0, "a"), Value(-3.0, "b")
    e = a * b
    L = e + 1.0
    assert e._children == (a, b) and L._children == L._prev
    nodes, stack = set(), [L]  # seed 000's trace, written against _children
    while stack:
        n = stack.pop()
        if n not in nodes:
            nodes.add(n)
            stack.extend(n._children)
    assert len(nodes) == 5
