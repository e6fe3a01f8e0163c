"""``archverify check --dask``: the stages of :mod:`verify.check` with every pass on a Dask cluster.

1. **scan**: :func:`verify.distributed.run_shards`, as ``scan --dask``.
2. **references**: each maps shard reads its maps' entries, each blocks shard lists
   its objects; both hand the join 24-byte records (16-byte key: the first 128 bits
   of sha256(name), the local check's fingerprint; 2 bytes shard, 5 spare, 1 byte
   "an entry needs this object"). :func:`verify.refjoin.join_distributed` diffs them
   partitioned by key range over the workers. Missing keys that some entry needs go
   back to the maps shards that named them (their first entries and counts, merged
   here in shard order into one ``object_missing`` each, as a local run words it);
   orphan keys go back to the blocks shards that hold them (``object_orphan``).
3. **data** (``--verify-data``): each blocks shard hashes its own Pithos blocks in
   the sample window.

A stage left with ``unreadable`` findings skips the later ones, as locally. The
Summary is that of :func:`verify.check.check` on the same store.
"""

from __future__ import annotations

import time
from collections import Counter

from . import _check, refjoin
from .backends import Backend, Shard
from .check import SampleWindow, settle_maps, unsafe
from .distributed import (DEFAULT_RETRIES, DEFAULT_TIMEOUT, SHARDS_PER_WORKER, CheckShardOutput, _result_of,
                          _sides_of, as_finished, check_workers, connect, portable, require_absolute, resident,
                          run_shards, submit_shards, worker_count)
from .errors import ArchverifyError, UsageError
from .references import missing_findings
from .summary import ShardResult, Summary

SPARE = 5
WIDTH = refjoin.KEY + 2 + SPARE + 1  # key, shard lo, spare, needed flag


def _locator(shard: Shard) -> bytes:
    return shard.lo.to_bytes(2, "big") + bytes(SPARE)


def _on_worker(fn, *args):
    """Store errors name the worker, so the operator knows which node lacks what."""
    try:
        return fn(*args)
    except ArchverifyError as e:
        from distributed import get_worker

        try:
            where = get_worker().address
        except ValueError:  # not on a worker (called directly)
            raise e from None
        raise type(e)(f"{e} (on Dask worker {where})") from None


def fingerprints_task(backend, shard: Shard, jobs: int) -> CheckShardOutput:
    result, recs = _on_worker(resident(backend).check_shard, shard, jobs, _locator(shard))
    sides = refjoin.Sides(refs=recs, width=WIDTH) if shard.store == "maps" else refjoin.Sides(stored=recs, width=WIDTH)
    return CheckShardOutput(result, sides)


def explain_task(backend, shard: Shard, records: bytes, jobs: int):
    return _on_worker(resident(backend).explain_shard, shard, jobs, records, WIDTH)


def orphans_task(backend, shard: Shard, records: bytes, jobs: int) -> ShardResult:
    return _on_worker(resident(backend).orphans_shard, shard, jobs, records, WIDTH)


def data_task(backend, shard: Shard, jobs: int, window: tuple[int, int, bool]) -> ShardResult:
    return _on_worker(resident(backend).verify_data_shard, shard, jobs, window)


def _group(records: bytes, store: str, shards: list[Shard], needed_only: bool) -> dict[Shard, bytes]:
    """Join records grouped by the shard of ``store`` that produced them."""
    by_lo = {s.lo: s for s in shards if s.store == store}
    groups: dict[Shard, bytearray] = {}
    for i in range(0, len(records), WIDTH):
        rec = records[i:i + WIDTH]
        if needed_only and not rec[-1]:
            continue  # only deleted entries or deleted maps name it: nothing is missing
        groups.setdefault(by_lo[int.from_bytes(rec[refjoin.KEY:refjoin.KEY + 2], "big")], bytearray()).extend(rec)
    return {s: bytes(b) for s, b in groups.items()}


