"""The package's shape: polyinv imports at module top only, each from its own layer or one below
(docs/architecture.md), no import cycle, no file over 450 lines."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "polyinv"
MAX_LINES = 450
#: docs/architecture.md's layers, bottom first: a module may import from its own layer and the ones below
LAYERS = (
    (
        "polyinv",
        "polyinv.schema",
        "polyinv.errors",
        "polyinv.log",
        "polyinv.atomic",
        "polyinv.progress",
        "polyinv.batch",
    ),
    ("polyinv.nn", "polyinv.metrics"),
    ("polyinv.data",),
    ("polyinv.sim",),
    ("polyinv.models",),
    ("polyinv.trust",),
    ("polyinv.refine",),
    ("polyinv.inference", "polyinv.invert", "polyinv.design", "polyinv.explain", "polyinv.plots"),
    ("polyinv.config", "polyinv.runs", "polyinv.train", "polyinv.select", "polyinv.runner", "polyinv.tune"),
    ("polyinv.cli", "polyinv.fit", "polyinv.__main__"),
)


def layer(module: str) -> int:
    """The layer of a module: that of the longest prefix listed in LAYERS."""
    best, level = "", None
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > len(best):
                best, level = name, i
    assert level is not None, f"{module} is in no layer of LAYERS (add it there and to docs/architecture.md)"
    return level


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    """(module → the polyinv modules it imports at top level, ``file:line`` of every import inside a function)."""
    modules = _modules()
    graph, local = {m: set() for m in modules}, []
    for module, path in modules.items():
        tree = ast.parse(path.read_text())
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("polyinv"):
                targets = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("polyinv")]
            else:
                continue
            if targets and id(node) not in top:
                local.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
            for target in targets:
                resolved = _resolve(target, modules)
                if resolved and resolved != module:
                    graph[module].add(resolved)
                # importing a.b.c runs a/__init__ and a/b/__init__ first
                parts = (resolved or "").split(".")
                for i in range(1, len(parts)):
                    parent = ".".join(parts[:i])
                    if parent in modules and parent != module and not module.startswith(parent + "."):
                        graph[module].add(parent)
    return graph, local


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_polyinv_modules_are_imported_at_the_top_of_a_module():
    assert not import_graph()[1], "function-local imports of polyinv modules"


def test_every_import_goes_to_the_same_layer_or_below():
    graph, _ = import_graph()
    upward = [f"{a} -> {b}" for a, targets in graph.items() for b in targets if layer(b) > layer(a)]
    assert not upward, upward


def test_there_is_no_import_cycle():
    assert not cycles(import_graph()[0])


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_package_file_is_longer_than_450_lines():
    long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


def test_layers_order_the_package_bottom_up():
    assert (
        layer("polyinv.schema")
        < layer("polyinv.nn.scaling")
        < layer("polyinv.data.module")
        < layer("polyinv.sim.forward")
    )
    assert (
        layer("polyinv.sim.forward")
        < layer("polyinv.models.gp")
        < layer("polyinv.trust.domain")
        < layer("polyinv.refine")
    )
    assert (
        layer("polyinv.refine.check")
        < layer("polyinv.plots")
        < layer("polyinv.runner")
        < layer("polyinv.cli.fit")
    )
