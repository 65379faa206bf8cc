"""Saving and loading modules as plain JSON: `chainrule.save(module, path)`, `chainrule.load(path)`.

A model file is untrusted input, so it is never pickle: it is JSON holding the module's type, the
arguments that rebuild its architecture and its parameters by name:

    {"format": "chainrule", "version": 1, "module": "MLP", "config": {"nin": 2, "nouts": [16, 16, 1]},
     "parameters": {"layers.0.neurons.0.w": [0.23, -0.71], "layers.0.neurons.0.b": 0.0, ...}}

`load` checks everything (format, version, known module type, sane config, every key present, every
value a finite number of the right shape) before it returns a module, and refuses anything else with
a `ModelFileError` that says what is wrong. `save` writes a temporary file next to the target and
renames it over the target only when it is complete, so a crash never leaves a half-written model.
"""

from __future__ import annotations

import json
import math
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .nn import MLP, Layer, Module, Neuron

FORMAT = "chainrule"
VERSION = 1

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


def _check_keys(module: str, config: dict[str, Any], required: set[str], optional: set[str]) -> None:
    missing, unknown = required - config.keys(), config.keys() - required - optional
    if missing or unknown:
        raise ModelFileError(
            f"{module} config: missing keys {sorted(missing)}, unknown keys {sorted(unknown)[:5]}"
        )


def _neuron_args(config: dict[str, Any]) -> tuple[dict[str, Any], int]:
    _check_keys("Neuron", config, {"nin"}, {"nonlin"})
    nin = _positive_int("Neuron", "nin", config["nin"])
    return {"nin": nin, "nonlin": _flag("Neuron", "nonlin", config.get("nonlin", True))}, nin + 1


def _layer_args(config: dict[str, Any]) -> tuple[dict[str, Any], int]:
    _check_keys("Layer", config, {"nin", "nout"}, {"nonlin"})
    nin = _positive_int("Layer", "nin", config["nin"])
    nout = _positive_int("Layer", "nout", config["nout"])
    args = {"nin": nin, "nout": nout, "nonlin": _flag("Layer", "nonlin", config.get("nonlin", True))}
    return args, (nin + 1) * nout


def _mlp_args(config: dict[str, Any]) -> tuple[dict[str, Any], int]:
    _check_keys("MLP", config, {"nin", "nouts"}, set())
    nin = _positive_int("MLP", "nin", config["nin"])
    nouts = config["nouts"]
    if not isinstance(nouts, list) or not 1 <= len(nouts) <= 1000:
        raise ModelFileError(
            f"MLP config: 'nouts' must be a list of 1 to 1000 layer sizes, got {nouts!r:.60}"
        )
    nouts = [_positive_int("MLP", f"nouts[{i}]", n) for i, n in enumerate(nouts)]
    sizes = [nin, *nouts]
    return {"nin": nin, "nouts": nouts}, sum((a + 1) * b for a, b in zip(sizes, nouts, strict=False))


# name -> (class, a function that checks a file's config and returns (constructor arguments,
# parameter count) or None when the count is unknown). The count is checked against the file
# before anything is built, so a hostile config cannot make `load` allocate a giant model.
_Checker = Callable[[dict[str, Any]], tuple[dict[str, Any], int | None]]
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
    MODULES[name or cls.__name__] = (cls, lambda config: (dict(config), None))
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
    return {
        "format": FORMAT,
        "version": VERSION,
        "module": name,
        "config": module.config(),
        "parameters": state,
    }


def _count_numbers(state: dict[str, Any]) -> int:
    return sum(len(v) if isinstance(v, list | dict) else 1 for v in state.values())


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
    args, count = check(data["config"])
    available = _count_numbers(data["parameters"])
    # Only a guard against allocating a model far larger than the file: a small mismatch is left to
    # load_state_dict, whose messages name the missing or malformed entry.
    if count is not None and count > 2 * available + 1000:
        raise ModelFileError(f"the {name} config needs {count} parameters but the file holds {available}")
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


def save(module: Module, path: str | os.PathLike[str]) -> Path:
    """Write `module` (architecture and parameters) to `path` as JSON, atomically; returns the path."""
    path = Path(path)
    data = to_dict(module)  # everything that can fail on the module fails before a file is touched
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, allow_nan=False, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it the model file
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        # Whatever went wrong (even KeyboardInterrupt), the old file stays and no temp file is left.
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _file_mode(path: Path) -> int:
    """Keep an existing file's permissions; a new file gets the usual 0o666 minus the umask."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def load(path: str | os.PathLike[str]) -> Module:
    """Read a module written by `save`; refuses (ModelFileError) anything that is not a valid model file."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
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
