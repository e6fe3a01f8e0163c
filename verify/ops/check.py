"""The check operation: the scan, then every reference, then (if asked) every byte.

Stages run cheapest first and each yields findings into one ShardResult:

1. **scan**: every scan finding (verify/ops/scan.py), on the same shards;
2. **references**: every map's entries against the objects stored where v0.4 reads
   them (``object_missing``, ``object_orphan``, entry-level ``map_corrupt``);
3. **data** (``--verify-data``): Pithos blocks whose content no longer hashes to
   their name (``object_content_mismatch``).

A stage that could not read all of its store (an ``unreadable`` finding) makes the
ground unsafe: references counted against half a listing would report objects as
missing that are merely unread, so the later stages are skipped and say so.

The sequence is declared once (:data:`PIPELINE`) and run by :func:`run_stages`
with an executor that knows where the work happens: :class:`LocalStages` here,
``verify.cluster.check.DaskStages`` on a Dask cluster.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from typing import Callable, Protocol

from ..core import formats as F
from ..backends import Backend, ReferenceCheck
from ..core.errors import UsageError
from ..core.findings import KINDS, MAP_KINDS, Severity
from ..core.findingset import FindingSet, current
from ..core.progress import Progress
from .resume import Checkpoint
from .scan import progress_bar, run_shards
from ..core.spill import Spill
from ..core.summary import ShardResult, Summary

HEADS_SHARE = 0.125  # of --memory: the map header reads a RADOS scan keeps for the reference stage
INDEX_SHARE = 0.5  # of --memory: the reference index held whole in RAM, or else the sharded join's records
INDEX_BYTES = 20  # bytes of the in-RAM reference index per object (measured 18.7: docs/check.md)
RECORD_BYTES = 24  # bytes of a record of the sharded join per object (verify/backends/shard_join.py)

FP_SPACE = F.FP_SPACE  # sample windows are ranges of a name's 64-bit fingerprint (formats.fingerprint_hi)


class ReferenceBackend(Backend, ReferenceCheck, Protocol):
    """What a backend offers for a local check: the scan and the reference check."""


@dataclass(frozen=True)
class SampleWindow:
    """The deterministic subset of Pithos blocks one ``--verify-data-sample`` run reads.

    An object is in a run's window when its fingerprint f (the first 8 bytes of
    sha256(name), uniform over [0, 2^64)) satisfies ``(f - start) mod 2^64 < width``,
    with ``width = ceil(fraction * 2^64)`` and ``start = runs * width mod 2^64``, where
    ``runs`` counts the sampled runs done before (``check --state`` keeps the count;
    without a state dir, UTC days since 1970-01-01 stand in). Consecutive runs take
    consecutive slices, so ``ceil(1 / fraction)`` runs (7 with 1/7 or 0.143) read every
    block once, however many nights were missed between them; a run that did not
    finish its data stage is not counted, so the next run reads the same slice again.
    """

    start: int
    width: int
    everything: bool

    @classmethod
    def of(cls, fraction: float | None, runs: int | None = None) -> SampleWindow:
        """The window of the run after ``runs`` sampled runs (None: no count kept, the UTC day's)."""
        if fraction is None or fraction >= 1:
            return cls(0, 0, True)
        if not 0 < fraction < 1:
            raise UsageError(f"--verify-data-sample {fraction}: give a fraction in (0, 1]")
        if runs is None:
            runs = (datetime.now(timezone.utc).date() - datetime(1970, 1, 1).date()).days
        width = min(FP_SPACE, math.ceil(Fraction(fraction) * FP_SPACE))
        return cls((runs * width) % FP_SPACE, width, False)

    def as_tuple(self) -> tuple[int, int, bool]:
        return self.start, self.width, self.everything

    def contains(self, fp: int) -> bool:
        return F.in_window(fp, self.start, self.width, self.everything)


def unsafe(result: ShardResult) -> bool:
    """Part of a store could not be read: later stages would report phantoms."""
    found = result.findings
    kinds = found.kinds_added if isinstance(found, FindingSet) else {f.kind for f in found}
    return any(KINDS[k].severity >= Severity.UNREADABLE for k in kinds)


class Executor(Protocol):
    """Where the stages run; each returns the findings and counters of its stage."""

    def scan(self) -> ShardResult: ...

    def references(self) -> ShardResult: ...

    def data(self) -> ShardResult: ...


def _merge(before: ShardResult, part: ShardResult) -> ShardResult:
    return before.absorb(part)


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[Executor], ShardResult]
    optional: bool = False  # only with --verify-data
    merge: Callable[[ShardResult, ShardResult], ShardResult] = _merge  # how its findings join the earlier ones


PIPELINE = (
    Stage("scan", lambda ex: ex.scan()),
    Stage("references", lambda ex: ex.references(), merge=lambda before, part: settle_maps(before, part)),
    Stage("data", lambda ex: ex.data(), optional=True),
)
STAGES = tuple(s.name for s in PIPELINE)


def run_stages(executor: Executor, verify_data: bool) -> ShardResult:
    """The stages in order; once one leaves the ground unsafe, the later ones are skipped and say so.

    Each stage's findings go into one :class:`FindingSet` as the stage ends, so the run
    holds at most one stage's findings as objects, the rest within the memory budget."""
    result = ShardResult(findings=FindingSet())
    ran: Counter = Counter()
    for stage in PIPELINE:
        if stage.optional and not verify_data:
            continue
        if unsafe(result):
            ran[f"check.skipped.{stage.name}"] = 1
            continue
        result = stage.merge(result, stage.run(executor))
        ran[f"check.stage.{stage.name}"] = 1
    result.counters.update(ran)
    return result


