"""The one renderer of a Summary: for people (default), JSON, JSONL and ``--logdir`` files.

A report is a head (command, backend, stores, summary) and the sections a command
adds: scan counts, check facts, Pithos facts, then the findings. Each format is
written once, here; a section is rendered by every format (its ``key`` in JSON,
its lines for people), so no renderer cuts another's output apart.

Machine output carries kind strings and object names, which are stable; the human
wording is free to change. Every string a line-oriented output prints (human report,
``--logdir``) goes through :func:`verify.core.findings.printable`, so no control character
reaches a terminal or a log raw; object names are already escaped once, when their
finding is made (:func:`verify.core.findings.escape_name`).
"""

from __future__ import annotations

import json
import itertools
import json.encoder
import os
from operator import attrgetter
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, TextIO

from .. import __version__
from ..durable.atomic import replaced
from ..core.findings import KINDS, Finding, Severity, printable
from ..core.summary import Summary

SEVERITY_WORD = {Severity.INFO: "info", Severity.WARNING: "warn", Severity.ERROR: "ERROR", Severity.UNREADABLE: "UNREAD"}
FORMATS = ("human", "json", "jsonl")
DEFAULT_SHOWN = 3  # findings listed per kind in the human report

Write = Callable[[str], object]


class Section(Protocol):
    """A part of a report. ``key``: its key in the JSON document and the JSONL summary line
    (None: it has no machine form beyond the summary)."""

    key: str | None

    def data(self) -> object: ...

    def human(self, w: Write, max_shown: int) -> None: ...


class HumanSection:
    """A section that only people read: its numbers are already in the summary."""

    key = None

    def data(self) -> None:
        return None


def _where(store: dict) -> str:
    """A store in the head line: its dir, ``pool NAME`` (a pool and a dir may share a name), or its URL."""
    if store.get("dir"):
        return _abs(store["dir"])
    return f"pool {store['pool']}" if store.get("pool") else str(store.get("url"))


@dataclass(frozen=True)
class Head:
    command: str
    backend: str
    stores: dict
    summary: Summary
    warnings: tuple[str, ...] = ()  # every "archverify: warning:" line of the run


def document(head: Head, sections: tuple[Section, ...] = (), findings: bool = True) -> dict:
    """The JSON report as one dict (``findings=False``: with an empty list, which :func:`write_json` fills)."""
    doc = {
        "tool": "archverify",
        "version": __version__,
        "command": head.command,
        "backend": head.backend,
        "stores": head.stores,
        "summary": head.summary.as_dict(),
        "findings": [f.as_dict() for f in head.summary.findings] if findings else [],
    }
    doc.update(_machine(sections))
    doc["warnings"] = list(head.warnings)
    return doc


_enc = json.encoder.encode_basestring_ascii  # the string encoder of json.dumps itself


def jsonl_line(f: Finding) -> str:
    """``json.dumps(f.as_dict()) + "\\n"`` to the byte, without a dict and an encoder per finding
    (a scan may print millions of them)."""
    path = "null" if f.path is None else _enc(f.path)
    return (f'{{"kind": {_enc(f.kind)}, "name": {_enc(f.name)}, "store": {_enc(f.store)}, '
            f'"path": {path}, "detail": {_enc(f.detail)}}}\n')


def write_json(out: TextIO, head: Head, sections: tuple[Section, ...]) -> None:
    """``json.dumps(document(...)) + "\\n"`` to the byte, the findings written as they are read
    (a list of a million dicts and its string would take more RAM than the run)."""
    text = json.dumps(document(head, sections, findings=False))
    marker = '"findings": []'
    at = text.index(marker, text.index('"summary": ') + len(json.dumps(head.summary.as_dict())))
    out.write(text[:at] + '"findings": [')
    _write_lines(out, head.summary.findings, sep=", ", end="")
    out.write("]" + text[at + len(marker):] + "\n")


def _write_lines(out: TextIO, findings, sep: str = "", end: str = "\n") -> None:
    """Findings as JSON objects in batches: ``end`` after each, ``sep`` between (JSON) or not (JSONL)."""
    batch: list[str] = []
    first = True
    for f in findings:
        batch.append(jsonl_line(f)[:-1])
        if len(batch) == 4096:
            out.write(("" if first else sep) + (end + sep).join(batch) + end)
            batch, first = [], False
    if batch:
        out.write(("" if first else sep) + (end + sep).join(batch) + end)


