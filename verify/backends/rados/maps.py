"""Map lookups by name in a RADOS maps pool, as the mapper opens them on a rados_blocker.

``pithos-check`` asks, for each Pithos row, "is map NAME in the pool, in which
version, of which size?" (the :class:`verify.backends.maplookup.MapLookup` protocol). On a
pool the answer is the object NAME (a signed header is v2; ``01 00 00 00`` is v1;
anything else is a v0 map, because Pithos opens its maps with assume-v0), else
``archip_NAME`` (the mapper's retry, how v0.3 maps are found). A pool has no
paths, so there is no old Pithos path to try first: every answer is ``where="pool"``.

The reads are the reference check's (:class:`verify.backends.rados.io.Pool`,
``verify.native._radosread.read_whole`` or its python-rados twin): a window of names in flight
at once, ``jobs`` windows side by side. One read of the first 4 KiB answers a map
smaller than that (every v2 header with direct I/O, every v0 map of a file up to
512 MiB); a larger object is sized by a stat, never read whole. Only a v0 map whose
entries are counted (a row with a size: the content check) and that goes on past
those 4 KiB has the bytes read that the count needs. Then ``archip_NAME`` for the
names that were not there.
"""

from __future__ import annotations

import errno as E
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence

from verify.core import formats as F
from verify.native import limits
from verify.core.errors import StoreError, UsageError
from ..maplookup import LookupError_, MapInfo, rows_by_lookup
from ..base import strerror
from .check import HEAD_FIRST, _chunks, _rules
from .io import MAP_MAX, Pool

ARCHIP = b"archip_"
BAD_NAME = 0  # LookupError_.errno of a name no RADOS object can have


class RadosMaps:
    """The maps pool of a :class:`~verify.backends.rados.backend.RadosBackend`, looked up by map name."""

    def __init__(self, backend, jobs: int = 1):
        if not backend.pool:
            raise UsageError("this RADOS backend holds no maps pool: give --pool (the maps pool)")
        self.pool = Pool(backend, "maps")
        self.python = backend.engine != "c"
        self.jobs = max(1, jobs)

    def close(self) -> None:
        """Nothing to free: the connection is the backend's."""

    def __enter__(self) -> RadosMaps:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- lookup_maps ------------------------------------------------------------------

    def _raw(self, name: str | bytes) -> bytes | None:
        """The object name to send, or None when no object can be called so: empty, a NUL
        (librados takes C strings), or not UTF-8 for python-rados (it sends names as UTF-8)."""
        raw = name if isinstance(name, bytes) else name.encode("utf-8", "surrogateescape")
        if not raw or b"\0" in raw:
            return None
        if self.python:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return None
        return raw

    def lookup_maps(self, names: Sequence[str], v0_limits: Sequence[int | None] | None = None
                    ) -> dict[str, MapInfo | LookupError_ | None]:
        """Per name: what the mapper would open, None when the pool holds it in no form."""
        names = list(names)
        limits = [None] * len(names) if v0_limits is None else list(v0_limits)
        if len(limits) != len(names):
            raise ValueError("names and v0_limits differ in length")
        out: dict[str, MapInfo | LookupError_ | None] = {}
        todo = []
        for name, limit in zip(names, limits):
            raw = self._raw(name)
            if raw is None:
                out[name] = LookupError_(name, BAD_NAME)
            else:
                todo.append((name, raw, limit))
        windows = list(_chunks(todo, self.pool.window))
        if self.jobs > 1 and len(windows) > 1:
            # read_whole releases the GIL while its window is in flight: windows overlap
            ex = ThreadPoolExecutor(min(self.jobs, len(windows)), thread_name_prefix="rados-maps")
            try:
                parts = list(ex.map(self._window, windows))
            finally:
                # on Ctrl-C only the windows in flight finish (each owns its buffers), the rest never start
                ex.shutdown(wait=True, cancel_futures=True)
        else:
            parts = [self._window(w) for w in windows]
        for part in parts:
            out.update(part)
        return out

    def _window(self, items: list[tuple[str, bytes, int | None]]) -> dict:
        """One window: NAME for every name, then ``archip_NAME`` for those not there."""
        limits.take(len(items))  # --objects-per-second: each map looked up
        got = self._heads([raw for _, raw, _ in items])
        again = [i for i, (_data, err, _size) in enumerate(got) if err == E.ENOENT]
        alt = dict(zip(again, self._heads([ARCHIP + items[i][1] for i in again])))
        found = [(name, *((ARCHIP + raw, alt[i]) if i in alt else (raw, got[i])), limit)
                 for i, (name, raw, limit) in enumerate(items)]
        self._counted_v0(found)
        return {name: _answer(name, obj, data, err, limit, size) for name, obj, (data, err, size), limit in found}

    def _heads(self, raws: list[bytes]) -> list[tuple[bytes | None, int, int]]:
        """(first bytes, errno, size) of each object: one read of HEAD_FIRST bytes; a stat for
        those at least that long (their size), no more of their bytes."""
        got = self.pool.read(raws, MAP_MAX, HEAD_FIRST, whole=False)
        longer = [i for i, (data, _err) in enumerate(got) if data is not None and len(data) >= HEAD_FIRST]
        sized = dict(zip(longer, self.pool.sizes([raws[i] for i in longer])))
        out = []
        for i, (data, err) in enumerate(got):
            size, serr = sized.get(i, (len(data) if data is not None else 0, 0))
            out.append((None, serr, 0) if serr else (data, err, size))
        return out

    def _counted_v0(self, found: list) -> None:
        """The v0 maps whose entries a row counts past the first bytes read: the bytes the count
        needs (its limit's entries), read in place of their first bytes (nothing else is)."""
        want = []
        for k, (_name, obj, (data, err, size), limit) in enumerate(found):
            if data is None or limit is None or size <= len(data) or not _v0(data, obj):
                continue
            need = min(size, 32 * max(limit, 2))
            if need > len(data) and count_v0(data, max(limit, 2)) * 32 == len(data) - len(data) % 32:
                want.append((k, obj, need))
        for k, obj, need in want:  # rare: v0 maps over 4 KiB whose rows ask for more than 128 entries
            (data, err), = self.pool.read([obj], MAP_MAX, need, whole=False)
            name, _obj, (_d, _e, size), limit = found[k]
            found[k] = (name, obj, (data, err, size) if data is not None else (None, err, 0), limit)

    # ---- list_maps (--orphans) --------------------------------------------------------

    def check_rows(self, mapfiles: list[str], sizes: list[int | None]) -> bytes:
        """The verdicts through :meth:`lookup_maps` (the reads are what costs, batched there)."""
        return rows_by_lookup(self, mapfiles, sizes)

    def list_maps(self) -> Iterator[tuple[str, str | None, F.HeaderInfo]]:
        """Every map header in the pool (v0 by its 64-hex name, v1, v2): the pool's listing,
        each candidate's header read. Unreadable objects are left out ('scan' reports them);
        a listing that fails is an error, not a shorter list."""
        try:
            for page in self.pool.pages():
                for window in _chunks(_rules().map_candidates(page), self.pool.window):
                    heads = self._heads(window)
                    for raw, (data, _err, size) in zip(window, heads):
                        if data is None:
                            continue
                        hdr = F.classify(data[:F.HEADER_READ], size, raw)
                        if hdr.cls is not F.HeaderClass.NOT_MAP:
                            yield raw.decode("utf-8", "surrogateescape"), None, hdr
        except OSError as e:
            raise StoreError(f"pool {self.pool.pool!r}: listing stopped: {strerror(e.errno)}") from None


