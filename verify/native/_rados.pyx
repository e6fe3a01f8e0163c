# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The connection to a Ceph cluster through librados' C API, and the one way to list a pool.

:class:`Cluster` (a client: cephx, timeouts set before connecting, shut down at exit),
:class:`IoCtx` (an open pool), the listing cursor (``cursor_open``/``next_page``, declared in
_rados.pxd) and :class:`Lister`, the check's plain listing a page at a time. What reads and
scans through them has its own module: the aio scan loop (verify/native/_radoscan.pyx, driven by
verify/native/_radoshard.pyx ``RadosShard``) and the check's pool I/O (verify/native/_radosread.pyx).
"""

from libc.stdint cimport uint64_t
from libc.stdlib cimport free, calloc
from libc.string cimport memset

from ._librados cimport *  # librados' C API, the retry rule, the clock: _librados.pxd
from ._native cimport *  # the stop flag, the token bucket: _native.h

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


cdef void cursor_open(cursor_t *c, rados_ioctx_t io, rados_object_list_cursor cur,
                      rados_object_list_cursor finish, const int *stop) noexcept nogil:
    """List [cur, finish); the cursor_t owns both from now on (cursor_close frees them)."""
    memset(c, 0, sizeof(cursor_t))
    c.io, c.cur, c.finish, c.stop = io, cur, finish, stop
    c.nxt = rados_object_list_begin(io)  # every output cursor is allocated before librados writes into it


cdef void cursor_open_slices(cursor_t *c, rados_ioctx_t io, size_t lo, size_t hi, size_t total,
                             const int *stop) noexcept nogil:
    """List slices [lo, hi) of the pool cut into ``total`` (rados_object_list_slice) with ``c``."""
    # every output cursor is allocated before librados writes into it
    cdef rados_object_list_cursor begin = rados_object_list_begin(io), end = rados_object_list_end(io)
    cdef rados_object_list_cursor start = rados_object_list_begin(io), finish = rados_object_list_begin(io)
    cdef rados_object_list_cursor scratch = rados_object_list_begin(io)
    rados_object_list_slice(io, begin, end, lo, total, &start, &scratch)
    rados_object_list_slice(io, begin, end, hi - 1, total, &scratch, &finish)
    rados_object_list_cursor_free(io, begin)
    rados_object_list_cursor_free(io, end)
    rados_object_list_cursor_free(io, scratch)
    cursor_open(c, io, start, finish, stop)


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



def _limit_use(size_t address):
    """Points this module's loops at the process's one token bucket (verify/native/limits.py); 0: no caps."""
    av_limit_use(<av_limit_t *>address)


cdef class Cluster:
    """A connected librados client (cephx, timeouts set before connecting).

    :meth:`shutdown` (or interpreter exit) closes its ioctxs, then the client."""

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

    def count_slices(self, size_t lo, size_t hi, size_t total):
        """How many objects slices [lo, hi) of the pool cut into ``total`` list (in this ioctx's
        namespace), counted here: no name becomes a Python object. OSError if the listing fails."""
        cdef rados_object_list_item *items = NULL
        cdef cursor_t c
        cdef uint64_t n = 0
        cdef int r
        if not lo < hi <= total:
            raise ValueError("bad slice range")
        with nogil:
            cursor_open_slices(&c, self.io, lo, hi, total, NULL)
            while True:
                r = next_page(&c, PAGE, &items)
                if r <= 0:
                    break
                n += <uint64_t>r
                rados_object_list_free(r, items)
                free(items)
            cursor_close(&c)
        if r < 0:
            raise OSError(-r, "object list")
        return n

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

