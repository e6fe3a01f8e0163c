"""Partial results of shards, their merge, and the one summary everything reads.

A shard (a range of top-level dirs, a slice of a RADOS listing) returns a
:class:`ShardResult`; results merge associatively and commutatively, so shards can
run in any order, on any machine. All counts shown to people, written to JSON or
Prometheus, and the exit code come from :class:`Summary`, which consumes the merged
finding stream: nobody counts findings anywhere else.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from .findings import KINDS, Finding, Severity
from .findingset import FindingSet, dedupe  # noqa: F401  (dedupe: the rule, importable from here)

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_TROUBLE = 2  # usage, config, or part of a store unreadable


class Lock(NamedTuple):
    """A ``NAME_lock`` file or object: who holds (or held) a map or object.

    A named tuple, not a dataclass: a pool of 10^5 objects has 10^4 locks and more, a tuple
    is made in half the time and sorts by its fields (store, name, owner) as it is."""

    store: str
    name: str
    owner: str  # the holder's unique string; "" for radosd's empty leftovers


@dataclass
class ShardResult:
    counters: Counter = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    locks: list[Lock] = field(default_factory=list)

    def merge(self, other: ShardResult) -> ShardResult:
        return ShardResult(self.counters + other.counters, self.findings + other.findings, self.locks + other.locks)

    def absorb(self, other: ShardResult) -> ShardResult:
        """``other`` added to this result in place; into its :class:`FindingSet` if it has one (bounded RAM)."""
        if isinstance(self.findings, FindingSet):
            self.findings.add(other.findings)
        else:
            self.findings.extend(other.findings)
        self.counters.update(other.counters)
        self.locks.extend(other.locks)
        return self

    @classmethod
    def merge_all(cls, results) -> ShardResult:
        out = cls()
        for r in results:
            out.counters.update(r.counters)
            out.findings.extend(r.findings)
            out.locks.extend(r.locks)
        return out


@dataclass
class Summary:
    findings: FindingSet  # deduplicated, in report order; past the memory budget, on disk (verify/core/findingset.py)
    counters: Counter
    locks: list[Lock]  # those with an owner (verify/backends/base.py keep_empty_locks: all)
    elapsed: float = 0.0

    @classmethod
    def from_result(cls, result: ShardResult, elapsed: float = 0.0) -> Summary:
        found = result.findings if isinstance(result.findings, FindingSet) else FindingSet(result.findings)
        return cls(found.seal(), Counter(result.counters), sorted(result.locks), elapsed)

    def __post_init__(self) -> None:
        if not isinstance(self.findings, FindingSet):
            self.findings = FindingSet(self.findings).seal()

    @property
    def per_kind(self) -> Counter:
        return self.findings.per_kind

    @property
    def maps(self) -> dict[str, int]:
        """Map headers per version, as the scan read them; ``corrupt`` is the number of
        ``map_corrupt`` findings (header or entries), since findings are counted only here."""
        maps = {v: self.counters.get(f"maps.{v}", 0) for v in ("v0", "v1", "v2", "mapdata", "other")}
        maps["corrupt"] = self.findings.per_store.get(("map_corrupt", "maps"), 0)
        return {v: maps[v] for v in ("v0", "v1", "v2", "corrupt", "mapdata", "other")}

    @property
    def files_scanned(self) -> int:
        return sum(v for k, v in self.counters.items() if k.endswith(".files"))

    @property
    def lock_objects(self) -> int:
        """Lock files and objects the scan saw. Only those with an owner are in ``locks`` (all of
        them when asked, verify/backends/base.py ``keep_empty_locks``): the rest are counted."""
        return sum(v for k, v in self.counters.items() if k.endswith(".locks"))

    @property
    def held_locks(self) -> list[Lock]:
        """Non-empty lock files: someone holds (or a crashed node held) them."""
        return [lk for lk in self.locks if lk.owner]

    @property
    def exit_code(self) -> int:
        worst = max((KINDS[k].severity for k in self.per_kind), default=Severity.INFO)
        if worst >= Severity.UNREADABLE:
            return EXIT_TROUBLE
        return EXIT_FINDINGS if worst >= Severity.WARNING else EXIT_OK

    def as_dict(self) -> dict:
        rate = self.files_scanned / self.elapsed if self.elapsed > 0 else None
        maps = self.maps
        return {
            "files_scanned": self.files_scanned,
            "per_store": {s: self.counters.get(f"{s}.files", 0) for s in ("maps", "blocks")},
            "maps": maps,
            "findings": dict(sorted(self.per_kind.items())),
            "findings_total": len(self.findings),
            "locks": self.lock_objects,
            "locks_held": len(self.held_locks),
            "lock_owners": [{"store": lk.store, "name": lk.name, "owner": lk.owner} for lk in self.held_locks],
            "counters": dict(sorted(self.counters.items())),
            "elapsed_s": round(self.elapsed, 3),
            "files_per_s": round(rate, 1) if rate else None,
            "exit_code": self.exit_code,
        }