def _v0(head: bytes, obj: bytes) -> bool:
    """Is it opened as a v0 map (anything unsigned and not v1: Pithos opens its maps with assume-v0)?"""
    return F.classify(head[:F.HEADER_READ], len(head), obj).cls in (F.HeaderClass.V0, F.HeaderClass.NOT_MAP)


def _answer(name: str, obj: bytes, data: bytes | None, err: int, limit: int | None, size: int):
    """One name's MapInfo from the object that answered (its first bytes and its size), or the lookup's error."""
    if data is None:
        if err == E.ENOENT:
            return None
        if err == E.ENAMETOOLONG:  # longer than the OSDs allow: no object can be called so
            return LookupError_(name, BAD_NAME)
        return LookupError_(name, err)
    hdr = F.classify(data[:F.HEADER_READ], size, obj)
    entries, first_zero = None, False
    if hdr.cls in (F.HeaderClass.V0, F.HeaderClass.NOT_MAP):
        hdr = F.HeaderInfo(F.HeaderClass.V0)  # Pithos opens its maps with assume-v0
        if limit is not None:
            entries = count_v0(data, max(limit, 2))  # size 0: one zero-block entry, as Pithos stores it
            first_zero = data[:32] == F.ZERO_DIGEST
    return MapInfo(name, obj.decode("utf-8", "surrogateescape"), "pool", hdr, size, entries, first_zero)


def count_v0(data: bytes, limit: int) -> int:
    """Leading non-zero 32-byte entries of a v0 map, up to ``limit``."""
    zero = bytes(32)
    n = 0
    end = len(data) - len(data) % 32
    while n < limit and n * 32 < end:
        if data[n * 32:n * 32 + 32] == zero:
            break
        n += 1
    return n
