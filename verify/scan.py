"""The scan operation: every shard of both stores, merged into one Summary."""

from __future__ import annotations

import sys
import time

from .backends import Backend, Shard
from .summary import ShardResult, Summary


def progress_bar(enabled: bool | None, desc: str, unit: str = "file"):
    """A tqdm bar on stderr when it is a terminal (or when forced); None otherwise."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(desc=desc, unit=unit, unit_scale=True, file=sys.stderr, leave=False, dynamic_ncols=True)


def run_shards(backend: Backend, shards: list[Shard], jobs: int, progress: bool | None = None) -> ShardResult:
    bar = progress_bar(progress, f"scanning ({backend.name})")
    try:
        results = [backend.scan_shard(s, jobs, bar.update if bar is not None else None) for s in shards]
    finally:
        if bar is not None:
            bar.close()
    return ShardResult.merge_all(results)


def scan(backend: Backend, jobs: int, progress: bool | None = None, shards_per_store: int = 1) -> Summary:
    """Scan both stores of ``backend`` on this machine with ``jobs`` threads."""
    t0 = time.monotonic()
    result = run_shards(backend, backend.shards(shards_per_store), jobs, progress)
    return Summary.from_result(result, time.monotonic() - t0)
