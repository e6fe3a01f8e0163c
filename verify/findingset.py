"""A run's findings, one per (kind, store, name), in report order, within a memory budget.

Findings arrive from every stage in any order, perhaps the same object at several
paths. The set keeps them in RAM up to its share of ``--memory``; past it, it sorts
what it holds and writes it as a run to the spill dir (verify/spill.py). Sealed, it
merges the runs and deduplicates on the way (the rule of :func:`dedupe`) into one
file it then reads from start to end for each renderer, keeping only the counts per
kind and store: the report, the exit code and the Prometheus file need no more.
Spilled or not, it yields the same findings in the same order.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import os
from collections import Counter
from typing import Iterable, Iterator

from .findings import KINDS, Finding
from .spill import DEFAULT_MEMORY, Spill

_RANK = {k: -kind.severity for k, kind in KINDS.items()}
_active: list[Spill] = []
SHARE = 0.25  # of --memory: the finding set's part (the join and the native passes have the rest)
OVERHEAD = 300  # bytes of RAM a Finding takes beyond its strings (objects, list slot)


def order(f: Finding) -> tuple:
    """Report order: most severe kind first, then kind, store, name; of one key, the first (path, detail)."""
    return _RANK[f.kind], f.kind, f.store, f.name, f.path or "", f.detail


@contextlib.contextmanager
def using(spill: Spill):
    """Finding sets made meanwhile keep to ``spill``'s budget and spill dir; it is cleaned up after."""
    _active.append(spill)
    try:
        with spill:
            yield spill
    finally:
        _active.remove(spill)


def current() -> Spill | None:
    return _active[-1] if _active else None


def dedupe_sorted(findings: Iterable[Finding]) -> Iterator[Finding]:
    """Findings in :func:`order`, one per (kind, store, name): the first of a key, its other paths in its detail."""
    for _key, group in itertools.groupby(findings, key=lambda f: (f.kind, f.store, f.name)):
        first = next(group)
        rest = [g.path or "?" for g in itertools.islice(group, 3)]
        if rest:
            more = sum(1 for _ in group)
            extra = f"; also at {', '.join(rest)}" + (f" and {more} more" if more else "")
            yield Finding(first.kind, first.store, first.name, first.path, first.detail + extra)
        else:
            yield first


def dedupe(findings: list[Finding]) -> list[Finding]:
    """One finding per (kind, store, name), in report order; extra paths go to detail."""
    return list(dedupe_sorted(sorted(findings, key=order)))


def _dump(f: Finding) -> str:
    return json.dumps([f.kind, f.store, f.name, f.path, f.detail]) + "\n"


def _load(line: str) -> Finding:
    k, s, n, p, d = json.loads(line)
    return Finding(k, s, n, p, d)


def _size(f: Finding) -> int:
    return OVERHEAD + len(f.name) + len(f.path or "") + len(f.detail)


