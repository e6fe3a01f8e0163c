"""The reference stage of ``check`` from per-shard join records, wherever the shards ran.

A backend offering :class:`~verify.backends.ShardedCheck` gives, per maps shard, a
record for each object its entries name and, per blocks shard, one for each object
it stores (:mod:`verify.native.refjoin`). Joining the two sides by key yields the missing
and the orphaned objects; the shards that named or hold them are then asked again
for the words of the findings. The records, the grouping and the wording are the
same on a Dask cluster (:mod:`verify.cluster.check`, the join partitioned over
the workers) and in this process (:func:`local_references`: a mixed backend, whose
two stores no single native pass can read together).
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

from ..native import _refsets, refjoin
from . import Shard
from ..core.findingset import FindingSet, current
from .references import missing_findings
from ..core.summary import ShardResult

SPARE = 5
WIDTH = refjoin.KEY + 2 + SPARE + 1  # key, shard lo, spare, needed flag

Asked = list[tuple[Shard, bytes]]  # shards to ask again, in shard order, with the records that concern each


def locator(shard: Shard) -> bytes:
    """What a record carries back to its shard: the shard's first bucket."""
    return shard.lo.to_bytes(2, "big") + bytes(SPARE)


def sides_of(shard: Shard, records: bytes) -> refjoin.Sides:
    return refjoin.Sides(refs=records, width=WIDTH) if shard.store == "maps" else refjoin.Sides(stored=records,
                                                                                                 width=WIDTH)


def group(records: bytes, store: str, shards: list[Shard], needed_only: bool) -> Asked:
    """Join records grouped by the shard of ``store`` that produced them, in shard order."""
    by_lo = {s.lo: s for s in shards if s.store == store}
    groups: dict[Shard, bytearray] = {}
    for i in range(0, len(records), WIDTH):
        rec = records[i:i + WIDTH]
        if needed_only and not rec[-1]:
            continue  # only deleted entries or deleted maps name it: nothing is missing
        groups.setdefault(by_lo[int.from_bytes(rec[refjoin.KEY:refjoin.KEY + 2], "big")], bytearray()).extend(rec)
    return [(s, bytes(groups[s])) for s in sorted(groups, key=shards.index)]


def merge_missing(parts: list[tuple[list, dict]], path_of=None) -> list:
    """One ``object_missing`` per object from the explain passes of several maps shards, in shard order.

    Each shard recorded its first few entries per object; the first few over all
    shards in shard order are those a one-process walk records, and counts add up.
    """
    shown: dict[bytes, list] = {}
    counts: Counter = Counter()
    for refs, per_name in parts:
        for ref in refs:
            kept = shown.setdefault(ref[0], [])
            if len(kept) < _refsets.REFS_SHOWN:
                kept.append(ref)
        for name, (maps, entries) in per_name.items():
            counts[name, 0] += maps
            counts[name, 1] += entries
    return missing_findings([r for kept in shown.values() for r in kept],
                            lambda name: (counts[name, 0], counts[name, 1]), path_of)


def findings_of_join(join: refjoin.JoinResult, shards: list[Shard], explain: Callable[[Asked], list],
                     orphans: Callable[[Asked], list[ShardResult]], path_of=None) -> ShardResult:
    """``object_missing`` and ``object_orphan`` findings of a join, and its counters.

    ``explain`` runs :meth:`explain_shard` for each maps shard asked, ``orphans``
    :meth:`orphans_shard` for each blocks shard asked; both return their results in
    the order asked."""
    missing = group(join.missing, "maps", shards, needed_only=True)
    held = group(join.orphans, "blocks", shards, needed_only=False)
    out = ShardResult()
    out.findings += merge_missing(explain(missing), path_of)
    out = out.merge(ShardResult.merge_all(orphans(held)))
    missing_keys = {bytes(r[:refjoin.KEY]) for _, recs in missing for r in refjoin._iter(recs, WIDTH)}
    extra = {"referenced_objects": join.referenced, "missing_objects": len(missing_keys),
             # the largest record set one join partition held: this run's per-node index
             "index_bytes": max(join.partition_bytes, default=0)}
    out.counters.update({f"refs.{k}": v for k, v in extra.items() if v})
    return out


def local_references(backend, jobs: int, progress=None, per_store: int = 1) -> ShardResult:
    """The reference stage in this process, one shard after the other (``per_store`` of each store:
    more when the reference index would not fit its share of ``--memory``, verify/ops/check.py).

    Sequential on purpose: each pass is parallel inside (``jobs`` threads, or the
    aio ops in flight) and runs on this thread, so Ctrl-C stops it between work units
    (verify/native/nativejob.py). The join holds both sides' records (24 bytes an object)
    at once up to its share of ``--memory``, past it key ranges in the spill dir
    (:class:`verify.native.refjoin.Spool`); ``check --dask`` spreads it over the workers instead."""
    shards = backend.shards(per_store)
    out = ShardResult(findings=FindingSet())  # each shard's findings within the budget as it ends
    spool = refjoin.Spool(WIDTH, current())
    for shard in shards:
        result, recs = backend.check_shard(shard, jobs, locator(shard))
        out.absorb(result)
        n = len(recs) // WIDTH
        spool.add(sides_of(shard, recs))
        del recs
        if progress is not None:
            progress(n)
    join = spool.join()
    del spool
    found = findings_of_join(
        join, shards,
        lambda asked: [backend.explain_shard(s, jobs, recs, WIDTH) for s, recs in asked],
        lambda asked: [backend.orphans_shard(s, jobs, recs, WIDTH) for s, recs in asked],
        backend.object_path)
    return out.absorb(found)
