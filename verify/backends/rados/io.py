"""The RADOS I/O of every stage: python-rados with transient errors retried, a pool seen as
named objects, and the check's pool I/O on either engine.

The scan's and the check's fallbacks (where the librados extension is not built)
and the object I/O of :class:`~verify.backends.rados.backend.RadosBackend` (what fixes
write through) share these; :class:`Pool` is the check's listing a page at a time and
its windows of aio reads (verify/native/_rados.pyx ``Lister``, verify/native/_radosread.pyx), or
their python-rados twins. ``import rados`` happens on first use, so that a
filed-only install never needs it.
"""

from __future__ import annotations

import errno as E
import threading
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

from verify.core import signals
from verify.core.errors import StoreError
from verify.core.findings import Finding, escape_name
from ..base import BadObjectName, Shard, strerror

MAX_TRIES = 4  # as _librados.pxd: a transient error is retried MAX_TRIES - 1 times
# ETIMEDOUT is not transient: librados has resent the op on every OSD map change for the whole
# rados_osd_op_timeout (--op-timeout) already; a run that meets it stops (see stalled)
TRANSIENT = {E.EAGAIN, E.EINTR, E.EIO, E.EBUSY, E.ENOTCONN, E.ECONNRESET, E.ESHUTDOWN,
             E.ECANCELED, E.ENOMEM}


def errno_of(e) -> int:
    return abs(getattr(e, "errno", None) or E.EIO)


PROBE_NAME = "archverify.no-such-object"  # stat'ed, never written


def listing_error(ioctx) -> int:
    """python-rados' listing ends as if the pool did when an op of it fails (a timeout, caps
    without 'r'): a stat of a name no object has, after the listing, tells (ENOENT when the
    OSDs answer and allow reads, else the errno). 0 when the listing can be trusted."""
    import rados

    try:
        ioctx.stat(PROBE_NAME)
    except rados.ObjectNotFound:
        return 0
    except rados.Error as e:
        return errno_of(e)
    return 0


def stalled(pool: str, op_timeout: float, what: str, name: bytes | str | None = None) -> StoreError:
    """An op the OSDs did not answer within the op timeout: the run stops with this one line
    (a report of the rest would read as a complete one)."""
    on = f" of {escape_name(name)}" if name is not None else ""
    return StoreError(f"pool {pool!r}: the cluster did not answer a {what}{on} within {op_timeout:g}s "
                      "(--op-timeout): is every OSD up? ('ceph -s'); stopped, nothing reported")


def retry(fn, counters: Counter):
    """fn() with transient errors retried; ObjectNotFound and the final error propagate."""
    import rados

    for attempt in range(MAX_TRIES):
        try:
            return fn()
        except rados.ObjectNotFound:
            raise
        except rados.Error as e:
            if errno_of(e) not in TRANSIENT or attempt + 1 == MAX_TRIES:
                raise
            counters["retries"] += 1


RADOS_LOCK_NAME = "RadosLock"  # radosd.c: the lock it takes on NAME_lock


def _get_info_op(lock: str) -> bytes:
    """cls_lock_get_info_op, Ceph-encoded: version 1, compat 1, length, then the lock's name."""
    body = len(lock.encode()).to_bytes(4, "little") + lock.encode()
    return bytes([1, 1]) + len(body).to_bytes(4, "little") + body


def _lockers(reply: bytes) -> list[str]:
    """Who holds the lock, from a cls_lock_get_info_reply: the entity (``client.4123``) of the
    first locker, then one "?" per further locker (their records are not fixed-size)."""
    if len(reply) < 10:
        return []
    count = int.from_bytes(reply[6:10], "little")
    if not count:
        return []
    # locker_id_t: version, compat, length (6 bytes), then entity_name_t: u8 type, i64 num
    etype, num = reply[16:17], int.from_bytes(reply[17:25], "little", signed=True)
    kind = {b"\x01": "mon", b"\x02": "mds", b"\x04": "osd", b"\x08": "client", b"\x10": "mgr"}.get(etype, "?")
    return [f"{kind}.{num}"] + ["?"] * (count - 1)


