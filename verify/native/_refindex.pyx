# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The reference stage of a backend that lists and reads its objects itself (RADOS).

Its own module because it reads no file: the backend hands in bytes and names, and the
entry rules and sets are the filed passes' own (verify/native/_refsets.pyx), so both checks
decide every entry alike.
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, calloc
from libc.string cimport memcpy, memset

from ._rules cimport *  # the C twin of formats.py: _rules.h, declared in _rules.pxd
from ._native cimport *  # the record buffer, the fingerprint: _native.h
from ._refsets cimport *  # the entry rules and the sets: _refsets.pxd

from ._refsets import COUNTER_NAMES


cdef class ReferenceIndex:
    """The reference stage for a backend that lists and reads its objects itself (RADOS).

    Same fingerprints, set and entry rules as the filed passes; the backend hands in
    bytes: each map's entries (``add_v0``/``add_v1``/``add_v2``), then ``freeze()``, then
    the names it lists in the blocks store (``mark_stored``, which returns orphans),
    and, if ``missing_total()`` is not 0, the maps again after ``start_explain()``
    (the same ``add_*`` calls then return the entries that name missing objects).
    Not thread-safe: one index per listing thread is not supported; feed it from one.
    """

    cdef ctx_t ctx
    cdef tbuf_t b
    cdef refsets_t sets
    cdef bytes last_map
    cdef readonly bint frozen

    def __cinit__(self):
        self.last_map = None
        memset(&self.ctx, 0, sizeof(ctx_t))
        memset(&self.b, 0, sizeof(tbuf_t))
        memset(&self.sets, 0, sizeof(refsets_t))
        self.ctx.mode = MODE_REFS

    def __dealloc__(self):
        self._clear()
        tbuf_free(&self.b)
        refsets_free(&self.sets)

    cdef void _clear(self):
        av_recs_clear(&self.b.recs)

    cdef object _entries(self, int version, bytes map_name, const unsigned char[:] data, uint64_t count,
                         uint64_t first, bint deleted):
        cdef mapstate_t ms
        cdef size_t n = data.shape[0]
        if self.ctx.mode == MODE_STORED:
            raise RuntimeError("frozen: call start_explain() before reading maps again")
        if grow(&self.b, n + 1) != 0:
            raise MemoryError()
        if n:
            memcpy(self.b.buf, &data[0], n)
        ms.name = map_name
        ms.n = len(map_name)
        ms.path = NULL
        ms.nbad = 0
        ms.deleted = deleted
        ms.version = version
        if map_name != self.last_map:  # a map's chunks come one after another: count each map once
            self.b.nseen = 0
            self.last_map = map_name
        if version == 0:
            ragged_v0(&ms, n)
            entries_v0(&self.ctx, &self.b, &ms, n, 0)
        elif version == 1:
            entries_v1(&self.ctx, &self.b, &ms, count, n)
        else:
            if n < count * AV_V2_ENTRY_LEN:
                problem(&ms, b"map-data shorter than its entries")
                count = n // AV_V2_ENTRY_LEN
            entries_v2_chunk(&self.ctx, &self.b, &ms, count, first)
        if self.b.oom or self.b.refs.oom or self.b.recs.oom:
            raise MemoryError()
        if self.ctx.mode == MODE_MISSING:
            out = [(<bytes>self.b.recs.a[i].name, <uint64_t>self.b.recs.a[i].aux) for i in range(self.b.recs.n)]
            self._clear()
            self._unshow(out)
            return out
        return (ms.nbad, (<bytes>ms.first).decode("utf-8", "replace") if ms.nbad and not ms.deleted else "")

    cdef void _unshow(self, list refs):
        """The first few entries per missing object are counted per call, not per index: the caller
        ranks what each call returns (verify/backends/rados/check.py), whatever the listing order."""
        cdef av_fp_t fp
        cdef long k
        cdef bytes nm
        for nm, _index in refs:
            av_fingerprint(nm, len(nm), &fp)
            k = av_fpset_find(&self.sets.missing, &fp)
            if k >= 0:
                self.b.shown[k] = 0

    def add_v0(self, bytes map_name, data):
        """A v0 map object's bytes. Returns (problems, first problem) or, explaining, [(name, index)]."""
        return self._entries(0, map_name, data, 0, 0, False)

    def add_v1(self, bytes map_name, data, uint64_t nr_objs):
        """A v1 map object's bytes (header included) and its entry count from the header."""
        return self._entries(1, map_name, data, nr_objs, 0, False)

    def add_v2(self, bytes map_name, data, uint64_t first_index, uint64_t count, bint deleted_map=False):
        """One map-data object's bytes: ``count`` entries, the first being entry ``first_index``."""
        return self._entries(2, map_name, data, count, first_index, deleted_map)

    def add_names(self, names, bint needed=True):
        """Referenced names given directly (already parsed elsewhere)."""
        cdef av_fp_t fp
        cdef bytes nm
        for nm in names:
            av_fingerprint(nm, len(nm), &fp)
            if needed:
                fp.lo |= AV_FP_NEEDED
            av_fpbuf_push(&self.b.refs, &fp)
        if self.b.refs.oom:
            raise MemoryError()

    def freeze(self):
        """No more references: the sorted set. Returns how many distinct objects are referenced."""
        self.b.refs.n = av_fp_sort_unique(self.b.refs.a, self.b.refs.n)
        self.sets.refs.a = self.b.refs.a
        self.sets.refs.n = self.b.refs.n
        self.b.refs.a = NULL
        self.b.refs.n = self.b.refs.cap = 0
        if av_fpset_index(&self.sets.refs) != 0:
            raise MemoryError()
        self.sets.present = <uint8_t *>calloc(self.sets.refs.n + 1, 1)
        if self.sets.present == NULL:
            raise MemoryError()
        self.ctx.refs = &self.sets.refs
        self.ctx.present = self.sets.present
        self.ctx.mode = MODE_STORED
        self.frozen = True
        return self.sets.refs.n

    def mark_stored(self, names):
        """Names listed in the blocks store (objects only: no _lock, _hash); returns those no map names."""
        cdef av_fp_t fp
        cdef long k
        cdef bytes nm
        if not self.frozen:
            raise RuntimeError("freeze() first")
        orphans = []
        for nm in names:
            av_fingerprint(nm, len(nm), &fp)
            k = av_fpset_find(&self.sets.refs, &fp)
            if k >= 0:
                av_mark(self.sets.present, <size_t>k)
            else:
                orphans.append(nm)
        return orphans

    cdef int _explaining(self) except -1:
        """From now on the add_* calls return the entries naming the missing set's objects."""
        free(self.b.shown)
        self.b.shown = <uint8_t *>calloc(self.sets.missing.n + 1, 1)
        if self.b.shown == NULL:
            raise MemoryError()
        self.ctx.mode = MODE_MISSING
        return 0

    def missing_total(self):
        return count_missing(&self.sets.refs, self.sets.present)

    def start_explain(self):
        """After mark_stored: the add_* calls now return the entries naming missing objects."""
        index_missing(&self.sets, &self.ctx)
        self._explaining()

    def export(self, bytes locator):
        """After freeze(): the referenced fingerprints as join records (:func:`export_records`)."""
        return export_records(&self.sets.refs, locator)

    def explain(self, const unsigned char[::1] recs, Py_ssize_t width):
        """Instead of freeze(): the add_* calls now return the entries naming the keys of ``recs``
        (missing objects found by a join elsewhere), and :meth:`missing_counts` counts them."""
        refsets_explain(&self.sets, &self.ctx, recs, width)
        self._explaining()

    def missing_counts(self, bytes name):
        """(maps, entries) naming this missing object, counted while explaining."""
        return refsets_missing_counts(&self.sets, name)

    def counters(self):
        return {COUNTER_NAMES[c]: self.b.counts[c] for c in range(NCOUNT)}

    def memory(self):
        return refsets_memory(&self.sets)
