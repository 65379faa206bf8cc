"""Shared test helpers. `need(name)` imports an optional component or skips the test, except that
with CHAINRULE_REQUIRE_ALL=1 (as CI sets) a missing component is a failure, never a skip."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

REQUIRE_ALL = os.environ.get("CHAINRULE_REQUIRE_ALL") == "1"


def need(module_name: str) -> ModuleType:
    """Import `module_name`, or skip (fail under CHAINRULE_REQUIRE_ALL=1) if it is not installed."""
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        message = f"{module_name} is not installed ({exc}); pip install -e '.[test]'"
        if REQUIRE_ALL:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@contextlib.contextmanager
def float_runner(kind: str) -> Iterator[None]:
    """Programs first run on floats inside the block use `kind` of float mode: "generated" code or
    the "interpreted" tape, whatever their size (float mode picks its runner on first use)."""
    from chainrule.compiler import float_mode

    saved = float_mode.GENERATE_MAX_INSTRUCTIONS
    float_mode.GENERATE_MAX_INSTRUCTIONS = {"generated": 10**12, "interpreted": -1}[kind]
    try:
        yield
    finally:
        float_mode.GENERATE_MAX_INSTRUCTIONS = saved


@pytest.fixture
def user_ops_restored() -> Iterator[None]:
    """Undo the ops a test defines with `chainrule.defop`, so that no other test sees them or their names."""
    from chainrule import OPS, userops

    ops, defined = dict(OPS), set(userops._defined_here)
    yield
    with userops._registry_lock:
        OPS.clear()
        OPS.update(ops)
        userops._defined_here.clear()
        userops._defined_here.update(defined)


try:
    from hypothesis import settings
except ImportError:  # the property tests then fail or skip on their own
    pass
else:
    # In CI every run explores the same examples: a red CI should mean a change broke something,
    # not that a new random draw happened to find an old bug (run locally to explore).
    settings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("CI"):
        settings.load_profile("ci")
