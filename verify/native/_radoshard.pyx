# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The scan of one slice of a pool: :class:`RadosShard`, the Python face of the aio scan loop.

It sets up the loop's slots (verify/native/_radoscan.pyx), slices the pool's listing
(``rados_object_list_slice``), runs the loop without the GIL and turns what it recorded
into Python: the findings' records (batch by batch while it runs, with ``batch``), the
counters, the kept header reads. Its own module so
that the loop holds nothing but the per-object steps.
"""

from libc.stdint cimport uint64_t
from libc.stdlib cimport free, calloc
from libc.string cimport memset

from ._librados cimport *  # librados' C API: _librados.pxd
from ._rules cimport *  # the C twin of formats.py: _rules.h, declared in _rules.pxd
from ._native cimport *  # the stop flag and the record buffer: _native.h
from ._rados cimport IoCtx, cursor_t, cursor_open_slices, cursor_close  # the pool and its listing: _rados.pyx
from ._radoscan cimport *  # the loop and its state: _radoscan.pyx

from ..core.findings import RECORD_KINDS as KIND_NAMES

cimport cython

# names as for filed ("files" are listed objects), in the order of the counters of _radoscan.pxd
COUNTER_NAMES = ("files", "v0", "v1", "v2", "corrupt", "mapdata", "other", "locks", "hash_files",
                 "temp_files", "header_bytes", "probes", "reads", "retries", "vanished", "list_calls",
                 "list_wait_us")


@cython.no_gc_clear
cdef class RadosShard:
    """Scans the objects of parts ``[lo, hi)`` of a pool split into ``total`` parts."""

    cdef loop_t L
    cdef readonly IoCtx ioctx
    cdef public int lo, hi, total
    cdef readonly bint done
    cdef readonly int list_err

    def __cinit__(self, IoCtx ioctx, int lo=0, int hi=1, int total=1, int inflight=256, bint maps=True,
                  bint keep=False, unsigned long long keep_max=0, bint empty_locks=False, size_t batch=0):
        cdef int i
        if inflight < 1 or not 0 <= lo < hi <= total:
            raise ValueError("bad shard or inflight")
        if KEPTHEAD != AV_HEADER_READ:
            raise SystemError("KEPTHEAD differs from AV_HEADER_READ: rebuild with them equal")
        memset(&self.L, 0, sizeof(loop_t))
        self.ioctx = ioctx
        self.lo, self.hi, self.total = lo, hi, total
        self.L.io = ioctx.io
        self.L.is_maps = maps
        self.L.keep = keep and maps
        self.L.keep_max = keep_max
        self.L.empty_locks = empty_locks
        self.L.hand_at = batch
        self.L.nslots = inflight
        self.L.fcap = inflight + 1
        self.L.slots = <slot_t *>calloc(inflight, sizeof(slot_t))
        self.L.free_idx = <int *>calloc(inflight, sizeof(int))
        self.L.fifo = <int *>calloc(self.L.fcap, sizeof(int))
        if self.L.slots == NULL or self.L.free_idx == NULL or self.L.fifo == NULL:
            raise MemoryError()
        for i in range(inflight):
            self.L.slots[i].loop = &self.L
            self.L.slots[i].idx = i
            self.L.free_idx[i] = inflight - 1 - i
        self.L.nfree = inflight
        pthread_mutex_init(&self.L.mu, NULL)
        pthread_cond_init(&self.L.cv, NULL)
        pthread_cond_init(&self.L.qspace, NULL)
        pthread_mutex_init(&self.L.rmu, NULL)
        pthread_cond_init(&self.L.rcv, NULL)
        self.done = False
        self.list_err = 0

    def __dealloc__(self):
        cdef size_t i
        av_recs_free(&self.L.recs)
        av_recs_free(&self.L.handed)
        self._free_kept()
        free(self.L.mdh)
        for i in range(self.L.npend):
            free(self.L.pend[i].name)
        free(self.L.pend)
        free(self.L.slots)
        free(self.L.free_idx)
        free(self.L.fifo)
        pthread_mutex_destroy(&self.L.mu)
        pthread_cond_destroy(&self.L.cv)
        pthread_cond_destroy(&self.L.qspace)
        pthread_mutex_destroy(&self.L.rmu)
        pthread_cond_destroy(&self.L.rcv)

    def run(self):
        """List the shard and check every object; returns 0 or the listing's errno."""
        cdef rados_ioctx_t io = self.L.io
        if self.done:
            raise RuntimeError("shard already scanned")
        cdef size_t lo = self.lo, hi = self.hi, total = self.total
        cdef cursor_t lister
        cdef int r
        with nogil:
            cursor_open_slices(&lister, io, lo, hi, total, &self.L.stop)
            r = list_range(&self.L, &lister)
            cursor_close(&lister)
        self.done = True
        self.list_err = -r if r < 0 else 0
        return self.list_err

    def run_names(self, names):
        """Check the given object names as if they had just been listed (no listing)."""
        cdef bytes b
        cdef list bs = [n if isinstance(n, bytes) else n.encode() for n in names]
        for b in bs:
            with nogil:
                if self.L.is_maps:
                    take_slot(&self.L)
            start(&self.L, <const char *>b, len(b))
        with nogil:
            drain(&self.L)
        self.done = True

    def stop(self):
        """Make run() return soon: nothing new is started, the ops in flight complete; safe from another thread."""
        av_request_stop(&self.L.stop)
        wake_hand_over(&self.L)

    def progress(self):
        """Objects listed so far; safe to call from another thread while run() works."""
        return self.L.counts[C_FILES]

    def counters(self):
        return {COUNTER_NAMES[c]: self.L.counts[c] for c in range(NCOUNT)}

    cdef void _free_kept(self) noexcept:
        free_kept(&self.L)

    def kept(self):
        """With keep=True: what the scan read of each header candidate, in listing order (then freed):
        (names, first bytes, complete) where complete[i] says the bytes are the whole object;
        None when they cost more than keep_max (and were dropped)."""
        cdef size_t i
        cdef kept_t *k
        if self.L.oom:
            raise MemoryError("out of memory while keeping header reads")
        if self.L.kept_over:
            return None
        with nogil:
            qsort(self.L.kept, self.L.nkept, sizeof(kept_t), cmp_kept)  # retried reads complete out of order
        names, heads = [], []
        complete = bytearray(self.L.nkept)
        for i in range(self.L.nkept):
            k = &self.L.kept[i]
            names.append(k.name[:k.n])
            heads.append(<bytes>k.head[:k.got])
            complete[i] = 1 if k.got < AV_HEADER_READ else 0
        self._free_kept()
        return names, heads, complete

    def take_records(self):
        """The batch the loop handed over, if any (see records()); made with ``batch``, a shard's
        records are taken so while it runs: the loop waits for each batch to be taken before it
        hands over the next one. Safe to call from another thread while run() works."""
        cdef av_recs_t got
        with nogil:
            pthread_mutex_lock(&self.L.rmu)
            got = self.L.handed
            memset(&self.L.handed, 0, sizeof(av_recs_t))
            pthread_cond_signal(&self.L.rcv)
            pthread_mutex_unlock(&self.L.rmu)
        try:
            return _tuples(&got)
        finally:
            av_recs_free(&got)

    def records(self):
        """[(kind, name bytes, detail bytes, errno, map version or None)] in no particular order: those
        not taken yet. Once run() returned."""
        if self.L.oom:
            raise MemoryError("out of memory while recording findings")
        out = self.take_records()
        out += _tuples(&self.L.recs)
        av_recs_clear(&self.L.recs)
        return out


cdef list _tuples(av_recs_t *b):
    cdef size_t i
    cdef av_rec_t *r
    if b.oom:
        raise MemoryError("out of memory while recording findings")
    out = []
    for i in range(b.n):
        r = &b.a[i]
        out.append((KIND_NAMES[r.kind], r.name[:r.namelen] if r.name != NULL else b"",
                    <bytes>r.detail if r.detail != NULL else b"", r.err, r.aux - 1 if r.aux else None))
    return out
