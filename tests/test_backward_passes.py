"""The bookkeeping around every backward pass: the count of sweeps under way, and which sweep runs.

A pass started inside another one (a closure that calls backward()) must take the reference sweep,
and every other pass the fast one: the count behind that choice must come back to 0 after every
pass, a failed one included, or every later pass would silently take the slow sweep.
"""

from __future__ import annotations

import threading

import pytest

import chainrule
from chainrule import DomainError, Value
from chainrule.engine.mode import STATE

_UNTOUCHED = "untouched"


def _leaf(x: float) -> Value:
    """A leaf whose scratch slot shows whether the fast sweep ran over it (the reference sweep never
    touches the slot; the fast one leaves the node's previous .grad there)."""
    v = Value(x)
    v._g = _UNTOUCHED
    return v


def _took_the_fast_sweep(leaf: Value) -> bool:
    return leaf._g is not _UNTOUCHED


def test_the_count_of_sweeps_comes_back_to_zero_after_a_failed_pass() -> None:
    x = Value(0.0)
    with pytest.raises(DomainError):
        (x**0.5).backward()  # the slope of sqrt at 0 divides by zero
    assert STATE.sweeps_running == 0
    y = _leaf(2.0)
    (y * 3.0).backward()
    assert y.grad == 3.0 and _took_the_fast_sweep(y)


def test_a_pass_inside_a_closure_is_counted_as_nested_and_takes_the_reference_sweep() -> None:
    counts: list[int] = []
    w = _leaf(2.0)
    x = Value(3.0)
    node = Value(x.data, (x,), "same")

    def _backward() -> None:
        counts.append(STATE.sweeps_running)
        inner = w * w
        inner.backward()
        counts.append(STATE.sweeps_running)
        x.grad += node.grad

    node._backward = _backward
    (node * 1.0).backward()
    assert counts == [1, 1]
    assert STATE.sweeps_running == 0
    assert w.grad == 4.0 and not _took_the_fast_sweep(w)  # the inner pass left the slots alone
    assert x.grad == 1.0


def test_passes_in_other_threads_are_not_taken_for_nested_ones() -> None:
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait()
        for _ in range(200):
            v = _leaf(1.5)
            (v * v + 1.0).backward()
            results.append(v.grad == 3.0 and _took_the_fast_sweep(v))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 800 and all(results)
    assert STATE.sweeps_running == 0


def test_gradients_returns_the_dict_and_leaves_grad_alone() -> None:
    x = Value(2.0)
    grads = chainrule.engine.gradients(x * x)
    assert grads[x] == 4.0 and x.grad == 0.0
    assert STATE.sweeps_running == 0
