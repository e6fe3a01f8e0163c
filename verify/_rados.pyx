# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The RADOS hot loop: list a slice of a pool and check it with N aio ops in flight.

One thread drives everything without the GIL: it lists its slice of the pool with
``rados_object_list`` (the slice from ``rados_object_list_slice``), decides from each
name alone what it is (_rules.h ``av_name_class``), and for the few that need bytes
starts an aio op in a free slot: a header read of a map candidate, a read of a
``NAME_lock``'s owner, then the probes a rule needs (an 8-byte read of ``NAME`` for
``archip_NAME``, an aio stat per map-data object). librados calls back from its own
threads; the callback only queues the slot, and the driving thread runs each slot's
small state machine. Per-object outcomes are C records, turned into findings by
verify/backends/rados.py once the GIL is back; with ``keep`` (a check's scan stage) the
header reads are kept too, for the reference stage. The rules and their precedence are
those of _scan.pyx ``check_map`` (same _rules.h), minus placement: RADOS has no paths.
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, realloc, free, calloc
from libc.string cimport memcpy, memset, strlen, memchr
cdef extern from "<errno.h>" nogil:
    int ENOENT, ETIMEDOUT, EAGAIN, EINTR, EIO, EBUSY, ENOTCONN, ECONNRESET, ESHUTDOWN, ECANCELED, ENOMEM

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *ts)
    int CLOCK_MONOTONIC


