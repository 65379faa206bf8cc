"""Model files as an attacker or a crash leaves them, and saving under hostile conditions.

`chainrule.load` must be linear in the file's size, allocate no more than the file holds, and refuse
anything odd with one clear `ModelFileError`; `chainrule.save` must never change the process umask,
write through symlinks, handle the longest file names, and leave no temp file behind a killed save
(the next save removes it). docs/reliability.md lists these guarantees. A test that would hang on a
broken implementation runs under a time limit (a subprocess timeout or an alarm), so it fails instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import chainrule
from chainrule import nn, serialize
from chainrule.nn import MLP
from chainrule.serialize import ModelFileError

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
POSIX = os.name == "posix"


def run_python(code: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter with this checkout's chainrule; a hang fails the test."""
    try:
        return subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout, env=ENV
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {timeout} s (a quadratic or unbounded loop?)", pytrace=False)


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging) if the block takes longer than `seconds` (main thread, POSIX)."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data, separators=(",", ":")))
    return path


def header(module: str, config: dict) -> dict:
    return {"format": "chainrule", "version": 1, "module": module, "config": config}


@pytest.fixture
def nothing_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make building any Neuron an error: the test then shows that `load` refused before building."""

    def refuse(self: object, *args: object, **kwargs: object) -> None:
        raise RuntimeError("load built a module before checking the file")

    monkeypatch.setattr(nn.Neuron, "__init__", refuse)


# --- load: linear, bounded by the file ---------------------------------------------------------------
def test_junk_keys_are_refused_in_linear_time(tmp_path: Path) -> None:
    # A 20,000-neuron config with 20,000 junk keys: quadratic key checks took minutes.
    data = header("Layer", {"nin": 1, "nout": 20_000})
    data["parameters"] = {f"junk{i}": 0.0 for i in range(20_000)}
    path = write_json(tmp_path / "junk.json", data)
    code = (
        "import sys, chainrule\n"
        "try:\n    chainrule.load(sys.argv[1])\n"
        "except chainrule.ModelFileError as e:\n    print('refused:', e)\n"
    )
    done = run_python(code, str(path), timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused:") and "missing keys ['neurons.0.w'" in done.stdout


def test_an_honest_wide_layer_loads_in_linear_time(tmp_path: Path) -> None:
    # Layer(1, 20000): 40,000 keys. Loading it was quadratic in the number of keys (minutes).
    code = (
        "import sys, random, chainrule\n"
        "from chainrule.nn import Layer\n"
        "random.seed(3)\n"
        "m = Layer(1, 20_000)\n"
        "chainrule.save(m, sys.argv[1])\n"
        "loaded = chainrule.load(sys.argv[1])\n"
        "print([p.data for p in loaded.parameters()] == [p.data for p in m.parameters()])\n"
    )
    done = run_python(code, str(tmp_path / "wide.json"), timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True"]


def test_a_declared_model_bigger_than_the_file_is_refused_before_building(
    tmp_path: Path, nothing_built: None
) -> None:
    # 101,000 parameters declared; the file holds 100,000 numbers, all under one junk key. The old
    # guard (declared <= 2 * numbers in the file) let it through and built the whole model first.
    data = header("MLP", {"nin": 100, "nouts": [1000]})
    data["parameters"] = {"x": [0.0] * 100_000}
    with pytest.raises(ModelFileError) as info:
        chainrule.load(write_json(tmp_path / "big.json", data))
    message = str(info.value)
    assert "needs 101000 parameters but the file holds 100000" in message
    assert "missing keys ['layers.0.neurons.0.w'" in message and "\n" not in message


def test_a_giant_declared_model_costs_no_more_than_the_file(tmp_path: Path, nothing_built: None) -> None:
    # 10^6 layers of 10^6 neurons declared: checking walks the config no further than the file's keys.
    data = header("MLP", {"nin": 1, "nouts": [1_000_000] * 1000})
    data["parameters"] = {"layers.0.neurons.0.w": [0.5], "layers.0.neurons.0.b": 0.0}
    with time_limit(30), pytest.raises(ModelFileError, match="the file holds 2: .*missing keys"):
        chainrule.load(write_json(tmp_path / "giant.json", data))


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("layers.0.neurons.1.w", [0.5], "'layers.0.neurons.1.w' must be a list of 2 numbers, got 1"),
        ("layers.0.neurons.1.w", [0.5] * 10_000, "must be a list of 2 numbers, got 10000"),
        ("layers.0.neurons.1.b", [0.5, 1.0], "'layers.0.neurons.1.b' must be a number, got list"),
        ("layers.0.neurons.1.w", {"a": 1}, "must be a list of 2 numbers, got dict"),
    ],
)
def test_wrong_shapes_are_refused_before_building(
    tmp_path: Path, key: str, value: object, words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    random.seed(0)
    data = serialize.to_dict(MLP(2, [3, 1]))
    data["parameters"][key] = value
    path = write_json(tmp_path / "shape.json", data)
    monkeypatch.setattr(nn.Neuron, "__init__", lambda *a, **k: pytest.fail("built before checking"))
    with pytest.raises(ModelFileError, match=words):
        chainrule.load(path)


@pytest.mark.parametrize(
    "config",
    [{"nin": 3}, {"nin": 1, "nonlin": False}, {"nin": 2, "nout": 5}, {"nin": 4, "nouts": [3, 2, 1]}],
)
def test_the_checked_layout_is_exactly_what_modules_save(config: dict) -> None:
    # The layout that load checks a file against must be the real state_dict's, key by key.
    name = {1: "Neuron", 2: "Layer"}.get(len(config), "MLP") if "nouts" not in config else "MLP"
    if "nonlin" in config:
        name = "Neuron"
    cls, check = serialize.MODULES[name]
    args, layout = check(config)
    state = cls(**args).state_dict()
    assert list(layout.entries()) == [(k, len(v) if isinstance(v, list) else None) for k, v in state.items()]
    assert layout.count == sum(len(v) if isinstance(v, list) else 1 for v in state.values())


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    random.seed(0)
    text = json.dumps(serialize.to_dict(MLP(2, [1])))
    # the same parameter twice, with two different values: json would silently keep the last one
    key = '"layers.0.neurons.0.b"'
    text = text.replace(f"{key}: 0.0", f"{key}: 0.0, {key}: 9.0")
    path = tmp_path / "twice.json"
    path.write_text(text)
    with pytest.raises(ModelFileError, match="'layers.0.neurons.0.b' appears twice"):
        chainrule.load(path)


def test_files_larger_than_the_limit_are_refused_before_reading(tmp_path: Path) -> None:
    random.seed(0)
    path = chainrule.save(MLP(2, [3, 1]), tmp_path / "m.json")
    size = path.stat().st_size
    with pytest.raises(ModelFileError, match=f"the file is {size} bytes, larger than the 100 bytes"):
        chainrule.load(path, max_bytes=100)
    assert chainrule.load(path, max_bytes=size).config() == {"nin": 2, "nouts": [3, 1]}
    sparse = tmp_path / "sparse.json"
    with open(sparse, "wb") as f:  # 300 MB that take no disk space: refused from its size alone
        f.truncate(300 * 1024 * 1024)
    with pytest.raises(ModelFileError, match="larger than the 268435456 bytes"):
        chainrule.load(sparse)


@pytest.mark.skipif(not POSIX, reason="FIFOs are POSIX")
def test_a_fifo_is_refused_instead_of_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "model.json"
    os.mkfifo(fifo)
    with time_limit(20), pytest.raises(ModelFileError, match="not a regular file"):
        chainrule.load(fifo)


def test_a_folder_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not a regular file"):
        chainrule.load(tmp_path)


# --- save ---------------------------------------------------------------------------------------------
@pytest.mark.skipif(not POSIX, reason="the umask is POSIX")
def test_save_never_touches_the_umask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Changing the process umask, even briefly, gives files created by other threads the wrong mode.
    old = os.umask(0o027)
    try:

        def forbidden(mask: int) -> int:
            raise AssertionError("save changed the process umask")

        monkeypatch.setattr(os, "umask", forbidden)
        path = chainrule.save(MLP(2, [1]), tmp_path / "new.json")
        assert stat.S_IMODE(path.stat().st_mode) == 0o640  # 0o666 minus the umask 0o027
        path.chmod(0o600)
        chainrule.save(MLP(2, [1]), path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # an existing file keeps its mode
    finally:
        monkeypatch.undo()
        os.umask(old)


@pytest.mark.skipif(not POSIX, reason="symlinks need privileges on Windows")
@pytest.mark.parametrize("relative", [False, True])
def test_save_over_a_symlink_writes_through_to_its_target(tmp_path: Path, relative: bool) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "model.json"
    chainrule.save(MLP(2, [1]), target)
    link = tmp_path / "link.json"
    link.symlink_to(Path("real") / "model.json" if relative else target)
    random.seed(4)
    model = MLP(2, [1])
    assert chainrule.save(model, link) == link
    assert link.is_symlink()  # the link is still a link...
    loaded = chainrule.load(target)  # ...and its target holds the new model
    assert [p.data for p in loaded.parameters()] == [p.data for p in model.parameters()]
    assert sorted(os.listdir(tmp_path / "real")) == ["model.json"]


@pytest.mark.skipif(not POSIX, reason="symlinks need privileges on Windows")
def test_save_through_a_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "later.json")
    chainrule.save(MLP(2, [1]), link)
    assert link.is_symlink() and chainrule.load(tmp_path / "later.json").config() == {"nin": 2, "nouts": [1]}


@pytest.mark.parametrize("length", [242, 250, 255])
def test_the_longest_file_names_work(tmp_path: Path, length: int) -> None:
    name = "m" * (length - 5) + ".json"
    assert len(name) == length
    path = chainrule.save(MLP(2, [1]), tmp_path / name)
    assert chainrule.load(path).config() == {"nin": 2, "nouts": [1]}
    assert os.listdir(tmp_path) == [name]


def test_a_name_too_long_is_an_error_naming_the_file_not_a_temp_file(tmp_path: Path) -> None:
    name = "m" * 300 + ".json"
    with pytest.raises(OSError) as info:
        chainrule.save(MLP(2, [1]), tmp_path / name)
    message = str(info.value)
    assert name in message and ".tmp" not in message and "save: cannot write" in message
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("path", ["", "   "])
def test_an_empty_path_is_a_clear_error(path: str) -> None:
    with pytest.raises(ValueError, match="save: the path is empty"):
        chainrule.save(MLP(2, [1]), path)


def test_a_folder_or_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match="save: this is a folder"):
        chainrule.save(MLP(2, [1]), tmp_path)
    with pytest.raises(FileNotFoundError, match="save: the folder to write into does not exist"):
        chainrule.save(MLP(2, [1]), tmp_path / "nope" / "m.json")
    with pytest.raises(TypeError, match="save: the path must be a str or a Path, got int"):
        chainrule.save(MLP(2, [1]), 3)  # type: ignore[arg-type]


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.skipif(not POSIX, reason="stale temp files are recognised by a POSIX process id")
def test_save_removes_temp_files_of_dead_savers_only(tmp_path: Path) -> None:
    host = serialize._HOST
    stale = tmp_path / f".chainrule-{host}-{dead_pid()}-0badf00d.tmp"
    alive = tmp_path / f".chainrule-{host}-{os.getppid()}-0badf00d.tmp"  # our parent is running
    other_host = tmp_path / f".chainrule-00000000-{dead_pid()}-0badf00d.tmp"
    user_file = tmp_path / "notes.tmp"
    for path in (stale, alive, other_host, user_file):
        path.write_text("{")
    chainrule.save(MLP(2, [1]), tmp_path / "m.json")
    assert not stale.exists()
    assert alive.exists() and other_host.exists() and user_file.exists()


CHILD = """
import random, sys
import chainrule
from chainrule.nn import MLP

