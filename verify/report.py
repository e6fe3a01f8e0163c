"""Renderers of a Summary: for people (default), JSON, JSONL and ``--logdir`` files.

Machine output carries kind strings and object names, which are stable; the human
wording is free to change.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import TextIO

from . import __version__
from .findings import KINDS, Severity
from .summary import Summary

SEVERITY_WORD = {Severity.INFO: "info", Severity.WARNING: "warn", Severity.ERROR: "ERROR", Severity.UNREADABLE: "UNREAD"}


def document(summary: Summary, backend: str, stores: dict, command: str = "scan") -> dict:
    return {
        "tool": "archverify",
        "version": __version__,
        "command": command,
        "backend": backend,
        "stores": stores,
        "summary": summary.as_dict(),
        "findings": [f.as_dict() for f in summary.findings],
    }


def write_json(out: TextIO, summary: Summary, backend: str, stores: dict, command: str = "scan",
               extra: dict | None = None) -> None:
    """One document on one line: json's C encoder only runs without ``indent`` (20x faster
    on a million findings); pipe it through ``python -m json.tool`` to read it."""
    doc = document(summary, backend, stores, command)
    doc.update(extra or {})
    out.write(json.dumps(doc))
    out.write("\n")


def write_jsonl(out: TextIO, summary: Summary, backend: str, stores: dict, command: str = "scan") -> None:
    for f in summary.findings:
        out.write(json.dumps(f.as_dict(), sort_keys=False) + "\n")
    line = {"summary": summary.as_dict(), "tool": "archverify", "version": __version__, "backend": backend,
            "command": command, "stores": stores}
    out.write(json.dumps(line) + "\n")


def write_logdir(logdir: str | os.PathLike, summary: Summary) -> list[Path]:
    """One ``KIND.log`` per kind found: ``name<TAB>store<TAB>path<TAB>detail`` per line."""
    d = Path(logdir)
    d.mkdir(parents=True, exist_ok=True)
    by_kind: dict[str, list[str]] = {}
    for f in summary.findings:
        by_kind.setdefault(f.kind, []).append("\t".join([f.name, f.store, f.path or "", f.detail]))
    written = []
    for kind, lines in by_kind.items():
        p = d / f"{kind}.log"
        tmp = p.with_suffix(".log.tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, p)
        written.append(p)
    for stale in d.glob("*.log"):
        if stale.stem in KINDS and stale.stem not in by_kind:
            stale.unlink()
    return written


def _fmt_rate(summary: Summary) -> str:
    s = summary.as_dict()
    rate = f", {s['files_per_s']:,.0f} files/s" if s["files_per_s"] else ""
    return f"{summary.files_scanned:,} files in {summary.elapsed:.2f}s{rate}"


def write_human(out: TextIO, summary: Summary, backend: str, stores: dict, max_shown: int = 20,
                command: str = "scan", verbose: bool = False) -> None:
    w = out.write
    where = ", ".join(f"{role}={info.get('dir') or info.get('pool')}" for role, info in stores.items())
    w(f"archverify {__version__} {command} ({backend}): {where}\n")
    w(f"scanned {_fmt_rate(summary)}\n")
    c = summary.counters
    w("maps: " + ", ".join(f"{v} {c.get(f'maps.{v}', 0):,}" for v in ("v2", "v1", "v0", "corrupt"))
      + f"; map-data objects {c.get('maps.mapdata', 0):,}\n")
    held = summary.held_locks
    w(f"locks: {len(summary.locks):,} lock files, {len(held):,} held")
    if held:
        owners = Counter(lk.owner for lk in held)
        w(" (by " + ", ".join(f"{o} x{n}" for o, n in owners.most_common(5)) + ")")
        w("\n  the cluster is not idle: finish or stop what holds them before finalizing")
    w("\n\n")
    per_kind = summary.per_kind
    if not per_kind:
        w("OK: every object and map scanned is migrated; nothing to do.\n")
        return
    w(f"{'kind':<26}{'count':>10}  severity  what to do\n")
    for kind, k in KINDS.items():
        if per_kind.get(kind):
            w(f"{kind:<26}{per_kind[kind]:>10,}  {SEVERITY_WORD[k.severity]:<8}  {k.advice}\n")
    shown = summary.findings if verbose else summary.findings[:max_shown]
    w(f"\nfirst {len(shown)} of {len(summary.findings):,} findings (all of them: --format json or --logdir DIR):\n")
    for f in shown:
        loc = f"{f.store}:{f.path}" if f.path else f"{f.store}:{f.name}"
        w(f"  {f.kind:<24} {loc}" + (f"  ({f.detail})" if f.detail else "") + "\n")
    w("\n")
    code = summary.exit_code
    if code == 2:
        w("INCOMPLETE: part of a store could not be read (see 'unreadable'); fix access and scan again.\n")
    elif code == 1:
        fixable = sorted({KINDS[k].fix for k in per_kind if KINDS[k].fix})
        w(f"NOT DONE: {len(summary.findings):,} findings.")
        if fixable:
            w(" Safe fixes: " + ", ".join(f"'archverify {c}'" for c in fixable) + " (preview by default).")
        w("\n")
    else:
        w("OK: only informational findings.\n")
