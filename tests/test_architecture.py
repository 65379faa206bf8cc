"""The architecture, read from the source (ast), not by importing it.

- No import circle between modules of src/chainrule, counting every import statement: module level,
  inside functions and under `TYPE_CHECKING`.
- No module imports a `_private` name from another chainrule module, or reads or writes one as
  `module._name`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "chainrule"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _absolute(module: str, level: int, target: str | None) -> str:
    """`from <level dots><target> import ...` inside `module`, as an absolute module name."""
    if level == 0:
        return target or ""
    base = module.split(".")
    if not _is_package(module):
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _imports(module: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names imported from it, line) for every import statement in `module`."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):  # every statement: module level, in functions, under TYPE_CHECKING
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((alias.name, [], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(module, node.level, node.module)
            found.append((target, [a.name for a in node.names], node.lineno))
    return found


def _edges(module: str) -> set[str]:
    """The chainrule modules that `module` imports (a submodule imported by `from pkg import sub` too)."""
    edges = set()
    for target, names, _ in _imports(module):
        if target != "chainrule" and not target.startswith("chainrule."):
            continue
        submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
        if submodules:
            edges.update(submodules)
            if len(submodules) < len(names):
                edges.add(target)
        elif target in MODULES:
            edges.add(target)
    edges.discard(module)
    return edges


def test_the_reader_finds_the_modules_and_their_imports() -> None:
    assert {"chainrule", "chainrule.engine", "chainrule.engine.node", "chainrule.ops"} <= set(MODULES)
    assert "chainrule.ops" in _edges("chainrule.engine.node")
    assert "chainrule.engine.backprop" in _edges("chainrule.engine.node")  # `from . import backprop`


def test_no_import_circle_counting_every_import_statement() -> None:
    graph = {name: _edges(name) for name in MODULES}
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                circle = path[path.index(target) :] if target in path else path
                pytest.fail(f"import circle: {' -> '.join([*circle, name, target])}")
            if target not in state:
                visit(target, [*path, name])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_module_imports_or_touches_another_modules_private_names() -> None:
    problems = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module_aliases: set[str] = set()
        for target, names, line in _imports(module):
            if not (target == "chainrule" or target.startswith("chainrule.")):
                continue
            for name in names:
                if _private(name):
                    problems.append(f"{path.name}:{line} imports {target}.{name}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("chainrule"):
                        module_aliases.add(alias.asname or alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom):
                target = _absolute(module, node.level, node.module)
                for alias in node.names:
                    if f"{target}.{alias.name}" in MODULES:
                        module_aliases.add(alias.asname or alias.name)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in module_aliases
                and _private(node.attr)
            ):
                problems.append(f"{path.name}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not problems, "private traffic between modules:\n" + "\n".join(problems)


def test_the_engine_package_gives_its_reading_order() -> None:
    import chainrule.engine

    doc = chainrule.engine.__doc__
    for name in ("node.py", "layout.py", "walk.py", "chain_rule.py", "backprop.py", "fast_sweep.py"):
        assert name in doc
        assert (PACKAGE / "engine" / name).exists()


def _engine_layers() -> list[list[str]]:
    """The layers the engine package's docstring declares, lowest first (from its last paragraph)."""
    import chainrule.engine

    doc = " ".join(chainrule.engine.__doc__.split())
    marker = "Each module imports only modules of lower layers: "
    assert marker in doc, "the engine's docstring no longer states its layers"
    text = doc[doc.index(marker) + len(marker) :].rstrip(".")
    return [[name.strip() for name in layer.split(",")] for layer in text.split(";")]


def test_every_engine_module_is_in_a_declared_layer_and_imports_only_lower_ones() -> None:
    layers = _engine_layers()
    layer_of = {f"chainrule.engine.{name}": i for i, layer in enumerate(layers) for name in layer}
    modules = {m for m in MODULES if m.startswith("chainrule.engine.")}
    assert set(layer_of) == modules, (
        f"undeclared: {sorted(modules - set(layer_of))}, gone: {sorted(set(layer_of) - modules)}"
    )
    wrong = [
        f"{module} (layer {layer_of[module]}) imports {target} (layer {layer_of[target]})"
        for module in sorted(modules)
        for target in sorted(_edges(module))
        if target in layer_of and layer_of[target] >= layer_of[module]
    ]
    assert not wrong, "\n".join(wrong)


def test_the_reading_order_in_architecture_md_gives_todays_line_counts() -> None:
    """docs/architecture.md's reading table says how long each file is: it must stay true."""
    text = (PACKAGE.parent.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text[text.index("## Reading the core") : text.index("## The modules")]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| ") and "`" in line]
    assert len(rows) >= 6
    for row in rows:
        name = row[2].strip().strip("`")
        lines = int(row[3].strip().replace(",", ""))
        actual = len((PACKAGE / name).read_text(encoding="utf-8").splitlines())
        assert lines == actual, f"docs/architecture.md says {name} has {lines} lines; it has {actual}"