def reference_shards(objects: int, spill: Spill | None) -> int:
    """0: the reference index of ``objects`` fits its share of ``--memory``, the stage holds it whole.

    Else the shards per store of the sharded join (verify/backends/shard_join.py): each shard's
    records in RAM one at a time, the join's key ranges spilled past its share, so the stage
    keeps to the budget however large the stores, at the price of reading each shard's part
    of a store in turn (a RADOS pool is listed once a shard)."""
    if spill is None:
        return 0
    budget = spill.share(INDEX_SHARE)
    if INDEX_BYTES * objects <= budget:
        return 0
    return max(2, min(256, math.ceil(RECORD_BYTES * objects / budget)))


@dataclass
class LocalStages:
    """The stages on this machine: the scan's shards one after another, the later stages with ``jobs`` threads."""

    backend: ReferenceBackend
    jobs: int
    progress: Progress | bool | None = None
    window: SampleWindow = SampleWindow(0, 0, True)
    shards_per_store: int = 1
    kept: Checkpoint | None = None  # each finished shard and stage recorded there, or taken from there
    objects: int = 0  # what the scan stage listed in both stores

    def scan(self) -> ShardResult:
        spill = current()  # past their share of --memory no header is kept: the references read them again
        self.backend.keep_heads((spill or Spill()).share(HEADS_SHARE))  # RADOS: what the scan reads, reused
        out = run_shards(self.backend, self.backend.shards(self.shards_per_store), self.jobs, self.progress,
                         self.kept)
        self.objects = out.counters.get("maps.files", 0) + out.counters.get("blocks.files", 0)
        return out

    def references(self) -> ShardResult:
        shards = reference_shards(self.objects, current())
        if not shards:
            return self._with_bar("references", lambda tick: self.backend.check_references(self.jobs, tick))
        from ..backends.shard_join import local_references

        def sharded(tick) -> ShardResult:
            out = local_references(self.backend, self.jobs, tick, per_store=shards)
            out.counters["refs.shards"] = shards
            return out

        return self._with_bar("references", sharded)

    def data(self) -> ShardResult:
        return self._with_bar("data", lambda tick: self.backend.verify_data(self.jobs, self.window.as_tuple(), tick))

    def _with_bar(self, stage: str, fn) -> ShardResult:
        with progress_bar(self.progress, stage, f"check: {stage} ({self.backend.name})",
                          unit="object" if stage == "data" else "item") as bar:
            if self.kept is None:
                return fn(bar.update)
            return self.kept.part(stage, lambda: fn(bar.update))


def check(backend: ReferenceBackend, jobs: int, progress: Progress | bool | None = None, verify_data: bool = False,
          sample: SampleWindow | None = None, shards_per_store: int = 1, kept: Checkpoint | None = None) -> Summary:
    """Run the stages in order on this machine with ``jobs`` threads; one Summary of all findings
    (``kept``: the checkpoint that records each finished shard and stage, verify/ops/resume.py)."""
    t0 = time.monotonic()
    executor = LocalStages(backend, jobs, progress, sample or SampleWindow.of(None), shards_per_store, kept)
    result = run_stages(executor, verify_data)
    return Summary.from_result(result, time.monotonic() - t0 + (kept.reused_elapsed if kept else 0.0))


def settle_maps(scanned: ShardResult, references: ShardResult) -> ShardResult:
    """Both stages' results with at most one map finding per map, the first in MAP_KINDS order.

    A map the reference stage finds corrupt (a v0 length not a multiple of 32, short
    map-data, bad entries) was seen by the scan as a v0, v1 or v2 map, perhaps with a
    lesser finding: that finding goes, and the map is counted as corrupt, not as its version
    (the version the reference stage read in its header: the finding's ``version``).
    ``scanned.findings`` may be a list or a :class:`FindingSet` (which drops them as it seals).
    """
    found = references.findings
    corrupt = (found.corrupt_maps.items() if isinstance(found, FindingSet)
               else ((f.name, f.version) for f in found if f.kind == "map_corrupt" and f.store == "maps"))
    version = {}
    for name, v in corrupt:
        version[name] = f"v{2 if v is None else v}"
    if not version:
        return scanned.absorb(references)
    counters = Counter(scanned.counters)
    for v in version.values():
        counters[f"maps.{v}"] -= 1
        counters["maps.corrupt"] += 1
    if isinstance(scanned.findings, FindingSet):
        scanned.findings.drop("maps", set(version), MAP_KINDS)
        scanned.counters = +counters
        return scanned.absorb(references)
    kept = [f for f in scanned.findings if not (f.store == "maps" and f.name in version and f.kind in MAP_KINDS)]
    return ShardResult(+counters, kept, scanned.locks).merge(references)


def skipped_stages(summary: Summary) -> list[str]:
    return [s for s in STAGES if summary.counters.get(f"check.skipped.{s}")]


def ran_stages(summary: Summary) -> list[str]:
    return [s for s in STAGES if summary.counters.get(f"check.stage.{s}")]