cdef inline uint64_t now_us() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t>ts.tv_sec * 1000000 + <uint64_t>(ts.tv_nsec // 1000)

cdef extern from "<stdio.h>" nogil:
    int snprintf(char *buf, size_t n, const char *fmt, ...)

cdef extern from "<pthread.h>" nogil:
    ctypedef unsigned long pthread_t
    int pthread_create(pthread_t *t, void *attr, void *(*fn)(void *) noexcept nogil, void *arg)
    int pthread_join(pthread_t t, void **ret)
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_cond_t:
        pass
    int pthread_mutex_init(pthread_mutex_t *m, void *attr)
    int pthread_mutex_destroy(pthread_mutex_t *m)
    int pthread_mutex_lock(pthread_mutex_t *m)
    int pthread_mutex_unlock(pthread_mutex_t *m)
    int pthread_cond_init(pthread_cond_t *c, void *attr)
    int pthread_cond_destroy(pthread_cond_t *c)
    int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
    int pthread_cond_signal(pthread_cond_t *c)

cdef extern from "rados/librados.h" nogil:
    ctypedef void *rados_t
    ctypedef void *rados_ioctx_t
    ctypedef void *rados_completion_t
    ctypedef void *rados_object_list_cursor
    ctypedef void (*rados_callback_t)(rados_completion_t cb, void *arg)
    ctypedef struct rados_object_list_item:
        size_t oid_length
        char *oid
        size_t nspace_length
        char *nspace
        size_t locator_length
        char *locator
    int rados_create(rados_t *cluster, const char *id)
    int rados_conf_read_file(rados_t cluster, const char *path)
    int rados_conf_parse_env(rados_t cluster, const char *var)
    int rados_conf_set(rados_t cluster, const char *option, const char *value)
    int rados_conf_get(rados_t cluster, const char *option, char *buf, size_t len)
    int rados_connect(rados_t cluster)
    void rados_shutdown(rados_t cluster)
    long long rados_pool_lookup(rados_t cluster, const char *pool_name)
    int rados_ioctx_create(rados_t cluster, const char *pool_name, rados_ioctx_t *ioctx)
    void rados_ioctx_destroy(rados_ioctx_t io)
    void rados_ioctx_set_namespace(rados_ioctx_t io, const char *nspace)
    struct rados_pool_stat_t:
        uint64_t num_objects
    int rados_ioctx_pool_stat(rados_ioctx_t io, rados_pool_stat_t *stats)
    rados_object_list_cursor rados_object_list_begin(rados_ioctx_t io)
    rados_object_list_cursor rados_object_list_end(rados_ioctx_t io)
    int rados_object_list_is_end(rados_ioctx_t io, rados_object_list_cursor cur)
    void rados_object_list_cursor_free(rados_ioctx_t io, rados_object_list_cursor cur)
    int rados_object_list_cursor_cmp(rados_ioctx_t io, rados_object_list_cursor lhs, rados_object_list_cursor rhs)
    int rados_object_list(rados_ioctx_t io, const rados_object_list_cursor start,
                          const rados_object_list_cursor finish, const size_t result_size,
                          const char *filter_buf, const size_t filter_buf_len,
                          rados_object_list_item *results, rados_object_list_cursor *next)
    void rados_object_list_free(const size_t result_size, rados_object_list_item *results)
    void rados_object_list_slice(rados_ioctx_t io, const rados_object_list_cursor start,
                                 const rados_object_list_cursor finish, const size_t n, const size_t m,
                                 rados_object_list_cursor *split_start, rados_object_list_cursor *split_finish)
    int rados_aio_create_completion2(void *cb_arg, rados_callback_t cb_complete, rados_completion_t *pc)
    int rados_aio_get_return_value(rados_completion_t c)
    int rados_aio_wait_for_complete(rados_completion_t c)
    int rados_aio_is_complete(rados_completion_t c)
    void rados_aio_release(rados_completion_t c)
    int rados_aio_read(rados_ioctx_t io, const char *oid, rados_completion_t completion,
                       char *buf, size_t len, uint64_t off)
    int rados_aio_stat(rados_ioctx_t io, const char *o, rados_completion_t completion,
                       uint64_t *psize, time_t *pmtime)

from ._rules cimport *  # the C twin of formats.py: _rules.h, declared in _rules.pxd
from ._native cimport *  # the stop flag and the record buffer: _native.h

from .findings import RECORD_KINDS as KIND_NAMES

cimport cython
import atexit
import weakref

# Every cluster handle this process holds, shut down at interpreter exit (atexit runs before
# the modules and the garbage collector free objects): a librados client still connected when
# the C runtime exits keeps its threads running while exit() destroys libceph-common's static
# state under them, and the process aborts (boost::bad_get, exit 134) after its work is done.
# Left to the collector, a handle in a reference cycle may also be shut down before an ioctx
# still using it, whatever order the objects were made in.
_LIVE_CLUSTERS = weakref.WeakSet()


@atexit.register
def _shutdown_all():
    for c in list(_LIVE_CLUSTERS):
        c.shutdown()

# ---- counters (names as for filed: "files" are listed objects) ----
cdef enum:
    C_FILES = 0
    C_V0 = 1            # v0, v1, v2, corrupt in this order: C_V0 + av_class_tally(class)
    C_V1 = 2
    C_V2 = 3
    C_CORRUPT = 4
    C_MAPDATA = 5
    C_OTHER = 6
    C_LOCKS = 7
    C_HASH = 8
    C_TEMP = 9
    C_HEADER_BYTES = 10
    C_PROBES = 11
    C_READS = 12
    C_RETRIES = 13
    C_VANISHED = 14
    C_LIST_CALLS = 15
    C_LIST_US = 16      # time spent waiting for listing pages
    NCOUNT = 17

COUNTER_NAMES = ("files", "v0", "v1", "v2", "corrupt", "mapdata", "other", "locks", "hash_files",
                 "temp_files", "header_bytes", "probes", "reads", "retries", "vanished", "list_calls",
                 "list_wait_us")

# ---- slot states: which aio op a slot is waiting for ----
cdef enum:
    S_FREE = 0
    S_HEADER = 1        # read AV_HEADER_READ bytes of a map header candidate
    S_V1SIZE = 2        # stat of a v1 map whose entries may extend past what was read
    S_PROBE_NAME = 3    # read 8 bytes of NAME for archip_NAME: is it an upgraded v2 map?
    S_MAPDATA = 4       # stat of NAME_<16 hex>, block blk of nb
    S_LOCK = 5          # read the owner string of NAME_lock

DEF KEPT_COST = 200     # bytes a kept header read costs beside its name, in C and then in Python
DEF HEADBUF = 256       # >= AV_HEADER_READ, and the most of a lock owner we keep
DEF KEPTHEAD = 64       # == AV_HEADER_READ (checked when a RadosShard is made)
DEF SLOTNAME = 240      # names shorter than this live in their slot: no malloc/free per object
DEF DETAILMAX = 600
DEF PAGE = 1024         # objects per rados_object_list call
DEF MAX_TRIES = 4       # a transient error is retried this many times less one
DEF REAP_BATCH = 16     # ops a wait for completions hands over at the least (fewer only when no more are in flight)
DEF QPAGES = 4          # listed pages the listing thread may run ahead

ctypedef struct page_t:
    rados_object_list_item *items
    int n

# A listing in progress (cursor_open, next_page, cursor_close): the one way this module lists a pool.
ctypedef struct cursor_t:
    rados_ioctx_t io
    rados_object_list_cursor cur     # where the next page starts
    rados_object_list_cursor finish  # where the listing ends
    rados_object_list_cursor nxt     # where librados writes the page's end; swapped with cur
    const int *stop                  # a stop flag to honour between pages, or NULL
    uint64_t calls, wait_us          # rados_object_list calls made, time spent waiting for them
    int done

ctypedef struct pend_t:
    char *name
    size_t n
    av_map_facts_t f    # all but the map-data, which is found out after the listing

# What the scan read of one header candidate, kept for the check's reference stage (keep=True)
ctypedef struct kept_t:
    uint64_t seq        # its place among the candidates, in listing order
    char *name
    size_t n
    int got             # bytes read; fewer than AV_HEADER_READ: the whole object
    unsigned char head[KEPTHEAD]

ctypedef struct slot_t:
    void *loop
    int idx
    uint64_t seq        # a header candidate's place in listing order (kept_t.seq)
    int state
    int tries
    char *name          # NUL-terminated copy of the object name (inl, or malloc'd when longer)
    size_t n
    char *target        # object the current op is on (name, NAME, or a map-data name)
    bint tmalloc        # target was malloc'd (else it points into the slot)
    char inl[SLOTNAME]
    char tinl[SLOTNAME + 18]
    rados_completion_t comp
    unsigned char buf[HEADBUF]
    int got
    int subr            # error of a failed submit, handled as the op's result
    uint64_t size       # what an aio stat answers
    time_t mtime
    av_map_facts_t f    # what is known of a header candidate, for av_map_verdict
    uint64_t blk        # the map-data block being looked for

ctypedef struct loop_t:
    rados_ioctx_t io
    int is_maps
    pthread_mutex_t mu  # guards the page queue shared with the listing thread
    pthread_cond_t cv   # a page was queued, or the listing ended
    int *fifo           # slots with an op in flight, oldest first (at most one op a slot)
    int fhead, ftail, fcap
    slot_t *slots
    int nslots
    int *free_idx
    int nfree
    av_recs_t recs
    int oom             # any other allocation failed (the records keep their own flag)
    uint64_t counts[NCOUNT]
    int listing         # 1 while listing: map-data checks wait for the end of the listing
    uint64_t *mdh       # hashes of the map-data names this shard listed (sorted once listed)
    size_t nmdh, capmdh
    int mdh_sorted
    pend_t *pend        # v2 maps whose map-data is checked once the listing is complete
    size_t npend, cappend
    page_t q[QPAGES]    # listed pages from the listing thread, under mu
    page_t used[QPAGES] # pages done with, handed back: freed by the thread that allocated them
    int nused
    int qhead, qcount
    int ldone           # the listing thread has finished
    int list_err        # and how: 0 or -errno
    cursor_t *lister    # what the listing thread lists
    int keep            # keep each header read (kept_t) for the reference stage
    kept_t *kept
    size_t nkept, capkept
    uint64_t keep_max   # what the kept reads may cost (KEPT_COST + name each), 0: no bound;
    uint64_t kept_cost  # past it they are all dropped and none is kept more (kept_over)
    int kept_over
    uint64_t ncand      # header candidates started so far
    int stop            # set from the main thread: no new object is started, ops in flight end
    pthread_cond_t qspace


cdef inline void emit(loop_t *L, int kind, int err, const char *name, size_t n, const char *detail) noexcept nogil:
    av_emit(&L.recs, kind, err, 0, name, n, NULL, 0, detail)


cdef char *room_and_name(loop_t *L, void **a, size_t n, size_t *cap, size_t elem, size_t first,
                         slot_t *s) noexcept nogil:
    """Room for one more element of *a (room_for_one) and a copy of the slot's name for it; NULL
    (L.oom set) if out of memory."""
    cdef char *name = NULL
    if room_for_one(a, n, cap, elem, first):
        name = av_dupn(s.name, s.n)
    if name == NULL:
        L.oom = 1
    return name


cdef void free_kept(loop_t *L) noexcept nogil:
    cdef size_t i
    for i in range(L.nkept):
        free(L.kept[i].name)
    free(L.kept)
    L.kept = NULL
    L.nkept = L.capkept = 0


cdef void keep_head(loop_t *L, slot_t *s, int got) noexcept nogil:
    """The header read of a candidate, for the reference stage: it reads no header again. Past
    keep_max all are dropped: the reference stage then reads every header itself."""
    cdef kept_t *k
    cdef char *name
    L.kept_cost += KEPT_COST + s.n
    if L.keep_max and L.kept_cost > L.keep_max:
        free_kept(L)
        L.keep, L.kept_over = 0, 1
        return
    name = room_and_name(L, <void **>&L.kept, L.nkept, &L.capkept, sizeof(kept_t), 1024, s)
    if name == NULL:
        return
    k = &L.kept[L.nkept]
    k.name, k.seq, k.n, k.got = name, s.seq, s.n, got
    memcpy(k.head, s.buf, got)
    L.nkept += 1


cdef int cmp_kept(const void *a, const void *b) noexcept nogil:
    cdef uint64_t x = (<const kept_t *>a).seq, y = (<const kept_t *>b).seq
    return (x > y) - (x < y)


cdef extern from "<stdlib.h>" nogil:
    void qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))