def _machine(sections) -> dict:
    return {s.key: s.data() for s in sections if s.key is not None}


def render(fmt: str, out: TextIO, head: Head, sections: tuple[Section, ...], max_shown: int = DEFAULT_SHOWN) -> None:
    """Writes ``head`` and ``sections`` to ``out`` in format ``fmt`` (human, json or jsonl)."""
    if fmt == "json":
        # one document on one line: json's C encoder only runs without ``indent`` (20x faster
        # on a million findings); pipe it through ``python -m json.tool`` to read it
        write_json(out, head, sections)
    elif fmt == "jsonl":
        _write_lines(out, head.summary.findings)
        line = {"summary": head.summary.as_dict(), **_machine(sections), "tool": "archverify",
                "version": __version__, "backend": head.backend, "command": head.command, "stores": head.stores,
                "warnings": list(head.warnings)}
        out.write(json.dumps(line) + "\n")
    elif fmt == "human":
        w = _printable_writer(out)
        where = ", ".join(printable(f"{role}={_where(info)}") for role, info in head.stores.items())
        w(f"archverify {__version__} {head.command} ({head.backend}): {where}\n")
        for s in sections:
            s.human(w, max_shown)
    else:
        raise ValueError(f"unknown report format {fmt!r}")


def _abs(path: str | None) -> str | None:
    return os.path.abspath(path) if path else None


def _printable_writer(out: TextIO) -> Write:
    """``out.write`` for lines: control characters inside a line are escaped, its newline kept.

    A field that may hold a newline of its own (a detail, a path) is passed through
    :func:`printable` by its section before it is joined into a line."""

    def w(text: str) -> None:
        out.write("\n".join(printable(part) for part in text.split("\n")))

    return w


# ---- sections ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanCounts(HumanSection):
    """Files scanned, maps per version, lock files: what the scan stage saw."""

    summary: Summary

    def human(self, w: Write, max_shown: int) -> None:
        s = self.summary.as_dict()
        rate = f", {s['files_per_s']:,.0f} files/s" if s["files_per_s"] else ""
        w(f"scanned {self.summary.files_scanned:,} files in {self.summary.elapsed:.2f}s{rate}\n")
        maps = s["maps"]
        w("maps: " + ", ".join(f"{v} {maps[v]:,}" for v in ("v2", "v1", "v0", "corrupt"))
          + f"; map-data objects {maps['mapdata']:,}; not maps {maps['other']:,}\n")
        held = self.summary.held_locks
        w(f"locks: {self.summary.lock_objects:,} lock files, {len(held):,} held")
        if held:
            owners = Counter(lk.owner for lk in held)
            w(" (by " + ", ".join(f"{o} x{n}" for o, n in owners.most_common(5)) + ")")
            w("\n  the cluster is not idle: finish or stop what holds them before finalizing")
        w("\n")


