"""Saving and loading modules as plain JSON: `chainrule.save(module, path)`, `chainrule.load(path)`.

A model file is untrusted input, so it is never pickle: it is JSON holding the module's type, the
arguments that rebuild its architecture and its parameters by name:

    {"format": "chainrule", "version": 1, "module": "MLP", "config": {"nin": 2, "nouts": [16, 16, 1]},
     "parameters": {"layers.0.neurons.0.w": [0.23, -0.71], "layers.0.neurons.0.b": 0.0, ...}}

`load` checks everything (format, version, known module type, sane config, every key present, every
value a finite number of the right shape) before it returns a module, and refuses anything else with
a `ModelFileError` that says what is wrong. The file's parameter names and list lengths are checked
against its config before a module is built, so what `load` allocates is bounded by what the file
holds, and every check is linear in the file's size. `save` writes a temporary file next to the
target and renames it over the target only when it is complete, so a crash never leaves a
half-written model; temporary files left by a killed save are removed by the next save into that
folder (never one that a live save, in any process or PID namespace, still holds locked). Only a
regular file (or a new one) is written over. docs/reliability.md lists these guarantees and the
tests that hold them.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import random
import secrets
import socket
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .nn import ACTIVATIONS, MLP, Layer, Module, Neuron

try:  # POSIX: a save holds a lock on its temporary file, so others can tell it is still being written
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

FORMAT = "chainrule"
VERSION = 1
MAX_FILE_BYTES = 256 * 1024 * 1024
"""`load` refuses larger files before reading them (pass `max_bytes=` to read a bigger one)."""

__all__ = ["FORMAT", "VERSION", "ModelFileError", "from_dict", "load", "register", "save", "to_dict"]


class ModelFileError(ValueError):
    """A model file (or dict) that `chainrule.load` refuses: not JSON, not ours, or not consistent."""


# --- module types that can be rebuilt from a file -------------------------------------------------
def _positive_int(module: str, key: str, x: Any, limit: int = 1_000_000) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or not 1 <= x <= limit:
        raise ModelFileError(f"{module} config: {key!r} must be an integer from 1 to {limit}, got {x!r:.60}")
    return x


def _flag(module: str, key: str, x: Any) -> bool:
    if not isinstance(x, bool):
        raise ModelFileError(f"{module} config: {key!r} must be true or false, got {x!r:.60}")
    return x


def _activation(module: str, config: dict[str, Any]) -> dict[str, str]:
    """The `activation` argument of a config as constructor keywords: {} for the default ReLU."""
    if "activation" not in config:  # files written before tanh existed, and every ReLU model
        return {}
    x = config["activation"]
    if not isinstance(x, str) or x not in ACTIVATIONS:
        raise ModelFileError(
            f"{module} config: 'activation' must be one of {list(ACTIVATIONS)}, got {x!r:.60}"
        )
    return {"activation": x}


def _check_keys(module: str, config: dict[str, Any], required: set[str], optional: set[str]) -> None:
    missing, unknown = required - config.keys(), config.keys() - required - optional
    if missing or unknown:
        raise ModelFileError(
            f"{module} config: missing keys {sorted(missing)}, unknown keys {sorted(unknown)[:5]}"
        )


@dataclass(frozen=True)
class Layout:
    """What a config's parameters look like in a file: how many numbers, and each key's shape.

    `entries()` yields (key, n) in state_dict order: n is a list's length, or None for one number.
    It is a generator, so `load` can compare a file with a config of any declared size while
    walking no more entries than the file itself holds.
    """

    count: int
    entries: Callable[[], Iterator[tuple[str, int | None]]]


def _neuron_entries(prefix: str, nin: int) -> Iterator[tuple[str, int | None]]:
    yield f"{prefix}w", nin
    yield f"{prefix}b", None


def _layer_entries(prefix: str, nin: int, nout: int) -> Iterator[tuple[str, int | None]]:
    for i in range(nout):
        yield from _neuron_entries(f"{prefix}neurons.{i}.", nin)


def _neuron_args(config: dict[str, Any]) -> tuple[dict[str, Any], Layout]:
    _check_keys("Neuron", config, {"nin"}, {"nonlin", "activation"})
    nin = _positive_int("Neuron", "nin", config["nin"])
    args = {
        "nin": nin,
        "nonlin": _flag("Neuron", "nonlin", config.get("nonlin", True)),
        **_activation("Neuron", config),
    }
    return args, Layout(nin + 1, lambda: _neuron_entries("", nin))


def _layer_args(config: dict[str, Any]) -> tuple[dict[str, Any], Layout]:
    _check_keys("Layer", config, {"nin", "nout"}, {"nonlin", "activation"})
    nin = _positive_int("Layer", "nin", config["nin"])
    nout = _positive_int("Layer", "nout", config["nout"])
    args = {
        "nin": nin,
        "nout": nout,
        "nonlin": _flag("Layer", "nonlin", config.get("nonlin", True)),
        **_activation("Layer", config),
    }
    return args, Layout((nin + 1) * nout, lambda: _layer_entries("", nin, nout))


def _mlp_args(config: dict[str, Any]) -> tuple[dict[str, Any], Layout]:
    _check_keys("MLP", config, {"nin", "nouts"}, {"activation"})
    nin = _positive_int("MLP", "nin", config["nin"])
    nouts = config["nouts"]
    if not isinstance(nouts, list) or not 1 <= len(nouts) <= 1000:
        raise ModelFileError(
            f"MLP config: 'nouts' must be a list of 1 to 1000 layer sizes, got {nouts!r:.60}"
        )
    nouts = [_positive_int("MLP", f"nouts[{i}]", n) for i, n in enumerate(nouts)]
    sizes = [nin, *nouts]

    def entries() -> Iterator[tuple[str, int | None]]:
        for i, (a, b) in enumerate(zip(sizes, nouts, strict=False)):
            yield from _layer_entries(f"layers.{i}.", a, b)

    count = sum((a + 1) * b for a, b in zip(sizes, nouts, strict=False))
    return {"nin": nin, "nouts": nouts, **_activation("MLP", config)}, Layout(count, entries)


# name -> (class, a function that checks a file's config and returns (constructor arguments,
# Layout) or None when the layout is unknown). The layout is checked against the file before
# anything is built, so a hostile config cannot make `load` allocate a model the file does not hold.
_Checker = Callable[[dict[str, Any]], tuple[dict[str, Any], Layout | None]]
MODULES: dict[str, tuple[type[Module], _Checker]] = {
    "Neuron": (Neuron, _neuron_args),
    "Layer": (Layer, _layer_args),
    "MLP": (MLP, _mlp_args),
}


def register(cls: type[Module], name: str | None = None) -> type[Module]:
    """Let `save`/`load` handle your own Module subclass (it needs a `config()` that `cls(**config)` takes).

    Usable as a decorator. The config is passed to the constructor as it is in the file, so a
    constructor should check its arguments.
    """
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"register: expected a Module subclass, got {cls!r}")
    MODULES[name or cls.__name__] = (cls, lambda config: (dict(config), None))  # layout: unknown
    return cls


def _type_name(module: Module) -> str:
    for name, (cls, _) in MODULES.items():
        if type(module) is cls:
            return name
    raise TypeError(
        f"save: cannot save a {type(module).__name__}: it is not a known module type "
        f"(known: {', '.join(MODULES)}); register it with chainrule.serialize.register"
    )


# --- dicts ----------------------------------------------------------------------------------------
def to_dict(module: Module) -> dict[str, Any]:
    """The JSON-ready description of `module`: format, version, type, config and parameters."""
    name = _type_name(module)
    state = module.state_dict()
    for key, value in state.items():
        for x in value if isinstance(value, list) else [value]:
            if not math.isfinite(x):
                raise ValueError(f"save: parameter {key!r} is {x!r}; a model file holds finite numbers only")
    config = module.config()
    _check_config(name, config)
    return {
        "format": FORMAT,
        "version": VERSION,
        "module": name,
        "config": config,
        "parameters": state,
    }


def _check_config(name: str, config: Any) -> None:
    """Refuse, in one line naming the entry, a config that a JSON model file cannot hold.

    Without this, `json.dump` would fail halfway through writing with its own words ("Out of range
    float values are not JSON compliant"), naming neither the module nor the entry.
    """
    if not isinstance(config, dict):
        raise TypeError(f"save: {name}.config() must return a dict, got {type(config).__name__}")
    stack: list[tuple[str, Any]] = [("config", config)]
    while stack:  # iterative, so a deeply nested config cannot exhaust the recursion limit
        where, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(
                f"save: the config of {name} holds {value!r} at {where}; "
                f"a model file holds finite numbers only"
            )
        if value is None or isinstance(value, bool | int | float | str):
            continue
        if isinstance(value, list | tuple):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
        elif isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise TypeError(
                        f"save: the config of {name} has the key {key!r} in {where}; JSON keys are text"
                    )
                stack.append((f"{where}[{key!r}]", item))
        else:
            raise TypeError(
                f"save: the config of {name} holds a {type(value).__name__} at {where}, which a JSON model "
                f"file cannot store (numbers, text, true/false, null, lists and dicts)"
            )


def _count_numbers(state: dict[str, Any]) -> int:
    return sum(len(v) if isinstance(v, list | dict) else 1 for v in state.values())


def _check_layout(name: str, layout: Layout, state: dict[str, Any]) -> None:
    """Refuse a file whose parameter names or list lengths do not match its config, before building.

    Walks the config's layout only as far as the file's own keys (plus a few, to name missing
    ones), so a config that declares a giant model costs no more than the file's size.
    """
    missing: list[str] = []
    more_missing = False
    expected: set[str] = set()
    bad_shape = ""  # the first malformed entry; wrong or missing names are reported first
    walked_all = True
    for key, length in layout.entries():
        if len(expected) > len(state) + 5:
            walked_all, more_missing = False, True
            break
        expected.add(key)
        if key not in state:
            if len(missing) < 5:
                missing.append(key)
            else:
                more_missing = True
            continue
        value = state[key]
        if bad_shape:
            continue
        if length is None and isinstance(value, list | dict):
            bad_shape = f"{key!r} must be a number, got {type(value).__name__}"
        elif length is not None and (not isinstance(value, list) or len(value) != length):
            size = len(value) if isinstance(value, list) else type(value).__name__
            bad_shape = f"{key!r} must be a list of {length} numbers, got {size}"
    available = _count_numbers(state)
    unexpected = [key for key in state if key not in expected][:5] if walked_all else []
    if missing or unexpected or not walked_all:
        sizes = ""
        if available != layout.count:
            sizes = f"the {name} config needs {layout.count} parameters but the file holds {available}: "
        extra = f", unexpected keys {unexpected}" if walked_all else ""
        raise ModelFileError(
            f"{sizes}the parameters do not fit this {name}: missing keys {missing}"
            f"{' ...' if more_missing else ''}{extra}"
        )
    if bad_shape:
        raise ModelFileError(f"the parameters do not fit this {name}: {bad_shape}")


def from_dict(data: Any) -> Module:
    """Rebuild a module from `to_dict`'s output, checking every part of it first."""
    if not isinstance(data, dict):
        raise ModelFileError(f"expected a JSON object at the top level, got {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise ModelFileError(f"not a chainrule model file (its 'format' is {data.get('format')!r:.60})")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelFileError(f"'version' must be an integer, got {version!r:.60}")
    if version != VERSION:
        newer = " (written by a newer chainrule: upgrade to read it)" if version > VERSION else ""
        raise ModelFileError(
            f"unsupported model file version {version}{newer}; this chainrule reads {VERSION}"
        )
    for key, kind in (("module", str), ("config", dict), ("parameters", dict)):
        if not isinstance(data.get(key), kind):
            raise ModelFileError(f"{key!r} must be a JSON {kind.__name__}, got {data.get(key)!r:.60}")
    name = data["module"]
    if name not in MODULES:
        raise ModelFileError(f"unknown module type {name!r:.60} (known: {', '.join(MODULES)})")
    cls, check = MODULES[name]
    args, layout = check(data["config"])
    if layout is not None:  # the numbers themselves are checked by load_state_dict, after building
        _check_layout(name, layout, data["parameters"])
    # Building a module draws random initial weights; keep the caller's random sequence untouched.
    saved = random.getstate()
    try:
        module = cls(**args)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"cannot build a {name} from config {data['config']!r:.100}: {exc}") from exc
    finally:
        random.setstate(saved)
    try:
        module.load_state_dict(data["parameters"])
    except (TypeError, ValueError) as exc:
        raise ModelFileError(str(exc)) from exc
    return module


# --- files ----------------------------------------------------------------------------------------
def _reject_constant(name: str) -> float:
    # Python's json reads NaN, Infinity and -Infinity by default; a model file must not contain them.
    raise ModelFileError(f"non-finite number {name} in the file")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice (which would silently keep the last)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ModelFileError(f"the key {key!r:.80} appears twice in one object")
            seen.add(key)
    return obj


# Temporary files of `save`: ".chainrule-<host>-<pid>-<random>.tmp" next to the target. The name is
# short whatever the target's (a 255-character file name still works) and says which process wrote
# it, so a later save can remove the ones whose writer was killed. A process id alone cannot tell:
# savers in different PID namespaces (two containers of one pod sharing a volume, with one host
# name) see each other's ids as dead. So the writer also holds an exclusive lock (flock) on its temp
# file until the rename, and a file is only removed by a save that can take that lock itself.
_TMP_PREFIX = ".chainrule-"
_TMP_SUFFIX = ".tmp"
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_STALE_SCAN_LIMIT = 10_000  # directory entries looked at per save, so a huge folder cannot stall it


def save(module: Module, path: str | os.PathLike[str]) -> Path:
    """Write `module` (architecture and parameters) to `path` as JSON, atomically; returns the path.

    A symlink is written through (its target gets the new model, the link stays). Only a regular
    file or a new one is written: a folder, device, FIFO or socket (directly or behind a symlink) is
    refused. The process umask is never changed: a new file gets 0o666 minus the umask, an existing
    file keeps its mode.
    """
    try:
        target = _save_target(path)
        data = to_dict(module)  # everything that can fail on the module fails before a file is touched
        _remove_stale_temp_files(target.parent)
        try:
            mode: int | None = target.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = None
        tmp, fd = _create_locked_temp_file(target.parent, mode)
    except OSError as exc:
        if exc.errno is None or str(exc.strerror).startswith("save:"):
            raise
        raise OSError(exc.errno, f"save: cannot write {path}: {exc.strerror}", os.fspath(path)) from None
    try:
        # The file stays open (so locked) until it has been renamed: closing it first would let
        # another save take the lock and remove the finished file before the rename.
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)  # the existing file's exact permissions
            json.dump(data, f, allow_nan=False, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it the model file
            os.replace(tmp, target)
    except BaseException as exc:
        # Whatever went wrong (even KeyboardInterrupt), the old file stays and no temp file is left.
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno is not None:
            raise OSError(exc.errno, f"save: cannot write {target}: {exc.strerror}", str(target)) from None
        raise
    return Path(path)


def _save_target(path: str | os.PathLike[str]) -> Path:
    """The file `save` writes: `path`, or the file a symlink at `path` points to; clear errors first."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"save: the path must be a str or a Path, got {type(path).__name__}: {path!r:.60}")
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError(f"save: the path must be a str or a Path, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"save: the path is empty ({text!r}); give a file name such as 'model.json'")
    target = Path(text)
    if target.is_symlink():
        target = Path(os.path.realpath(target))  # write through the link, as open(path, "w") would
    try:
        kind = target.stat().st_mode
    except FileNotFoundError:
        kind = None  # a new file (or a dangling link's target): created by the rename
    if kind is not None and stat.S_ISDIR(kind):
        raise IsADirectoryError(errno.EISDIR, "save: this is a folder; give a file name inside it", text)
    if kind is not None and not stat.S_ISREG(kind):
        # The rename would replace the device, FIFO or socket itself (as root, /dev/null would
        # become a JSON file): a model is written only over a regular file or a new one.
        where = "" if str(target) == text else f" (the link points to {target})"
        raise OSError(
            errno.EINVAL,
            f"save: this is {_file_kind(kind)}, not a regular file{where}; give the path of a model file",
            text,
        )
    if not target.parent.is_dir():
        raise FileNotFoundError(
            errno.ENOENT, "save: the folder to write into does not exist", str(target.parent)
        )
    return target


def _file_kind(mode: int) -> str:
    """What a file that is not a regular file is, in words, for save's refusal."""
    kinds = [
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "a special file")


def _create_locked_temp_file(directory: Path, mode: int | None) -> tuple[Path, int]:
    """A new temporary file in `directory`, open for writing and locked by this save: (path, fd).

    A stale-file cleaner that took the lock just before we did may have removed the file; then the
    name no longer leads to our file, and we start again with a new name.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = directory / f"{_TMP_PREFIX}{_HOST}-{os.getpid()}-{secrets.token_hex(4)}{_TMP_SUFFIX}"
        # The kernel applies the umask to 0o666 itself: no need to read (and so set) the umask.
        fd = os.open(tmp, flags, 0o666 if mode is None else mode & 0o666)
        try:
            if not _lock(fd, wait=True) or _same_file(tmp, fd):
                return tmp, fd
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)  # removed by a cleaner between our open and our lock: try another name
    raise OSError(errno.EAGAIN, f"save: could not create a temporary file in {directory}", str(directory))


def _lock(fd: int, wait: bool) -> bool:
    """Take the exclusive lock on open file `fd`: True if taken; False if the system has no locks.

    With `wait=False`, a lock held by someone else raises BlockingIOError instead of waiting.
    """
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise
    except OSError as exc:
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return False  # a file system without locks
        raise
    return True


def _same_file(path: Path, fd: int) -> bool:
    """Whether `path` still names the file open as `fd` (it may have been removed or replaced)."""
    try:
        there = os.lstat(path)
    except FileNotFoundError:
        return False
    here = os.fstat(fd)
    return (there.st_dev, there.st_ino) == (here.st_dev, here.st_ino)


def _process_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine (POSIX); True when it cannot be told."""
    if pid <= 0:
        return True
    if pid == os.getpid():
        return True  # another thread of this process may be saving right now
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists but belongs to another user
        return True
    return True


def _remove_stale_temp_files(directory: Path) -> int:
    """Delete temp files of saves on this machine whose writer is gone; returns how many.

    Only names of our own pattern, written on this host, by a process id that does not exist here,
    and only if this save can take the file's lock: the writer holds it until its rename, so a save
    running in another process, in another PID namespace, or on another machine sharing the folder
    is never touched. At most `_STALE_SCAN_LIMIT` directory entries are looked at.
    """
    if os.name != "posix" or fcntl is None:  # os.kill(pid, 0) is not a harmless probe on Windows
        return 0
    removed = 0
    try:
        entries = os.scandir(directory)
    except OSError:
        return 0
    with entries:
        for i, entry in enumerate(entries):
            if i >= _STALE_SCAN_LIMIT:
                break
            name = entry.name
            if not (name.startswith(_TMP_PREFIX) and name.endswith(_TMP_SUFFIX)):
                continue
            parts = name[len(_TMP_PREFIX) : -len(_TMP_SUFFIX)].split("-")
            if len(parts) != 3 or parts[0] != _HOST or not parts[1].isdigit() or len(parts[1]) > 10:
                continue
            if _process_alive(int(parts[1])) or not entry.is_file(follow_symlinks=False):
                continue
            removed += _remove_if_abandoned(Path(entry.path))
    return removed


def _remove_if_abandoned(path: Path) -> int:
    """Remove temp file `path` if no save holds its lock (its writer is gone): 1 if removed, else 0."""
    try:  # O_NONBLOCK: a FIFO planted under our name must not block the open
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC)
    except OSError:  # removed by someone else meanwhile, or not ours to open
        return 0
    try:
        if not _lock(fd, wait=False) or not _same_file(path, fd):
            return 0  # no locks here, so no way to tell it is abandoned; or already replaced
        os.unlink(path)  # while holding the lock: its writer cannot be mid-way through creating it
        return 1
    except OSError:  # BlockingIOError: a live save holds the lock; or removed meanwhile
        return 0
    finally:
        os.close(fd)


