"""The python-rados fallback of the RADOS scan: same rules, one synchronous op per worker.

Where the librados extension is not built (no librados-dev), or with
ARCHVERIFY_RADOS_ENGINE=python (the tests hold the two engines against each other),
:class:`~verify.backends.rados.backend.RadosBackend` scans through here: a python-rados listing
filtered to the shard by a hash of the name, and a thread pool of :func:`py_check`, which
makes the I/O of verify/native/_radoscan.pyx and asks verdict.map_verdict, the twin of its
verdict. Slow, but the same findings.
"""

from __future__ import annotations

import errno as E
import threading
import zlib
from collections import Counter

from verify.core import formats as F
from verify.core import verdict as V
from verify.native import limits, nativejob
from verify.core.findings import Finding, escape_name
from verify.core.summary import Lock, ShardResult
from ..base import ProgressFn, Shard, strerror
from .io import errno_of, list_failure, listed_names, listing_error, retry, stalled


def py_probe(io) -> int:
    import rados

    try:
        for _ in listed_names(io):
            break
    except rados.Error as e:
        return abs(getattr(e, "errno", None) or E.EIO)
    return listing_error(io)  # an empty listing may be a refused one


def py_check(io, raw: bytes, maps: bool, counters: Counter, findings: list, locks: list,
             empty_locks: bool = False) -> None:
    """One listed object, as _radoscan.pyx checks it: the same I/O, the verdict of verdict.map_verdict
    (the twin of the native loops' av_map_verdict); a lock without owner only counted unless ``empty_locks``."""
    import rados

    name = raw.decode("utf-8", "surrogateescape")
    counters["files"] += 1
    fault = F.name_fault(raw, 0)
    if fault is not F.NameFault.FINE:  # in either pool: filed's rule, without its length floor
        findings.append(("stray_entry", raw, F.NAME_FAULT_TEXT[fault], None))
        return
    nc = F.name_class(raw).value
    if nc in ("hash", "temp"):
        counters["hash_files" if nc == "hash" else "temp_files"] += 1
        return
    if not maps:
        if nc == "lock":
            counters["locks"] += 1
        return
    if nc == "mapdata":
        counters["mapdata"] += 1
        return

    def unreadable(e, what: str, target: str | None = None):
        detail = what + (f" {target}" if target else "")
        if errno_of(e) == E.ETIMEDOUT:
            raise _Stalled(detail, raw)
        findings.append(("unreadable", raw, f"{detail}: {strerror(errno_of(e))}", None))

    try:
        counters["reads"] += 1
        if nc == "lock":
            owner = retry(lambda: io.read(name, 255, 0), counters)
            counters["locks"] += 1
            owner = owner.split(b"\0", 1)[0]
            if owner or empty_locks:
                locks.append((raw, owner))
            return
        head = retry(lambda: io.read(name, F.SCAN_HEADER_READ, 0), counters)
    except rados.ObjectNotFound:
        counters["vanished"] += 1
        return
    except rados.Error as e:
        unreadable(e, "read of lock" if nc == "lock" else "read")
        return
    counters["header_bytes"] += len(head)
    # a read shorter than asked is the whole object; otherwise it may be longer
    facts = V.map_facts(head, len(head), len(head) < F.SCAN_HEADER_READ, raw)
    kind, detail = V.map_verdict(facts)
    if kind is V.MapStep.NEED_SIZE:
        try:
            counters["probes"] += 1
            size = retry(lambda: io.stat(name), counters)[0]
        except rados.ObjectNotFound:
            counters["vanished"] += 1
            return
        except rados.Error as e:
            unreadable(e, "stat")
            return
        facts = V.map_facts(head, size, True, raw)
        kind, detail = V.map_verdict(facts)
    counters[_CLASS_COUNTER.get(facts.header.cls, "corrupt")] += 1
    while isinstance(kind, V.MapStep):
        if kind is V.MapStep.NEED_UPGRADED:
            target = name[len(F.ARCHIP_PREFIX):]
            try:
                counters["probes"] += 1
                other = retry(lambda: io.read(target, 8, 0), counters)
            except rados.ObjectNotFound:
                other = b""
            except rados.Error as e:
                unreadable(e, "probe of", target)
                return
            facts.upgraded = int(F.is_v2_header(other))
        elif kind is V.MapStep.NEED_MAPDATA:
            facts.missing = facts.nb
            for blk in range(facts.nb):
                md = F.mapdata_name(name, blk)
                try:
                    counters["probes"] += 1
                    retry(lambda: io.stat(md), counters)
                except rados.ObjectNotFound:
                    facts.missing = blk
                    break
                except rados.Error as e:
                    unreadable(e, "stat of map-data", md)
                    return
        else:
            raise AssertionError(f"{kind} asked twice")
        kind, detail = V.map_verdict(facts)
    if kind is not None:
        version = None if kind == "not_a_map" else facts.header.cls.map_version  # no map, no version
        findings.append((kind, raw, escape_name(V.map_detail(detail, facts, raw)), version))


