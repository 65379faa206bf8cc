"""docs/scaling.md's sharding example checks the device count it asks for, and says when it got fewer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import need

ROOT = Path(__file__).resolve().parents[1]


def _sharding_example() -> str:
    """The doc's python blocks up to and including the sharded training, as one script."""
    text = (ROOT / "docs" / "scaling.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    last = next(i for i, block in enumerate(blocks) if "NamedSharding" in block)
    return "\n".join(blocks[: last + 1])


@pytest.mark.parametrize(("flags", "wanted_shards"), [(None, [(100,)]), (3, [(50,), (50,)])])
def test_the_sharding_example_says_when_jax_gives_fewer_devices(flags, wanted_shards) -> None:
    # the issue: without XLA_FLAGS set before the process started, the example printed [(100,)]
    # under a comment promising 4 x (25,), and said nothing
    need("jax")
    need("sklearn")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    if flags is not None:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={flags}"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-c", _sharding_example()],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    got = flags or 1
    assert f"devices: {got}\n" in result.stdout
    assert f"JAX gives {got} device(s), not 4: on a CPU, start Python with XLA_FLAGS=" in result.stdout
    n = len(wanted_shards)
    assert f"per-device shards on {n} device(s): {wanted_shards}" in result.stdout
