"""The engine's run-time state: grad mode per thread, the lock for shared gradients, one seam.

- Grad mode: `no_grad()` and `enable_grad()` are per thread, as in PyTorch. The hot path of every
  operation reads one flag, `STATE.recording_everywhere`, true while no thread at all is inside
  `no_grad()`; only while some thread is, an operation asks its own thread (`recording()`).
- `GRAD_LOCK`: every backward sweep holds it, because graphs built in different threads may share
  parameters, and with them the scratch `_g` and `.grad` slots. It is re-entrant: a rule or closure
  run inside a sweep may itself call `backward()` or `chainrule.grad`. `STATE.sweeps_running` counts
  the sweeps under way; only the thread holding the lock changes it, so no thread-local is needed.
- The instrumentation seam (`set_observer`): None, or an object whose `created(node, op, inputs)`
  sees every node an operation makes and whose `checks()` gives the backward sweep its checking hook
  (in the threads that asked for it). `chainrule.anomaly` is its one user. Reading one attribute per
  node is all it costs when unused.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class EngineState:
    """The flags every operation and every backward pass reads: on one object, to change at run time."""

    __slots__ = ("recording_everywhere", "observer", "sweeps_running")

    def __init__(self) -> None:
        self.recording_everywhere = True  # False while some thread is inside no_grad()
        self.observer: Any = None  # see set_observer
        # Backward sweeps under way. Changed only while GRAD_LOCK is held, so a count above 0 seen
        # under the lock is this very thread's outer sweep (a rule that calls backward()).
        self.sweeps_running = 0


STATE = EngineState()
GRAD_LOCK = threading.RLock()

_local = threading.local()  # .enabled: this thread's grad mode
_mode_lock = threading.Lock()
_threads_without_grad = 0  # no_grad() blocks open right now, in all threads together


def recording() -> bool:
    """Whether operations in this thread record a graph (the slow path of the grad-mode check)."""
    return getattr(_local, "enabled", True)


@contextmanager
def no_grad() -> Iterator[None]:
    """Inside this block, operations in this thread compute values but record no graph (as in PyTorch)."""
    global _threads_without_grad
    previous = recording()
    _local.enabled = False
    with _mode_lock:
        _threads_without_grad += 1
        STATE.recording_everywhere = False
    try:
        yield
    finally:
        _local.enabled = previous
        with _mode_lock:
            _threads_without_grad -= 1
            STATE.recording_everywhere = _threads_without_grad == 0


@contextmanager
def enable_grad() -> Iterator[None]:
    """Inside this block, operations in this thread record a graph again (also inside `no_grad()`)."""
    previous = recording()
    _local.enabled = True
    try:
        yield
    finally:
        _local.enabled = previous


def is_grad_enabled() -> bool:
    """Whether operations in this thread record a graph (False inside `no_grad()`)."""
    return recording()


def set_observer(observer: Any) -> None:
    """Install the instrumentation seam's observer (None to remove it); see the module docstring."""
    STATE.observer = observer
