"""The imports run downward: no circle, and no module imports a layer above its own.

The graph is read with `ast` from the source of `study/`, `analysis/` and `bench/`: every
`import` and `from ... import`, the lazy ones inside functions too. Imports under `if
TYPE_CHECKING:` never run and are left out. Importing `a.b.c` from outside the package `a.b`
runs `a/b/__init__.py` first, so it counts as importing `a.b` too (that is how
`specs -> pruning.registry` closed a circle through `pruning/__init__ -> rounds -> specs`).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("study", "analysis", "bench")

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base: torch-free contract and small pieces every layer may use",
     ("study", "study.contract", "study.errors", "study.seeds", "study.phases",
      "study.execution", "study.records", "study.progress", "study.loop",
      "study.arm_registry")),
    ("data and models", ("study.data", "study.models")),
    ("pruning: masks, criteria, rounds, surgery", ("study.pruning",)),
    ("specs and spaces (they validate plans against the pruning, model and data registries), "
     "and a trial in words", ("study.specs", "study.space", "study.words")),
    ("the tracking store", ("study.browse", "study.tracking")),
    ("training", ("study.train", "study.stacked", "study.interpolate", "study.context",
                  "study.supervise")),
    ("trials and packs", ("study.arms", "study.bill", "study.trial", "study.plan", "study.pack",
                          "study.packing", "study.option_gains")),
    ("launches", ("study.recording", "study.worker", "study.runner", "study.sweep",
                  "study.tuning", "study.estimate")),
    ("the analysis (reads the store)", ("analysis",)),
    ("the bench (drives the library, reads a sweep through the analysis)", ("bench",)),
    ("the command line: the one front over all of them", ("study.cli",)),
]
"""Bottom to top. A module may import its own layer and those below. An entry names a module or
a package (all its modules); `study` names only the package's own `__init__`."""


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _type_only(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules `module` imports (names: a `from p import m` of a submodule m is an
    import of p.m), with the packages they run on the way."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(n) for node in ast.walk(tree) if _type_only(node) for n in ast.walk(node)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package upward
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([base] if base else [])])
            names += [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                      for a in node.names]
    out = set()
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            target = ".".join(parts[:i])
            inside = module == target or module.startswith(target + ".")
            if target in modules and not inside:
                out.add(target)
    return out


@cache
def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imported(m, p, modules) for m, p in modules.items()}


def _layer(module: str) -> int | None:
    best, depth = None, -1
    for i, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            hit = module == entry or (entry != "study" and module.startswith(entry + "."))
            if hit and entry.count(".") > depth:
                best, depth = i, entry.count(".")
    return best


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every circle found by a depth-first walk, as the path that closes it."""
    circles, state, path = [], {}, []

    def walk(node: str) -> None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                circles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            walk(node)
    return circles


def test_the_graph_sees_lazy_imports_and_the_packages_they_run():
    graph = _graph()
    assert "study.stacked" in graph["study.train"]
    assert "study.runner" in graph["study.cli"]  # inside a command's function
    assert "study.pruning" in graph["study.specs"]  # lazily, through pruning.registry
    assert "study.trial" not in graph["study.tracking"]  # a TYPE_CHECKING import


def test_no_module_imports_in_a_circle():
    circles = _circles(_graph())
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_every_module_has_a_layer_and_imports_only_its_own_or_lower_ones():
    graph = _graph()
    unplaced = sorted(m for m in graph if _layer(m) is None)
    assert not unplaced, f"add these modules to LAYERS: {unplaced}"
    upward = [f"{m} ({LAYERS[_layer(m)][0]}) imports {t} ({LAYERS[_layer(t)][0]})"
              for m, targets in sorted(graph.items()) for t in sorted(targets)
              if _layer(t) > _layer(m)]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_library_never_imports_the_analysis_or_the_bench():
    graph = _graph()
    library = [m for m in graph if m.split(".")[0] == "study" and m != "study.cli"]
    reach = sorted(f"{m} imports {t}" for m in library for t in graph[m]
                   if t.split(".")[0] in ("analysis", "bench"))
    assert not reach, "\n".join(reach)