def listed_names(ioctx) -> Iterator[bytes]:
    """Every object name of a python-rados listing, as bytes. python-rados decodes each name as
    strict UTF-8 and raises for one that is not, once its cursor is past it: that name is the
    error's bytes, and the listing goes on (the scan reports it as a stray entry)."""
    it = iter(ioctx.list_objects())
    while True:
        try:
            obj = next(it)
        except StopIteration:
            return
        except UnicodeDecodeError as e:
            yield bytes(e.object)
            continue
        yield obj.key.encode("utf-8", "surrogateescape")


class Listing:
    """A cursor over one pool's listing: good only in the process that opened it."""

    def __init__(self, ioctx):
        self.it: Iterator[bytes] = listed_names(ioctx)
        self.ahead: bytes | None = None


class PoolObjects:
    """One pool (and namespace) through a python-rados ioctx: the ObjectIO of a RADOS store."""

    def __init__(self, ioctx, pool: str):
        self.io, self.pool = ioctx, pool
        self.counters: Counter = Counter()

    def _fail(self, what: str, name: bytes, e) -> StoreError:
        return StoreError(f"pool {self.pool!r}, object {escape_name(name)}: {what}: {strerror(errno_of(e))}")

    @staticmethod
    def _key(name: bytes) -> str:
        if not name or b"\0" in name:
            raise BadObjectName(f"object name {escape_name(name)!r}: RADOS cannot hold it (empty or NUL)")
        try:
            return name.decode("utf-8")
        except UnicodeDecodeError:  # python-rados names objects by str only, sent as UTF-8
            raise BadObjectName(f"object name {escape_name(name)!r}: not UTF-8, which python-rados (the writer's "
                                "library) cannot name; leave it to Archipelago") from None

    def list_page(self, cursor: Listing | None, limit: int) -> tuple[list[bytes], Listing | None]:
        import rados

        cur = cursor or Listing(self.io)
        out: list[bytes] = []
        try:
            while len(out) < limit + 1:
                if cur.ahead is not None:
                    out.append(cur.ahead)
                    cur.ahead = None
                    continue
                raw = next(cur.it, None)
                if raw is None:
                    err = listing_error(self.io)
                    if err:
                        raise StoreError(f"pool {self.pool!r}: listing stopped: {strerror(err)}")
                    return out, None
                out.append(raw)
        except rados.Error as e:
            raise StoreError(f"pool {self.pool!r}: listing stopped: {strerror(errno_of(e))}") from None
        cur.ahead = out.pop()  # one past the page: there is a next page
        return out, cur

    def read(self, name: bytes, offset: int, length: int | None) -> bytes | None:
        import rados

        key = self._key(name)
        try:
            if length is None:
                length = max(0, retry(lambda: self.io.stat(key), self.counters)[0] - offset)
            return retry(lambda: self.io.read(key, length, offset), self.counters) if length else b""
        except rados.ObjectNotFound:
            return None
        except rados.Error as e:
            raise self._fail("read", name, e) from None

    def stat(self, name: bytes) -> int | None:
        import rados

        key = self._key(name)
        try:
            return retry(lambda: self.io.stat(key), self.counters)[0]
        except rados.ObjectNotFound:
            return None
        except rados.Error as e:
            raise self._fail("stat", name, e) from None

    def write(self, name: bytes, data: bytes) -> None:
        """``write_full``: the OSD replaces the object whole, atomically."""
        import rados

        key = self._key(name)
        try:
            retry(lambda: self.io.write_full(key, bytes(data)), self.counters)
        except rados.Error as e:
            raise self._fail("write", name, e) from None

    def write_at(self, name: bytes, offset: int, data: bytes) -> None:
        """``rados_write`` at ``offset``, what radosd does for a write request (the OSD keeps
        the bytes around it and zero-fills a gap); one round trip, idempotent."""
        import rados

        key = self._key(name)
        try:
            retry(lambda: self.io.write(key, bytes(data), offset), self.counters)
        except rados.Error as e:
            raise self._fail("write", name, e) from None

    def lock_owner(self, name: bytes) -> str | None:
        """radosd locks ``NAME_lock`` with ``rados_lock_exclusive`` (lock "RadosLock"); a clean
        unlock leaves the object empty with no locker. Lockers are read through the OSD's lock
        class (python-rados has no ``list_lockers``); a non-empty lock object counts as held too."""
        import rados

        key = self._key(name + b"_lock")
        try:
            _, reply = retry(lambda: self.io.execute(key, "lock", "get_info", _get_info_op(RADOS_LOCK_NAME)),
                             self.counters)
        except rados.ObjectNotFound:
            return None
        except rados.Error as e:
            raise self._fail("lock info", name + b"_lock", e) from None
        lockers = _lockers(reply)
        if lockers:
            return ", ".join(lockers)
        owner = self.read(name + b"_lock", 0, 255)
        return escape_name(owner.split(b"\0", 1)[0]) if owner else None

    def remove(self, name: bytes) -> bool:
        import rados

        key = self._key(name)
        try:
            retry(lambda: self.io.remove_object(key), self.counters)
        except rados.ObjectNotFound:
            return False
        except rados.Error as e:
            raise self._fail("remove", name, e) from None
        return True


