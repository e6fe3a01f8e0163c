# Declarations of verify/native/_rados.pyx (a connected client, an open pool, the one way to list a
# pool), cimported by the RADOS modules that read or scan through them.
#     from ._rados cimport Cluster, IoCtx, cursor_t, cursor_open, cursor_close, next_page

from libc.stdint cimport uint64_t

from ._librados cimport *

# A listing in progress (cursor_open, next_page, cursor_close): the one way this module lists a pool.
ctypedef struct cursor_t:
    rados_ioctx_t io
    rados_object_list_cursor cur     # where the next page starts
    rados_object_list_cursor finish  # where the listing ends
    rados_object_list_cursor nxt     # where librados writes the page's end; swapped with cur
    const int *stop                  # a stop flag to honour between pages, or NULL
    uint64_t calls, wait_us          # rados_object_list calls made, time spent waiting for them
    int done


cdef void cursor_open(cursor_t *c, rados_ioctx_t io, rados_object_list_cursor cur,
                      rados_object_list_cursor finish, const int *stop) noexcept nogil
cdef void cursor_open_slices(cursor_t *c, rados_ioctx_t io, size_t lo, size_t hi, size_t total,
                             const int *stop) noexcept nogil
cdef void cursor_close(cursor_t *c) noexcept nogil
cdef int next_page(cursor_t *c, size_t most, rados_object_list_item **out) noexcept nogil


cdef class Cluster:
    cdef rados_t cluster
    cdef bint connected
    cdef readonly object conf_path
    cdef object ioctxs  # weakref.WeakSet of the IoCtx opened on it
    cdef object __weakref__


cdef class IoCtx:
    cdef rados_ioctx_t io
    cdef readonly Cluster cluster
    cdef readonly object pool, namespace
    cdef object __weakref__
