"""state_dict / load_state_dict and chainrule.save / chainrule.load: round trips and every bad file."""

from __future__ import annotations

import json
import os
import random

import pytest

import chainrule
from chainrule import Value
from chainrule.nn import MLP, Layer, Module, Neuron
from chainrule.serialize import ModelFileError, register


def _model() -> MLP:
    random.seed(5)
    return MLP(2, [3, 1])


def _numbers(module: Module) -> list[float]:
    return [p.data for p in module.parameters()]


# --- state_dict -----------------------------------------------------------------------------------
def test_state_dict_names_groups_like_pytorch():
    model = _model()
    state = model.state_dict()
    assert list(state)[:2] == ["layers.0.neurons.0.w", "layers.0.neurons.0.b"]
    assert len(state) == 8  # 4 neurons, each w and b
    assert state["layers.1.neurons.0.w"] == [p.data for p in model.layers[1].neurons[0].w]
    assert sum(len(v) if isinstance(v, list) else 1 for v in state.values()) == len(model.parameters())
    json.dumps(state)  # plain JSON-ready data


def test_load_state_dict_round_trip_into_a_fresh_model():
    a, b = _model(), MLP(2, [3, 1])
    assert _numbers(a) != _numbers(b)
    b.load_state_dict(a.state_dict())
    assert _numbers(a) == _numbers(b)
    x = [0.3, -0.8]
    assert a(x).data == b(x).data


def test_state_dict_is_a_copy():
    model = _model()
    state = model.state_dict()
    state["layers.0.neurons.0.b"] = 42.0
    assert model.layers[0].neurons[0].b.data == 0.0


def test_a_custom_module_without_named_attributes_still_round_trips():
    class Pair(Module):
        def __init__(self) -> None:
            self.store = {"a": Value(1.0), "b": Value(2.0)}  # a dict: not walked by attribute

        def parameters(self) -> list[Value]:
            return list(self.store.values())

    p, q = Pair(), Pair()
    q.store["a"].data = 5.0
    assert q.state_dict() == {"parameters": [5.0, 2.0]}
    p.load_state_dict(q.state_dict())
    assert _numbers(p) == [5.0, 2.0]


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        (lambda s: s.pop("layers.0.neurons.0.b"), ValueError, "missing keys ['layers.0.neurons.0.b']"),
        (lambda s: s.update(extra=1.0), ValueError, "unexpected keys ['extra']"),
        (
            lambda s: s.update({"layers.0.neurons.0.w": [1.0]}),
            ValueError,
            "must be a list of 2 numbers, got 1",
        ),
        (
            lambda s: s.update({"layers.0.neurons.0.w": 1.0}),
            ValueError,
            "must be a list of 2 numbers, got float",
        ),
        (lambda s: s.update({"layers.0.neurons.0.b": [1.0]}), TypeError, "must be a number, got list"),
        (lambda s: s.update({"layers.0.neurons.0.b": "NaN"}), TypeError, "must be a number, got str"),
        (lambda s: s.update({"layers.0.neurons.0.b": True}), TypeError, "must be a number, got bool"),
        (lambda s: s.update({"layers.0.neurons.0.b": None}), TypeError, "must be a number, got NoneType"),
        (
            lambda s: s.update({"layers.1.neurons.0.w": [0.0, float("nan"), 0.0]}),
            ValueError,
            "must be finite",
        ),
        (
            lambda s: s.update({"layers.1.neurons.0.w": [0.0, {"x": 1}, 0.0]}),
            TypeError,
            "w[1]' must be a number",
        ),
        (lambda s: s.update({"layers.0.neurons.0.b": 10**400}), ValueError, "too large"),
    ],
)
def test_load_state_dict_refuses_bad_dicts_and_changes_nothing(change, error, words):
    model = _model()
    before = _numbers(model)
    state = {k: (list(v) if isinstance(v, list) else v) for k, v in _model().state_dict().items()}
    state["layers.0.neurons.1.b"] = 7.0  # a valid change that must not be applied either
    change(state)
    with pytest.raises(error) as info:
        model.load_state_dict(state)
    assert words in str(info.value)
    assert _numbers(model) == before


def test_load_state_dict_needs_a_dict():
    with pytest.raises(TypeError, match="expected a dict of parameters, got list"):
        _model().load_state_dict([1.0, 2.0])