def load(path: str | os.PathLike[str], *, max_bytes: int = MAX_FILE_BYTES) -> Module:
    """Read a module written by `save`; refuses (ModelFileError) anything that is not a valid model file.

    Files larger than `max_bytes` (256 MB) and things that are not regular files (a folder, a
    FIFO, a device) are refused before reading.
    """
    path = Path(path)
    info = path.stat()  # FileNotFoundError for a missing file, as open() would give
    if not stat.S_ISREG(info.st_mode):
        raise ModelFileError(f"{path}: not a model file (not a regular file)")
    if info.st_size > max_bytes:
        raise ModelFileError(
            f"{path}: the file is {info.st_size} bytes, larger than the {max_bytes} bytes load reads "
            "(pass max_bytes= to read it)"
        )
    with open(path, "rb") as f:
        raw = f.read(max_bytes + 1)  # the file may have grown since stat
    if len(raw) > max_bytes:
        raise ModelFileError(f"{path}: the file is larger than the {max_bytes} bytes load reads")
    try:
        text = raw.decode("utf-8")
        data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    except UnicodeDecodeError:
        raise ModelFileError(f"{path}: not a chainrule model file (not UTF-8 text)") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError, as are huge ints
        raise ModelFileError(f"{path}: not valid JSON (truncated or corrupted?): {exc}") from None
    try:
        return from_dict(data)
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
