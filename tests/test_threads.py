"""The eager engine in several threads: backward with shared parameters, no_grad and detect_anomaly."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

import chainrule
from chainrule import Value, detect_anomaly, no_grad
from chainrule.anomaly import AnomalyError, is_anomaly_enabled

THREADS = 4


def run_in_threads(work: Callable[[int], object], n: int = THREADS, timeout: float = 60.0) -> list[object]:
    """Run work(i) in n threads started together; return their results (re-raise the first error)."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a thread did not finish in time"
    if errors:
        raise errors[0]
    return results


def test_concurrent_backward_on_graphs_sharing_a_parameter_sums_exactly() -> None:
    w = Value(0.5, label="w")

    def work(i: int) -> float:
        total = 0.0
        for step in range(30):
            x = Value(0.1 * (i + 1) + 0.001 * step)
            y = x
            for _ in range(200):  # long enough for the interpreter to switch threads mid-sweep
                y = (y * w + x).tanh()
            loss = y * y
            loss.backward()
            total += 1
        return total

    run_in_threads(work)
    # the same sum, serially
    expected = 0.0
    for i in range(THREADS):
        for step in range(30):
            w2 = Value(0.5)
            x = Value(0.1 * (i + 1) + 0.001 * step)
            y = x
            for _ in range(200):
                y = (y * w2 + x).tanh()
            (y * y).backward()
            expected += w2.grad
    assert w.grad == pytest.approx(expected, rel=1e-12)


def test_no_grad_is_per_thread() -> None:
    inside = threading.Event()
    leave = threading.Event()
    seen: dict[str, bool] = {}

    def quiet() -> None:
        with no_grad():
            inside.set()
            leave.wait(10)
            seen["quiet"] = chainrule.is_grad_enabled()
            seen["quiet_records"] = (Value(1.0) * 2).requires_grad

    t = threading.Thread(target=quiet)
    t.start()
    assert inside.wait(10)
    # another thread is inside no_grad(); this one still records graphs
    assert chainrule.is_grad_enabled()
    y = Value(2.0) * Value(3.0)
    assert y.requires_grad and y._prev
    leave.set()
    t.join(10)
    assert seen == {"quiet": False, "quiet_records": False}
    assert chainrule.is_grad_enabled()


def test_no_grad_left_out_of_order_by_two_threads_switches_nothing_off_for_good() -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with no_grad():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        with no_grad():
            second_in.set()
            first_out.wait(10)  # leave after the first thread has left

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert chainrule.is_grad_enabled()
    assert (Value(1.0) * Value(2.0)).requires_grad
    assert chainrule.engine.mode.STATE.recording_everywhere  # the fast path is back on


def test_detect_anomaly_is_per_thread() -> None:
    inside = threading.Event()
    leave = threading.Event()
    outcome: dict[str, object] = {}

    def watched() -> None:
        with detect_anomaly():
            inside.set()
            try:
                Value(1e308) * 10
            except AnomalyError as exc:
                outcome["error"] = exc
            leave.wait(10)

    t = threading.Thread(target=watched)
    t.start()
    assert inside.wait(10)
    assert not is_anomaly_enabled()
    assert (Value(1e308) * 10).data == float("inf")  # this thread is not watched
    leave.set()
    t.join(10)
    assert isinstance(outcome.get("error"), AnomalyError)
    assert chainrule.engine.mode.STATE.observer is None


def test_many_threads_building_and_differentiating_separately_agree_with_serial() -> None:
    def work(i: int) -> tuple[float, ...]:
        f = lambda a, b: (a * b + a.exp()).log() * b.sin()  # noqa: E731
        return chainrule.grad(f, argnums=(0, 1))(0.3 + i, 1.1 - i / 10)

    results = run_in_threads(work, n=8)
    f = lambda a, b: (a * b + a.exp()).log() * b.sin()  # noqa: E731
    for i, result in enumerate(results):
        assert result == chainrule.grad(f, argnums=(0, 1))(0.3 + i, 1.1 - i / 10)