random.seed(7)
model = MLP(4, [48, 48, 1])
chainrule.save(model, sys.argv[1])
print("ready", flush=True)
while True:
    chainrule.save(model, sys.argv[1])
"""


@pytest.mark.skipif(not POSIX, reason="SIGKILL is POSIX")
def test_saving_while_being_killed_leaves_an_intact_model_and_no_stale_temp_files(tmp_path: Path) -> None:
    """A save loop killed with SIGKILL 20 times at random moments; bounded (~10 s)."""
    path = tmp_path / "model.json"
    rng = random.Random(0)
    deadline = time.monotonic() + 120
    for _ in range(20):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True, env=ENV
        )
        try:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
            time.sleep(rng.uniform(0.0, 0.15))  # the loop spends nearly all its time inside save
        finally:
            child.kill()  # SIGKILL: no cleanup handler runs
            child.wait(timeout=30)
            child.stdout.close()  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the stress test is taking too long"
    random.seed(7)
    expected = [p.data for p in MLP(4, [48, 48, 1]).parameters()]
    assert [p.data for p in chainrule.load(path).parameters()] == expected  # never half-written
    chainrule.save(chainrule.load(path), path)  # the next save cleans up after the killed ones
    assert os.listdir(tmp_path) == ["model.json"]


@contextlib.contextmanager
def no_rename(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail (rather than replace the file) if save ever gets as far as renaming over its target."""

    def forbidden(src: object, dst: object) -> None:
        raise AssertionError(f"save renamed a temporary file over {dst}")

    monkeypatch.setattr(os, "replace", forbidden)
    try:
        yield
    finally:
        monkeypatch.undo()