cdef inline uint64_t name_hash(const char *p, size_t n) noexcept nogil:
    """FNV-1a, then a 64-bit finalizer: a map-data name listed by this shard."""
    cdef uint64_t h = 14695981039346656037ULL
    cdef size_t i
    for i in range(n):
        h = (h ^ <unsigned char>p[i]) * 1099511628211ULL
    h ^= h >> 33
    h *= 0xff51afd7ed558ccdULL
    h ^= h >> 33
    h *= 0xc4ceb9fe1a85ec53ULL
    h ^= h >> 33
    return h


cdef int cmp_u64(const void *a, const void *b) noexcept nogil:
    cdef uint64_t x = (<const uint64_t *>a)[0], y = (<const uint64_t *>b)[0]
    return (x > y) - (x < y)


cdef bint room_for_one(void **a, size_t n, size_t *cap, size_t elem, size_t first) noexcept nogil:
    """Grow the array *a of n elements (doubling, from ``first``) so that one more fits; False if out of memory."""
    cdef void *p
    cdef size_t c
    if n < cap[0]:
        return True
    c = cap[0] * 2 if cap[0] else first
    p = realloc(a[0], c * elem)
    if p == NULL:
        return False
    a[0], cap[0] = p, c
    return True


cdef void remember_mapdata(loop_t *L, const char *name, size_t n) noexcept nogil:
    if not room_for_one(<void **>&L.mdh, L.nmdh, &L.capmdh, sizeof(uint64_t), 1024):
        L.oom = 1
        return
    L.mdh[L.nmdh] = name_hash(name, n)
    L.nmdh += 1


cdef bint listed_mapdata(loop_t *L, const char *name, size_t n) noexcept nogil:
    """Did this shard's listing contain NAME? (sorted hashes; a miss is confirmed by a stat)."""
    cdef uint64_t h
    cdef size_t lo = 0, hi = L.nmdh, mid
    if not L.mdh_sorted or L.nmdh == 0:
        return False
    h = name_hash(name, n)
    while lo < hi:
        mid = (lo + hi) // 2
        if L.mdh[mid] < h:
            lo = mid + 1
        else:
            hi = mid
    return lo < L.nmdh and L.mdh[lo] == h


cdef inline bint transient(int err) noexcept nogil:
    # not ETIMEDOUT: librados resent the op on every OSD map change for the whole rados_osd_op_timeout;
    # a timed-out op stops the loop (stalled) and the caller the run (verify/backends/rados_io.stalled)
    return (err == EAGAIN or err == EINTR or err == EIO or err == EBUSY
            or err == ENOTCONN or err == ECONNRESET or err == ESHUTDOWN or err == ECANCELED or err == ENOMEM)


cdef inline bint retry(int err, int tries) noexcept nogil:
    """The one retry rule of every librados call here: a transient error, tries to spare."""
    return transient(err) and tries + 1 < MAX_TRIES


# the two aio ops
cdef enum:
    OP_STAT = 0
    OP_READ = 1


