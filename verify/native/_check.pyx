# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The reference check's hot loops for filed stores, without the GIL, in parallel.

One :class:`FiledRefCheck` runs the passes of ``archverify check`` over a maps dir and
a blocks dir, each pass a walk of ``ROOT/d1/d2/d3/NAME`` by the walker the scan uses
(verify/native/_walk.h), with the pass's rule as its per-file callback:

1. ``read_maps``: every map's entries (v0, v1, v2 from its map-data objects at
   their v0.4 paths); entry-level corruption; each referenced name's fingerprint
   (first 128 bits of sha256(name), see _check.h) into per-thread arrays.
2. ``freeze``: one sorted, de-duplicated array of referenced fingerprints.
3. ``mark_stored``: every object file at a path v0.4 reads marks its fingerprint
   present; one that no map references is an orphan (so is a ``NAME_hash`` whose
   object is gone). Referenced fingerprints left unmarked are missing.
4. ``explain_missing`` (only when something is missing): the maps again, recording
   the first few entries that name each missing fingerprint.
5. ``verify_data``: sha256 of every (sampled) 64-hex object's content with trailing
   zeros stripped, against its name.

Per-object outcomes are C records turned into Python tuples after the GIL is back.
Map layouts and name rules come from _rules.h, shared with the scanner; the entry rules
and fingerprint sets from verify/native/_refsets.pyx, shared with the RADOS reference index.
This module runs the passes; what each file is worth to a pass is verify/native/_filedpass.pyx.
"""

from cython.parallel cimport prange, threadid
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, realloc, free, calloc
from libc.string cimport memcpy, memset, strlen, memchr, memcmp

from ._sys cimport *  # the POSIX and libcrypto calls, declared once: _sys.pxd

from ._rules cimport *  # the C twin of formats.py: _rules.h, declared in _rules.pxd
from ._native cimport *  # the stop flag, the record buffer, the v0.4 path: _native.h
from ._walk cimport *  # the filed directory walker: _walk.h
from ._refsets cimport *  # the entry rules and the fingerprint sets: _refsets.pxd
from ._filedpass cimport on_file, on_unreadable  # what each file is worth to a pass: _filedpass.pyx

from ..core.findings import RECORD_KINDS as KIND_NAMES
from ._refsets import COUNTER_NAMES


cdef class FiledRefCheck:
    """The passes of the reference and data check over one filed maps dir and blocks dir."""

    cdef ctx_t ctx
    cdef tbuf_t *bufs
    cdef int jobs
    cdef int mapsfd, blocksfd
    cdef refsets_t sets
    cdef object maps_root, blocks_root
    cdef int lo, hi
    cdef readonly bint frozen

    def __cinit__(self, maps_root, blocks_root, int jobs=1, int lo=0, int hi=256):
        """``lo``/``hi``: only the top-level dirs whose shard bucket is in [lo, hi), as the scanner's shards."""
        import os
        if jobs < 1:
            raise ValueError("jobs must be >= 1")
        self.lo = lo
        self.hi = hi
        self.maps_root = os.fsencode(maps_root)
        self.blocks_root = os.fsencode(blocks_root)
        self.jobs = jobs
        self.mapsfd = -1
        self.blocksfd = -1
        self.bufs = <tbuf_t *>calloc(jobs, sizeof(tbuf_t))
        if self.bufs == NULL:
            raise MemoryError()
        memset(&self.sets, 0, sizeof(refsets_t))
        self.frozen = False

    def __dealloc__(self):
        self._free_records()
        cdef int t
        if self.bufs != NULL:
            for t in range(self.jobs):
                tbuf_free(&self.bufs[t])
            free(self.bufs)
        refsets_free(&self.sets)
        if self.mapsfd >= 0:
            close(self.mapsfd)
        if self.blocksfd >= 0:
            close(self.blocksfd)

    cdef void _free_records(self):
        cdef int t
        cdef size_t i
        if self.bufs == NULL:
            return
        for t in range(self.jobs):
            av_recs_clear(&self.bufs[t].recs)

    cdef int _open(self, root) except -1:
        import os
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    cdef void _walk(self, int rootfd, int mode) except *:
        """One pass: the walker (verify/native/_walk.h) over the store's top-level dirs in [lo, hi)."""
        from .._scan import root_entries
        cdef av_walk_t w
        cdef int t
        tops, _others = root_entries(rootfd, self.lo, self.hi)  # the scan reports the others
        self.ctx.rootfd = rootfd
        self.ctx.mode = mode
        av_walk_init(&w, rootfd, &self.ctx.stop, &self.ctx, self.bufs, sizeof(tbuf_t), on_file)
        w.unreadable = on_unreadable
        walk_tops(&w, tops, self.jobs)
        for t in range(self.jobs):
            if self.bufs[t].oom or self.bufs[t].refs.oom or self.bufs[t].recs.oom:
                raise MemoryError("out of memory during the reference check")

    def read_maps(self):
        """Pass 1: every map's entries into per-thread fingerprint arrays; corrupt maps as records."""
        if self.mapsfd < 0:
            self.mapsfd = self._open(self.maps_root)
        self._walk(self.mapsfd, MODE_REFS)

    def freeze(self):
        """Pass 2: one sorted unique array of referenced fingerprints, indexed. Returns its length."""
        cdef int t
        cdef size_t total = 0, off, take
        cdef av_fp_t *a
        cdef av_fpbuf_t *src
        with nogil:
            for t in prange(self.jobs, num_threads=self.jobs, schedule="static", chunksize=1):
                self.bufs[t].refs.n = av_fp_sort_unique(self.bufs[t].refs.a, self.bufs[t].refs.n)
        for t in range(self.jobs):
            total += self.bufs[t].refs.n
        a = self.bufs[0].refs.a
        self.bufs[0].refs.a = NULL
        off = self.bufs[0].refs.n
        if total > 0:
            a = <av_fp_t *>realloc(a, total * sizeof(av_fp_t))
            if a == NULL:
                raise MemoryError()
        # move each other thread's array over from its tail, shrinking it as we go: peak ~ total + 1 MiB
        for t in range(1, self.jobs):
            src = &self.bufs[t].refs
            while src.n > 0:
                take = src.n if src.n < 65536 else 65536
                memcpy(a + off, src.a + src.n - take, take * sizeof(av_fp_t))
                off += take
                src.n -= take
                if src.n > 0:
                    src.a = <av_fp_t *>realloc(src.a, src.n * sizeof(av_fp_t))
            free(src.a)
            src.a = NULL
            src.cap = 0
        with nogil:
            total = av_fp_sort_unique(a, off)
        if total > 0:
            a = <av_fp_t *>realloc(a, total * sizeof(av_fp_t))
        self.sets.refs.a = a
        self.sets.refs.n = total
        if av_fpset_index(&self.sets.refs) != 0:
            raise MemoryError()
        self.sets.present = <uint8_t *>calloc(total + 1, 1)
        if self.sets.present == NULL:
            raise MemoryError()
        self.ctx.refs = &self.sets.refs
        self.ctx.present = self.sets.present
        self.frozen = True
        return total

    def set_range(self, int lo, int hi):
        """The top-level dirs (shard buckets in [lo, hi)) the next passes walk: a pass over a slice
        of the store at a time holds the records of that slice only."""
        self.lo = lo
        self.hi = hi

    def mark_stored(self):
        """Pass 3: walk the blocks store; present objects marked, orphans recorded. Returns #missing."""
        if not self.frozen:
            raise RuntimeError("freeze() first")
        if self.blocksfd < 0:
            self.blocksfd = self._open(self.blocks_root)
        self._walk(self.blocksfd, MODE_STORED)
        return self._count_missing()

    def mark_kept(self, const unsigned char[::1] kept, Py_ssize_t off=0, Py_ssize_t limit=65536):
        """Pass 3 without the walk: the files of the blocks store the scan walked (FiledShard.kept, the
        paths of one shard), each given to the rule :meth:`mark_stored` gives it, up to ``limit`` files
        from byte ``off``. Returns the offset to go on from (``len(kept)``: done)."""
        if not self.frozen:
            raise RuntimeError("freeze() first")
        if self.blocksfd < 0:
            self.blocksfd = self._open(self.blocks_root)
        self.ctx.rootfd = self.blocksfd
        self.ctx.mode = MODE_STORED
        cdef size_t at = <size_t>off, end = <size_t>kept.shape[0], n
        cdef Py_ssize_t done = 0
        cdef uint16_t len16
        cdef char part[PATHMAX]
        cdef char *d2
        cdef char *d3
        cdef char *name
        cdef tbuf_t *b = &self.bufs[0]
        cdef const unsigned char *base = &kept[0] if end > 0 else NULL
        with nogil:
            while at + 2 <= end and done < limit and not av_stopped(&self.ctx.stop):
                memcpy(&len16, base + at, 2)
                n = len16
                if n >= PATHMAX or at + 2 + n > end:
                    break
                memcpy(part, base + at + 2, n)
                part[n] = 0
                at += 2 + n
                done += 1
                # d1/d2/d3/NAME, each part without a slash (the walker joined them): split in place
                d2 = <char *>memchr(part, ord('/'), n)
                d3 = <char *>memchr(d2 + 1, ord('/'), n - <size_t>(d2 + 1 - part)) if d2 != NULL else NULL
                name = <char *>memchr(d3 + 1, ord('/'), n - <size_t>(d3 + 1 - part)) if d3 != NULL else NULL
                if name == NULL:
                    continue
                d2[0] = 0
                d3[0] = 0
                name[0] = 0
                on_file(&self.ctx, b, 0, -1, part, d2 + 1, d3 + 1, name + 1)
        if b.oom or b.refs.oom or b.recs.oom:
            raise MemoryError("out of memory during the reference check")
        return <Py_ssize_t>at

    cdef size_t _count_missing(self):
        return count_missing(&self.sets.refs, self.sets.present)

    cdef int _alloc_shown(self) except -1:
        cdef int t
        for t in range(self.jobs):
            free(self.bufs[t].shown)
            self.bufs[t].shown = <uint8_t *>calloc(self.sets.missing.n + 1, 1)
            if self.bufs[t].shown == NULL:
                raise MemoryError()
        return 0

    def missing_total(self):
        """Referenced objects that must exist and were not found by mark_stored()."""
        return self._count_missing()

    def explain_missing(self):
        """Pass 4: the maps again, recording the first entries that name each missing object."""
        index_missing(&self.sets, &self.ctx)
        self._alloc_shown()
        saved = self.counters()
        self._walk(self.mapsfd, MODE_MISSING)
        # the second pass must not count maps and entries twice
        cdef int t, c
        for t in range(self.jobs):
            for c in range(NCOUNT):
                self.bufs[t].counts[c] = 0
        for c in range(NCOUNT):
            self.bufs[0].counts[c] = saved[COUNTER_NAMES[c]]
        return self.sets.missing.n

    def missing_counts(self, bytes name):
        """(maps, references) that name this missing object, counted in explain_missing()."""
        return refsets_missing_counts(&self.sets, name)

    # -- one shard of a join run elsewhere (--dask): fingerprints out, differences back in --

    def list_stored(self):
        """Pass 3 of one blocks shard without the maps: its stored objects' fingerprints, sorted.

        ``NAME_hash`` orphans are decided here (they need no join). Returns how many
        distinct objects; :meth:`export` hands them out."""
        if self.blocksfd < 0:
            self.blocksfd = self._open(self.blocks_root)
        self._walk(self.blocksfd, MODE_LIST)
        return self.freeze()

    def export(self, bytes locator):
        """The frozen fingerprints as join records (:func:`export_records`)."""
        return export_records(&self.sets.refs, locator)

    def explain(self, const unsigned char[::1] recs, Py_ssize_t width):
        """Pass 4 on this shard's maps for the missing keys in ``recs``: ``ref`` records and
        :meth:`missing_counts` as :meth:`explain_missing` gives them, for this shard alone."""
        refsets_explain(&self.sets, &self.ctx, recs, width)
        self._alloc_shown()
        if self.mapsfd < 0:
            self.mapsfd = self._open(self.maps_root)
        self._walk(self.mapsfd, MODE_MISSING)

    def find_orphans(self, const unsigned char[::1] recs, Py_ssize_t width):
        """This blocks shard again: an ``object_orphan`` record for each stored object keyed in ``recs``."""
        load_keys(&self.sets.refs, recs, width)
        self.ctx.refs = &self.sets.refs
        if self.blocksfd < 0:
            self.blocksfd = self._open(self.blocks_root)
        self._walk(self.blocksfd, MODE_ORPHANS)

    def verify_data(self, uint64_t win_start=0, uint64_t win_width=0, bint sample_all=True):
        """Pass 5: content hashes of the 64-hex objects whose fingerprint falls in the window."""
        if self.blocksfd < 0:
            self.blocksfd = self._open(self.blocks_root)
        self.ctx.win_start = win_start
        self.ctx.win_width = win_width
        self.ctx.sample_all = sample_all
        self._walk(self.blocksfd, MODE_DATA)

    def stop(self):
        """Make the running pass return soon (between two work units); safe from another thread.
        The check's results are incomplete after this: the caller discards them."""
        av_request_stop(&self.ctx.stop)

    def progress(self):
        """Files seen so far by all threads; safe to call while a pass runs in another thread."""
        cdef uint64_t files = 0
        cdef int t
        for t in range(self.jobs):
            files += self.bufs[t].counts[C_FILES]
        return files

    def counters(self):
        return walk_counters(<const char *>self.bufs[0].counts, sizeof(tbuf_t), self.jobs, COUNTER_NAMES)

    def memory(self):
        """Bytes held by the referenced-fingerprint set (array + index + presence flags)."""
        return refsets_memory(&self.sets)

    def take_records(self):
        """[(kind, name, path, detail, errno, aux)] recorded since the last call, then forgotten."""
        cdef int t
        out = []
        for t in range(self.jobs):
            walk_records(out, &self.bufs[t].recs, KIND_NAMES, True)
        self._free_records()
        return out

    def take_record_batches(self, Py_ssize_t batch=16384):
        """:meth:`take_records` in lists of at most ``batch``, each made only when asked for, so a
        pass with a million findings never has them all as Python objects at once."""
        cdef int t
        cdef size_t i, stop, n
        try:
            for t in range(self.jobs):
                i = 0
                n = self.bufs[t].recs.n
                while i < n:
                    stop = min(i + <size_t>batch, n)
                    out = []
                    walk_records_range(out, &self.bufs[t].recs, KIND_NAMES, True, i, stop)
                    i = stop
                    yield out
        finally:
            self._free_records()