def test_config_rebuilds_the_architecture():
    assert _model().config() == {"nin": 2, "nouts": [3, 1]}
    assert Layer(4, 2, nonlin=False).config() == {"nin": 4, "nout": 2, "nonlin": False}
    assert Neuron(3).config() == {"nin": 3, "nonlin": True}


# --- files ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make", [lambda: MLP(3, [4, 4, 2]), lambda: Layer(2, 3, nonlin=False), lambda: Neuron(5)]
)
def test_save_load_round_trip(tmp_path, make):
    module = make()
    path = chainrule.save(module, tmp_path / "model.json")
    data = json.loads(path.read_text())
    assert (data["format"], data["version"], data["module"]) == ("chainrule", 1, type(module).__name__)
    loaded = chainrule.load(path)
    assert type(loaded) is type(module)
    assert repr(loaded) == repr(module)
    assert _numbers(loaded) == _numbers(module)  # exact: floats are written with repr


def test_load_does_not_disturb_the_random_sequence(tmp_path):
    path = chainrule.save(_model(), tmp_path / "m.json")
    random.seed(1)
    expected = random.random()
    random.seed(1)
    chainrule.load(path)
    assert random.random() == expected


def test_save_overwrites_atomically_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "m.json"
    chainrule.save(_model(), path)
    second = MLP(2, [3, 1])
    chainrule.save(second, path)
    assert _numbers(chainrule.load(path)) == _numbers(second)
    assert os.listdir(tmp_path) == ["m.json"]


def test_a_crash_mid_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.json"
    chainrule.save(_model(), path)
    old = path.read_bytes()

    def crash(obj, f, **kwargs):
        f.write('{"format": "chainrule", "vers')  # half a file, then the crash
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", crash)
    with pytest.raises(OSError, match="disk full"):
        chainrule.save(MLP(2, [3, 1]), path)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["m.json"]


def test_save_refuses_non_finite_parameters_without_touching_the_file(tmp_path):
    path = tmp_path / "m.json"
    chainrule.save(_model(), path)
    old = path.read_bytes()
    bad = _model()
    bad.layers[0].neurons[0].b.data = float("nan")
    with pytest.raises(ValueError, match=r"save: parameter 'layers.0.neurons.0.b' is nan"):
        chainrule.save(bad, path)
    assert path.read_bytes() == old


def test_save_refuses_unknown_module_types(tmp_path):
    class Mine(Module):
        pass

    with pytest.raises(TypeError, match="cannot save a Mine: it is not a known module type"):
        chainrule.save(Mine(), tmp_path / "m.json")


def test_registered_custom_modules_round_trip(tmp_path, monkeypatch):
    from chainrule import serialize

    monkeypatch.setattr(serialize, "MODULES", dict(serialize.MODULES))

    @register
    class Affine(Module):
        def __init__(self, scale: float) -> None:
            self.a, self.b = Value(scale), Value(0.0)

        def parameters(self) -> list[Value]:
            return [self.a, self.b]

        def config(self) -> dict:
            return {"scale": 1.0}

    m = Affine(1.0)
    m.b.data = 3.5
    loaded = chainrule.load(chainrule.save(m, tmp_path / "a.json"))
    assert type(loaded) is Affine and _numbers(loaded) == [1.0, 3.5]


def _valid() -> dict:
    return chainrule.serialize.to_dict(_model())


def _write(tmp_path, text: str | bytes):
    path = tmp_path / "bad.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "not valid JSON"),
        ('{"format": "chainrule", "version": 1, "module": "ML', "not valid JSON"),
        ("garbage", "not valid JSON"),
        (b"\xff\xfe\x00junk", "not UTF-8"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
        ("[1, 2, 3]", "expected a JSON object at the top level, got list"),
        ('{"format": "pickle"}', "not a chainrule model file"),
        ('{"format": "chainrule", "version": 2}', "version 2 (written by a newer chainrule"),
        ('{"format": "chainrule", "version": "1"}', "'version' must be an integer"),
        (
            '{"format": "chainrule", "version": 1, "module": "MLP", "config": {}}',
            "'parameters' must be a JSON dict",
        ),
    ],
)
def test_load_refuses_garbage(tmp_path, text, words):
    with pytest.raises(ModelFileError) as info:
        chainrule.load(_write(tmp_path, text))
    assert words in str(info.value)
    assert str(tmp_path / "bad.json") in str(info.value)


