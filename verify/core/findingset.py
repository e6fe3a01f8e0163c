"""A run's findings, one per (kind, store, name), in report order, within a memory budget.

Findings arrive from every stage in any order, perhaps the same object at several
paths. The set keeps them in RAM up to its share of ``--memory``; past it, it sorts
what it holds and writes it as a run to the spill dir (verify/core/spill.py). Sealed, it
merges the runs and deduplicates on the way (the rule of :func:`dedupe`) into one
file it then reads from start to end for each renderer, keeping only the counts per
kind and store: the report, the exit code and the Prometheus file need no more.
Spilled or not, it yields the same findings in the same order.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import operator
import os
import pickle
from collections import Counter
from typing import Iterable, Iterator

from .findings import KINDS, Finding
from .spill import Spill

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
    if len({(f.kind, f.store, f.name) for f in findings}) == len(findings):
        return sorted(findings, key=order)  # every key once, as a RADOS pass's findings are
    return list(dedupe_sorted(sorted(findings, key=order)))


_KEY = operator.itemgetter(1, 2, 3)


def _dedupe_rows(rows: Iterable[tuple]) -> Iterator[tuple]:
    """:func:`dedupe_sorted` on spilled rows (see :func:`_row`), making no Finding on the way."""
    for _key, group in itertools.groupby(rows, key=_KEY):
        first = next(group)
        rest = [r[6] or "?" for r in itertools.islice(group, 3)]
        if rest:
            more = sum(1 for _ in group)
            extra = f"; also at {', '.join(rest)}" + (f" and {more} more" if more else "")
            yield first[:5] + (first[5] + extra, first[6])
        else:
            yield first


def _row(f: Finding) -> tuple:
    """A finding as it is spilled: its :func:`order` key, then its path; tuples compare in C."""
    return _RANK[f.kind], f.kind, f.store, f.name, f.path or "", f.detail, f.path


def _finding(row: tuple) -> Finding:
    return Finding(row[1], row[2], row[3], row[6], row[5])


BATCH = 8192  # findings per pickled batch of a spill file


def _size(f: Finding) -> int:
    return OVERHEAD + len(f.name) + len(f.path or "") + len(f.detail)


class FindingSet:
    """The findings of a run (see the module doc). Iterable more than once, ``len``, counts per kind.

    ``add`` while the run goes; :meth:`seal` once; then read."""

    def __init__(self, findings: Iterable[Finding] = (), spill: Spill | None = None):
        self.spill = spill if spill is not None else current()
        self.budget = (self.spill or Spill()).share(SHARE)
        self._buf: list[Finding] = []
        self._held = 0
        self._runs: list[str] = []
        self._file: str | None = None  # the sealed, deduplicated findings when they spilled
        self._batches: list[int] = []  # the file offset of each batch of it (where a kind's run starts)
        self._n = 0
        self.per_store: Counter = Counter()  # (kind, store) -> findings
        self.sealed = False
        self.kinds_added: set[str] = set()  # every kind added so far, before dedupe (is the ground safe?)
        self.corrupt_maps: dict[str, int | None] = {}  # map_corrupt maps added: name -> version (check.settle_maps)
        self._drops: list[tuple[int, int, str, set, tuple]] = []  # (runs lo, hi it applies to, store, names, kinds)
        self.add(findings)

    def add(self, findings: Iterable[Finding]) -> None:
        if self.sealed:
            raise RuntimeError("finding set already sealed")
        if isinstance(findings, FindingSet) and not findings.sealed and findings.spill is self.spill:
            if not (self._buf or self._runs):
                self.__dict__.update(findings.__dict__)  # an empty set takes another's findings over, as they are
                return
            # another's sorted runs are runs of this set too; the drops it had apply only to them
            base = len(self._runs)
            self._drops += [(base + lo, base + hi, st, names, kinds) for lo, hi, st, names, kinds in findings._drops]
            self._runs += findings._runs
            self.kinds_added |= findings.kinds_added
            for name, v in findings.corrupt_maps.items():
                self.corrupt_maps[name] = v
            findings._runs = []
            findings = findings._buf
        for f in findings:
            self._buf.append(f)
            self.kinds_added.add(f.kind)
            if f.kind == "map_corrupt" and f.store == "maps":
                self.corrupt_maps[f.name] = f.version
            self._held += _size(f)
            if self._held > self.budget and self.spill is not None:
                self._write_run()

    def drop(self, store: str, names: set[str], kinds: Iterable[str]) -> None:
        """Forget the findings added so far of ``kinds`` on ``names`` of ``store`` (not those added later)."""
        kinds = tuple(kinds)
        self._buf = [f for f in self._buf if not (f.store == store and f.name in names and f.kind in kinds)]
        self._held = sum(map(_size, self._buf))
        if self._runs:
            self._drops.append((0, len(self._runs), store, names, kinds))

    def _kept(self, run: int, findings: Iterator[tuple]) -> Iterator[tuple]:
        drops = [(st, names, kinds) for lo, hi, st, names, kinds in self._drops if lo <= run < hi]
        if not drops:
            return findings
        return (r for r in findings
                if not any(r[2] == st and r[3] in names and r[1] in kinds for st, names, kinds in drops))

    def _write_run(self) -> None:
        self._buf.sort(key=order)
        name = self.spill.fresh("findings-run")
        with self.spill.writing(name) as fh:
            for i in range(0, len(self._buf), BATCH):
                pickle.dump(list(map(_row, self._buf[i:i + BATCH])), fh, pickle.HIGHEST_PROTOCOL)
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
        runs = [self._kept(i, self._rows(p)) for i, p in enumerate(self._runs)] + [map(_row, self._buf)]
        merged = _dedupe_rows(heapq.merge(*runs))
        name = self.spill.fresh("findings")
        with self.spill.writing(name) as fh:
            batch = []
            for row in merged:
                batch.append(row)
                if len(batch) == BATCH:
                    self._count(batch)
                    self._batches.append(fh.tell())
                    pickle.dump(batch, fh, pickle.HIGHEST_PROTOCOL)
                    batch = []
            self._count(batch)
            self._batches.append(fh.tell())
            pickle.dump(batch, fh, pickle.HIGHEST_PROTOCOL)
        self._file = self.spill.path(name)
        self._buf, self._held = [], 0
        for p in self._runs:
            with contextlib.suppress(OSError):
                os.unlink(p)
        self._runs = []
        return self

    def _count(self, rows) -> None:
        """Counts of findings (in RAM) or rows (spilled)."""
        self._n += len(rows)
        if rows and isinstance(rows[0], Finding):
            self.per_store.update((f.kind, f.store) for f in rows)
        else:
            self.per_store.update((r[1], r[2]) for r in rows)

    def _rows(self, path: str, batch: int = 0) -> Iterator[tuple]:
        """A spill file's rows, from its ``batch``-th batch on (the sealed file's offsets are known)."""
        return self.spill.items(path, self._batches[batch] if batch else 0)

    def keys(self) -> Iterator[tuple[str, str, str]]:
        """Every (kind, store, name) once, sorted as tuples (what ``--state`` merges with the last run's).

        Report order keeps each kind's findings together, sorted by (store, name), so this reads
        each kind's stretch once, kinds by name: one pass over the findings, whether spilled or not."""
        self.seal()
        per_kind = self.per_kind
        start, at = 0, {}
        for kind in sorted(per_kind, key=lambda k: (_RANK[k], k)):
            at[kind] = start
            start += per_kind[kind]
        for kind in sorted(at):
            first, n = at[kind], per_kind[kind]
            if self._file is None:
                buf = self._buf
                yield from ((buf[i].kind, buf[i].store, buf[i].name) for i in range(first, first + n))
            else:
                yield from (r[1:4] for r in itertools.islice(self._rows(self._file, first // BATCH),
                                                               first % BATCH, first % BATCH + n))

    @property
    def spilled(self) -> bool:
        return self._file is not None or bool(self._runs)

    def __iter__(self) -> Iterator[Finding]:
        self.seal()
        return map(_finding, self._rows(self._file)) if self._file is not None else iter(self._buf)

    def __len__(self) -> int:
        self.seal()
        return self._n

    def __bool__(self) -> bool:
        return len(self) > 0

    def append(self, finding: Finding) -> None:
        self.add((finding,))

    def __iadd__(self, findings: Iterable[Finding]) -> FindingSet:
        self.add(findings)
        return self

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