cdef int aio_submit(rados_ioctx_t io, rados_completion_t *comp, int op, const char *oid, char *buf, size_t len,
                    uint64_t *psize, time_t *pmtime) noexcept nogil:
    """Start one aio op on the completion *comp: 0, or -errno with *comp released and NULL."""
    cdef int r
    if op == OP_STAT:
        r = rados_aio_stat(io, oid, comp[0], psize, pmtime)
    else:
        r = rados_aio_read(io, oid, comp[0], buf, len, 0)
    if r < 0:
        rados_aio_release(comp[0])
        comp[0] = NULL
    return r


cdef bint take_name(slot_t *s, const char *name, size_t n) noexcept nogil:
    """s.name := a NUL-terminated copy of name, in the slot when it fits; False if out of memory."""
    if n < SLOTNAME:
        memcpy(s.inl, name, n)
        s.inl[n] = 0
        s.name = s.inl
    else:
        s.name = av_dupn(name, n)
        if s.name == NULL:
            return False
    s.n = n
    s.target = s.name
    s.tmalloc = False
    return True


cdef void release_slot(loop_t *L, slot_t *s) noexcept nogil:
    if s.tmalloc:
        free(s.target)
    if s.name != s.inl:
        free(s.name)
    s.tmalloc = False
    s.name = NULL
    s.target = NULL
    s.state = S_FREE
    L.free_idx[L.nfree] = s.idx
    L.nfree += 1


cdef void fail(loop_t *L, slot_t *s, int err, const char *what) noexcept nogil:
    """An op that kept failing: an ``unreadable`` finding naming the object."""
    cdef char detail[DETAILMAX]
    if s.target != s.name:
        snprintf(detail, DETAILMAX, "%s %s", what, s.target)
    else:
        snprintf(detail, DETAILMAX, "%s", what)
    emit(L, K_UNREADABLE, err, s.name, s.n, detail)
    release_slot(L, s)


cdef void set_target(slot_t *s, char *t, bint owned) noexcept nogil:
    if s.tmalloc and s.target != t:
        free(s.target)
    s.target = t
    s.tmalloc = owned


cdef void issue(loop_t *L, slot_t *s) noexcept nogil:
    """Start the aio op of the slot's state; a submit error is handled as a completion error."""
    cdef int r
    # No callback: librados would hand each completion to a thread of its own, one more
    # wake-up per op; the oldest op is waited for instead (wait_some).
    r = rados_aio_create_completion2(NULL, NULL, &s.comp)
    if r < 0:
        fail(L, s, -r, "aio completion")
        return
    if s.state == S_HEADER:
        L.counts[C_READS] += 1
        r = aio_submit(L.io, &s.comp, OP_READ, s.target, <char *>s.buf, AV_HEADER_READ, NULL, NULL)
    elif s.state == S_LOCK:
        L.counts[C_READS] += 1
        r = aio_submit(L.io, &s.comp, OP_READ, s.target, <char *>s.buf, HEADBUF - 1, NULL, NULL)
    elif s.state == S_PROBE_NAME:
        L.counts[C_PROBES] += 1
        r = aio_submit(L.io, &s.comp, OP_READ, s.target, <char *>s.buf + AV_HEADER_READ, 8, NULL, NULL)
    else:  # S_V1SIZE, S_MAPDATA
        L.counts[C_PROBES] += 1
        r = aio_submit(L.io, &s.comp, OP_STAT, s.target, NULL, 0, &s.size, &s.mtime)
    if r < 0:
        s.subr = r  # as if the op had completed with r (comp is NULL): retried or reported by handle
    L.fifo[L.ftail] = s.idx
    L.ftail = (L.ftail + 1) % L.fcap


cdef void start(loop_t *L, const char *name, size_t n) noexcept nogil:
    """One listed object: decide from its name alone, or take a slot for its first op."""
    cdef int nc, fault
    cdef slot_t *s
    if av_stopped(&L.stop):
        return
    av_limit_take(1, 0, &L.stop)  # --objects-per-second: each listed object, before its first op
    L.counts[C_FILES] += 1
    fault = av_name_fault(name, n, 0)
    if fault != AV_NAME_FINE:  # in either pool: filed's rule, without its length floor
        emit(L, K_STRAY, 0, name, n, av_name_fault_text(fault))
        return
    nc = av_name_class(name, n)
    if nc == AV_NAME_HASH:
        L.counts[C_HASH] += 1
        return
    if nc == AV_NAME_TEMP:
        L.counts[C_TEMP] += 1
        return
    if not L.is_maps:
        if nc == AV_NAME_LOCK:
            L.counts[C_LOCKS] += 1  # the blocks pool is listed, never read
        return
    if nc == AV_NAME_MAPDATA:
        L.counts[C_MAPDATA] += 1
        if L.listing:
            remember_mapdata(L, name, n)
        return
    L.nfree -= 1
    s = &L.slots[L.free_idx[L.nfree]]
    if not take_name(s, name, n):
        L.oom = 1
        L.free_idx[L.nfree] = s.idx
        L.nfree += 1
        return
    s.tries = 0
    s.got = 0
    s.state = S_LOCK if nc == AV_NAME_LOCK else S_HEADER
    if nc != AV_NAME_LOCK:
        s.seq = L.ncand
        L.ncand += 1
    issue(L, s)


cdef void decide(loop_t *L, slot_t *s) noexcept nogil:
    """Ask av_map_verdict: start the op that finds out the fact it needs, or emit its finding."""
    cdef char detail[DETAILMAX]
    cdef int code
    cdef int kind = av_map_verdict(&s.f, &code)
    if kind == AV_NEED_SIZE:
        s.state = S_V1SIZE
        s.tries = 0
        issue(L, s)
        return
    if s.state == S_HEADER or s.state == S_V1SIZE:
        L.counts[C_OTHER if s.f.h.cls == AV_NOT_MAP else C_V0 + av_class_tally(s.f.h.cls)] += 1  # known for good
    if kind == AV_NEED_UPGRADED:
        set_target(s, s.name + 7, False)  # NAME of archip_NAME: the tail of the slot's name
        s.state = S_PROBE_NAME
        s.tries = 0
        issue(L, s)
        return
    if kind == AV_NEED_MAPDATA:
        s.blk = 0
        if L.listing:
            defer(L, s)
        else:
            s.state = S_MAPDATA
            next_mapdata(L, s)
            return
    elif kind != AV_NO_FINDING:
        av_map_detail(detail, DETAILMAX, code, &s.f, s.name, s.n)
        av_emit(&L.recs, kind, 0, av_verdict_aux(kind, s.f.h.cls), s.name, s.n, NULL, 0, detail)
    release_slot(L, s)


