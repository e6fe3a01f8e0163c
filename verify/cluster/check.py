"""``archverify check --dask``: the stages of :mod:`verify.ops.check` with every pass on a Dask cluster.

1. **scan**: :func:`verify.cluster.shards.run_shards`, as ``scan --dask``.
2. **references**: each maps shard reads its maps' entries, each blocks shard lists
   its objects; both hand the join 24-byte records (16-byte key: the first 128 bits
   of sha256(name), the local check's fingerprint; 2 bytes shard, 5 spare, 1 byte
   "an entry needs this object"). :func:`verify.native.refjoin.join_distributed` diffs them
   partitioned by key range over the workers; :mod:`verify.backends.shard_join` turns the
   result into findings as a local run words them (missing keys back to the maps
   shards that named them, orphan keys to the blocks shards that hold them).
3. **data** (``--verify-data``): each blocks shard hashes its own Pithos blocks in
   the sample window.

The stages and the rule that an unsafe stage skips the later ones are
:data:`verify.ops.check.PIPELINE`'s; :class:`DaskStages` only says where each runs.
The Summary is that of :func:`verify.ops.check.check` on the same store.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from .. import backends
from ..native import refjoin
from ..backends import Backend, Shard
from ..ops.check import SampleWindow, run_stages
from .shards import (
    DEFAULT_RETRIES, DEFAULT_TIMEOUT, SHARDS_PER_WORKER, as_finished, check_workers, connect, on_worker, portable,
    resident, run_shards, submit_shards, worker_count,
)
from ..core.errors import UsageError
from ..backends.shard_join import WIDTH, findings_of_join, locator, sides_of
from ..core.summary import ShardResult, Summary


@dataclass
class CheckShardOutput:
    """What a check shard task returns: its own findings and counters, and its join records
    (which stay on the worker: only the ShardResult comes back)."""

    result: ShardResult
    sides: refjoin.Sides


def _result_of(out: CheckShardOutput) -> ShardResult:
    return out.result


def _sides_of(out: CheckShardOutput) -> refjoin.Sides:
    return out.sides


def fingerprints_task(backend, shard: Shard, jobs: int) -> CheckShardOutput:
    result, recs = on_worker(resident(backend).check_shard, shard, jobs, locator(shard))
    return CheckShardOutput(result, sides_of(shard, recs))


def explain_task(backend, shard: Shard, records: bytes, jobs: int):
    return on_worker(resident(backend).explain_shard, shard, jobs, records, WIDTH)


def orphans_task(backend, shard: Shard, records: bytes, jobs: int) -> ShardResult:
    return on_worker(resident(backend).orphans_shard, shard, jobs, records, WIDTH)


def data_task(backend, shard: Shard, jobs: int, window: tuple[int, int, bool]) -> ShardResult:
    return on_worker(resident(backend).verify_data_shard, shard, jobs, window)


def _in_order(client, futures, shards, progress=False, desc="shards") -> list:
    done = dict(as_finished(client, futures, shards, progress, desc))
    return [done[s] for s in shards]


def references(client, backend: Backend, shards: list[Shard], jobs: int, parts: int,
               retries: int = DEFAULT_RETRIES, progress: bool | None = None) -> ShardResult:
    """The reference stage on the cluster: what ``backend.check_references`` gives locally."""
    outputs = submit_shards(client, backend, shards, jobs, fingerprints_task, retries)
    results = client.map(_result_of, outputs, pure=False, retries=retries)
    sides = client.map(_sides_of, outputs, pure=False, retries=retries)
    desc = f"check: references ({backend.name}) on {worker_count(client)} Dask workers"
    merged = _in_order(client, results, shards, progress, desc)
    join = refjoin.join_distributed(client, sides, parts, retries)
    del outputs, results, sides  # the workers drop the records
    be = portable(backend)

    def ask(task, asked):
        futures = [client.submit(task, be, s, recs, jobs, pure=False, retries=retries) for s, recs in asked]
        return _in_order(client, futures, [s for s, _ in asked])

    found = findings_of_join(join, shards, lambda asked: ask(explain_task, asked),
                             lambda asked: ask(orphans_task, asked), backend.object_path)
    return ShardResult.merge_all(merged).merge(found)


def data(client, backend: Backend, shards: list[Shard], jobs: int, window: SampleWindow,
         retries: int = DEFAULT_RETRIES, progress: bool | None = None) -> ShardResult:
    """``--verify-data``: each blocks shard hashes its own Pithos blocks in the window."""
    blocks = [s for s in shards if s.store == "blocks"]
    be = portable(backend)
    futures = [client.submit(data_task, be, s, jobs, window.as_tuple(), pure=False, retries=retries) for s in blocks]
    desc = f"check: data ({backend.name}) on {worker_count(client)} Dask workers"
    return ShardResult.merge_all(_in_order(client, futures, blocks, progress, desc))


@dataclass
class DaskStages:
    """The stages of :data:`verify.ops.check.PIPELINE` on a Dask cluster, over the same shards."""

    client: object
    backend: Backend
    shards: list[Shard]
    jobs: int
    parts: int
    window: SampleWindow
    retries: int = DEFAULT_RETRIES
    progress: bool | None = None

    def scan(self) -> ShardResult:
        return run_shards(self.client, self.backend, self.shards, self.jobs, self.retries, self.progress)

    def references(self) -> ShardResult:
        return references(self.client, self.backend, self.shards, self.jobs, self.parts, self.retries, self.progress)

    def data(self) -> ShardResult:
        return data(self.client, self.backend, self.shards, self.jobs, self.window, self.retries, self.progress)


def check(backend: Backend, address: str, jobs: int, progress: bool | None = None, verify_data: bool = False,
          sample: SampleWindow | None = None, shards_per_store: int | None = None,
          timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES, parts: int | None = None) -> Summary:
    """:func:`verify.ops.check.check` on a Dask cluster: same Summary, the work on other machines."""
    if not backends.supports(backend, backends.SHARDED):
        raise UsageError(f"the {backend.name} backend cannot run the reference check on Dask; "
                         "run 'check' without --dask")
    backend.require_portable()
    t0 = time.monotonic()
    with connect(address, timeout) as client:
        check_workers(client, backend)
        workers = worker_count(client)
        shards = backend.shards(shards_per_store or SHARDS_PER_WORKER * workers)
        stages = DaskStages(client, backend, shards, jobs, parts or workers, sample or SampleWindow.of(None),
                            retries, progress)
        result = run_stages(stages, verify_data)
    return Summary.from_result(result, time.monotonic() - t0)
