"""The reference and data stages of ``archverify check`` on filed stores.

The passes themselves are ``verify.native._check.FiledRefCheck`` (GIL-free, parallel);
this module runs them in order, feeds a progress bar, and turns their records into
a :class:`~verify.core.summary.ShardResult`.
"""

from __future__ import annotations

from collections import Counter

from verify.native import nativejob
from verify.core.errors import StoreError
from verify.core.findingset import FindingSet
from ..references import missing_findings, record_findings
from verify.core.summary import ShardResult
from .. import ProgressFn


SLICE = 16  # top-level dirs (shard buckets) of the blocks store walked per orphan pass
KEPT_SLICE = 65536  # kept paths of the blocks store marked per orphan pass


def _load():
    return nativejob.compiled("_check")


def _pass(fn, rc, progress: ProgressFn | None, root: str):
    """Runs one pass in a thread (it releases the GIL) while feeding the progress bar.

    Interrupted, the pass is stopped and joined before the interruption goes on (verify/native/nativejob.py)."""
    try:
        return nativejob.run(fn, rc.stop, rc.progress, progress, name="check-pass")
    except OSError as e:
        raise StoreError(f"{root}: cannot open store dir: {e.strerror}") from None


def _run(fn, rc, progress: ProgressFn | None, root: str) -> list[tuple]:
    """:func:`_pass`, then its records."""
    _pass(fn, rc, progress, root)
    return rc.take_records()


def _findings(store: str, records) -> list:
    return record_findings(store, [(k, n, p, d, e, aux if k == "map_corrupt" else None)
                                   for k, n, p, d, e, aux in records if k != "ref"])


def _found(into: FindingSet, store: str, fn, rc, progress: ProgressFn | None, root: str) -> None:
    """:func:`_pass`, its findings added to ``into`` a batch at a time (a pass may find millions)."""
    _pass(fn, rc, progress, root)
    for batch in rc.take_record_batches():
        into.add(_findings(store, batch))


def first_refs(records) -> list[tuple[bytes, bytes, int]]:
    """(entry name, map name, index) of the first entries naming each missing object, in walk order.

    Each thread recorded its own first few, tagged with the top-level dir (in sorted
    order) it was walking; sorted by that dir (stably: a dir is one thread's, in its
    order), the first few per object are those a one-thread walk records, so the
    ``object_missing`` detail does not depend on ``-j`` or on thread timing.
    """
    refs = sorted(((unit, n, p, aux) for k, n, p, _d, unit, aux in records if k == "ref"), key=lambda r: r[0])
    kept: Counter = Counter()
    out = []
    for _unit, name, map_name, index in refs:
        if kept[name] < nativejob.compiled("_refsets").REFS_SHOWN:
            kept[name] += 1
            out.append((name, map_name, index))
    return out


def unkept_slices(kept) -> list[tuple[int, int]]:
    """The ranges of top-level dir buckets, at most SLICE wide, that no kept shard covers."""
    covered = bytearray(256)
    for lo, hi, _paths in kept:
        covered[lo:hi] = b"\1" * (hi - lo)
    out = []
    for lo in range(0, 256, SLICE):
        start = None
        for i in range(lo, lo + SLICE + 1):
            if i < lo + SLICE and not covered[i]:
                start = i if start is None else start
            elif start is not None:
                out.append((start, i))
                start = None
    return out