def merge_missing(parts: list[tuple[list, dict]]) -> list:
    """One ``object_missing`` per object from the explain passes of several maps shards, in shard order.

    Each shard recorded its first few entries per object; the first few over all
    shards in shard order are those a one-process walk records, and counts add up.
    """
    shown: dict[bytes, list] = {}
    counts: Counter = Counter()
    for refs, per_name in parts:
        for ref in refs:
            kept = shown.setdefault(ref[0], [])
            if len(kept) < _check.REFS_SHOWN:
                kept.append(ref)
        for name, (maps, entries) in per_name.items():
            counts[name, 0] += maps
            counts[name, 1] += entries
    return missing_findings([r for kept in shown.values() for r in kept],
                            lambda name: (counts[name, 0], counts[name, 1]))


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
    missing = _group(join.missing, "maps", shards, needed_only=True)
    orphans = _group(join.orphans, "blocks", shards, needed_only=False)
    be = portable(backend)
    explain = sorted(missing, key=shards.index)
    futures = [client.submit(explain_task, be, s, missing[s], jobs, pure=False, retries=retries) for s in explain]
    out = ShardResult.merge_all(merged)
    out.findings += merge_missing(_in_order(client, futures, explain))
    held = list(orphans)
    futures = [client.submit(orphans_task, be, s, orphans[s], jobs, pure=False, retries=retries) for s in held]
    out = out.merge(ShardResult.merge_all(_in_order(client, futures, held)))
    missing_keys = {bytes(r[:refjoin.KEY]) for recs in missing.values() for r in refjoin._iter(recs, WIDTH)}
    extra = {"referenced_objects": join.referenced, "missing_objects": len(missing_keys),
             # the largest record set one join partition held: this run's per-node index
             "index_bytes": max(join.partition_bytes, default=0)}
    out.counters.update({f"refs.{k}": v for k, v in extra.items() if v})
    return out


def data(client, backend: Backend, shards: list[Shard], jobs: int, window: SampleWindow,
         retries: int = DEFAULT_RETRIES, progress: bool | None = None) -> ShardResult:
    """``--verify-data``: each blocks shard hashes its own Pithos blocks in the window."""
    blocks = [s for s in shards if s.store == "blocks"]
    be = portable(backend)
    futures = [client.submit(data_task, be, s, jobs, window.as_tuple(), pure=False, retries=retries) for s in blocks]
    desc = f"check: data ({backend.name}) on {worker_count(client)} Dask workers"
    return ShardResult.merge_all(_in_order(client, futures, blocks, progress, desc))


def check(backend: Backend, address: str, jobs: int, progress: bool | None = None, verify_data: bool = False,
          sample: SampleWindow | None = None, shards_per_store: int | None = None,
          timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES, parts: int | None = None) -> Summary:
    """:func:`verify.check.check` on a Dask cluster: same Summary, the work on other machines."""
    if not hasattr(backend, "check_shard"):
        raise UsageError(f"the {backend.name} backend cannot run the reference check on Dask yet; "
                         "run 'check' without --dask")
    require_absolute(backend)
    t0 = time.monotonic()
    with connect(address, timeout) as client:
        check_workers(client, backend)
        workers = worker_count(client)
        shards = backend.shards(shards_per_store or SHARDS_PER_WORKER * workers)
        result = run_shards(client, backend, shards, jobs, retries, progress)
        ran = Counter({"check.stage.scan": 1})
        for stage in ["references"] + (["data"] if verify_data else []):
            if unsafe(result):
                ran[f"check.skipped.{stage}"] = 1
                continue
            if stage == "references":
                part = references(client, backend, shards, jobs, parts or workers, retries, progress)
            else:
                part = data(client, backend, shards, jobs, sample or SampleWindow.of(None), retries, progress)
            result = settle_maps(result, part) if stage == "references" else result.merge(part)
            ran[f"check.stage.{stage}"] = 1
    result.counters.update(ran)
    return Summary.from_result(result, time.monotonic() - t0)
