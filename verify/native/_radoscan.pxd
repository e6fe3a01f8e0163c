# Declarations of verify/native/_radoscan.pyx, the aio scan loop: its counters, slot states and the
# loop's state, cimported by verify/native/_radoshard.pyx, which runs it.
#     from ._radoscan cimport *

from libc.stdint cimport uint64_t

from ._librados cimport *
from ._rules cimport *
from ._native cimport *
from ._rados cimport cursor_t

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


# ---- slot states: which aio op a slot is waiting for ----
cdef enum:
    S_FREE = 0
    S_HEADER = 1        # read AV_HEADER_READ bytes of a map header candidate
    S_V1SIZE = 2        # stat of a v1 map whose entries may extend past what was read
    S_PROBE_NAME = 3    # read 8 bytes of NAME for archip_NAME: is it an upgraded v2 map?
    S_MAPDATA = 4       # stat of NAME_<16 hex>, block blk of nb
    S_LOCK = 5          # read the owner string of NAME_lock


cdef enum:
    HEADBUF = 256       # >= AV_HEADER_READ, and the most of a lock owner we keep
    KEPTHEAD = 64       # == AV_HEADER_READ (checked when a RadosShard is made)
    KEPT_COST = 200     # bytes a kept header read costs beside its name, in C and then in Python
    SLOTNAME = 240      # names shorter than this live in their slot: no malloc/free per object
    DETAILMAX = 600
    REAP_BATCH = 16     # ops a wait for completions hands over at the least (fewer only when no more are in flight)
    QPAGES = 4          # listed pages the listing thread may run ahead

ctypedef struct page_t:
    rados_object_list_item *items
    int n


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
    int empty_locks     # record lock objects with no owner too (else only counted): finalize asks each its RADOS lock
    kept_t *kept
    size_t nkept, capkept
    uint64_t keep_max   # what the kept reads may cost (KEPT_COST + name each), 0: no bound;
    uint64_t kept_cost  # past it they are all dropped and none is kept more (kept_over)
    int kept_over
    uint64_t ncand      # header candidates started so far
    int stop            # set from the main thread: no new object is started, ops in flight end
    pthread_cond_t qspace
    size_t hand_at      # records a batch holds before it is handed over (0: all are kept to the end)
    av_recs_t handed    # the batch handed over, under rmu, until the main thread takes it
    pthread_mutex_t rmu
    pthread_cond_t rcv  # the handed batch was taken, or a stop was asked



cdef int list_range(loop_t *L, cursor_t *lister) noexcept nogil
cdef void start(loop_t *L, const char *name, size_t n) noexcept nogil
cdef void take_slot(loop_t *L) noexcept nogil
cdef void drain(loop_t *L) noexcept nogil
cdef void wake_hand_over(loop_t *L) noexcept nogil
cdef int cmp_kept(const void *a, const void *b) noexcept nogil
cdef void free_kept(loop_t *L) noexcept nogil
