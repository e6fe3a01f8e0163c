# Declarations of librados' C API and of the few rules every RADOS module shares (the one
# retry rule, one aio op's submit, the clock), inline so that each loop compiles them in as
# before. Cimported by verify/native/_rados.pyx, _radoscan.pyx, _radoshard.pyx and _radosread.pyx.
#     from ._librados cimport *

from libc.stdint cimport uint64_t

cdef extern from "<errno.h>" nogil:
    int ENOENT, ETIMEDOUT, EAGAIN, EINTR, EIO, EBUSY, ENOTCONN, ECONNRESET, ESHUTDOWN, ECANCELED, ENOMEM

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *ts)
    int CLOCK_MONOTONIC



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
    int pthread_cond_broadcast(pthread_cond_t *c)

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

cdef extern from "<stdlib.h>" nogil:
    void qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))

cdef enum:
    PAGE = 1024         # objects per rados_object_list call
    MAX_TRIES = 4       # a transient error is retried this many times less one

# the two aio ops
cdef enum:
    OP_STAT = 0
    OP_READ = 1


cdef inline uint64_t now_us() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t>ts.tv_sec * 1000000 + <uint64_t>(ts.tv_nsec // 1000)


cdef inline bint transient(int err) noexcept nogil:
    # not ETIMEDOUT: librados resent the op on every OSD map change for the whole rados_osd_op_timeout;
    # a timed-out op stops the loop (stalled) and the caller the run (verify/backends/rados_io.stalled)
    return (err == EAGAIN or err == EINTR or err == EIO or err == EBUSY
            or err == ENOTCONN or err == ECONNRESET or err == ESHUTDOWN or err == ECANCELED or err == ENOMEM)


cdef inline bint retry(int err, int tries) noexcept nogil:
    """The one retry rule of every librados call here: a transient error, tries to spare."""
    return transient(err) and tries + 1 < MAX_TRIES



cdef inline int aio_submit(rados_ioctx_t io, rados_completion_t *comp, int op, const char *oid, char *buf, size_t len,
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

