# Cython declarations of _walk.h: the one filed directory walker, with a callback per file.
#     from ._walk cimport *

from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc

from ._native cimport av_rec_t, av_recs_t

cdef extern from "_walk.h" nogil:
    enum:
        AV_WALK_PATHMAX
        AV_WALK_OPENDIR
        AV_WALK_READDIR
        AV_WALK_LSTAT
        AV_WALK_NOMEM
    ctypedef void (*av_walk_file_fn)(void *ctx, void *tb, uint64_t unit, int dirfd, const char *d1,
                                     const char *d2, const char *d3, const char *name) noexcept nogil
    ctypedef void (*av_walk_stray_fn)(void *ctx, void *tb, const char *name, const char *path, int type,
                                      int depth) noexcept nogil
    ctypedef void (*av_walk_unreadable_fn)(void *ctx, void *tb, int err, const char *name, const char *path,
                                           int op) noexcept nogil
    ctypedef void (*av_walk_dir_fn)(void *ctx, void *tb) noexcept nogil
    ctypedef struct av_walk_t:
        int rootfd
        const int *stop
        void *ctx
        char *threads
        size_t thread_size
        av_walk_file_fn file
        av_walk_stray_fn stray
        av_walk_unreadable_fn unreadable
        av_walk_dir_fn dir
    void av_walk_init(av_walk_t *w, int rootfd, const int *stop, void *ctx, void *threads, size_t thread_size,
                      av_walk_file_fn file)
    void av_walk_join(char *out, const char *a, const char *b, const char *c, const char *name)
    int av_walk_run(const av_walk_t *w, char *const *tops, size_t ntop, int jobs)


cdef inline int walk_tops(av_walk_t *w, list tops, int jobs) except -1:
    """Runs the walker over the top-level dirs ``tops`` (bytes, sorted) without the GIL."""
    cdef Py_ssize_t i, ntop = len(tops)
    cdef int rc
    cdef char **names = <char **>malloc((ntop + 1) * sizeof(char *))
    if names == NULL:
        raise MemoryError()
    for i in range(ntop):
        names[i] = <char *>(<bytes>tops[i])
    with nogil:
        rc = av_walk_run(w, names, ntop, jobs)
    free(names)
    if rc != 0:
        raise MemoryError()
    return 0


cdef inline dict walk_counters(const char *first, size_t stride, int jobs, tuple names):
    """Each thread's counters summed: ``first`` is thread 0's array of len(names) uint64 counters,
    thread t's lies ``t * stride`` bytes further (the counters of one thread state per thread)."""
    cdef int t
    cdef Py_ssize_t c
    out = {}
    for c in range(len(names)):
        total = 0
        for t in range(jobs):
            total += (<const uint64_t *>(first + <size_t>t * stride))[c]
        out[names[c]] = total
    return out


cdef inline void walk_records(list out, const av_recs_t *recs, tuple kinds, bint with_aux) except *:
    """A thread's records as (kind, name, path, detail, errno[, aux]) tuples appended to ``out``."""
    walk_records_range(out, recs, kinds, with_aux, 0, recs.n)


cdef inline void walk_records_range(list out, const av_recs_t *recs, tuple kinds, bint with_aux,
                                    size_t start, size_t stop) except *:
    """Records [start, stop) of a thread as :func:`walk_records` gives them."""
    cdef size_t i
    cdef const av_rec_t *r
    for i in range(start, stop):
        r = &recs.a[i]
        name = <bytes>r.name if r.name != NULL else b""
        path = <bytes>r.path if r.path != NULL else None
        detail = <bytes>r.detail if r.detail != NULL else b""
        if with_aux:
            out.append((kinds[r.kind], name, path, detail, r.err, r.aux))
        else:
            out.append((kinds[r.kind], name, path, detail, r.err))