@dataclass(frozen=True)
class FindingsTable(HumanSection):
    """The findings for people: the kinds most severe first, each with its count per store
    and its advice, then a few samples of each kind at their absolute paths, then the verdict.

    ``max_shown`` is per kind (``-v``: every finding); the whole list is in ``--format
    json``/``jsonl`` and ``--logdir``."""

    summary: Summary
    incomplete: str = "part of a store could not be read (see 'unreadable'); fix access and scan again."
    not_done: str | None = None  # what to do about the findings; default: the safe fixes
    clean: str = "every object and map scanned is migrated; nothing to do."
    verbose: bool = False
    stores: dict | None = None  # the report head's stores: where a finding's path is

    def human(self, w: Write, max_shown: int) -> None:
        summary = self.summary
        w("\n")
        per_kind = summary.per_kind
        if not per_kind:
            w(f"OK: {self.clean}\n")
            return
        kinds = most_severe_first(per_kind)
        per_store = summary.findings.per_store
        limit = None if self.verbose else max_shown
        # at most ``limit`` of each kind in RAM; -v reads the findings once per kind instead
        by_kind = summary.findings.first_per_kind(limit) if limit is not None else None
        stores = _store_order({st for _, st in per_store})
        cols = "".join(f"{st:>10}" for st in stores)
        w(f"{'severity':<9}{'kind':<26}{'total':>10}{cols}  what to do\n")
        for kind in kinds:
            k = KINDS[kind]
            counts = "".join(f"{per_store.get((kind, st), 0):>10,}" for st in stores)
            w(f"{SEVERITY_WORD[k.severity]:<9}{kind:<26}{per_kind[kind]:>10,}{counts}  {k.advice}\n")
        shown = sum(per_kind[k] if limit is None else min(per_kind[k], limit) for k in kinds)
        if shown:
            w(f"\n{shown:,} of {len(summary.findings):,} findings"
              + ("" if limit is None else f", at most {limit} per kind") + " (all of them: --format json, "
              "--logdir DIR or -v):\n")
        for kind in kinds:
            if limit == 0:
                continue
            items = summary.findings.of_kind(kind) if by_kind is None else by_kind.get(kind, [])
            w(f"  {SEVERITY_WORD[KINDS[kind].severity]} {kind} ({per_kind[kind]:,}):\n")
            for f in items:
                w(f"    {printable(self.where(f))}" + (f"  ({printable(f.detail)})" if f.detail else "") + "\n")
        w("\n")
        code = summary.exit_code
        if code == 2:
            w(f"INCOMPLETE: {self.incomplete}\n")
        elif code == 1:
            w(f"NOT DONE: {len(summary.findings):,} findings.")
            if self.not_done is not None:
                w(f" {self.not_done}")
            else:
                fixable = sorted({KINDS[k].fix for k in per_kind if KINDS[k].fix})
                if fixable:
                    w(" Safe fixes: " + ", ".join(f"'archverify {c}'" for c in fixable) + " (preview by default).")
            w("\n")
        else:
            w("OK: only informational findings.\n")

    def where(self, f) -> str:
        """The finding's absolute path (filed), ``POOL/NAME`` (RADOS), else ``STORE:NAME``."""
        info = (self.stores or {}).get(f.store) or {}
        if f.path and info.get("dir"):
            return os.path.join(_abs(info["dir"]), f.path)
        if info.get("pool"):
            return f"{info['pool']}/{f.name}"
        return f"{f.store}:{f.path or f.name}"


def most_severe_first(per_kind) -> list[str]:
    """Kinds found, the most severe first (unreadable, errors, warnings, info), in table order within one."""
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted((k for k in per_kind if per_kind[k]), key=lambda k: (-KINDS[k].severity, order[k]))


def _store_order(stores) -> list[str]:
    known = [st for st in ("maps", "blocks") if st in stores]
    return known + sorted(stores - set(known))


def quiet_line(command: str, summary: Summary) -> str:
    """-q: the verdict, the counts per kind and the time, on one line (for mail and syslog)."""
    code = summary.exit_code
    verdict = {0: "OK", 1: "FINDINGS", 2: "INCOMPLETE"}[code]
    kinds = ", ".join(f"{k} {summary.per_kind[k]}" for k in most_severe_first(summary.per_kind))
    return printable(f"archverify {command}: {verdict} (exit {code}): {len(summary.findings)} findings"
                     + (f" ({kinds})" if kinds else "") + f"; {summary.elapsed:.1f}s")


def scan_sections(summary: Summary, verbose: bool = False, stores: dict | None = None) -> tuple[Section, ...]:
    return ScanCounts(summary), FindingsTable(summary, verbose=verbose, stores=stores)


def write_human(out: TextIO, summary: Summary, backend: str, stores: dict, max_shown: int = DEFAULT_SHOWN,
                command: str = "scan", verbose: bool = False) -> None:
    """The scan's human report (also what ``finalize`` shows of its scan)."""
    render("human", out, Head(command, backend, stores, summary), scan_sections(summary, verbose, stores), max_shown)


# ---- --logdir --------------------------------------------------------------------------------


def logdir_line(f) -> str:
    """``name<TAB>store<TAB>path<TAB>detail``: each field printable, so a tab or newline in a
    name or detail can neither add a column nor forge a line."""
    return "\t".join(printable(x) for x in (f.name, f.store, f.path or "", f.detail))


def write_logdir(logdir: str | os.PathLike, summary: Summary) -> list[Path]:
    """One ``KIND.log`` per kind found, replaced atomically; a failed write leaves no temp file.

    The findings come in kind order, so one file is open at a time and no kind is held in RAM."""
    d = Path(logdir)
    d.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, group in itertools.groupby(summary.findings, key=attrgetter("kind")):
        p = d / f"{kind}.log"
        with replaced(p) as fh:
            for f in group:
                fh.write(logdir_line(f) + "\n")
        written.append(p)
    found = {p.stem for p in written}
    for stale in d.glob("*.log"):
        if stale.stem in KINDS and stale.stem not in found:
            stale.unlink()
    return written