def _mutations():
    def setter(*keys, value):
        def change(d):
            target = d
            for k in keys[:-1]:
                target = target[k]
            target[keys[-1]] = value

        return change

    return [
        (setter("module", value="Transformer"), "unknown module type 'Transformer'"),
        (setter("module", value=["MLP"]), "'module' must be a JSON str"),
        (setter("config", "nouts", value=[3, 0]), "'nouts[1]' must be an integer from 1"),
        (setter("config", "nouts", value=[3.0, 1]), "'nouts[0]' must be an integer"),
        (setter("config", "nouts", value=[3, True]), "'nouts[1]' must be an integer"),
        (setter("config", "nouts", value=[]), "'nouts' must be a list of 1 to 1000"),
        (
            setter("config", "nouts", value=[10**6, 10**6]),
            "needs 1000004000000 parameters but the file holds 13",
        ),
        (setter("config", "nin", value=-2), "'nin' must be an integer"),
        (setter("config", "depth", value=3), "unknown keys ['depth']"),
        (lambda d: d["config"].pop("nin"), "missing keys ['nin']"),
        (setter("config", "nouts", value=[4, 1]), "missing keys ['layers.0.neurons.3.w'"),
        (lambda d: d["parameters"].pop("layers.0.neurons.0.b"), "missing keys ['layers.0.neurons.0.b']"),
        (setter("parameters", "layers.0.neurons.0.b", value="NaN"), "must be a number, got str"),
        (setter("parameters", "layers.0.neurons.0.b", value=False), "must be a number, got bool"),
        (setter("parameters", "layers.0.neurons.0.w", value=[1.0, [2.0]]), "must be a number, got list"),
        (setter("parameters", "layers.0.neurons.0.w", value=[1.0]), "must be a list of 2 numbers, got 1"),
        (
            setter("parameters", "layers.0.neurons.0.w", value={"a": 1.0, "b": 2}),
            "must be a list of 2 numbers",
        ),
        (
            lambda d: d["parameters"].update(bogus=d["parameters"].pop("layers.1.neurons.0.b")),
            "unexpected keys",
        ),
    ]


@pytest.mark.parametrize(("change", "words"), _mutations())
def test_load_refuses_inconsistent_files(tmp_path, change, words):
    data = _valid()
    change(data)
    with pytest.raises(ModelFileError) as info:
        chainrule.load(_write(tmp_path, json.dumps(data)))
    assert words in str(info.value)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_load_refuses_non_finite_numbers(tmp_path, literal):
    text = json.dumps(_valid()).replace('"layers.0.neurons.0.b": 0.0', f'"layers.0.neurons.0.b": {literal}')
    assert literal in text
    with pytest.raises(ModelFileError, match="non-finite|must be finite"):
        chainrule.load(_write(tmp_path, text))


def test_load_refuses_a_huge_integer(tmp_path):
    text = json.dumps(_valid()).replace(
        '"layers.0.neurons.0.b": 0.0', '"layers.0.neurons.0.b": ' + "9" * 5000
    )
    with pytest.raises(ModelFileError):
        chainrule.load(_write(tmp_path, text))


def test_missing_file_is_a_plain_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        chainrule.load(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("config", "error", "words"),
    [
        ({"scale": float("nan")}, ValueError, "the config of Scaled holds nan at config['scale']"),
        ({"sizes": [1, float("inf")]}, ValueError, "holds inf at config['sizes'][1]"),
        ({"scale": object()}, TypeError, "holds a object at config['scale'], which a JSON model file"),
        ({1: 2.0}, TypeError, "has the key 1 in config; JSON keys are text"),
        ([1.0], TypeError, "Scaled.config() must return a dict, got list"),
    ],
)
def test_save_refuses_a_config_json_cannot_hold_in_one_line(tmp_path, monkeypatch, config, error, words):
    # json.dump used to fail halfway through the write with its own words ("Out of range float
    # values are not JSON compliant"), naming neither the module nor the entry.
    from chainrule import serialize

    monkeypatch.setattr(serialize, "MODULES", dict(serialize.MODULES))

    @register
    class Scaled(Module):
        def __init__(self, scale: float = 1.0) -> None:
            self.a = Value(1.0)

        def parameters(self) -> list[Value]:
            return [self.a]

        def config(self) -> dict:
            return config

    path = tmp_path / "m.json"
    path.write_text("old")
    with pytest.raises(error) as info:
        chainrule.save(Scaled(), path)
    assert str(info.value).startswith("save: ") and words in str(info.value) and "\n" not in str(info.value)
    assert os.listdir(tmp_path) == ["m.json"] and path.read_text() == "old"
