"""The reference and data stages of ``archverify check`` on RADOS pools.

The rules are filed's (verify/native/_refsets.pyx), minus placement: an object is stored
when it is in the blocks pool (same namespace). Entries are judged and fingerprinted
by :class:`verify.native._refindex.ReferenceIndex`; the names of each page and the bytes of each
window are decided by the same native rules, a batch at a time (``verify.native._rulebatch``
``map_candidates``, ``classify_heads``, ``stored_split``, ``data_sample``,
``content_mismatches``); this module lists the pools page by page
and reads objects whole with aio, a bounded window of them in flight
(``verify.native._radosread.read_whole``, through :class:`~verify.backends.rados.io.Pool`; python-rados with a thread pool where the extension
is not built).

Passes, as on filed: the maps (every entry of every map; after a C scan stage from the
header reads it kept, ``RadosBackend.take_heads``, so that no header is read twice); the blocks pool (marks
what is stored, reports orphans); only if something is missing, the maps again to
name the entries that point at it. ``verify_data`` reads every (sampled) 64-hex
object of the blocks pool and hashes it.

For ``check --dask`` the same passes run one shard at a time: a shard is a range of
256 buckets of a name's crc32 (as the python-rados scan's shards), its join records
go to :mod:`verify.native.refjoin`. The entries an ``object_missing`` names are the first
few in (bucket, listing order) of their map, so that the first few of the shards
taken in order are those of one local walk.
"""

from __future__ import annotations

import bisect
import errno as E
import itertools
import queue
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

from verify.core import formats as F
from verify.native import nativejob, refjoin
from verify.core import signals
from verify.core.errors import StoreError
from verify.core.findings import Finding, escape_name
from verify.core.findingset import FindingSet
from ..references import missing_findings
from verify.core.summary import ShardResult
from ..base import ProgressFn, Ref, Shard, Window, strerror
from .io import BUDGET, Pool, bucket

DATA_WINDOW = 16  # Pithos blocks (4 MiB each) in flight while verifying data
DATA_FIRST = F.BLOCK_SIZE_4M + 1  # a Pithos block is read in one round trip, without a stat
HEAD_FIRST = 4096  # v2 headers (512 bytes with direct I/O) and small v0/v1 maps in one round trip
PIPE = 16  # a window of map-data prefix reads (or of kept headers) is this many times --inflight: the reads
# go through with --inflight in flight, the next started as the oldest completes, so the waits of one
# window's last few reads are paid once per PIPE windows


def _chunks(seq: list, n: int) -> Iterator[list]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def _rules():
    """verify.native._rulebatch: the store rules as batches."""
    return nativejob.compiled("_rulebatch")


def _load_index():
    """verify.native._refindex: the reference index the backend feeds."""
    return nativejob.compiled("_refindex").ReferenceIndex()


def _listing_failed(pool: Pool, err: int) -> Finding:
    return Finding("unreadable", pool.store, pool.pool, None, f"listing of pool {pool.pool!r} stopped: {strerror(err)}")