class _Stalled(Exception):
    """An op of the fallback timed out: (what, object name); the scan stops (rados_io.stalled)."""


_CLASS_COUNTER = {F.HeaderClass.V0: "v0", F.HeaderClass.V1: "v1", F.HeaderClass.V2: "v2",
                  F.HeaderClass.NOT_MAP: "other"}


def py_scan(io, shard: Shard, pool: str, inflight: int, progress: ProgressFn | None,
             names: list | None = None, op_timeout: float = 30.0, empty_locks: bool = False) -> ShardResult:
    """The fallback: python-rados listing (filtered to the shard by a hash of the name) and
    a thread pool of synchronous checks. Slow, but the same rules and findings."""
    import rados

    maps = shard.store == "maps"
    counters: Counter = Counter()
    findings: list = []
    locks: list = []
    lock = threading.Lock()
    stop = threading.Event()
    list_err = 0
    timed_out: list[_Stalled] = []

    def listed():
        nonlocal list_err
        if names is not None:
            yield from (n if isinstance(n, bytes) else n.encode() for n in names)
            return
        whole = shard.lo == 0 and shard.hi == shard.total
        try:
            for raw in listed_names(io):
                if stop.is_set():
                    return
                if whole or shard.lo <= zlib.crc32(raw) % shard.total < shard.hi:
                    yield raw
        except rados.Error as e:
            list_err = errno_of(e)
            return
        list_err = listing_error(io)  # an op that failed ended the listing early

    def one(raw: bytes):
        if stop.is_set():
            return
        limits.take(1)  # --objects-per-second, from the one bucket the native loops share
        c: Counter = Counter()
        f: list = []
        lk: list = []
        try:
            py_check(io, raw, maps, c, f, lk, empty_locks)
        except _Stalled as e:
            timed_out.append(e)
            stop.set()  # nothing new is started; the reads in flight end within the op timeout
            return
        with lock:
            counters.update(c)
            findings.extend(f)
            locks.extend(lk)
        if progress is not None:
            progress(1)

    def work():
        from concurrent.futures import ThreadPoolExecutor  # the fallback's only: the C scan starts faster

        with ThreadPoolExecutor(max(1, min(inflight, 32))) as ex:
            for _ in ex.map(one, listed()):
                pass

    # the main thread only waits, so that a signal stops the workers between two objects (verify/native/nativejob.py)
    nativejob.run(work, stop.set, name="rados-scan-py")
    if list_err == E.ETIMEDOUT:
        raise stalled(pool, op_timeout, "listing")
    if timed_out:
        raise stalled(pool, op_timeout, *timed_out[0].args)
    res = ShardResult()
    res.counters = Counter({f"{shard.store}.{k}": v for k, v in counters.items() if v})
    for kind, raw, detail, version in findings:
        res.findings.append(Finding(kind, shard.store, escape_name(raw), None, detail, version))
    for raw, owner in locks:
        res.locks.append(Lock(shard.store, escape_name(raw), escape_name(owner)))
    if list_err:
        res.findings.append(list_failure(shard, pool, list_err))
    return res
