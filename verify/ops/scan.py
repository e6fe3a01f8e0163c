"""The scan operation: every shard of both stores, merged into one Summary."""

from __future__ import annotations

import time

from ..core import signals
from ..backends import Backend, Shard
from ..native.limits import Limits
from ..core.progress import Measure, Progress, Stage, as_progress
from ..core.findingset import FindingSet
from .resume import Checkpoint, part_name
from ..core.summary import ShardResult, Summary


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
    result = run_shards(backend, backend.shards(shards_per_store), jobs, progress, kept)
    return Summary.from_result(result, time.monotonic() - t0 + (kept.reused_elapsed if kept else 0.0))