def check_references(maps_dir: str, blocks_dir: str, jobs: int, progress: ProgressFn | None = None,
                     kept: list[tuple[int, int, bytes]] | None = None) -> ShardResult:
    """Every map's entries against every stored object: object_missing, object_orphan, map_corrupt.

    ``kept``: (lo, hi, paths) of the blocks shards whose walk the scan kept (FiledShard.kept): their
    files are marked from the paths, the rest of the blocks store is walked."""
    rc = _load().FiledRefCheck(maps_dir, blocks_dir, jobs)
    res = ShardResult(findings=FindingSet())
    _found(res.findings, "maps", rc.read_maps, rc, progress, maps_dir)
    unique = rc.freeze()
    # a slice at a time: the pass holds the C records of one slice (orphans may be most of a
    # store), which go into the finding set before the next slice is marked or walked
    for _lo, _hi, paths in kept or ():
        off = 0
        while off < len(paths):
            off = _pass(lambda off=off, paths=paths: rc.mark_kept(paths, off, KEPT_SLICE), rc, progress, blocks_dir)
            for batch in rc.take_record_batches():
                res.findings.add(_findings("blocks", batch))
    for lo, hi in unkept_slices(kept or ()):
        rc.set_range(lo, hi)
        _found(res.findings, "blocks", rc.mark_stored, rc, progress, blocks_dir)
    rc.set_range(0, 256)
    n_missing = rc.missing_total()
    if n_missing:
        recs = _run(rc.explain_missing, rc, progress, maps_dir)
        res.findings += missing_findings(first_refs(recs), rc.missing_counts)
    c = rc.counters()
    c.update(referenced_objects=unique, missing_objects=n_missing, index_bytes=rc.memory())
    res.counters = Counter({f"refs.{k}": v for k, v in c.items() if v and not k.startswith("data_")})
    return res


def verify_data(blocks_dir: str, jobs: int, window: tuple[int, int, bool], progress: ProgressFn | None = None,
                lo: int = 0, hi: int = 256) -> ShardResult:
    """Content of every 64-hex object (in the sample window, in top-level dirs [lo, hi)) against its name."""
    rc = _load().FiledRefCheck(blocks_dir, blocks_dir, jobs, lo, hi)
    start, width, everything = window
    res = ShardResult(findings=FindingSet())
    _found(res.findings, "blocks", lambda: rc.verify_data(start, width, everything), rc, progress, blocks_dir)
    c = rc.counters()
    res.counters = Counter({f"data.{k[5:]}": v for k, v in c.items() if v and k.startswith("data_")})
    return res


# -- one shard of a reference check whose join runs elsewhere (verify/cluster/check.py) --


def _ref_counters(rc, only: tuple[str, ...] | None = None) -> Counter:
    c = rc.counters()
    return Counter({f"refs.{k}": v for k, v in c.items()
                    if v and not k.startswith("data_") and (only is None or k in only)})


def shard_fingerprints(root: str, store: str, lo: int, hi: int, jobs: int,
                       locator: bytes) -> tuple[ShardResult, bytes]:
    """Pass 1 (maps) or 3 (blocks) on top-level dirs [lo, hi): findings decided here, and join records.

    A maps shard gives one record per object its entries name (flag byte 1 if an entry
    needs it); a blocks shard one per object stored where v0.4 reads it (flag 0).
    """
    rc = _load().FiledRefCheck(root, root, jobs, lo, hi)  # ``root``: the store dir of the shard
    res = ShardResult()
    if store == "maps":
        res.findings += _findings("maps", _run(rc.read_maps, rc, None, root))
        rc.freeze()
    else:
        res.findings += _findings("blocks", _run(rc.list_stored, rc, None, root))
    res.counters = _ref_counters(rc)
    return res, bytes(rc.export(locator))


def shard_missing(maps_dir: str, lo: int, hi: int, jobs: int, records: bytes,
                  width: int) -> tuple[list[tuple[bytes, bytes, int]], dict[bytes, tuple[int, int]]]:
    """Pass 4 on one maps shard for the missing keys in ``records``: the first entries naming each
    (entry name, map name, index), and per name (maps, entries) of this shard naming it."""
    rc = _load().FiledRefCheck(maps_dir, maps_dir, jobs, lo, hi)
    recs = _run(lambda: rc.explain(records, width), rc, None, maps_dir)
    refs = first_refs(recs)
    return refs, {n: rc.missing_counts(n) for n in {r[0] for r in refs}}


def shard_orphans(blocks_dir: str, lo: int, hi: int, jobs: int, records: bytes, width: int) -> ShardResult:
    """One blocks shard again: ``object_orphan`` for each stored object whose key is in ``records``."""
    rc = _load().FiledRefCheck(blocks_dir, blocks_dir, jobs, lo, hi)
    res = ShardResult()
    res.findings += _findings("blocks", _run(lambda: rc.find_orphans(records, width), rc, None, blocks_dir))
    res.counters = _ref_counters(rc, ("orphans",))
    return res
