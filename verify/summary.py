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
from operator import attrgetter

from .findings import KINDS, Finding, Severity

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_TROUBLE = 2  # usage, config, or part of a store unreadable


@dataclass(frozen=True, slots=True, order=True)
class Lock:
    """A ``NAME_lock`` file or object: who holds (or held) a map or object."""

    store: str
    name: str
    owner: str  # the holder's unique string; "" for radosd's empty leftovers


# The order of Lock's fields, as a sort key: one tuple per lock instead of a dataclass
# comparison per pair (a pool of 10^5 objects has 10^4 locks and more).
lock_order = attrgetter("store", "name", "owner")


@dataclass
class ShardResult:
    counters: Counter = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    locks: list[Lock] = field(default_factory=list)

    def merge(self, other: ShardResult) -> ShardResult:
        return ShardResult(self.counters + other.counters, self.findings + other.findings, self.locks + other.locks)

    @classmethod
    def merge_all(cls, results) -> ShardResult:
        out = cls()
        for r in results:
            out.counters.update(r.counters)
            out.findings.extend(r.findings)
            out.locks.extend(r.locks)
        return out


def dedupe(findings: list[Finding]) -> list[Finding]:
    """One finding per (kind, store, name), in a stable order; extra paths go to detail.

    Of a (kind, store, name) found more than once, the first by (path, detail) stays. The
    kept findings have distinct keys, so one sort of them decides the whole order.
    """
    rank = {k: -kind.severity for k, kind in KINDS.items()}
    if len({(f.kind, f.store, f.name) for f in findings}) == len(findings):
        # every key once, as a RADOS scan's findings are (a pool lists each object once)
        return sorted(findings, key=lambda f: (rank[f.kind], f.kind, f.store, f.name))
    by_key: dict[tuple[str, str, str], list[Finding]] = {}
    for f in findings:
        by_key.setdefault((f.kind, f.store, f.name), []).append(f)
    out = []
    for group in by_key.values():
        first = group[0]
        if len(group) > 1:
            group.sort(key=lambda f: (f.path or "", f.detail))
            first = group[0]
            more = ", ".join(g.path or "?" for g in group[1:4])
            extra = f"; also at {more}" + (f" and {len(group) - 4} more" if len(group) > 4 else "")
            first = Finding(first.kind, first.store, first.name, first.path, first.detail + extra)
        out.append(first)
    out.sort(key=lambda f: (rank[f.kind], f.kind, f.store, f.name))
    return out


@dataclass
class Summary:
    findings: list[Finding]
    counters: Counter
    locks: list[Lock]
    elapsed: float = 0.0

    @classmethod
    def from_result(cls, result: ShardResult, elapsed: float = 0.0) -> Summary:
        return cls(dedupe(result.findings), Counter(result.counters), sorted(result.locks, key=lock_order), elapsed)

    @property
    def per_kind(self) -> Counter:
        return Counter(f.kind for f in self.findings)

    @property
    def maps(self) -> dict[str, int]:
        """Map headers per version, as the scan read them; ``corrupt`` is the number of
        ``map_corrupt`` findings (header or entries), since findings are counted only here."""
        maps = {v: self.counters.get(f"maps.{v}", 0) for v in ("v0", "v1", "v2", "mapdata", "other")}
        maps["corrupt"] = sum(1 for f in self.findings if f.kind == "map_corrupt" and f.store == "maps")
        return {v: maps[v] for v in ("v0", "v1", "v2", "corrupt", "mapdata", "other")}

    @property
    def files_scanned(self) -> int:
        return sum(v for k, v in self.counters.items() if k.endswith(".files"))

    @property
    def held_locks(self) -> list[Lock]:
        """Non-empty lock files: someone holds (or a crashed node held) them."""
        return [lk for lk in self.locks if lk.owner]

    @property
    def exit_code(self) -> int:
        worst = max((KINDS[k].severity for k in {f.kind for f in self.findings}), default=Severity.INFO)
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
            "locks": len(self.locks),
            "locks_held": len(self.held_locks),
            "lock_owners": [{"store": lk.store, "name": lk.name, "owner": lk.owner} for lk in self.held_locks],
            "counters": dict(sorted(self.counters.items())),
            "elapsed_s": round(self.elapsed, 3),
            "files_per_s": round(rate, 1) if rate else None,
            "exit_code": self.exit_code,
        }
