"""No import cycle among verify/ modules and no import against the layers, imports inside functions included.

Every verify/**/*.py is parsed with ast; each ``import`` and ``from ... import``
anywhere in it (module level, functions, methods) is an edge to the verify module
it loads: the named module, a submodule when ``from PKG import NAME`` names one,
and every package on the way (importing ``verify.backends.filed.backend`` runs
``verify/backends/__init__.py`` first). A cycle is reported with its path.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "verify"


def module_name(path: Path) -> str:
    parts = ("verify",) + path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def _with_parents(name: str, known: dict) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in known]


def imports_of(name: str, path: Path, known: dict) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                out.update(_with_parents(a.name, known))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.update(_with_parents(target, known))
            for a in node.names:
                if f"{target}.{a.name}" in known:
                    out.add(f"{target}.{a.name}")
    out.discard(name)
    # a module's own packages are already loaded when it runs: not an edge back
    return {m for m in out if not name.startswith(m + ".")}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_no_import_cycle_among_verify_modules():
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_graph_sees_imports_inside_functions():
    """The checker must see what it is meant to forbid: a function-level import is an edge."""
    g = graph()
    assert "verify.backends.filed.check" in g["verify.backends.filed.backend"]  # inside methods
    assert "verify.cluster.check" in g["verify.cli.check_cmd"]  # inside the command, for --dask only
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


# The layers, bottom first: a module may import its own layer and those below it. The two store
# packages sit side by side on the backends layer and never import each other.
LAYERS = ["core", "native", "durable", "config", "backends", "ops", "report", "cluster", "cli"]
SIDE_BY_SIDE = {"backends.filed", "backends.rados"}
ROOT_MODULES_MAX = 6


def layer_of(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts:
        return "root"
    if parts[0] == "__main__":
        return "cli"
    if parts[0].startswith("_"):  # verify/_scan.pyx: the filed scanner, of the native layer
        return "native"
    if parts[0] == "backends" and len(parts) > 1 and f"backends.{parts[1]}" in SIDE_BY_SIDE:
        return f"backends.{parts[1]}"
    return parts[0]


def rank(layer: str) -> int:
    return LAYERS.index(layer.split(".")[0])


def violations(g: dict[str, set[str]]) -> list[str]:
    bad = []
    for name, deps in g.items():
        a = layer_of(name)
        if a == "root":
            continue
        for dep in deps:
            b = layer_of(dep)
            if b == "root" or a == b:
                continue
            if a in SIDE_BY_SIDE and b in SIDE_BY_SIDE:
                bad.append(f"{name} -> {dep} (one store package imports the other)")
            elif rank(b) > rank(a) or (rank(b) == rank(a) and b in SIDE_BY_SIDE):
                bad.append(f"{name} -> {dep} ({a} may not import {b})")
    return sorted(bad)


def test_each_folder_imports_only_the_layers_below_it():
    bad = violations(graph())
    assert not bad, "\n".join(bad)


def test_every_module_is_in_a_layer_and_the_root_stays_small():
    names = modules()
    assert {layer_of(n).split(".")[0] for n in names} - {"root"} <= set(LAYERS), "a folder that is no layer"
    root = [p.name for p in ROOT.iterdir() if p.suffix in (".py", ".pyx")]
    assert len(root) <= ROOT_MODULES_MAX, root


def test_the_layer_check_sees_an_upward_import():
    """The checker must see what it forbids: a lower layer importing a higher one, a store package
    importing the other, the registry importing a store package by name; never an import downwards."""
    assert layer_of("verify._scan") == "native" and layer_of("verify.__main__") == "cli"
    planted = {
        "verify.core.formats": {"verify.ops.check"},                        # up: core -> ops
        "verify.backends.filed.check": {"verify.backends.rados.io"},        # side: filed -> rados
        "verify.backends.mixed": {"verify.backends.filed.backend"},         # the registry's job
        "verify.ops.check": {"verify.backends.base", "verify.core.findings"},  # down: fine
        "verify.cli.main": {"verify.report.render", "verify.ops.scan"},     # down: fine
    }
    bad = violations(planted)
    assert [b.split(" ")[0] for b in bad] == ["verify.backends.filed.check", "verify.backends.mixed",
                                              "verify.core.formats"], bad