class FindingSet:
    """The findings of a run (see the module doc). Iterable more than once, ``len``, counts per kind.

    ``add`` while the run goes; :meth:`seal` once; then read."""

    def __init__(self, findings: Iterable[Finding] = (), spill: Spill | None = None):
        self.spill = spill if spill is not None else current()
        self.budget = int((self.spill.memory if self.spill else DEFAULT_MEMORY) * SHARE)
        self._buf: list[Finding] = []
        self._held = 0
        self._runs: list[str] = []
        self._file: str | None = None  # the sealed, deduplicated findings when they spilled
        self._n = 0
        self.per_store: Counter = Counter()  # (kind, store) -> findings
        self.sealed = False
        self.kinds_added: set[str] = set()  # every kind added so far, before dedupe (is the ground safe?)
        self._drops: list[tuple[int, str, set, tuple]] = []  # (runs written then, store, names, kinds)
        self.add(findings)

    def add(self, findings: Iterable[Finding]) -> None:
        if self.sealed:
            raise RuntimeError("finding set already sealed")
        if isinstance(findings, FindingSet) and not findings.sealed and not (self._buf or self._runs):
            self.__dict__.update(findings.__dict__)  # an empty set takes another's findings over, as they are
            return
        for f in findings:
            self._buf.append(f)
            self.kinds_added.add(f.kind)
            self._held += _size(f)
            if self._held > self.budget and self.spill is not None:
                self._write_run()

    def drop(self, store: str, names: set[str], kinds: Iterable[str]) -> None:
        """Forget the findings added so far of ``kinds`` on ``names`` of ``store`` (not those added later)."""
        kinds = tuple(kinds)
        self._buf = [f for f in self._buf if not (f.store == store and f.name in names and f.kind in kinds)]
        self._held = sum(map(_size, self._buf))
        if self._runs:
            self._drops.append((len(self._runs), store, names, kinds))

    def _kept(self, run: int, findings: Iterator[Finding]) -> Iterator[Finding]:
        drops = [(st, names, kinds) for upto, st, names, kinds in self._drops if run < upto]
        if not drops:
            return findings
        return (f for f in findings
                if not any(f.store == st and f.name in names and f.kind in kinds for st, names, kinds in drops))

    def _write_run(self) -> None:
        self._buf.sort(key=order)
        name = f"findings-run-{len(self._runs):06d}"
        with self.spill.writing(name, "w") as fh:
            for i in range(0, len(self._buf), 4096):
                fh.write("".join(map(_dump, self._buf[i:i + 4096])))
        self._runs.append(self.spill.path(name))
        self._buf, self._held = [], 0

    def seal(self) -> FindingSet:
        if self.sealed:
            return self
        self.sealed = True
        if not self._runs:
            self._buf = dedupe(self._buf)
            self._count(self._buf)
            return self
        self._buf.sort(key=order)
        runs = [self._kept(i, self._read(p)) for i, p in enumerate(self._runs)] + [iter(self._buf)]
        merged = dedupe_sorted(heapq.merge(*runs, key=order))
        name = "findings"
        with self.spill.writing(name, "w") as fh:
            for f in merged:
                self._count((f,))
                fh.write(_dump(f))
        self._file = self.spill.path(name)
        self._buf, self._held = [], 0
        for p in self._runs:
            with contextlib.suppress(OSError):
                os.unlink(p)
        self._runs = []
        return self

    def _count(self, findings) -> None:
        for f in findings:
            self._n += 1
            self.per_store[f.kind, f.store] += 1

    def _read(self, path: str) -> Iterator[Finding]:
        try:
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    yield _load(line)
        except OSError as e:
            raise self.spill.error(e) from None

    @property
    def spilled(self) -> bool:
        return self._file is not None or bool(self._runs)

    def __iter__(self) -> Iterator[Finding]:
        self.seal()
        return self._read(self._file) if self._file is not None else iter(self._buf)

    def __len__(self) -> int:
        self.seal()
        return self._n

    def __bool__(self) -> bool:
        return len(self) > 0

    def __getitem__(self, i):
        """For a few findings (tests, samples): in RAM a list's index; spilled, a read up to it."""
        self.seal()
        if self._file is None:
            return self._buf[i]
        if isinstance(i, slice):
            return list(itertools.islice(iter(self), i.start, i.stop, i.step))
        return next(itertools.islice(iter(self), i, None))

    def __eq__(self, other) -> bool:
        return list(self) == list(other)

    @property
    def per_kind(self) -> Counter:
        out: Counter = Counter()
        for (kind, _store), n in self.per_store.items():
            out[kind] += n
        return out

    def of_kind(self, kind: str) -> Iterator[Finding]:
        return (f for f in self if f.kind == kind)

    def first_per_kind(self, limit: int | None) -> dict[str, list[Finding]]:
        """Up to ``limit`` findings of each kind (all with None), in report order: what people are shown."""
        out: dict[str, list[Finding]] = {}
        for f in self:
            got = out.setdefault(f.kind, [])
            if limit is None or len(got) < limit:
                got.append(f)
        return out
