# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Batch lookup of maps by name in a filed maps store, without the GIL.

The Pithos cross-check asks, for millions of database rows, "is map NAME in the
store, in which version, of which size?". Walking the store would be the slow way
round: this probes the few paths the mapper itself would open, per name, in
parallel threads (openat, fstat, one pread of up to 4 KiB), and
classifies the header with ``_rules.h`` (the C twin of ``formats.classify``).

Lookup order, as v0.4 filed and the mapper do it: a 64-hex NAME at its old Pithos
path first (filed serves that file while it exists), then NAME at its sha256
path, then ``archip_NAME`` (the mapper's retry, how v0.3 maps are found).

Two entry points share one probe: :meth:`MapProbe.lookup` returns everything it
saw per name (the generic, slow-to-consume answer), :meth:`MapProbe.check` turns it
into one verdict byte per Pithos row (the hot path), so that Python only looks
at the few rows that have a problem. ``verify/ops/pithos/db.py`` holds the same
verdict rules in Python and tests hold the two against each other.
"""

from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memcpy, memcmp, memchr
from libc.errno cimport errno, ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG, ENXIO, ENODEV

from ._sys cimport *  # the POSIX and libcrypto calls, declared once: _sys.pxd

from ._rules cimport *  # the C twin of formats.py: _rules.h, declared in _rules.pxd
from ._native cimport av_stopped, av_request_stop, av_probe_rel, av_limit_t, av_limit_use, av_limit_take

# the errno of a map path that holds something other than a regular file (a FIFO, socket or
# device is never read: it could block or never end); verify/backends/maplookup.py words it
ERR_NOT_REGULAR = -1

# where a map was found (MapInfo.where, verify/backends/maplookup.py)
cdef enum:
    W_MISSING = 0
    W_V04 = 1        # NAME at its sha256 path
    W_PITHOS = 2     # NAME (64 hex) at its old Pithos path
    W_ARCHIP = 3     # archip_NAME at its sha256 path
    W_BADNAME = 4    # NAME contains '/' or NUL, or is empty: no path may be built from it
    W_ERROR = 5      # a path could not be read (errno kept)

WHERE_NAMES = ("missing", "v04", "pithos", "archip", "badname", "error")

# verdict byte of check(): version << 4 | outcome
cdef enum:
    O_OK = 0
    O_MISSING = 1
    O_SIZE = 2
    O_CORRUPT = 3
    O_UNREADABLE = 4
    O_BADNAME = 5
cdef enum:
    VER_NONE = 0
    VER_V0 = 1
    VER_V1 = 2
    VER_V2 = 3
    VER_CORRUPT = 4

DEF PATHMAX = 600
DEF NAMEMAX = 300
DEF V0_CHUNK = 65536
DEF HEAD = 4096  # one read: the header, and all the entries of a v0 map of up to 512 MiB

cdef unsigned char ZERO32[32]  # a C global: all zero
cdef const char *ZERO_BLOCK_DIGEST = (
    b"\xe3\xb0\xc4\x42\x98\xfc\x1c\x14\x9a\xfb\xf4\xc8\x99\x6f\xb9\x24"
    b"\x27\xae\x41\xe4\x64\x9b\x93\x4c\xa4\x95\x99\x1b\x78\x52\xb8\x55")
DEF SNAP_PREFIX_LEN = 7  # "archip:"


# ---- which old Pithos leaf dirs exist ----------------------------------------------
# A 64-hex name's old path is tried first, as filed does; most such paths do not exist.
# For the first few names under one ``d1/d2`` the old path is simply opened (one
# openat that fails): listing ``d1/d2`` costs openat, two getdents64 and close, which
# pays off only when many rows share that dir. From the fifth name on, ``d1/d2`` is
# listed once and its 2-hex entries kept as 256 bits; the old path is then opened only
# where its leaf exists. v0.4 never creates files at old paths, so a leaf created after
# its listing cannot hold one. Where ``d1/d2`` cannot be listed (no read permission,
# out of fds, a symlink loop) names keep being probed directly: listing is only a shortcut,
# it never changes what is found.
cdef extern from *:
    """
    #include <dirent.h>
    #include <fcntl.h>
    #include <unistd.h>
    #include <stdint.h>
    #include <errno.h>
    enum { AV_OLD_UNLISTED = 0, AV_OLD_LISTED = 1, AV_OLD_DIRECT = 2 };
    #define AV_OLD_LIST_AFTER 4    /* names under one d1/d2 probed directly before it is listed */
    #define AV_OLD_DIRBUF 8192     /* 256 two-letter entries and a few others fit in one getdents64 */

    typedef struct {
        uint8_t state[65536];      /* per d1/d2: AV_OLD_UNLISTED, _LISTED or _DIRECT */
        uint8_t asks[65536];       /* names seen under d1/d2 while unlisted (stops counting when listed) */
        uint64_t bits[65536 * 4];  /* listed: which d3 exist under each d1/d2 */
    } av_oldcache_t;

    static inline size_t av_oldcache_size(void)
    {
        return sizeof(av_oldcache_t);
    }

    static inline int av_hexval(char c)
    {
        return c <= '9' ? c - '0' : c - 'a' + 10;
    }

    static inline int av_is_hex(char c)
    {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    }

    /* List ROOT/REL (d1/d2) into B, 256 bits of which 2-hex entries exist: AV_OLD_LISTED, or
       AV_OLD_DIRECT when it cannot be listed in full (then nothing is concluded from it). A
       d1/d2 that is absent or not a dir holds nothing: listed, empty. */
    static int av_old_list(int rootfd, const char *rel, uint64_t b[4])
    {
        char buf[AV_OLD_DIRBUF] __attribute__((aligned(8)));
        long got;
        /* followed if a symlink, as the direct probes' openat follows every dir of the path */
        int fd = openat(rootfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return errno == ENOENT || errno == ENOTDIR ? AV_OLD_LISTED : AV_OLD_DIRECT;
        while ((got = getdents64(fd, buf, sizeof(buf))) > 0) {
            for (long off = 0; off < got; ) {
                struct dirent64 *e = (struct dirent64 *)(buf + off);
                const char *n = e->d_name;
                if (av_is_hex(n[0]) && av_is_hex(n[1]) && n[2] == 0) {
                    unsigned v = av_hexval(n[0]) << 4 | av_hexval(n[1]);
                    b[v >> 6] |= 1ull << (v & 63);
                }
                off += e->d_reclen;
            }
        }
        close(fd);
        return got < 0 ? AV_OLD_DIRECT : AV_OLD_LISTED;
    }

    /* 1: open NAME's old path ROOT/d1/d2/d3/NAME; 0: it cannot exist (d1/d2 listed, no d3) */
    static int av_old_leaf(int rootfd, av_oldcache_t *c, const char *name)
    {
        unsigned d1 = av_hexval(name[0]) << 4 | av_hexval(name[1]);
        unsigned d2 = av_hexval(name[2]) << 4 | av_hexval(name[3]);
        unsigned d3 = av_hexval(name[4]) << 4 | av_hexval(name[5]);
        unsigned k = d1 << 8 | d2;
        uint8_t state = __atomic_load_n(&c->state[k], __ATOMIC_ACQUIRE);
        if (state == AV_OLD_UNLISTED) {
            if (__atomic_add_fetch(&c->asks[k], 1, __ATOMIC_RELAXED) <= AV_OLD_LIST_AFTER)
                return 1;
            /* two threads may list the same dir at once: both store the same answer */
            uint64_t b[4] = {0, 0, 0, 0};
            char rel[6] = {name[0], name[1], '/', name[2], name[3], 0};
            state = av_old_list(rootfd, rel, b);
            for (int i = 0; i < 4; i++)
                __atomic_store_n(&c->bits[k * 4 + i], b[i], __ATOMIC_RELAXED);
            __atomic_store_n(&c->state[k], state, __ATOMIC_RELEASE);
        }
        if (state == AV_OLD_DIRECT)
            return 1;
        return (int)((__atomic_load_n(&c->bits[k * 4 + (d3 >> 6)], __ATOMIC_RELAXED) >> (d3 & 63)) & 1);
    }
    """
    ctypedef struct av_oldcache_t:
        pass
    size_t av_oldcache_size()
    int av_old_leaf(int rootfd, av_oldcache_t *c, const char *name) nogil


ctypedef struct item_t:
    const char *name
    Py_ssize_t n
    int64_t want          # row size (check) or v0 entry limit (lookup); < 0 unknown
    int where
    int err
    av_header_t h
    int64_t fsize
    int64_t v0_entries    # leading non-zero 32-byte entries, counted up to v0 limit
    int v0_first_zero     # entry 0 is the zero block's digest


cdef int open_rel(int rootfd, const char *name, size_t n, int pithos, char *rel) noexcept nogil:
    """Open NAME at its old Pithos path (pithos=1) or its sha256 path; -1 with errno."""
    av_probe_rel(0 if pithos else 1, name, n, rel, PATHMAX)  # the caller took step 0 for 64-hex names only
    return openat(rootfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)  # a FIFO must not hang us


cdef inline bint absent(int err) noexcept nogil:
    return err == ENOENT or err == ENOTDIR or err == ELOOP or err == ENAMETOOLONG


cdef inline int64_t count_in(const unsigned char *buf, ssize_t n, int64_t count, int64_t limit, bint *ended) noexcept nogil:
    """Adds the leading non-zero 32-byte entries of ``buf`` to ``count``, up to ``limit``."""
    cdef ssize_t i = 0
    while i + 32 <= n and count < limit:
        if memcmp(buf + i, ZERO32, 32) == 0:
            ended[0] = True
            return count
        count += 1
        i += 32
    return count


cdef int count_v0(int fd, item_t *it, const unsigned char *head, ssize_t got, int64_t limit) noexcept nogil:
    """Leading non-zero 32-byte entries, up to ``limit``; 0, or an errno.

    ``head`` holds the first ``got`` bytes: most v0 maps end inside it, so most
    rows cost no further read.
    """
    cdef unsigned char *buf
    cdef int64_t count
    cdef int64_t off = got
    cdef ssize_t r
    cdef bint ended = False
    if got >= 32:
        it.v0_first_zero = memcmp(head, <const unsigned char *>ZERO_BLOCK_DIGEST, 32) == 0
    count = count_in(head, got - got % 32, 0, limit, &ended)
    if ended or count >= limit or got < HEAD or got % 32:
        it.v0_entries = count
        return 0
    buf = <unsigned char *>malloc(V0_CHUNK)
    if buf == NULL:
        return 12
    while count < limit and not ended:
        r = pread(fd, buf, V0_CHUNK, off)
        if r < 0:
            free(buf)
            return errno
        count = count_in(buf, r - r % 32, count, limit, &ended)
        if r < V0_CHUNK:
            break
        off += r
    free(buf)
    it.v0_entries = count
    return 0


cdef void probe(int rootfd, av_oldcache_t *oc, item_t *it, bint row_size) noexcept nogil:
    """Fill ``it`` for one map name; never fails, outcomes are codes."""
    cdef char rel[PATHMAX]
    cdef char alt[NAMEMAX]
    cdef unsigned char head[HEAD]
    cdef stat st
    cdef int fd = -1
    cdef int step, err
    cdef ssize_t got = 0
    cdef int64_t fsize = -1
    cdef int64_t limit
    cdef const char *name = it.name
    cdef size_t n = <size_t>it.n
    it.where = W_MISSING
    it.err = 0
    it.fsize = -1
    it.v0_entries = -1
    it.v0_first_zero = 0
    it.h.cls = AV_NOT_MAP
    av_limit_take(1, 0, NULL)  # --objects-per-second: each map looked up
    if n == 0 or memchr(name, b"/", n) != NULL or memchr(name, 0, n) != NULL or n + 8 > NAMEMAX:
        it.where = W_BADNAME
        return
    for step in range(3):
        if step == 0:
            if not av_is_hex64(name, n):
                continue
            if not av_old_leaf(rootfd, oc, name):
                continue
            fd = open_rel(rootfd, name, n, 1, rel)
            it.where = W_PITHOS
        elif step == 1:
            if n < <size_t>AV_MIN_NAME:
                continue
            fd = open_rel(rootfd, name, n, 0, rel)
            it.where = W_V04
        else:
            memcpy(alt, b"archip_", 7)
            memcpy(alt + 7, name, n)
            fd = open_rel(rootfd, alt, n + 7, 0, rel)
            it.where = W_ARCHIP
        if fd >= 0:
            # fstat first: only a regular file is read (a device may answer a read, and a read of
            # some devices is not harmless); a directory is no map, and the next place is tried
            if fstat(fd, &st) != 0:
                it.err = errno
                close(fd)
                it.where = W_ERROR
                return
            if S_ISDIR(st.st_mode):
                close(fd)
                fd = -1
                continue
            if not S_ISREG(st.st_mode):
                it.err = -1  # ERR_NOT_REGULAR
                close(fd)
                it.where = W_ERROR
                return
            got = pread(fd, head, HEAD, 0)
            if got < 0:
                it.err = errno
                close(fd)
                it.where = W_ERROR
                return
            fsize = st.st_size
            break
        elif not absent(errno):
            # ENXIO, ENODEV: a socket, or a device without its driver: not a regular file either
            it.err = -1 if errno == ENXIO or errno == ENODEV else errno  # -1: ERR_NOT_REGULAR
            it.where = W_ERROR
            return
    if fd < 0:
        it.where = W_MISSING
        return
    it.fsize = fsize
    if it.where == W_ARCHIP:
        av_classify(head, <size_t>got, <uint64_t>it.fsize, alt, n + 7, &it.h)
    else:
        av_classify(head, <size_t>got, <uint64_t>it.fsize, name, n, &it.h)
    if it.h.cls == AV_V0 or it.h.cls == AV_NOT_MAP:
        # Pithos opens its maps with assume-v0: anything unsigned and not v1 is a v0 map.
        it.h.cls = AV_V0
        if it.want >= 0:
            limit = (<int64_t>av_div_ceil(<uint64_t>it.want, AV_BLOCK_4M) + 1) if row_size else it.want
            if limit < 2:
                limit = 2  # size 0: one zero-block entry is how Pithos stores an empty file
            it.err = count_v0(fd, it, head, got, limit)
            if it.err:
                it.where = W_ERROR
    close(fd)


cdef uint8_t verdict(item_t *it) noexcept nogil:
    """One Pithos row's outcome: pithosdb.verdict() in C."""
    cdef uint64_t want, e
    if it.where == W_BADNAME:
        return O_BADNAME
    if it.where == W_ERROR:
        return O_UNREADABLE
    if it.where == W_MISSING:
        return O_MISSING
    if it.h.cls == AV_V0:
        if it.want < 0:
            return VER_V0 << 4
        e = av_div_ceil(<uint64_t>it.want, AV_BLOCK_4M)
        if <uint64_t>it.v0_entries == e or (e == 0 and it.v0_entries == 1 and it.v0_first_zero):
            return VER_V0 << 4
        return (VER_V0 << 4) | O_SIZE
    if it.h.cls == AV_V1 or it.h.cls == AV_V2:
        if it.want < 0 or it.h.size == <uint64_t>it.want:
            return (VER_V1 if it.h.cls == AV_V1 else VER_V2) << 4
        return ((VER_V1 if it.h.cls == AV_V1 else VER_V2) << 4) | O_SIZE
    return (VER_CORRUPT << 4) | O_CORRUPT


def _limit_use(size_t address):
    """Points this module's loops at the process's one token bucket (verify/native/limits.py); 0: no caps."""
    av_limit_use(<av_limit_t *>address)


cdef class _Slice:
    """One batch's items, probed by pool threads a slice each, without the GIL."""

    cdef item_t *items
    cdef int rootfd
    cdef av_oldcache_t *oc
    cdef bint row_size
    cdef int *stop

    def work(self, Py_ssize_t lo, Py_ssize_t hi):
        cdef Py_ssize_t i
        with nogil:
            for i in range(lo, hi):
                if av_stopped(self.stop):
                    break
                probe(self.rootfd, self.oc, &self.items[i], self.row_size)


cdef class MapProbe:
    """Probes one filed maps store; one instance per store root, reused for every batch."""

    cdef int rootfd
    cdef int jobs
    cdef object root
    cdef av_oldcache_t *oldcache
    cdef object pool
    cdef int stopflag

    def __cinit__(self, root, int jobs=1):
        import os
        if jobs < 1:
            raise ValueError("jobs must be >= 1")
        self.rootfd = -1
        self.oldcache = <av_oldcache_t *>calloc(1, av_oldcache_size())
        if self.oldcache == NULL:
            raise MemoryError()
        self.root = os.fsencode(root)
        self.jobs = jobs
        self.rootfd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def __dealloc__(self):
        if self.rootfd >= 0:
            close(self.rootfd)
        free(self.oldcache)

    def close(self):
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
        if self.rootfd >= 0:
            close(self.rootfd)
            self.rootfd = -1

    cdef item_t *items_of(self, list names, list wants, bint strip_snapshot) except NULL:
        cdef Py_ssize_t i, count = len(names)
        cdef item_t *items = <item_t *>malloc((count + 1) * sizeof(item_t))
        cdef const char *p
        cdef Py_ssize_t n
        if items == NULL:
            raise MemoryError()
        try:
            for i in range(count):
                s = names[i]
                if isinstance(s, str):
                    p = PyUnicode_AsUTF8AndSize(s, &n)
                else:
                    p = <const char *>(<bytes>s)
                    n = len(<bytes>s)
                if strip_snapshot and n > SNAP_PREFIX_LEN and memcmp(p, b"archip:", SNAP_PREFIX_LEN) == 0:
                    p += SNAP_PREFIX_LEN
                    n -= SNAP_PREFIX_LEN
                items[i].name = p
                items[i].n = n
                w = wants[i] if wants is not None else None
                items[i].want = -1 if w is None else <int64_t>w
        except BaseException:
            free(items)
            raise
        return items

    cdef run(self, item_t *items, Py_ssize_t count, bint row_size):
        """Probe every item: in this thread, or in ``jobs`` pool threads that each
        release the GIL for their slice. (A thread pool rather than OpenMP: its idle
        threads sleep instead of spinning while the next batch of rows is fetched.)"""
        cdef Py_ssize_t i
        cdef int rootfd = self.rootfd
        cdef av_oldcache_t *oc = self.oldcache
        if self.jobs == 1 or count < 256:
            with nogil:
                for i in range(count):
                    probe(rootfd, oc, &items[i], row_size)
            return
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor
            self.pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="map-probe")
        cdef _Slice job = _Slice()
        job.items, job.rootfd, job.oc, job.row_size = items, rootfd, oc, row_size
        job.stop = &self.stopflag
        parts = self.jobs * 4
        bounds = [count * k // parts for k in range(parts + 1)]
        # interrupted, the pool threads are stopped and waited for before ``items`` is freed
        from .nativejob import wait_futures
        wait_futures([self.pool.submit(job.work, bounds[k], bounds[k + 1]) for k in range(parts)], self.stop)

    def stop(self):
        """Make a running batch end soon (its pool threads skip their remaining rows)."""
        av_request_stop(&self.stopflag)

    def lookup(self, list names, list v0_limits=None):
        """Per name: (where, errno, header class, size, blocksize, flags, epoch, version,
        file size, v0 entries, v0 entry 0 is the zero block, path): ``path`` is where the map
        was found, relative to the root (av_probe_rel of the step that found it), or None.

        ``v0_limits[i]``: count a v0 map's entries up to this many (None: do not count).
        ``names`` must stay alive (they do: the caller holds the list) during the call.
        """
        cdef Py_ssize_t i, count = len(names)
        if v0_limits is not None and len(v0_limits) != count:
            raise ValueError("names and v0_limits differ in length")
        if self.rootfd < 0:
            raise ValueError("probe is closed")
        cdef item_t *items = self.items_of(names, v0_limits, False)
        cdef item_t *it
        cdef char rel[PATHMAX]
        cdef bytes obj
        try:
            self.run(items, count, False)
            out = []
            for i in range(count):
                it = &items[i]
                path = None
                if it.where == W_PITHOS or it.where == W_V04 or it.where == W_ARCHIP:
                    obj = (b"archip_" if it.where == W_ARCHIP else b"") + it.name[:it.n]
                    # the probe's own step: the old Pithos path (step 0) or the sha256 path (step 1)
                    if av_probe_rel(0 if it.where == W_PITHOS else 1, obj, len(obj), rel, PATHMAX):
                        path = <bytes>rel
                out.append((WHERE_NAMES[it.where], it.err, it.h.cls, it.h.size, it.h.blocksize, it.h.flags,
                            it.h.epoch, it.h.version, it.fsize, it.v0_entries, bool(it.v0_first_zero), path))
            return out
        finally:
            free(items)

    def check(self, list mapfiles, list sizes):
        """One verdict byte per row (version << 4 | outcome); ``archip:NAME`` is looked up as NAME."""
        cdef Py_ssize_t i, count = len(mapfiles)
        if len(sizes) != count:
            raise ValueError("mapfiles and sizes differ in length")
        if self.rootfd < 0:
            raise ValueError("probe is closed")
        cdef item_t *items = self.items_of(mapfiles, sizes, True)
        cdef bytearray out = bytearray(count)
        cdef unsigned char *o = out
        try:
            self.run(items, count, True)
            with nogil:
                for i in range(count):
                    o[i] = verdict(&items[i])
            return bytes(out)
        finally:
            free(items)
