# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The check's pool I/O through librados' aio (verify/backends/rados/io.py calls it).

Whole-object reads (``read_whole``: a prefix read, then a stat and a read of the rest),
pipelined prefix reads (``read_prefixes``: ``inflight`` in flight, the next started as the
oldest completes) and stats (``stat_sizes``), each over a batch of names without the GIL,
transient errors retried by the one rule of _librados.pxd. Its own module: it shares no
state with the scan loop (verify/native/_radoscan.pyx), only the client and pool of verify/native/_rados.pyx.
"""

from libc.stdint cimport uint64_t
from libc.stdlib cimport malloc, free, calloc
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

from ._librados cimport *  # librados' C API, the retry rule, one aio op's submit: _librados.pxd
from ._native cimport *  # the token bucket: _native.h
from ._rados cimport IoCtx  # an open pool: _rados.pyx


cdef void aio_all(rados_ioctx_t io, Py_ssize_t n, const char **oids, int *todo, int op, char **bufs,
                  uint64_t *lens, time_t *mtimes, int *errs) noexcept nogil:
    """One op per object with ``todo[i]`` set, all in flight, then all waited for; transient
    errors retried by the rule of ``retry``. OP_STAT: stat into lens; OP_READ: read lens[i] bytes into bufs[i]
    (lens = bytes read)."""
    cdef Py_ssize_t i
    cdef int r, tries
    cdef rados_completion_t *comps = <rados_completion_t *>calloc(n + 1, sizeof(rados_completion_t))
    if comps == NULL:
        for i in range(n):
            if todo[i]:
                errs[i] = ENOMEM
        return
    for tries in range(MAX_TRIES):
        for i in range(n):
            if not todo[i] or (tries and not (errs[i] and retry(errs[i], tries - 1))):
                continue
            errs[i] = 0
            if op == OP_READ and lens[i] == 0:
                continue
            r = rados_aio_create_completion2(NULL, NULL, &comps[i])
            if r == 0:
                r = aio_submit(io, &comps[i], op, oids[i], bufs[i], lens[i], &lens[i], &mtimes[i])
            if r < 0:
                errs[i] = -r
        for i in range(n):
            if comps[i] != NULL:
                rados_aio_wait_for_complete(comps[i])
                r = rados_aio_get_return_value(comps[i])
                rados_aio_release(comps[i])
                comps[i] = NULL
                if r < 0:
                    errs[i] = -r
                elif op == OP_READ:
                    lens[i] = <uint64_t>r
                    av_limit_take(0, <uint64_t>r, NULL)  # --bytes-per-second: the bytes read
    free(comps)


cdef class _Batch:
    """The per-object arrays of one batch of aio ops (aio_all), freed with it."""
    cdef list bs
    cdef Py_ssize_t n
    cdef uint64_t *sizes
    cdef time_t *mtimes
    cdef int *errs
    cdef int *todo
    cdef const char **oids
    cdef char **bufs

    def __cinit__(self, names):
        cdef Py_ssize_t i
        self.bs = [x if isinstance(x, bytes) else x.encode() for x in names]
        self.n = len(self.bs)
        self.sizes = <uint64_t *>calloc(self.n + 1, sizeof(uint64_t))
        self.mtimes = <time_t *>calloc(self.n + 1, sizeof(time_t))
        self.errs = <int *>calloc(self.n + 1, sizeof(int))
        self.todo = <int *>calloc(self.n + 1, sizeof(int))
        self.oids = <const char **>calloc(self.n + 1, sizeof(char *))
        self.bufs = <char **>calloc(self.n + 1, sizeof(char *))
        if (self.sizes == NULL or self.mtimes == NULL or self.errs == NULL or self.todo == NULL or self.oids == NULL
                or self.bufs == NULL):
            raise MemoryError()
        for i in range(self.n):
            self.oids[i] = <const char *>(<bytes>self.bs[i])
            self.todo[i] = 1

    def __dealloc__(self):
        free(self.sizes); free(self.mtimes); free(self.errs); free(self.todo); free(self.oids); free(self.bufs)


def read_whole(IoCtx ioctx, names, uint64_t maxlen=1 << 30, uint64_t first=0, bint whole=True):
    """Each named object read whole, all of them in flight at once (the caller bounds
    how many it hands in): [(data or None, errno)] in the order given.

    With ``first``, one aio read of that many bytes each, no stat: an object shorter
    than that is done in one round trip (and with ``whole`` false, only those bytes
    are wanted anyway). The others get an aio stat, then an aio read of their size
    straight into a bytes object. ENOENT is an errno like any other here: the caller
    decides what a race means. Objects over ``maxlen`` bytes give EFBIG unread."""
    cdef rados_ioctx_t io = ioctx.io
    cdef _Batch B = _Batch(names)
    cdef Py_ssize_t n = B.n, i
    cdef uint64_t *sizes = B.sizes
    cdef time_t *mtimes = B.mtimes
    cdef int *errs = B.errs
    cdef int *todo = B.todo
    cdef const char **oids = B.oids
    cdef char **bufs = B.bufs
    cdef char *pre = NULL
    cdef list datas = [None] * n
    try:
        if first and n:
            pre = <char *>malloc(<size_t>first * n)
            if pre == NULL:
                raise MemoryError()
            for i in range(n):
                bufs[i] = pre + <size_t>first * i
                sizes[i] = first
            with nogil:
                aio_all(io, n, oids, todo, OP_READ, bufs, sizes, mtimes, errs)
            for i in range(n):
                bufs[i] = NULL
                if errs[i]:
                    todo[i] = 0
                elif sizes[i] < first or not whole:
                    datas[i] = PyBytes_FromStringAndSize(pre + <size_t>first * i, <Py_ssize_t>sizes[i])
                    todo[i] = 0
            free(pre)
            pre = NULL
        with nogil:
            aio_all(io, n, oids, todo, OP_STAT, bufs, sizes, mtimes, errs)
        for i in range(n):
            if todo[i]:
                if errs[i]:
                    todo[i] = 0
                elif sizes[i] > maxlen:
                    errs[i] = 27  # EFBIG
                    todo[i] = 0
                else:
                    datas[i] = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>sizes[i])
                    bufs[i] = PyBytes_AS_STRING(datas[i])
        with nogil:
            aio_all(io, n, oids, todo, OP_READ, bufs, sizes, mtimes, errs)
        out = []
        for i in range(n):
            if errs[i]:
                out.append((None, errs[i]))
            elif todo[i] and sizes[i] < <uint64_t>len(datas[i]):
                out.append((datas[i][:sizes[i]], 0))  # shrank since the stat: what was read
            else:
                out.append((datas[i], 0))
        return out
    finally:
        free(pre)


cdef void aio_pipe(rados_ioctx_t io, Py_ssize_t n, const char **oids, char **bufs, uint64_t *lens, int *errs,
                   int inflight) noexcept nogil:
    """An aio read of lens[i] bytes of each object into bufs[i] (lens = bytes read), ``inflight``
    in flight, the next started as the oldest completes (the scan's FIFO, not waves); transient
    errors retried by the rule of ``retry``. Once an op timed out, nothing new is started (the
    ones not begun get ETIMEDOUT too): the cluster stopped answering, the caller stops the run."""
    cdef Py_ssize_t i, nxt = 0
    cdef int r, head = 0, count = 0
    cdef bint stalled = False
    cdef int cap = inflight + 1
    cdef rados_completion_t *comps = <rados_completion_t *>calloc(n + 1, sizeof(rados_completion_t))
    cdef int *tries = <int *>calloc(n + 1, sizeof(int))
    cdef Py_ssize_t *ring = <Py_ssize_t *>calloc(cap, sizeof(Py_ssize_t))
    if comps == NULL or tries == NULL or ring == NULL:
        for i in range(n):
            errs[i] = ENOMEM
        free(comps); free(tries); free(ring)
        return
    while nxt < n or count:
        if nxt < n and stalled:
            errs[nxt] = ETIMEDOUT
            nxt += 1
            continue
        if nxt < n and count < inflight:
            i = nxt
            nxt += 1
        else:  # the oldest op in flight
            i = ring[head]
            head = (head + 1) % cap
            count -= 1
            rados_aio_wait_for_complete(comps[i])
            r = rados_aio_get_return_value(comps[i])
            rados_aio_release(comps[i])
            comps[i] = NULL
            if r >= 0:
                lens[i] = <uint64_t>r
                av_limit_take(0, <uint64_t>r, NULL)  # --bytes-per-second: the bytes read
                continue
            if not retry(-r, tries[i]):
                errs[i] = -r
                stalled = stalled or r == -ETIMEDOUT
                continue
            tries[i] += 1
        errs[i] = 0
        if lens[i] == 0:
            continue
        while True:  # start op i; a failed submit is retried as a failed op would be
            r = rados_aio_create_completion2(NULL, NULL, &comps[i])
            if r == 0:
                r = aio_submit(io, &comps[i], OP_READ, oids[i], bufs[i], lens[i], NULL, NULL)
            if r == 0 or not retry(-r, tries[i]):
                break
            tries[i] += 1
        if r < 0:
            errs[i] = -r
            continue
        ring[(head + count) % cap] = i
        count += 1
    free(comps); free(tries); free(ring)


def read_prefixes(IoCtx ioctx, names, lens, int inflight=256):
    """The first ``lens[i]`` bytes of each named object (all of it when shorter), ``inflight``
    aio reads in flight at a time, no stat: [(data or None, errno)] in the order given."""
    cdef _Batch B = _Batch(names)
    cdef Py_ssize_t i, n = B.n
    cdef list datas = [None] * n
    cdef list want = list(lens)
    if len(want) != n:
        raise ValueError("names and lens differ in length")
    for i in range(n):
        B.sizes[i] = <uint64_t>want[i]
        datas[i] = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>B.sizes[i])
        B.bufs[i] = PyBytes_AS_STRING(datas[i])
    with nogil:
        aio_pipe(ioctx.io, n, B.oids, B.bufs, B.sizes, B.errs, max(1, inflight))
    out = []
    for i in range(n):
        if B.errs[i]:
            out.append((None, B.errs[i]))
        elif B.sizes[i] < <uint64_t>want[i]:
            out.append((datas[i][:B.sizes[i]], 0))
        else:
            out.append((datas[i], 0))
    return out


def stat_sizes(IoCtx ioctx, names):
    """Each named object's length by an aio stat, all in flight at once (no data read):
    [(size, errno)] in the order given, size 0 where errno is set."""
    cdef _Batch B = _Batch(names)
    cdef Py_ssize_t i
    with nogil:
        aio_all(ioctx.io, B.n, B.oids, B.todo, OP_STAT, B.bufs, B.sizes, B.mtimes, B.errs)
    return [((0, B.errs[i]) if B.errs[i] else (<object>B.sizes[i], 0)) for i in range(B.n)]


def _limit_use(size_t address):
    """Points this module's loops at the process's one token bucket (verify/native/limits.py); 0: no caps."""
    av_limit_use(<av_limit_t *>address)