class _MapPass:
    """One walk over every map of the maps pool, feeding the index (``explain``: collecting refs).

    Header objects are read a window at a time; the map-data objects of all the v2
    maps of one window are then read together, a window at a time under a byte
    budget, and fed map by map in entry order (the index counts each map once only
    when its chunks come one after another)."""

    def __init__(self, maps: Pool, idx, explain: bool, progress: ProgressFn | None, heads=None):
        self.maps, self.idx, self.explain, self.progress = maps, idx, explain, progress
        self.heads = heads  # (names, first bytes, complete) the scan read of every candidate, or None: list and read
        self.findings: list[Finding] = []
        self.refs = _FirstRefs()
        self.counters: Counter = Counter()
        self.seq = 0  # listing position of the next candidate
        self.rank: dict[bytes, tuple[int, int]] = {}  # candidates listed but not yet read: (bucket, position)

    def _finding(self, kind: str, name: bytes, detail: str, err: int = 0) -> None:
        if self.explain:
            return  # the first pass reported it
        if kind == "unreadable":
            detail = f"{detail}: {strerror(err)}"
        self.findings.append(Finding(kind, "maps", escape_name(name), None, detail))

    def _feed(self, got, m: "_Map") -> None:
        if self.explain:
            for n, i in got:
                self.refs.add(m.rank, n, m.name, i)
        else:
            nbad, first = got
            if nbad and not m.nbad:
                m.first = first
            m.nbad += nbad

    def _candidates(self) -> Iterator[tuple[bytes, bytes, int]]:
        rules = _rules()
        for page in self.maps.pages():
            if self.progress is not None:
                self.progress(len(page))
            # every plain name is a map candidate, as the scan counts it: radosd has no shortest
            # name and no encoding (filed's 6-byte minimum is filed's, its scan reports those)
            for n in rules.map_candidates(page):
                if self.explain:
                    self.rank[n] = (bucket(n), self.seq)
                    self.seq += 1
                yield n, n, F.HEADER_READ

    def run(self) -> None:
        try:
            # the next window of headers is listed and read while this one's map-data is
            classify = _rules().classify_heads
            for group in _ahead(self._head_groups()):
                infos = classify([g[0] for g in group], [g[1] for g in group])
                v2 = [m for m in (self._one(name, data, err, info) for (name, data, err), info in zip(group, infos))
                      if m is not None]
                self._mapdata(v2)
        except OSError as e:
            if not self.explain:
                self.findings.append(_listing_failed(self.maps, e.errno))

    def _head_groups(self) -> Iterator[list]:
        if self.heads is not None:
            yield from self._kept_groups()
            return
        heads = self.maps.stream(self._candidates(), first=HEAD_FIRST)
        while True:
            group = list(itertools.islice(heads, self.maps.window))
            if not group:
                return
            self.counters["header_reads"] += len(group)
            yield group

    def _kept_groups(self) -> Iterator[list]:
        """The scan's header reads a window at a time, as (name, data, errno): a v2 header or a whole
        object as read; only a v0 or v1 map longer than the scan's read is read again, whole."""
        names, heads, complete = self.heads
        classify = _rules().classify_heads
        w = self.maps.window * PIPE
        for lo in range(0, len(names), w):
            signals.checkpoint()
            nm, hd = names[lo:lo + w], heads[lo:lo + w]
            if self.progress is not None:
                self.progress(len(nm))
            if self.explain:
                for n in nm:
                    self.rank[n] = (bucket(n), self.seq)
                    self.seq += 1
            group = [(n, h, 0) for n, h in zip(nm, hd)]
            again = [i for i, info in enumerate(classify(nm, hd)) if info[0] != "v2" and not complete[lo + i]]
            if again:
                self.counters["header_reads"] += len(again)
                for i, data, err in self.maps.stream(((i, nm[i], F.HEADER_READ) for i in again), first=HEAD_FIRST):
                    group[i] = (nm[i], data, err)
            yield group

    def _one(self, name: bytes, data: bytes | None, err: int, info) -> _Map | None:
        """A header object read whole, classified (``classify_heads``): v0 and v1 maps fed at once;
        a v2 map returned for its map-data."""
        if data is None:
            self.rank.pop(name, None)
            if err != E.ENOENT:  # gone since the listing: a race, not an error
                self._finding("unreadable", name, "read", err)
            return None
        cls, size, blocksize, flags = info
        m = _Map(name, self.rank.pop(name, _NO_RANK) if self.explain else _NO_RANK, _MAP_VERSION[cls])
        if cls == "v0":
            self.counters["maps_v0"] += 1
            self._feed(self.idx.add_v0(name, data), m)
        elif cls == "v1":
            self.counters["maps_v1"] += 1
            self._feed(self.idx.add_v1(name, data, F.nr_objs(size)), m)
        elif cls == "v2":
            c = self.counters
            c["maps_v2"] += 1
            if flags & F.MF_DELETED:
                m.deleted = True
                c["maps_deleted"] += 1
            m.nr = nr = F.nr_objs(size, blocksize)
            m.per = per = blocksize // F.V2_ENTRY_LEN
            m.nb = -(-nr // per)
            c["map_bytes"] += len(data)
            return m
        else:
            return None  # not a map, or a corrupt header: the scan reports it
        self.counters["map_bytes"] += len(data)
        self._finish(m)
        return None

    def _finish(self, m: _Map) -> None:
        if m.nbad and not m.deleted and not self.explain:
            more = f"; {m.nbad} problems in all" if m.nbad > 1 else ""
            self.findings.append(Finding("map_corrupt", "maps", escape_name(m.name), None, f"{m.first}{more}",
                                         m.version))

    def _mapdata(self, maps: list[_Map]) -> None:
        """The map-data of these v2 maps, fed map by map: maps of one map-data object (nearly all:
        4 MiB blocks make one hold 400 GB of volume) in a batch, the others block by block."""
        self._single([m for m in maps if m.nb == 1])
        self._blocks([m for m in maps if m.nb != 1])

    def _single(self, maps: list[_Map]) -> None:
        lens = [m.nr * F.V2_ENTRY_LEN for m in maps]
        names = [F.mapdata_raw(m.name, 0) for m in maps]
        add, feed, finish = self.idx.add_v2, self._feed, self._finish
        lo, most = 0, self.maps.window * PIPE
        while lo < len(maps):
            hi, budget = lo, 0
            while hi < len(maps) and hi - lo < most and budget < BUDGET:
                budget += lens[hi]
                hi += 1
            nbytes = 0
            for m, n, (data, err) in zip(maps[lo:hi], lens[lo:hi], self.maps.prefixes(names[lo:hi], lens[lo:hi])):
                if data is None:
                    self._missing(m, 0, err)
                else:
                    nbytes += len(data)
                    feed(add(m.name, data[:n], 0, m.nr, m.deleted), m)  # python-rados reads whole objects
                finish(m)
            self.counters["map_bytes"] += nbytes
            lo = hi

    def _missing(self, m: _Map, b: int, err: int) -> None:
        """Map-data block ``b`` of ``m`` could not be read: gone (the map stops there), or unreadable."""
        md = F.mapdata_name(m.name.decode("utf-8", "surrogateescape"), b)
        if err == E.ENOENT:
            m.stopped = True
            # the scan reports it for maps under valid names; the others are ours to report
            if not m.deleted and not F.is_valid_volume_name(md[:-17]):
                self._finding("map_data_missing", m.name, f"map-data {md} missing (block {b} of {m.nb})")
        elif not m.deleted:
            self._finding("unreadable", m.name, f"read of map-data {md}", err)

    def _blocks(self, maps: list[_Map]) -> None:
        entry = F.V2_ENTRY_LEN

        def wanted():
            for k, m in enumerate(maps):
                per, nr, name = m.per, m.nr, m.name
                for b in range(m.nb):
                    if m.stopped:  # a bogus size stops at the first missing map-data object
                        break
                    cnt = min(per, nr - b * per)
                    yield (k, b, cnt), F.mapdata_raw(name, b), cnt * entry

        done = 0
        for (k, b, cnt), data, err in self.maps.stream(wanted(), prefix=True, window=self.maps.window * PIPE):
            m = maps[k]
            while done < k:  # every map before this one has had all its map-data
                self._finish(maps[done])
                done += 1
            if m.stopped:
                continue
            if data is None:
                self._missing(m, b, err)
                continue
            self.counters["map_bytes"] += len(data)
            self._feed(self.idx.add_v2(m.name, data[:cnt * F.V2_ENTRY_LEN], b * m.per, cnt, m.deleted), m)
        for m in maps[done:]:
            self._finish(m)


_NO_RANK = (0, 0)
_MAP_VERSION = {c.value: c.map_version for c in F.HeaderClass}  # classify_heads' class -> a finding's version


class _Map:
    """One map being read; the defaults are class attributes (tens of thousands are made a second)."""

    rank: tuple[int, int]  # (bucket, listing position): the order the first entries are chosen in
    deleted = False
    version = 2  # of its header
    nr = 0
    per = 1
    nb = 0
    nbad = 0
    first = ""
    stopped = False

    def __init__(self, name: bytes, rank: tuple[int, int] = _NO_RANK, version: int = 2):
        self.name, self.rank, self.version = name, rank, version


class _FirstRefs:
    """The first few entries naming each missing object, by their map's rank, then entry order.

    Each ``add_*`` call of the index returns a map's first few per object (see
    ``ReferenceIndex._unshow``); the few kept here per object are the first over all
    maps in (bucket, listing order), whatever order the maps were read in."""

    def __init__(self):
        self.kept: dict[bytes, list[tuple]] = {}
        self.arrival = 0

    def add(self, rank: tuple[int, int], name: bytes, map_name: bytes, index: int) -> None:
        kept = self.kept.setdefault(name, [])
        self.arrival += 1
        key = (rank, self.arrival, map_name, index)
        if len(kept) < _refs_shown() or key < kept[-1]:
            bisect.insort(kept, key)
            del kept[_refs_shown():]

    def ordered(self) -> list[Ref]:
        """All kept entries in rank order: a shard's part for verify.backends.shard_join.merge_missing."""
        flat = sorted((key, name) for name, kept in self.kept.items() for key in kept)
        return [(name, key[2], key[3]) for key, name in flat]


def _refs_shown() -> int:
    from verify.native._refsets import REFS_SHOWN

    return REFS_SHOWN


def _ahead(gen: Iterator, depth: int = 1) -> Iterator:
    """``gen``'s items, produced in a thread up to ``depth`` ahead of the consumer.

    Both sides spend their time in librados calls that release the GIL, so the reads
    of one window overlap the reads of the next; exceptions reach the consumer."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(x) -> bool:
        while not stop.is_set():
            try:
                q.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False  # the consumer has gone

    def produce():
        try:
            for item in gen:
                if not put((item, None)):
                    return
            put((end, None))
        except BaseException as e:  # re-raised in the consumer's thread
            put((end, e))

    t = threading.Thread(target=produce, name="rados-check-ahead", daemon=True)
    t.start()
    try:
        while True:
            item, err = q.get()
            if item is end:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        stop.set()
        t.join()


def _hash_orphans(blocks: Pool, hashes: list[tuple[bytes, bytes]], counters: Counter) -> list[Finding]:
    """``NAME_hash`` objects whose ``NAME`` is not in the pool (a stat of each NAME, no read);
    ``hashes``: (NAME_hash, NAME) as ``stored_split`` gives them."""
    out = []
    counters["hash_files"] += len(hashes)
    for batch in _chunks(hashes, blocks.window):
        # maxlen 0: a stat only (EFBIG = there, with content)
        for (n, target), (_data, err) in zip(batch, blocks.read([t for _, t in batch], 0)):
            if err == E.ENOENT:
                counters["orphans"] += 1
                obj = escape_name(target)
                out.append(Finding("object_orphan", "blocks", escape_name(n), None,
                                   f"hash file of {obj}, which is not in the store"))
            elif err not in (0, E.EFBIG):
                out.append(Finding("unreadable", "blocks", escape_name(target), None, f"stat: {strerror(err)}"))
    return out


def check_references(backend, jobs: int, progress: ProgressFn | None = None) -> ShardResult:
    """Every map's entries against every object of the blocks pool: object_missing, object_orphan, map_corrupt."""
    _need_blocks(backend)
    maps, blocks = Pool(backend, "maps"), Pool(backend, "blocks")
    idx = _load_index()
    res = ShardResult(findings=FindingSet())  # orphans may be most of a pool: within --memory
    heads = backend.take_heads() if hasattr(backend, "take_heads") else None
    first = _MapPass(maps, idx, False, progress, heads)
    first.run()
    res.findings += first.findings
    counters = first.counters
    counters.update(idx.counters())  # now: the explaining pass below counts the same entries again
    unique = idx.freeze()
    # the blocks pool: stored objects mark their fingerprints; orphans are reported
    try:
        for page in blocks.pages():
            if progress is not None:
                progress(len(page))
            objs, hashes = _stored(page)
            counters["stored_objects"] += len(objs)
            for n in idx.mark_stored(objs):
                counters["orphans"] += 1
                res.findings.append(Finding("object_orphan", "blocks", escape_name(n), None, "referenced by no map"))
            res.findings += _hash_orphans(blocks, hashes, counters)
    except OSError as e:
        res.findings.append(_listing_failed(blocks, e.errno))
    n_missing = idx.missing_total()
    if n_missing:
        idx.start_explain()
        again = _MapPass(maps, idx, True, progress, heads)
        again.run()
        res.findings += missing_findings(again.refs.ordered(), idx.missing_counts, path_of=None)
    counters.update(referenced_objects=unique, missing_objects=n_missing, index_bytes=idx.memory())
    res.counters = _ref_counters(counters)
    return res


def _stored(page: list[bytes]) -> tuple[list[bytes], list[tuple[bytes, bytes]]]:
    """A blocks page split into objects (what maps may name) and (``NAME_hash``, NAME); locks and temps dropped."""
    return _rules().stored_split(page)


def _need_blocks(backend) -> None:
    if not backend.blocks_pool:
        raise StoreError("the check needs the blocks pool too: give --blocks-pool (or a --config with [blockerb])")


def _ref_counters(c: Counter) -> Counter:
    return Counter({f"refs.{k}": v for k, v in c.items() if v and not k.startswith("data_")})


# -- one shard of a reference check whose join runs elsewhere (verify/cluster/check.py) --


def shard_fingerprints(backend, shard: Shard, locator: bytes) -> tuple[ShardResult, bytes]:
    """A maps shard: its maps read, findings decided here, the referenced fingerprints exported.
    A blocks shard: its stored objects' fingerprints (flag 0), ``NAME_hash`` orphans decided here."""
    res = ShardResult()
    if shard.store == "maps":
        idx = _load_index()
        p = _MapPass(Pool(backend, "maps", shard), idx, False, None)
        p.run()
        res.findings += p.findings
        c = p.counters
        c.update(idx.counters())
        idx.freeze()
        res.counters = _ref_counters(c)
        return res, bytes(idx.export(locator))
    _need_blocks(backend)
    blocks = Pool(backend, "blocks", shard)
    c = Counter()
    recs = bytearray()
    stored = locator + b"\0"
    try:
        for page in blocks.pages():
            objs, hashes = _stored(page)
            c["stored_objects"] += len(objs)
            recs += refjoin.records(objs, itertools.repeat(stored, len(objs)))
            res.findings += _hash_orphans(blocks, hashes, c)
    except OSError as e:
        res.findings.append(_listing_failed(blocks, e.errno))
    res.counters = _ref_counters(c)
    return res, bytes(recs)


def shard_missing(backend, shard: Shard, records: bytes,
                  width: int) -> tuple[list[Ref], dict[bytes, tuple[int, int]]]:
    """A maps shard again, for the missing keys in ``records``: the first entries naming each
    (in rank order), and per name (maps, entries) of this shard naming it."""
    idx = _load_index()
    idx.explain(records, width)
    p = _MapPass(Pool(backend, "maps", shard), idx, True, None)
    p.run()
    refs = p.refs.ordered()
    return refs, {n: idx.missing_counts(n) for n in {r[0] for r in refs}}


def shard_orphans(backend, shard: Shard, records: bytes, width: int) -> ShardResult:
    """A blocks shard again: ``object_orphan`` for each stored object whose key is in ``records``."""
    keys = {bytes(records[i:i + refjoin.KEY]) for i in range(0, len(records), width)}
    blocks = Pool(backend, "blocks", shard)
    res = ShardResult()
    c = Counter()
    try:
        for page in blocks.pages():
            objs = _stored(page)[0]
            fps = _rules().fingerprints(objs)
            for i, n in enumerate(objs):
                if fps[refjoin.KEY * i:refjoin.KEY * (i + 1)] in keys:
                    c["orphans"] += 1
                    res.findings.append(Finding("object_orphan", "blocks", escape_name(n), None, "referenced by no map"))
    except OSError as e:
        res.findings.append(_listing_failed(blocks, e.errno))
    res.counters = _ref_counters(c)
    return res


def verify_data(backend, jobs: int, window: Window, progress: ProgressFn | None = None,
                shard: Shard | None = None) -> ShardResult:
    """Content of every 64-hex object of the blocks pool (of one shard of it; in the sample window)
    against its name."""
    _need_blocks(backend)
    blocks = Pool(backend, "blocks", shard)
    res = ShardResult()
    c: Counter = Counter()
    win = max(1, min(blocks.window, DATA_WINDOW))
    rules = _rules()
    start, width, everything = window
    with ThreadPoolExecutor(max(1, jobs)) as hasher:  # content_mismatches hashes without the GIL
        try:
            for page in blocks.pages():
                todo, unsampled = rules.data_sample(page, start, width, everything)
                c["unsampled"] += unsampled
                for batch in _chunks(todo, win):
                    got = blocks.read(batch, 1 << 40, DATA_FIRST)
                    datas = [d for d, _ in got]
                    bad = dict(_mismatches(hasher, rules, batch, datas, jobs))
                    for i, (n, (data, err)) in enumerate(zip(batch, got)):
                        if data is None:
                            if err != E.ENOENT:  # deleted since the listing: a race, not an error
                                res.findings.append(Finding("unreadable", "blocks", escape_name(n), None,
                                                            f"read: {strerror(err)}"))
                            continue
                        c["objects"] += 1
                        c["bytes"] += len(data)
                        if i in bad:
                            res.findings.append(Finding("object_content_mismatch", "blocks", escape_name(n), None,
                                                        f"content ({len(data)} bytes) hashes to {bad[i]}"))
                if progress is not None:
                    progress(len(page))
        except OSError as e:
            res.findings.append(_listing_failed(blocks, e.errno))
    res.counters = Counter({f"data.{k}": v for k, v in c.items() if v})
    return res


def _mismatches(hasher: ThreadPoolExecutor, rules, names: list[bytes], datas: list, jobs: int):
    """``content_mismatches`` of one window, its objects split over ``jobs`` threads: (position, digest)."""
    step = max(1, -(-len(names) // max(1, jobs)))
    parts = [(k, names[k:k + step], datas[k:k + step]) for k in range(0, len(names), step)]
    for k, got in zip((p[0] for p in parts), hasher.map(lambda p: rules.content_mismatches(p[1], p[2]), parts)):
        for i, h in got:
            yield k + i, h
