# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The RADOS hot loop: list a slice of a pool and check it with N aio ops in flight.

One thread drives everything without the GIL: it lists its slice of the pool with
``rados_object_list`` (the slice from ``rados_object_list_slice``), decides from each
name alone what it is (_rules.h ``av_name_class``), and for the few that need bytes
starts an aio op in a free slot: a header read of a map candidate, a read of a
``NAME_lock``'s owner, then the probes a rule needs (an 8-byte read of ``NAME`` for
``archip_NAME``, an aio stat per map-data object). The driving thread waits for the
oldest op in flight and runs each slot's small state machine. Per-object outcomes are C
records, handed over in batches while the loop runs (``hand_over``) and turned into findings
by verify/backends/rados/backend.py, which holds the GIL meanwhile; with
``keep`` (a check's scan stage) the header reads are kept too, for the reference stage.
The rules and their precedence are those of _scan.pyx ``check_map`` (same _rules.h),
minus placement: RADOS has no paths.

This module is the loop alone, one translation unit so that its per-object steps stay
direct calls; verify/native/_radoshard.pyx (``RadosShard``) sets it up, runs it and hands its
results to Python; the client, the pool and the listing cursor are verify/native/_rados.pyx's.
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, realloc, free, calloc
from libc.string cimport memcpy, memset, strlen, memchr

from ._librados cimport *  # librados' C API, the retry rule, one aio op's submit: _librados.pxd
from ._rules cimport *  # the C twin of formats.py: _rules.h, declared in _rules.pxd
from ._native cimport *  # the stop flag and the record buffer: _native.h
from ._rados cimport cursor_t, next_page  # the listing: _rados.pyx
from ._radoscan cimport *  # the loop's state: _radoscan.pxd


cdef inline void emit(loop_t *L, int kind, int err, const char *name, size_t n, const char *detail) noexcept nogil:
    av_emit(&L.recs, kind, err, 0, name, n, NULL, 0, detail)


cdef void hand_over(loop_t *L) noexcept nogil:
    """The records so far become the handed batch, once the main thread took the last one
    (RadosShard.take_records): a shard then holds two batches at the most, however many
    findings its slice has. A stop ends the wait; the records are then kept to the end."""
    pthread_mutex_lock(&L.rmu)
    while L.handed.n > 0 and not av_stopped(&L.stop):
        pthread_cond_wait(&L.rcv, &L.rmu)
    if L.handed.n == 0:  # taken (RadosShard.take_records keeps its array): the loop starts a new one
        L.handed = L.recs
        memset(&L.recs, 0, sizeof(av_recs_t))
    pthread_mutex_unlock(&L.rmu)


cdef inline void hand_over_due(loop_t *L) noexcept nogil:
    if L.hand_at and L.recs.n >= L.hand_at:
        hand_over(L)


cdef void wake_hand_over(loop_t *L) noexcept nogil:
    """After a stop was asked: a wait for the main thread to take a batch ends."""
    pthread_mutex_lock(&L.rmu)
    pthread_cond_broadcast(&L.rcv)
    pthread_mutex_unlock(&L.rmu)


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
    hand_over_due(L)
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
        if s.buf[0] != 0 or L.empty_locks:  # a lock without owner is only counted: a pool may hold millions
            emit(L, K_LOCK, 0, s.name, s.n, <char *>s.buf)  # the owner, up to its first NUL
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
    hand_over_due(L)
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
    """Points this module's loops at the process's one token bucket (verify/native/limits.py); 0: no caps."""
    av_limit_use(<av_limit_t *>address)