@pytest.mark.skipif(not POSIX, reason="FIFOs, sockets and /dev/null are POSIX")
@pytest.mark.parametrize(
    ("kind", "through_link"),
    [("fifo", False), ("fifo", True), ("socket", False), ("socket", True), ("device", True)],
)
def test_save_refuses_devices_fifos_and_sockets_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, through_link: bool
) -> None:
    # The temp-file-and-rename used to replace whatever was at the path: as root,
    # save(model, "/dev/null") turned the system's /dev/null into a JSON file.
    import socket

    if kind == "fifo":
        special = tmp_path / "pipe"
        os.mkfifo(special)
    elif kind == "socket":
        special = tmp_path / "sock"
        server = socket.socket(socket.AF_UNIX)
        with monkeypatch.context() as here:  # a relative name: socket paths are limited to ~100 bytes
            here.chdir(tmp_path)
            server.bind("sock")
    else:  # /dev/null, reached through a link (the rename is forbidden above, so it stays safe)
        special = Path(os.devnull)
    path = special
    if through_link:
        path = tmp_path / "model.json"
        path.symlink_to(special)
    before = os.stat(special)
    try:
        with time_limit(20), no_rename(monkeypatch), pytest.raises(OSError) as info:
            chainrule.save(MLP(2, [1]), path)
    finally:
        if kind == "socket":
            server.close()
    message = str(info.value)
    words = {"fifo": "a FIFO (named pipe)", "socket": "a socket", "device": "a character device"}[kind]
    assert "\n" not in message and f"save: this is {words}, not a regular file" in message
    after = os.stat(special)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)  # untouched
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL)
fcntl.flock(fd, fcntl.LOCK_EX)  # what a save does while it writes
print("ready", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


@pytest.mark.skipif(not POSIX, reason="the temp files' locks are POSIX")
def test_a_live_save_whose_pid_looks_dead_keeps_its_temp_file(tmp_path: Path) -> None:
    # A saver in another PID namespace (another container of the pod, same host name) has a pid that
    # is dead in ours: its temp file used to be deleted under it ("No such file or directory").
    live = tmp_path / f".chainrule-{serialize._HOST}-{dead_pid()}-0badf00d.tmp"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(live)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        chainrule.save(MLP(2, [1]), tmp_path / "m.json")
        assert live.exists()  # its writer holds the lock: still being written
    finally:
        holder.communicate(timeout=30)
    chainrule.save(MLP(2, [1]), tmp_path / "m.json")
    assert not live.exists()  # the writer is gone and its lock with it: now it is stale


SAVER = """
import sys, time
import chainrule
from chainrule import serialize
from chainrule.nn import MLP

serialize._process_alive = lambda pid: False  # every other saver's pid looks dead, as across namespaces
model = MLP(3, [8, 1])
deadline = time.monotonic() + float(sys.argv[2])
count = 0
while time.monotonic() < deadline:
    chainrule.save(model, sys.argv[1])
    count += 1
print(count)
"""


@pytest.mark.skipif(not POSIX, reason="the temp files' locks are POSIX")
def test_savers_that_see_each_others_pids_as_dead_never_break_each_others_saves(tmp_path: Path) -> None:
    """Two processes saving into one folder for 2 s each; bounded by a 60 s timeout."""
    savers = [
        subprocess.Popen(
            [sys.executable, "-c", SAVER, str(tmp_path / f"m{i}.json"), "2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        for i in range(2)
    ]
    for saver in savers:
        out, err = saver.communicate(timeout=60)
        assert saver.returncode == 0, err.strip().splitlines()[-1:]
        assert int(out) > 0
    assert sorted(os.listdir(tmp_path)) == ["m0.json", "m1.json"]