def list_failure(shard: Shard, pool: str, err: int) -> Finding:
    """A listing that stopped: an ``unreadable`` finding naming the pool and the slices."""
    return Finding("unreadable", shard.store, pool, None,
                   f"listing of pool {pool!r} slices {shard.lo}-{shard.hi - 1} of {shard.total} "
                   f"stopped: {strerror(err)}")


# ---- the check's pool I/O (verify/backends/rados/check.py, maps.py) ----

MAP_MAX = 1 << 30  # a map object larger than this is not read (a v0 map of 128 PiB would be 1 GiB)
BUDGET = 64 << 20  # bytes a window of map-data reads may expect to bring in
BUCKETS = 256  # a name's bucket: crc32(name) % BUCKETS; shards are ranges of buckets


def bucket(name: bytes, total: int = BUCKETS) -> int:
    return zlib.crc32(name) % total


class Pool:
    """One pool (or the names of one shard of it) seen as pages of names and whole-object reads,
    whichever engine is in use."""

    def __init__(self, backend, role: str, shard: Shard | None = None):
        self.io = backend.ioctx(role)
        self.c = backend.engine == "c"
        self.pool = backend.pools()[role]
        self.store = role
        self.window = max(1, backend.inflight)
        self.shard = shard
        self.op_timeout = backend.op_timeout

    def pages(self) -> Iterator[list[bytes]]:
        """The pool's (shard's) names a page at a time. A failed listing raises OSError, one the
        OSDs stopped answering a StoreError (rados_io.stalled)."""
        try:
            for page in self._pages():
                signals.checkpoint()  # a signal caught while a library ran stops the run here, a page later at most
                if self.shard is not None:
                    page = [n for n in page if self.shard.lo <= bucket(n, self.shard.total) < self.shard.hi]
                yield page
        except OSError as e:
            if e.errno == E.ETIMEDOUT:
                raise stalled(self.pool, self.op_timeout, "listing") from None
            raise

    def _pages(self) -> Iterator[list[bytes]]:
        if self.c:
            from verify.native import _rados

            lister = _rados.Lister(self.io)
            while True:
                page = lister.next_page()
                if not page:
                    return
                yield page
        import rados

        page: list[bytes] = []
        try:
            for raw in listed_names(self.io):
                page.append(raw)
                if len(page) == 1024:
                    yield page
                    page = []
        except rados.Error as e:
            raise OSError(errno_of(e), "object list") from None
        err = listing_error(self.io)  # an op that failed ended the listing early
        if err:
            raise OSError(err, "object list")
        if page:
            yield page

    def stream(self, items: Iterator[tuple[object, bytes, int]], maxlen: int = MAP_MAX, window: int | None = None,
               first: int = 0, prefix: bool = False) -> Iterator[tuple[object, bytes | None, int]]:
        """(key, data, errno) for each (key, name, expected size), in order, read a window at a time.

        A window holds at most ``window`` objects and about BUDGET expected bytes; ``items``
        is pulled lazily, one window ahead at most, so it may stop yielding what it no
        longer needs. ``prefix``: only the expected bytes are wanted (one round trip)."""
        it = iter(items)
        window = window or self.window
        while True:
            group, budget, most = [], 0, 0
            for item in it:
                group.append(item)
                budget += item[2]
                most = max(most, item[2])
                if len(group) >= window or budget >= BUDGET or most * len(group) >= BUDGET:
                    break
            if not group:
                return
            names = [g[1] for g in group]
            got = self.prefixes(names, [g[2] for g in group]) if prefix else self.read(names, maxlen, first)
            for (key, _name, _size), (data, err) in zip(group, got):
                yield key, data, err

    def sizes(self, names: list[bytes]) -> list[tuple[int, int]]:
        """Each object's length by a stat, no data read: (size, 0) or (0, errno); all in flight at once."""
        signals.checkpoint()
        if self.c:
            from verify.native import _radosread

            return _radosread.stat_sizes(self.io, names)
        import rados

        def one(raw: bytes):
            try:
                return retry(lambda: self.io.stat(raw.decode("utf-8", "surrogateescape")), Counter())[0], 0
            except rados.ObjectNotFound:
                return 0, E.ENOENT
            except rados.Error as e:
                return 0, errno_of(e)
            except UnicodeError:
                return 0, E.EILSEQ

        with ThreadPoolExecutor(max(1, min(len(names), 32))) as ex:
            return list(ex.map(one, names))

    def read(self, names: list[bytes], maxlen: int = MAP_MAX, first: int = 0,
             whole: bool = True) -> list[tuple[bytes | None, int]]:
        """Each object whole: (bytes, 0) or (None, errno); all of ``names`` in flight at once.

        ``first``: bytes of a first read that needs no stat (objects shorter are done in one
        round trip); with ``whole`` false only those are wanted."""
        signals.checkpoint()  # and here, a window of reads later at most (in whichever thread reads)
        return self._answered(names, self._read(names, maxlen, first, whole))

    def prefixes(self, names: list[bytes], lens: list[int]) -> list[tuple[bytes | None, int]]:
        """The first ``lens[i]`` bytes of each object (fewer when it is shorter): (bytes, 0) or (None,
        errno); --inflight reads in flight, the next started as the oldest completes (python-rados:
        each object read whole, the caller cuts)."""
        signals.checkpoint()
        if self.c:
            from verify.native import _radosread

            return self._answered(names, _radosread.read_prefixes(self.io, names, lens, self.window))
        return self._answered(names, self._read(names, MAP_MAX, max(lens, default=0), False))

    def _answered(self, names: list[bytes], got: list[tuple[bytes | None, int]]) -> list[tuple[bytes | None, int]]:
        """``got``, unless an op timed out: the OSDs stopped answering (rados_io.stalled)."""
        for name, (_data, err) in zip(names, got):
            if err == E.ETIMEDOUT:
                raise stalled(self.pool, self.op_timeout, "read", name)
        return got

    def _read(self, names: list[bytes], maxlen: int, first: int, whole: bool) -> list[tuple[bytes | None, int]]:
        if self.c:
            from verify.native import _radosread

            return _radosread.read_whole(self.io, names, maxlen, first, whole)
        import rados

        timed_out = threading.Event()  # one op timed out: the names not yet begun are not tried

        def one(raw: bytes):
            name = raw.decode("utf-8", "surrogateescape")
            c: Counter = Counter()
            if timed_out.is_set():
                return None, E.ETIMEDOUT
            try:
                size = retry(lambda: self.io.stat(name), c)[0]
                if size > maxlen:
                    return None, E.EFBIG
                return (retry(lambda: self.io.read(name, size, 0), c) if size else b""), 0
            except rados.ObjectNotFound:
                return None, E.ENOENT
            except rados.Error as e:
                if errno_of(e) == E.ETIMEDOUT:
                    timed_out.set()
                return None, errno_of(e)
            except UnicodeError:  # python-rados sends names as UTF-8: this one it cannot name
                return None, E.EILSEQ

        with ThreadPoolExecutor(max(1, min(len(names), 32))) as ex:
            return list(ex.map(one, names))
