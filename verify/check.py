"""The check operation: the scan, then every reference, then (if asked) every byte.

Stages run cheapest first and each yields findings into one ShardResult:

1. **scan**: every scan finding (verify/scan.py), on the same shards;
2. **references**: every map's entries against the objects stored where v0.4 reads
   them (``object_missing``, ``object_orphan``, entry-level ``map_corrupt``);
3. **data** (``--verify-data``): Pithos blocks whose content no longer hashes to
   their name (``object_content_mismatch``).

A stage that could not read all of its store (an ``unreadable`` finding) makes the
ground unsafe: references counted against half a listing would report objects as
missing that are merely unread, so the later stages are skipped and say so.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from typing import Protocol

from .backends import Backend, ProgressFn
from .errors import UsageError
from .findings import MAP_KINDS, Severity
from .scan import progress_bar, run_shards
from .summary import ShardResult, Summary

STAGES = ("scan", "references", "data")
FP_SPACE = 1 << 64  # sample windows are ranges of a name's 64-bit fingerprint (first 8 bytes of sha256)


class ReferenceBackend(Backend, Protocol):
    """What a backend offers for the check, on top of the scan."""

    def check_references(self, jobs: int, progress: ProgressFn | None = None) -> ShardResult: ...

    def verify_data(self, jobs: int, window: tuple[int, int, bool], progress: ProgressFn | None = None) -> ShardResult: ...


@dataclass(frozen=True)
class SampleWindow:
    """The deterministic subset of Pithos blocks one ``--verify-data-sample`` run reads.

    An object is in today's window when its fingerprint f (the first 8 bytes of
    sha256(name), uniform over [0, 2^64)) satisfies ``(f - start) mod 2^64 < width``,
    with ``width = ceil(fraction * 2^64)`` and ``start = day * width mod 2^64``, where
    ``day`` counts UTC days since 1970-01-01. Consecutive days take consecutive slices,
    so ``ceil(1 / fraction)`` nightly runs (7 with 1/7 or 0.143) read every block once.
    """

    start: int
    width: int
    everything: bool

    @classmethod
    def of(cls, fraction: float | None, day: int | None = None) -> SampleWindow:
        if fraction is None or fraction >= 1:
            return cls(0, 0, True)
        if not 0 < fraction < 1:
            raise UsageError(f"--verify-data-sample {fraction}: give a fraction in (0, 1]")
        if day is None:
            day = (datetime.now(timezone.utc).date() - datetime(1970, 1, 1).date()).days
        width = min(FP_SPACE, math.ceil(Fraction(fraction) * FP_SPACE))
        return cls((day * width) % FP_SPACE, width, False)

    def as_tuple(self) -> tuple[int, int, bool]:
        return self.start, self.width, self.everything

    def contains(self, fp: int) -> bool:
        return self.everything or (fp - self.start) % FP_SPACE < self.width


def unsafe(result: ShardResult) -> bool:
    """Part of a store could not be read: later stages would report phantoms."""
    return any(f.info.severity >= Severity.UNREADABLE for f in result.findings)


def check(backend: ReferenceBackend, jobs: int, progress: bool | None = None, verify_data: bool = False,
          sample: SampleWindow | None = None, shards_per_store: int = 1) -> Summary:
    """Run the stages in order on this machine with ``jobs`` threads; one Summary of all findings."""
    t0 = time.monotonic()
    result = run_shards(backend, backend.shards(shards_per_store), jobs, progress)
    ran = Counter({"check.stage.scan": 1})
    wanted = ["references"] + (["data"] if verify_data else [])
    for stage in wanted:
        if unsafe(result):
            ran[f"check.skipped.{stage}"] = 1
            continue
        bar = progress_bar(progress, f"check: {stage} ({backend.name})")
        try:
            tick = bar.update if bar is not None else None  # a tqdm without a total has no bool()
            if stage == "references":
                part = backend.check_references(jobs, tick)
            else:
                part = backend.verify_data(jobs, (sample or SampleWindow.of(None)).as_tuple(), tick)
        finally:
            if bar is not None:
                bar.close()
        result = settle_maps(result, part) if stage == "references" else result.merge(part)
        ran[f"check.stage.{stage}"] = 1
    result.counters.update(ran)
    return Summary.from_result(result, time.monotonic() - t0)


def settle_maps(scanned: ShardResult, references: ShardResult) -> ShardResult:
    """Both stages' results with at most one map finding per map, the first in MAP_KINDS order.

    A map the reference stage finds corrupt (a v0 length not a multiple of 32, short
    map-data, bad entries) was seen by the scan as a v0, v1 or v2 map, perhaps with a
    lesser finding: that finding goes, and the map is counted as corrupt, not as its version.
    """
    corrupt = {f.name for f in references.findings if f.kind == "map_corrupt" and f.store == "maps"}
    if not corrupt:
        return scanned.merge(references)
    kept, counters = [], Counter(scanned.counters)
    version = {name: "v2" for name in corrupt}  # a healthy v2 map has no scan finding
    for f in scanned.findings:
        if f.store == "maps" and f.name in corrupt and f.kind in MAP_KINDS:
            if f.kind in ("map_v0", "map_v1"):
                version[f.name] = f.kind[4:]
            elif f.kind == "map_upgrade_incomplete" and f.detail.startswith("v1"):
                version[f.name] = "v1"
            continue
        kept.append(f)
    for v in version.values():
        counters[f"maps.{v}"] -= 1
        counters["maps.corrupt"] += 1
    settled = ShardResult(+counters, kept, scanned.locks)
    return settled.merge(references)


def skipped_stages(summary: Summary) -> list[str]:
    return [s for s in STAGES if summary.counters.get(f"check.skipped.{s}")]


def ran_stages(summary: Summary) -> list[str]:
    return [s for s in STAGES if summary.counters.get(f"check.stage.{s}")]
