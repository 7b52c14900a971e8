"""The tree shows the architecture: layers import downwards only, and never in a circle."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import aiomsal
from aiomsal._apps._application import ClientApplication
from aiomsal._apps._options import ApplicationOptions

PACKAGE = Path(aiomsal.__file__).parent

#: Rank of each layer: a module may import its own layer and lower ones only.
LAYERS = {
    "aiomsal._errors": 0,
    "aiomsal._result": 0,
    "aiomsal._statistics": 0,
    "aiomsal._protocol": 1,
    "aiomsal._cache": 2,
    "aiomsal._concurrency": 3,
    "aiomsal._transport": 4,
    "aiomsal._storage": 4,
    "aiomsal._apps": 5,
    "aiomsal.testing": 6,
    "aiomsal.integrations": 7,
    "aiomsal._cli": 7,
    "aiomsal.msal": 7,
    "aiomsal": 8,
    "aiomsal.__main__": 9,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> set[str]:
    """Every aiomsal module ``name`` imports, at run time or for type checking."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    modules = _modules()
    return {t for t in found if t in modules and t != name}


def _rank(name: str) -> int:
    owners = [layer for layer in LAYERS if name == layer or name.startswith(layer + ".")]
    best = max(owners, key=len)
    return LAYERS[best]


def test_every_module_belongs_to_a_layer_and_says_what_it_is_for() -> None:
    for name, path in _modules().items():
        _rank(name)
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert doc and doc.strip(), f"{name} has no docstring"


def test_no_import_runs_upwards() -> None:
    upward = [
        f"{name} (layer {_rank(name)}) imports {target} (layer {_rank(target)})"
        for name, path in _modules().items()
        for target in _imports(name, path)
        if _rank(target) > _rank(name)
    ]
    assert upward == []


def test_no_import_circle() -> None:
    graph = {name: _imports(name, path) for name, path in _modules().items()}
    # A package's __init__ importing its own submodules is how a face is assembled, not a circle.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append([*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert circles == []


def test_no_module_is_much_over_500_lines() -> None:
    long = {
        name: n
        for name, path in _modules().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 520
    }
    assert long == {}


def test_application_options_name_the_base_parameters() -> None:
    keyword_only = [
        p.name
        for p in inspect.signature(ClientApplication.__init__).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    assert keyword_only == list(ApplicationOptions.__annotations__)
    for cls in (aiomsal.ConfidentialClientApplication, aiomsal.PublicClientApplication):
        shown = [
            p.name
            for p in inspect.signature(cls).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        assert shown == keyword_only