cdef void next_mapdata(loop_t *L, slot_t *s) noexcept nogil:
    """Stat the first map-data block from s.blk on that the listing did not show; decide if none."""
    cdef bint owned = s.n + 18 > sizeof(s.tinl)
    cdef char *t = <char *>malloc(s.n + 18) if owned else s.tinl
    if t == NULL:
        L.oom = 1
        release_slot(L, s)
        return
    while s.blk < s.f.nb:
        snprintf(t, s.n + 18, "%.*s_%016llx", <int>s.n, s.name, <unsigned long long>s.blk)
        if not listed_mapdata(L, t, s.n + 17):
            set_target(s, t, owned)
            s.state = S_MAPDATA
            s.tries = 0
            issue(L, s)
            return
        s.blk += 1
    if owned:
        free(t)
    s.f.missing = <int64_t>s.f.nb
    decide(L, s)


cdef void defer(loop_t *L, slot_t *s) noexcept nogil:
    """Check this map's map-data after the listing: most of it is then known without a stat."""
    cdef pend_t *p
    cdef char *name = room_and_name(L, <void **>&L.pend, L.npend, &L.cappend, sizeof(pend_t), 256, s)
    if name == NULL:
        return
    p = &L.pend[L.npend]
    p.name = name
    p.n = s.n
    p.f = s.f
    L.npend += 1


cdef void check_deferred(loop_t *L) noexcept nogil:
    """The listing is complete: map-data it showed is present; stat only the rest."""
    cdef size_t i
    cdef slot_t *s
    qsort(L.mdh, L.nmdh, sizeof(uint64_t), cmp_u64)
    L.mdh_sorted = 1
    L.listing = 0
    for i in range(L.npend):
        if av_stopped(&L.stop):
            break
        take_slot(L)
        L.nfree -= 1
        s = &L.slots[L.free_idx[L.nfree]]
        if not take_name(s, L.pend[i].name, L.pend[i].n):
            L.oom = 1
            L.free_idx[L.nfree] = s.idx
            L.nfree += 1
            break
        s.f = L.pend[i].f
        s.blk = 0
        s.tries = 0
        s.state = S_MAPDATA
        next_mapdata(L, s)
    for i in range(L.npend):
        free(L.pend[i].name)  # each was copied into its slot, or left unchecked by a stop
    free(L.pend)
    L.pend = NULL
    L.npend = L.cappend = 0
    drain(L)


cdef void handle(loop_t *L, slot_t *s) noexcept nogil:
    """One completed (or failed to submit) op: record the fact it found out, then decide."""
    cdef int r, err
    if s.comp == NULL:
        r = s.subr
    else:
        r = rados_aio_get_return_value(s.comp)
        rados_aio_release(s.comp)
        s.comp = NULL
    if r > 0:  # a read's bytes (a stat answers 0): the loop issues nothing more until the cap allows them
        av_limit_take(0, <uint64_t>r, &L.stop)
    if r < 0:
        err = -r
        if err == ENOENT:
            if s.state == S_HEADER or s.state == S_LOCK or s.state == S_V1SIZE:
                L.counts[C_VANISHED] += 1  # deleted since it was listed: not an error
                release_slot(L, s)
            elif s.state == S_PROBE_NAME:
                s.f.upgraded = 0
                decide(L, s)
            else:  # S_MAPDATA
                s.f.missing = <int64_t>s.blk
                decide(L, s)
            return
        if retry(err, s.tries) and not av_stopped(&L.stop):
            s.tries += 1
            L.counts[C_RETRIES] += 1
            issue(L, s)
            return
        if err == ETIMEDOUT:
            av_request_stop(&L.stop)  # the cluster stopped answering: nothing new is started
        if s.state == S_HEADER:
            fail(L, s, err, "read")
        elif s.state == S_LOCK:
            fail(L, s, err, "read of lock")
        elif s.state == S_V1SIZE:
            fail(L, s, err, "stat")
        elif s.state == S_PROBE_NAME:
            fail(L, s, err, "probe of")
        else:
            fail(L, s, err, "stat of map-data")
        return
    if s.state == S_LOCK:
        s.buf[r] = 0
        L.counts[C_LOCKS] += 1
        emit(L, K_LOCK, 0, s.name, s.n, <char *>s.buf)  # the owner, up to its first NUL; "" if empty
        release_slot(L, s)
    elif s.state == S_HEADER:
        s.got = r
        L.counts[C_HEADER_BYTES] += <uint64_t>r
        if L.keep:
            keep_head(L, s, r)
        # a read shorter than asked is the whole object; otherwise it may be longer
        av_map_facts(&s.f, s.buf, <size_t>r, <uint64_t>r, r < AV_HEADER_READ, s.name, s.n)
        decide(L, s)
    elif s.state == S_V1SIZE:
        av_map_facts(&s.f, s.buf, <size_t>s.got, s.size, 1, s.name, s.n)
        decide(L, s)
    elif s.state == S_PROBE_NAME:
        s.f.upgraded = av_is_v2_header(s.buf + AV_HEADER_READ, <size_t>r)
        decide(L, s)
    else:  # S_MAPDATA: present
        s.blk += 1
        next_mapdata(L, s)


