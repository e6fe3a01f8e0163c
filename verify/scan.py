"""The scan operation: every shard of both stores, merged into one Summary."""

from __future__ import annotations

import time

from .backends import Backend, Shard
from .limits import Limits
from .progress import Measure, Progress, Stage, as_progress
from .summary import ShardResult, Summary


def progress_bar(progress: Progress | bool | None, key: str, desc: str, unit: str = "file") -> Stage:
    """The counter of stage ``key``: a bar at a terminal, plain lines when forced elsewhere, else silent."""
    return as_progress(progress).stage(key, desc, unit)


def run_shards(backend: Backend, shards: list[Shard], jobs: int, progress: Progress | bool | None = None) -> ShardResult:
    with progress_bar(progress, "scan", f"scan ({backend.name})") as bar:
        results = [backend.scan_shard(s, jobs, bar.update) for s in shards]
    return ShardResult.merge_all(results)


def estimated(total: int, limits: Limits | None) -> Measure:
    """An estimated total; under an objects cap its duration (objects / cap) is the first ETA."""
    seconds = total / limits.objects if limits is not None and limits.objects else 0.0
    return Measure(total, seconds, estimated=True)


def scan(backend: Backend, jobs: int, progress: Progress | bool | None = None, shards_per_store: int = 1,
         limits: Limits | None = None) -> Summary:
    """Scan both stores of ``backend`` on this machine with ``jobs`` threads."""
    t0 = time.monotonic()
    progress = as_progress(progress)
    if progress.enabled and "scan" not in progress.expected:
        total = backend.estimated_objects()  # RADOS keeps an object count per pool; filed cannot tell
        if total:
            progress.expected["scan"] = estimated(total, limits)
    result = run_shards(backend, backend.shards(shards_per_store), jobs, progress)
    return Summary.from_result(result, time.monotonic() - t0)
