"""Graphs with `defop` ops, pickled and loaded in other processes or after the op was redefined.

A defop row pickles by name plus a fingerprint of its rules: loading checks that an op of that name
is defined and has the same rules, so a graph never runs other rules than it was built with.
"""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import chainrule
from chainrule import Value, defop
from chainrule.userops import fingerprint

pytestmark = pytest.mark.usefixtures("user_ops_restored")

CUBE = """
import chainrule
cube = chainrule.defop("cube", lambda m, x: x ** 3, lambda m, g, out, x: g * 3 * x ** 2)
"""


def run(tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    """`script` in a fresh Python process (with this checkout's chainrule), in `tmp_path`."""
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run(
        [sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def dump_cube_graph(tmp_path: Path) -> None:
    """graph.pkl: z = cube(x) * 1.0 at x = 2, pickled by another process that defined cube."""
    done = run(
        tmp_path,
        CUBE
        + """
import pickle
from chainrule import Value
z = cube(Value(2.0, label="x")) * 1.0
open("graph.pkl", "wb").write(pickle.dumps(z))
""",
    )
    assert done.returncode == 0, done.stderr


def test_loading_where_the_op_is_not_defined_names_it_and_says_to_define_it(tmp_path: Path) -> None:
    dump_cube_graph(tmp_path)
    done = run(tmp_path, 'import pickle, chainrule\npickle.loads(open("graph.pkl", "rb").read())\n')
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("LookupError: unpickling: the graph uses the op 'cube', which is not defined")
    assert "define it first" in last and "KeyError" not in done.stderr


def test_loading_after_defining_the_same_op_runs_its_rules(tmp_path: Path) -> None:
    dump_cube_graph(tmp_path)
    done = run(
        tmp_path,
        CUBE
        + """
import pickle
z = pickle.loads(open("graph.pkl", "rb").read())
z.backward()
(x,) = [n for n in chainrule.engine.topological_order(z) if n.label == "x"]
print(z.data, x.grad, z._prev[0]._operation is cube.op)
""",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["8.0", "12.0", "True"]


def test_loading_after_defining_other_rules_under_the_name_is_refused(tmp_path: Path) -> None:
    dump_cube_graph(tmp_path)
    done = run(
        tmp_path,
        """
import pickle, chainrule
chainrule.defop("cube", lambda m, x: x ** 4, lambda m, g, out, x: g * 4 * x ** 3)
pickle.loads(open("graph.pkl", "rb").read())
""",
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: unpickling: the op 'cube' defined now has other rules than the graph")


def test_a_graph_pickled_before_replace_is_refused_after_it() -> None:
    cube = defop("cube", lambda m, x: x**3, lambda m, g, out, x: g * 3 * x**2)
    x = Value(2.0)
    z = cube(x) * 1.0
    saved = pickle.dumps(z)
    defop("cube", lambda m, x: x**5, lambda m, g, out, x: g * 5 * x**4 + 20, replace=True)
    with pytest.raises(
        ValueError, match=r"^unpickling: the op 'cube' defined now has other rules .*replace=True"
    ):
        pickle.loads(saved)
    with pytest.raises(ValueError, match="other rules"):
        pickle.loads(pickle.dumps(z))  # the old graph keeps the old row, which is no longer defined
    twin = copy.deepcopy(z)  # in this process the old row still exists: a copy shares it
    twin.backward()
    z.backward()
    assert twin._prev[0]._operation is cube.op and x.grad == 12.0  # the rules it was built with


def test_redefining_with_the_same_rules_keeps_pickles_loadable() -> None:
    # a notebook cell run twice: the same rules under the same name
    def define() -> object:
        return defop("square", lambda m, x: x * x, lambda m, g, out, x: g * 2 * x, replace=True)

    square = define()
    x = Value(3.0)
    saved = pickle.dumps(square(x))
    square = define()
    y = pickle.loads(saved)
    assert y._operation is square.op
    y.backward()
    assert y._prev[0].grad == 6.0


def helper(x: float) -> float:
    return x * 2.0


def helper_rule(m: object, x: float) -> float:
    return helper(x)


def test_the_fingerprint_follows_the_rules() -> None:
    def rules(k: float) -> tuple[object, ...]:
        return (lambda m, x: x * k, lambda m, g, out, x: g * k, None)

    assert fingerprint(rules(2.0)) == fingerprint(rules(2.0))
    assert fingerprint(rules(2.0)) != fingerprint(rules(3.0))  # a captured constant is part of the rule
    forward, derivative, _ = rules(2.0)
    assert fingerprint((forward, derivative, None)) != fingerprint((forward, derivative, lambda m, x: x < 0))
    assert fingerprint((forward, lambda m, g, out, x: g + 2.0, None)) != fingerprint(rules(2.0))
    assert fingerprint((helper_rule, None)) == fingerprint((helper_rule, None))
    before = fingerprint((helper_rule, None))
    global helper  # noqa: PLW0603 - a module's helper function redefined, as a notebook cell would
    saved = helper
    try:
        helper = lambda x: x * 3.0  # noqa: E731
        assert fingerprint((helper_rule, None)) != before  # the helper a rule calls is part of it
    finally:
        helper = saved
    assert chainrule.OPS["tanh"].fingerprint == ""  # built-in rows pickle by name alone, as before


class OldStylePickle:
    """Pickles as an older chainrule pickled a defop op: by name, with no fingerprint."""

    def __reduce__(self) -> tuple[object, ...]:
        return (chainrule.ops.op_named, ("square_old",))


def test_a_defop_op_pickled_without_a_fingerprint_loads_with_a_warning_saying_so() -> None:
    square = defop("square_old", lambda m, x: x * x, lambda m, g, out, x: g * 2 * x)
    with pytest.warns(UserWarning, match=r"'square_old' without a fingerprint .* unchecked"):
        assert pickle.loads(pickle.dumps(OldStylePickle())) is square.op
