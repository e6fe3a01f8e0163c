"""Code outside ``verify/backends/`` asks the store contract, never which backend it holds.

Every verify/**/*.py outside the backends (and the config reader and editor, which read
a store's ``type`` from archipelago.conf) is parsed with ast; a comparison with a
registered backend's name (or ``MIXED``), an isinstance/hasattr/getattr on a backend,
a backend class called by hand, or the registry asked for a kind by its name is
reported with its file and line. A capability a command needs is a protocol member of
``verify/backends/base.py`` or a function of ``verify/backends/__init__.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

from verify import backends

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {"verify/config/archipelago.py", "verify/config/confedit.py", "verify/config/ini.py", "verify/cli/config_cmd.py"}  # the config reader and editor
NAMES = set(backends.names())
CLASSES = {e.cls for e in backends.REGISTRY}


def _backendish(node) -> bool:
    """A name or attribute chain naming a backend: ``backend``, ``be``, ``self.backend()``, ``maps_part``."""
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
        if isinstance(node, ast.Attribute):
            if "backend" in node.attr.lower():
                return True
            node = node.value
        else:
            node = node.func if isinstance(node, ast.Call) else node.value
    return isinstance(node, ast.Name) and ("backend" in node.id.lower() or node.id in ("be", "maps_part"))


def _names_a_kind(node) -> bool:
    if isinstance(node, ast.Constant):
        return node.value in NAMES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_names_a_kind(e) for e in node.elts)
    return (isinstance(node, ast.Attribute) and node.attr == "MIXED") or (isinstance(node, ast.Name)
                                                                          and node.id == "MIXED")


def probes(source: str, where: str) -> list[str]:
    out = []
    for n in ast.walk(ast.parse(source, where)):
        if isinstance(n, ast.Compare) and any(_names_a_kind(x) for x in (n.left, *n.comparators)):
            out.append(f"{where}:{n.lineno}: compares with a backend's name")
        if not isinstance(n, ast.Call):
            continue
        f = n.func
        fname = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        if fname in CLASSES:
            out.append(f"{where}:{n.lineno}: builds a {fname} by hand")
        if fname in ("isinstance", "hasattr", "getattr") and n.args and (
                _backendish(n.args[0]) or (len(n.args) > 1 and isinstance(n.args[1], ast.Name)
                                           and n.args[1].id in CLASSES)):
            out.append(f"{where}:{n.lineno}: {fname} on a backend")
        if fname == "entry" and n.args and _names_a_kind(n.args[0]):
            out.append(f"{where}:{n.lineno}: asks the registry for a kind by its name")
    return out


def test_the_checker_finds_each_kind_of_probe():
    planted = '''
if be.name == "rados": pass
if sc.type in ("filed", "mixed"): pass
if kind.name != backends.MIXED: pass
x = FiledBackend("/srv/maps")
y = hasattr(lookup_backend, "check_rows")
z = getattr(self.backend, "keep_heads", None)
w = isinstance(maps, RadosBackend)
v = backends.entry("rados").flags
ok = isinstance(info, LookupError_) or getattr(exc, "orig", None) or be.store_dir("maps")
'''
    found = probes(planted, "planted.py")
    assert [int(f.split(":")[1]) for f in found] == [2, 3, 4, 5, 6, 7, 8, 9], found


def test_no_module_outside_the_backends_probes_a_backend():
    found = []
    for path in sorted((ROOT / "verify").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("verify/backends/") or rel in ALLOWED:
            continue
        found += probes(path.read_text(), rel)
    assert not found, "ask the store contract instead (verify/backends/base.py, verify/backends/__init__.py):\n" \
        + "\n".join(found)
