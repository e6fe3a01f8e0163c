"""The scan operation: every shard of both stores, merged into one Summary."""

from __future__ import annotations

import math
import time

from ..core import signals
from ..backends import Backend, Shard
from ..native.limits import Limits
from ..core.progress import Measure, Progress, Stage, as_progress
from ..core.findingset import FindingSet, current
from .resume import PARTS, Checkpoint, part_name
from ..core.summary import ShardResult, Summary


SCAN_SHARE = 0.25  # of --memory: one shard's results, held until the shard ends and joins the FindingSet (which spills)
OBJECT_BYTES = 800  # at worst what one object costs until then: its C record, the record as Python, its finding


def shards_for(backend: Backend, per_store: int, kept: Checkpoint | None = None) -> int:
    """``per_store``, or more shards where one shard's results could outgrow their share of
    ``--memory``: a shard's findings are held (in C, then in Python) until it ends, and a store may
    be all findings (nothing migrated yet). Judged from the store's estimate of its objects
    (``estimated_objects``); without one, and with a checkpoint (its shards are its own), ``per_store``."""
    spill = current()
    if kept is not None or spill is None:
        return per_store
    objects = backend.estimated_objects()
    if not objects:
        return per_store
    return max(per_store, min(PARTS, math.ceil(OBJECT_BYTES * objects / spill.share(SCAN_SHARE))))


def progress_bar(progress: Progress | bool | None, key: str, desc: str, unit: str = "file") -> Stage:
    """The counter of stage ``key``: a bar at a terminal, plain lines when forced elsewhere, else silent."""
    return as_progress(progress).stage(key, desc, unit)


def run_shards(backend: Backend, shards: list[Shard], jobs: int, progress: Progress | bool | None = None,
               kept: Checkpoint | None = None) -> ShardResult:
    """Each shard's result joins one (its findings a :class:`FindingSet`) as the shard ends; with
    ``kept``, each finished shard is recorded there (or taken from there)."""
    out = ShardResult(findings=FindingSet())
    with progress_bar(progress, "scan", f"scan ({backend.name})") as bar:
        for s in shards:
            signals.checkpoint()  # the time box or a signal stops the run at a shard boundary too
            if kept is None:
                out.absorb(backend.scan_shard(s, jobs, bar.update))
            else:
                out.absorb(kept.part(part_name(s.store, s.lo, s.hi),
                                     lambda s=s: backend.scan_shard(s, jobs, bar.update), bar.update))
    return out


def estimated(total: int, limits: Limits | None) -> Measure:
    """An estimated total; under an objects cap its duration (objects / cap) is the first ETA."""
    seconds = total / limits.objects if limits is not None and limits.objects else 0.0
    return Measure(total, seconds, estimated=True)


def scan(backend: Backend, jobs: int, progress: Progress | bool | None = None, shards_per_store: int = 1,
         kept: Checkpoint | None = None, limits: Limits | None = None) -> Summary:
    """Scan both stores of ``backend`` on this machine with ``jobs`` threads (``kept``: see run_shards;
    ``limits``: the caps, for the estimate)."""
    t0 = time.monotonic()
    progress = as_progress(progress)
    if progress.enabled and "scan" not in progress.expected:
        total = backend.estimated_objects()  # Ceph's count, or a count of a sample of the store
        if total:
            progress.expected["scan"] = estimated(total, limits)
    per_store = shards_for(backend, shards_per_store, kept)
    result = run_shards(backend, backend.shards(per_store), jobs, progress, kept)
    if per_store > shards_per_store:
        result.counters["scan.shards"] = per_store
    return Summary.from_result(result, time.monotonic() - t0 + (kept.reused_elapsed if kept else 0.0))
