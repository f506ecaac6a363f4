"""The house rules of docs/architecture.md, read from the code's own imports: every import
points down the layers, none forms a loop, and models/ and config.py stay plain. An import
under `if TYPE_CHECKING:` carries no code and is left out."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "livevace"

LAYERS = (
    ("face", ("cli", "__main__", "commands")),
    ("tools", ("bench", "experiment", "patches")),
    ("loop", ("loop", "pacing")),
    ("control", ("control",)),
    ("pipelines", ("pipelines",)),
    ("output", ("output",)),
    ("io and annotators", ("io", "annotators")),
    ("distributed", ("distributed",)),
    ("models", ("models",)),
    ("store", ("store",)),
    ("config and params", ("config", "params")),
    ("ground", ("frames", "errors", "imaging", "cuda_graphs", "stats", "__init__")),
)
"""Top to bottom, as in docs/architecture.md (`stats` is a passive collector every layer
reports into, so it sits on the ground floor)."""
RANK = {part: (i, name) for i, (name, parts) in enumerate(LAYERS) for part in parts}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def resolve(name: str) -> str:
    """The module an import names (`from livevace.x import y` may name module x.y)."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports(path: Path) -> list[tuple[str, int]]:
    """(livevace module, line) of every import that runs, at any depth."""
    found: list[tuple[str, int]] = []

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.ImportFrom) and (child.module or "").startswith("livevace"):
                for alias in child.names:
                    found.append((resolve(f"{child.module}.{alias.name}"), child.lineno))
            elif isinstance(child, ast.Import):
                found.extend((resolve(a.name), child.lineno) for a in child.names
                             if a.name.startswith("livevace"))
            walk(child)

    walk(ast.parse(path.read_text(encoding="utf-8")))
    return found


GRAPH = {m: {t for t, _ in imports(p) if t != m} for m, p in MODULES.items()}


def layer(module: str) -> tuple[int, str]:
    parts = module.split(".")
    return RANK[parts[1] if len(parts) > 1 else "__init__"]


def test_every_module_has_a_layer():
    assert not [m for m in MODULES if (m.split(".") + ["__init__"])[1] not in RANK]


def test_imports_point_down():
    upward = {f"{MODULES[m].relative_to(PACKAGE.parent)}:{line} ({layer(m)[1]}) imports "
              f"{target} ({layer(target)[1]})"
              for m, path in MODULES.items() for target, line in imports(path)
              if target != "livevace" and layer(target)[0] < layer(m)[0]}
    assert not upward, "\n".join(sorted(upward))


@pytest.mark.parametrize("module, allowed", [
    ("livevace.models", ("livevace.models", "livevace.errors", "livevace.cuda_graphs")),
    ("livevace.config", ()),
])
def test_plain_parts_stay_plain(module, allowed):
    """models/: tensors and numbers in (no registry, store, I/O, pipeline); config: data."""
    reached = {(m, t) for m in MODULES if m == module or m.startswith(module + ".")
               for t in GRAPH[m] if not t.startswith(allowed)}
    assert not reached, sorted(reached)


def test_no_import_loops():
    """Tarjan's strongly connected components of the module graph: none larger than one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    loops: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for module in MODULES:
        if module not in index:
            visit(module)
    assert not loops, loops


def test_the_checker_sees_a_loop_and_an_upward_import(tmp_path):
    """The helpers above on a made-up pair of modules: they would catch what they guard."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from livevace.commands import run\n")
    b.write_text("if TYPE_CHECKING:\n    from livevace.loop import Node\nimport livevace.frames\n")
    assert [t for t, _ in imports(a)] == ["livevace.commands.run"]
    assert [t for t, _ in imports(b)] == ["livevace.frames"]
    assert layer("livevace.commands.run")[0] < layer("livevace.models.wan.dit")[0]