cdef inline bint fifo_empty(loop_t *L) noexcept nogil:
    return L.fhead == L.ftail


cdef inline slot_t *fifo_pop(loop_t *L) noexcept nogil:
    cdef slot_t *s = &L.slots[L.fifo[L.fhead]]
    L.fhead = (L.fhead + 1) % L.fcap
    return s


cdef void wait_some(loop_t *L) noexcept nogil:
    """Handle the oldest few ops in flight (REAP_BATCH, fewer for a small --inflight), waiting
    for each in turn, then every op behind them that has completed too: a wake-up hands over
    a run of completions, not one (6% less CPU than one op a wake-up, median of 9 pairs)."""
    cdef slot_t *s
    cdef int reaped = 0
    cdef int batch = min(REAP_BATCH, max(1, L.nslots // 16))  # a few idle slots, never most of them
    while not fifo_empty(L):
        s = &L.slots[L.fifo[L.fhead]]
        if reaped >= batch and s.comp != NULL and not rados_aio_is_complete(s.comp):
            return
        fifo_pop(L)
        if s.comp != NULL:
            rados_aio_wait_for_complete(s.comp)
        handle(L, s)
        reaped += 1


cdef void take_slot(loop_t *L) noexcept nogil:
    while L.nfree == 0:
        wait_some(L)


cdef void drain(loop_t *L) noexcept nogil:
    while L.nfree < L.nslots:
        wait_some(L)


cdef void cursor_open(cursor_t *c, rados_ioctx_t io, rados_object_list_cursor cur,
                      rados_object_list_cursor finish, const int *stop) noexcept nogil:
    """List [cur, finish); the cursor_t owns both from now on (cursor_close frees them)."""
    memset(c, 0, sizeof(cursor_t))
    c.io, c.cur, c.finish, c.stop = io, cur, finish, stop
    c.nxt = rados_object_list_begin(io)  # every output cursor is allocated before librados writes into it


cdef void cursor_close(cursor_t *c) noexcept nogil:
    rados_object_list_cursor_free(c.io, c.cur)
    rados_object_list_cursor_free(c.io, c.finish)
    rados_object_list_cursor_free(c.io, c.nxt)


cdef int next_page(cursor_t *c, size_t most, rados_object_list_item **out) noexcept nogil:
    """The next non-empty page of at most ``most`` objects into *out (free with rados_object_list_free
    and free); its length, 0 at the end (or once stopped), or -errno once retries are spent."""
    cdef rados_object_list_item *items
    cdef rados_object_list_cursor tmp
    cdef int r, tries
    cdef uint64_t t0
    while True:
        if c.done or (c.stop != NULL and av_stopped(c.stop)) or rados_object_list_is_end(c.io, c.cur) \
                or rados_object_list_cursor_cmp(c.io, c.cur, c.finish) >= 0:
            c.done = 1
            return 0
        items = <rados_object_list_item *>calloc(most, sizeof(rados_object_list_item))
        if items == NULL:
            return -ENOMEM
        tries = 0
        while True:
            t0 = now_us()
            r = rados_object_list(c.io, c.cur, c.finish, most, NULL, 0, items, &c.nxt)
            c.calls += 1
            c.wait_us += now_us() - t0
            if r >= 0 or not retry(-r, tries):
                break
            tries += 1
        if r < 0:
            free(items)
            return r
        if r == 0 and rados_object_list_cursor_cmp(c.io, c.nxt, c.cur) <= 0:
            c.done = 1  # no progress: the end
        tmp = c.cur
        c.cur = c.nxt
        c.nxt = tmp
        if r > 0:
            out[0] = items
            return r
        free(items)


cdef void *lister_main(void *arg) noexcept nogil:
    """The listing thread: pages of the range into L's page queue, so that the
    round trip of each ``rados_object_list`` overlaps the reads in flight."""
    cdef loop_t *L = <loop_t *>arg
    cdef rados_object_list_item *items = NULL
    cdef int r
    cdef uint64_t calls = 0, wait_us = 0
    cdef page_t used[QPAGES]
    cdef int nused, k
    while True:
        r = next_page(L.lister, PAGE, &items)
        pthread_mutex_lock(&L.mu)
        nused = L.nused
        memcpy(used, L.used, nused * sizeof(page_t))
        L.nused = 0
        L.counts[C_LIST_CALLS] += L.lister.calls - calls
        L.counts[C_LIST_US] += L.lister.wait_us - wait_us
        calls, wait_us = L.lister.calls, L.lister.wait_us
        if r <= 0:
            if r == -ETIMEDOUT:
                av_request_stop(&L.stop)  # as a timed-out read: the deferred map-data checks are not started
            L.list_err = r
            L.ldone = 1
            pthread_cond_signal(&L.cv)
            pthread_mutex_unlock(&L.mu)
            for k in range(nused):
                rados_object_list_free(used[k].n, used[k].items)
                free(used[k].items)
            return NULL
        while L.qcount == QPAGES:
            pthread_cond_wait(&L.qspace, &L.mu)
        L.q[(L.qhead + L.qcount) % QPAGES].items = items
        L.q[(L.qhead + L.qcount) % QPAGES].n = r
        L.qcount += 1
        pthread_cond_signal(&L.cv)
        pthread_mutex_unlock(&L.mu)
        for k in range(nused):  # freed here, in this thread's malloc arena: no cross-thread frees
            rados_object_list_free(used[k].n, used[k].items)
            free(used[k].items)


cdef int list_range(loop_t *L, cursor_t *lister) noexcept nogil:
    """List with ``lister`` in a second thread while this one starts and finishes the
    objects' checks; 0 or -errno of the listing."""
    cdef pthread_t th
    cdef int i, n, done
    cdef rados_object_list_item *items
    L.lister = lister
    L.list_err = 0
    L.listing = L.is_maps
    L.ldone = 0
    if pthread_create(&th, NULL, lister_main, L) != 0:
        return -ENOMEM
    while True:
        pthread_mutex_lock(&L.mu)
        while fifo_empty(L) and L.qcount == 0 and not L.ldone:
            pthread_cond_wait(&L.cv, &L.mu)  # nothing in flight: wait for the next page
        items = NULL
        n = 0
        if L.qcount > 0:
            items = L.q[L.qhead].items
            n = L.q[L.qhead].n
            L.qhead = (L.qhead + 1) % QPAGES
            L.qcount -= 1
            pthread_cond_signal(&L.qspace)
        done = items == NULL and L.ldone and fifo_empty(L)
        pthread_mutex_unlock(&L.mu)
        if items == NULL and not fifo_empty(L):
            wait_some(L)  # no page yet: finish what is in flight meanwhile
        if items != NULL:
            for i in range(n):
                if L.is_maps:
                    take_slot(L)
                start(L, items[i].oid, items[i].oid_length)
            pthread_mutex_lock(&L.mu)
            if L.nused < QPAGES and not L.ldone:
                L.used[L.nused].items = items
                L.used[L.nused].n = n
                L.nused += 1
                items = NULL
            pthread_mutex_unlock(&L.mu)
            if items != NULL:
                rados_object_list_free(n, items)
                free(items)
        if done:
            break
    pthread_join(th, NULL)
    for i in range(L.nused):  # handed back after the listing thread's last look
        rados_object_list_free(L.used[i].n, L.used[i].items)
        free(L.used[i].items)
    L.nused = 0
    drain(L)
    check_deferred(L)
    return L.list_err


def _limit_use(size_t address):
    """Points this module's loops at the process's one token bucket (verify/limits.py); 0: no caps."""
    av_limit_use(<av_limit_t *>address)


cdef class Cluster:
    """A connected librados client (cephx, timeouts set before connecting).

    :meth:`shutdown` (or interpreter exit) closes its ioctxs, then the client."""

    cdef rados_t cluster
    cdef bint connected
    cdef readonly object conf_path
    cdef object ioctxs  # weakref.WeakSet of the IoCtx opened on it
    cdef object __weakref__

    def __cinit__(self):
        self.cluster = NULL
        self.connected = False
        self.ioctxs = weakref.WeakSet()

    def __init__(self, client_id=None, conf_path=None, keyring=None, connect_timeout=10.0, op_timeout=30.0,
                 options=None):
        """Raises OSError(errno, what failed) on any failure; the caller words it for people."""
        cdef int r
        cdef bytes cid
        _LIVE_CLUSTERS.add(self)
        if client_id:
            cid = client_id.encode()
            r = rados_create(&self.cluster, cid)
        else:
            r = rados_create(&self.cluster, NULL)
        if r < 0:
            raise OSError(-r, "rados_create")
        # our own one-line messages replace librados' log lines on stderr
        self._set("log_to_stderr", "false")
        self._set("err_to_stderr", "false")
        if conf_path is not None:
            p = str(conf_path).encode()
            r = rados_conf_read_file(self.cluster, p)
            if r < 0:
                raise OSError(-r, "conf_read_file")
        else:
            r = rados_conf_read_file(self.cluster, NULL)  # $CEPH_CONF, /etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf
            if r < 0:
                raise OSError(-r, "conf_search")
        self.conf_path = conf_path
        r = rados_conf_parse_env(self.cluster, NULL)  # CEPH_ARGS, as the ceph tools do
        if r < 0:
            raise OSError(-r, "CEPH_ARGS")
        self._set("log_to_stderr", "false")
        self._set("err_to_stderr", "false")
        if keyring is not None:
            self._set("keyring", str(keyring))
        t = f"{max(1, int(round(connect_timeout)))}"
        self._set("client_mount_timeout", t)
        self._set("rados_mon_op_timeout", t)
        self._set("rados_osd_op_timeout", f"{max(1, int(round(op_timeout)))}")
        for k, v in (options or {}).items():
            self._set(k, str(v))

    def _set(self, key, value):
        cdef int r = rados_conf_set(self.cluster, key.encode(), value.encode())
        if r < 0:
            raise OSError(-r, f"conf_set {key}")

    def get(self, key):
        cdef char buf[4096]
        cdef int r = rados_conf_get(self.cluster, key.encode(), buf, sizeof(buf))
        if r < 0:
            raise OSError(-r, f"conf_get {key}")
        return (<bytes>buf).decode()

    def connect(self):
        cdef int r
        with nogil:
            r = rados_connect(self.cluster)
        if r < 0:
            raise OSError(-r, "connect")
        self.connected = True

    def pool_exists(self, name):
        cdef bytes b = name.encode()
        cdef long long r
        cdef const char *p = b
        with nogil:
            r = rados_pool_lookup(self.cluster, p)
        if r == -ENOENT:
            return False
        if r < 0:
            raise OSError(<int>-r, "pool_lookup")
        return True

    def open(self, pool, namespace=None):
        if self.cluster == NULL:
            raise OSError(ENOTCONN, "ioctx_create")
        io = IoCtx(self, pool, namespace)
        self.ioctxs.add(io)
        return io

    def shutdown(self):
        """Close every ioctx opened on this client, then the client (its threads end). Idempotent."""
        cdef IoCtx io
        cdef rados_t c = self.cluster
        if c == NULL:
            return
        for io in list(self.ioctxs):
            io.close()
        self.cluster = NULL
        self.connected = False
        with nogil:
            rados_shutdown(c)
        _LIVE_CLUSTERS.discard(self)

    def __dealloc__(self):
        # the ioctxs hold this object, so none is left by the time it is freed
        if self.cluster != NULL:
            rados_shutdown(self.cluster)
            self.cluster = NULL


@cython.no_gc_clear  # freed only after what it holds: never a live ioctx on a client already shut down
cdef class IoCtx:
    cdef rados_ioctx_t io
    cdef readonly Cluster cluster
    cdef readonly object pool, namespace
    cdef object __weakref__

    def __cinit__(self, Cluster cluster, pool, namespace=None):
        cdef int r
        self.io = NULL
        self.cluster = cluster
        self.pool, self.namespace = pool, namespace
        r = rados_ioctx_create(cluster.cluster, pool.encode(), &self.io)
        if r < 0:
            raise OSError(-r, "ioctx_create")
        if namespace:
            rados_ioctx_set_namespace(self.io, namespace.encode())

    def probe(self):
        """List at most one object: 0, or the errno (EPERM/EACCES when the caps lack 'r')."""
        cdef cursor_t c
        cdef rados_object_list_item *items = NULL
        cdef int r
        cursor_open(&c, self.io, rados_object_list_begin(self.io), rados_object_list_end(self.io), NULL)
        with nogil:
            r = next_page(&c, 1, &items)
        if r > 0:
            rados_object_list_free(r, items)
            free(items)
        cursor_close(&c)
        return -r if r < 0 else 0

    def object_count(self):
        """The pool's object count as Ceph keeps it (rados_ioctx_pool_stat, one call): all its
        namespaces, as of the last statistics the monitors have (0 without a ceph-mgr). OSError."""
        cdef rados_pool_stat_t st
        cdef int r
        with nogil:
            r = rados_ioctx_pool_stat(self.io, &st)
        if r < 0:
            raise OSError(-r, "pool_stat")
        return st.num_objects

    def close(self):
        """Destroy the ioctx (before its client is shut down); idempotent."""
        if self.io != NULL:
            rados_ioctx_destroy(self.io)
            self.io = NULL

    def __dealloc__(self):
        self.close()


@cython.no_gc_clear
cdef class RadosShard:
    """Scans the objects of parts ``[lo, hi)`` of a pool split into ``total`` parts."""

    cdef loop_t L
    cdef readonly IoCtx ioctx
    cdef public int lo, hi, total
    cdef readonly bint done
    cdef readonly int list_err

    def __cinit__(self, IoCtx ioctx, int lo=0, int hi=1, int total=1, int inflight=256, bint maps=True,
                  bint keep=False, unsigned long long keep_max=0):
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
        self.done = False
        self.list_err = 0

    def __dealloc__(self):
        cdef size_t i
        av_recs_free(&self.L.recs)
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

    def run(self):
        """List the shard and check every object; returns 0 or the listing's errno."""
        cdef rados_ioctx_t io = self.L.io
        if self.done:
            raise RuntimeError("shard already scanned")
        # every output cursor is allocated before librados writes into it
        cdef rados_object_list_cursor begin = rados_object_list_begin(io)
        cdef rados_object_list_cursor end = rados_object_list_end(io)
        cdef rados_object_list_cursor start = rados_object_list_begin(io)
        cdef rados_object_list_cursor finish = rados_object_list_begin(io)
        cdef rados_object_list_cursor scratch = rados_object_list_begin(io)
        cdef size_t lo = self.lo, hi = self.hi, total = self.total
        cdef cursor_t lister
        cdef int r
        with nogil:
            rados_object_list_slice(io, begin, end, lo, total, &start, &scratch)
            rados_object_list_slice(io, begin, end, hi - 1, total, &scratch, &finish)
            cursor_open(&lister, io, start, finish, &self.L.stop)
            r = list_range(&self.L, &lister)
            cursor_close(&lister)
        rados_object_list_cursor_free(io, begin)
        rados_object_list_cursor_free(io, end)
        rados_object_list_cursor_free(io, scratch)
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

    def records(self):
        """[(kind, name bytes, detail bytes, errno, map version or None)] in no particular order."""
        cdef size_t i
        cdef av_rec_t *r
        if self.L.oom or self.L.recs.oom:
            raise MemoryError("out of memory while recording findings")
        out = []
        for i in range(self.L.recs.n):
            r = &self.L.recs.a[i]
            out.append((KIND_NAMES[r.kind], r.name[:r.namelen] if r.name != NULL else b"",
                        <bytes>r.detail if r.detail != NULL else b"", r.err, r.aux - 1 if r.aux else None))
        return out


# ---- for the check (verify/backends/rados_check.py): plain listing and whole-object aio reads ----

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

@cython.no_gc_clear  # its cursor is freed through its ioctx
cdef class Lister:
    """Every object name of a pool (in the ioctx's namespace), a page at a time.

    The check streams the names into its fingerprint index page by page, so that a
    pool of 10^8 objects never becomes a Python list."""

    cdef readonly IoCtx ioctx
    cdef cursor_t c
    cdef readonly bint done

    def __cinit__(self, IoCtx ioctx):
        self.ioctx = ioctx
        cursor_open(&self.c, ioctx.io, rados_object_list_begin(ioctx.io), rados_object_list_end(ioctx.io), NULL)
        self.done = False

    def __dealloc__(self):
        if self.ioctx is not None and self.ioctx.io != NULL:  # else freed with its ioctx
            cursor_close(&self.c)

    def next_page(self):
        """Up to PAGE names ([] once done); OSError(errno) when the listing fails for good."""
        cdef rados_object_list_item *items = NULL
        cdef int r, i
        with nogil:
            r = next_page(&self.c, PAGE, &items)
        if r < 0:
            raise OSError(-r, "object list")
        if r == 0:
            self.done = True
            return []
        with nogil:
            av_limit_take(<uint64_t>r, 0, NULL)  # --objects-per-second: the names listed
        try:
            return [items[i].oid[:items[i].oid_length] for i in range(r)]
        finally:
            rados_object_list_free(r, items)
            free(items)


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
