"""Turning the reference check's raw records into findings, for every backend.

A backend's hot loop hands back plain tuples: ``(kind, name, path, detail, errno)``
for findings it decided itself (map_corrupt, object_orphan, ...) and
``(entry name, map name, entry index)`` for each of the first few entries naming an
object that is missing. The grouping of those entries into one ``object_missing``
per object, with the referencing maps in its detail, lives here once.
"""

from __future__ import annotations

from typing import Callable, Iterable

from ..core import layout
from ..core.findings import Finding, escape_name
from .base import strerror

MAPS_SHOWN = 5  # referencing maps named in an object_missing detail


def record_findings(store: str, records: Iterable[tuple]) -> list[Finding]:
    """Findings from ``(kind, name, path, detail, errno, version)`` records of one store (version:
    a map finding's map version, or None)."""
    out = []
    for kind, name, path, detail, err, version in records:
        detail_s = escape_name(detail)
        if kind == "unreadable":
            detail_s = f"{detail_s}: {strerror(err)}"
        out.append(Finding(kind, store, escape_name(name), escape_name(path) if path is not None else None, detail_s,
                           version))
    return out


def v04_path(name: bytes) -> str | None:
    """Where a filed store keeps the object (a finding's ``path``); None for a name no path holds."""
    try:
        return escape_name(layout.v04_path(name))
    except layout.BadObjectName:
        return None


def missing_findings(refs: Iterable[tuple[bytes, bytes, int]], counts: Callable[[bytes], tuple[int, int]],
                     path_of: Callable[[bytes], str | None] | None = v04_path) -> list[Finding]:
    """One ``object_missing`` per object: which maps (first few, and how many) and which entries name it.

    ``counts(name)`` gives (maps, entries) naming the object in all; ``refs`` holds only
    the first few entries, which is all a person needs to start restoring. ``path_of``:
    where the store keeps an object (None: a store without paths).
    """
    by_obj: dict[bytes, dict[bytes, list[int]]] = {}
    for name, map_name, index in refs:
        by_obj.setdefault(name, {}).setdefault(map_name, []).append(index)
    out = []
    for name, maps in by_obj.items():
        nmaps, nrefs = counts(name)
        nmaps, nrefs = max(nmaps, len(maps)), max(nrefs, sum(len(v) for v in maps.values()))
        shown = sorted(maps.items())[:MAPS_SHOWN]
        listed = ", ".join(f"{escape_name(m)}[{','.join(str(i) for i in sorted(ix))}]" for m, ix in shown)
        more = f" and {nmaps - len(shown)} more" if nmaps > len(shown) else ""
        detail = f"named by {nrefs} entries of {nmaps} maps: {listed}{more}"
        path = path_of(name) if path_of is not None else None
        out.append(Finding("object_missing", "blocks", escape_name(name), path, detail))
    return out
