# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The filed hot loop: walk ``ROOT/d1/d2/d3/NAME`` without the GIL, in parallel.

One :class:`FiledShard` covers the top-level dirs whose 2-hex name falls in
``[lo, hi)`` (anything else at the top level counts as bucket 0). The walk is
verify/native/_walk.h's (openat/getdents64 relative to directory fds, no symlink
followed, in parallel work units); for each file its callback
hashes the name with libcrypto, reads at most AV_HEADER_READ bytes of a map header
with pread, and probes the few other paths a rule needs (a v0.4 path, a map-data
object, NAME for archip_NAME) with fstatat/openat. Per-object outcomes are C
records; Python objects are made only after the GIL is back, for findings and
counters. The rules themselves are in _rules.h (the C twin of formats.py).
"""

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, realloc, free, calloc
from libc.string cimport memcpy, memset, strlen, memchr
from libc.errno cimport errno, ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG, ENOMEM, ENXIO, ENODEV

from .native._sys cimport *  # the POSIX and libcrypto calls, declared once: _sys.pxd

from .native._rules cimport *  # the C twin of formats.py: _rules.h, declared in _rules.pxd
from .native._native cimport *  # the stop flag, the record buffer, the v0.4 path: _native.h
from .native._walk cimport *  # the filed directory walker: _walk.h

from .core.findings import RECORD_KINDS as KIND_NAMES

# ---- counters ----
cdef enum:
    C_FILES = 0
    C_DIRS = 1
    C_V0 = 2            # C_V0 + av_class_tally(class): v0, v1, v2, corrupt in this order
    C_V1 = 3
    C_V2 = 4
    C_CORRUPT = 5
    C_MAPDATA = 6
    C_OTHER = 7
    C_LOCKS = 8
    C_HASH = 9
    C_TEMP = 10
    C_HEADER_BYTES = 11
    C_PROBES = 12
    NCOUNT = 13

COUNTER_NAMES = ("files", "dirs", "v0", "v1", "v2", "corrupt", "mapdata", "other", "locks",
                 "hash_files", "temp_files", "header_bytes", "probes")

# How every file is opened: read-only, never through a symlink, and non-blocking so
# that a FIFO where a file was expected cannot hang the scan (no effect on files).
cdef int FILE_OPEN = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK

DEF PATHMAX = 1200   # d1/d2/d3/NAME with each part <= 255 bytes
DEF DETAILMAX = 1300

ctypedef struct tbuf_t:
    av_recs_t recs
    uint64_t counts[NCOUNT]
    # the paths of the files walked, kept for the reference stage of a check (keep > 0): each a
    # uint16 length then the bytes of d1/d2/d3/NAME; past keep_max bytes none is kept (keep_over)
    char *kept
    size_t kept_n, kept_cap, kept_max
    bint keep_over
    char pad[64]          # keep threads' hot counters off each other's cache lines

ctypedef struct ctx_t:
    int rootfd
    int is_maps
    int pm_off
    int stop             # set from the main thread (av_request_stop): walks return between entries


ctypedef struct where_t:
    # a file at object depth: d1/d2/d3/name; its path is joined only when a record needs it
    const char *d1
    const char *d2
    const char *d3
    const char *name
    bint joined
    char path[PATHMAX]


cdef inline const char *path_of(where_t *at) noexcept nogil:
    """The file's path relative to the store root (joined at the first call)."""
    if not at.joined:
        av_walk_join(at.path, at.d1, at.d2, at.d3, at.name)
        at.joined = True
    return at.path


cdef inline void emit(tbuf_t *b, int kind, int err, const char *name, size_t namelen,
                      const char *path, const char *detail, uint64_t aux=0) noexcept nogil:
    av_emit(&b.recs, kind, err, aux, name, namelen, path, strlen(path) if path != NULL else 0, detail)


cdef void unreadable(tbuf_t *b, int err, const char *name, size_t n, const char *path,
                     const char *op) noexcept nogil:
    """A path that could not be read: recorded with its errno, the walk goes on."""
    emit(b, K_UNREADABLE, err, name, n, path, op)


cdef int probe_v2(ctx_t *ctx, tbuf_t *b, const char *name, size_t n) noexcept nogil:
    """Is there a v2 map header called NAME where v0.4 filed would look (1/0; -1 unreadable)?"""
    cdef char rel[PATHMAX]
    cdef unsigned char head[8]
    cdef stat st
    cdef int fd
    cdef ssize_t got
    if n < AV_MIN_NAME:
        return 0
    fd = -1
    b.counts[C_PROBES] += 1
    if av_is_hex64(name, n):
        av_pithos_rel(name, n, rel, PATHMAX)
        fd = openat(ctx.rootfd, rel, FILE_OPEN)
        if fd < 0 and errno != ENOENT and errno != ENOTDIR and errno != ELOOP:
            return -1
    if fd < 0:
        av_v04_rel(name, n, rel, PATHMAX)
        fd = openat(ctx.rootfd, rel, FILE_OPEN)
    if fd < 0:  # ENXIO, ENODEV: a socket or a driverless device, no map either
        return 0 if errno == ENOENT or errno == ENOTDIR or errno == ELOOP or errno == ENXIO or errno == ENODEV else -1
    if fstat(fd, &st) != 0 or not S_ISREG(st.st_mode):
        close(fd)  # not a file: no map there (a FIFO or device is never read)
        return 0
    got = pread(fd, head, 8, 0)
    close(fd)
    return av_is_v2_header(head, <size_t>got) if got > 0 else 0


cdef void check_map(ctx_t *ctx, tbuf_t *b, int fd3, const char *name, size_t n, where_t *at,
                    int not_map_counter) noexcept nogil:
    """Read a header candidate, find out the facts its verdict asks for, emit its one map finding.

    The verdict is av_map_verdict's (_rules.h); this only does the I/O.
    ``not_map_counter`` is the counter to bump when the object turns out not to be a map.
    """
    cdef unsigned char head[64]
    cdef char detail[DETAILMAX]
    cdef stat st
    cdef av_map_facts_t f
    cdef int fd, kind, code, err = 0
    cdef ssize_t got
    fd = openat(fd3, name, FILE_OPEN)
    if fd < 0:
        if errno != ENOENT:
            unreadable(b, errno, name, n, path_of(at), "open")
        return
    if fstat(fd, &st) != 0:
        unreadable(b, errno, name, n, path_of(at), "fstat")
        close(fd)
        return
    if not S_ISREG(st.st_mode):  # replaced since it was listed: never read a FIFO or a device
        close(fd)
        stray(b, name, path_of(at), DT_LNK if S_ISLNK(st.st_mode) else 0, 4)
        return
    got = pread(fd, head, AV_HEADER_READ, 0)
    if got < 0:
        unreadable(b, errno, name, n, path_of(at), "read")
        close(fd)
        return
    close(fd)
    av_limit_take(0, <uint64_t>got, &ctx.stop)
    b.counts[C_HEADER_BYTES] += <uint64_t>got
    av_map_facts(&f, head, <size_t>got, <uint64_t>st.st_size, 1, name, n)
    b.counts[not_map_counter if f.h.cls == AV_NOT_MAP else C_V0 + av_class_tally(f.h.cls)] += 1
    while True:
        kind = av_map_verdict(&f, &code)
        if kind == AV_NEED_UPGRADED:
            f.upgraded = probe_v2(ctx, b, name + 7, n - 7)
            if f.upgraded < 0:
                err = errno
                snprintf(detail, DETAILMAX, "probe of %.*s", <int>(n - 7), name + 7)
                unreadable(b, err, name, n, path_of(at), detail)
                return
        elif kind == AV_NEED_MAPDATA:
            f.missing = first_missing_mapdata(ctx, b, name, n, f.nb, detail, &err)
            if f.missing < 0:
                emit(b, K_UNREADABLE, err, name, n, path_of(at), detail)
                return
        else:
            break
    if kind != AV_NO_FINDING:
        av_map_detail(detail, DETAILMAX, code, &f, name, n)
        emit(b, kind, 0, name, n, path_of(at), detail, av_verdict_aux(kind, f.h.cls))


cdef int64_t first_missing_mapdata(ctx_t *ctx, tbuf_t *b, const char *name, size_t n, uint64_t nb,
                                   char *detail, int *err) noexcept nogil:
    """The first of NAME's nb map-data files that is not a file where v0.4 keeps it, or nb;
    -1 with ``err`` and ``detail`` set when one cannot be looked at."""
    cdef char rel[PATHMAX]
    cdef char mdname[300]
    cdef stat st
    cdef uint64_t blk = 0
    while blk < nb:
        snprintf(mdname, sizeof(mdname), "%.*s_%016llx", <int>n, name, <unsigned long long>blk)
        av_v04_rel(mdname, strlen(mdname), rel, PATHMAX)
        b.counts[C_PROBES] += 1
        if fstatat(ctx.rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) != 0:
            err[0] = errno
            if err[0] != ENOENT and err[0] != ENOTDIR and err[0] != ENAMETOOLONG:  # too long: cannot exist
                snprintf(detail, DETAILMAX, "stat of map-data %s", mdname)
                return -1
            return <int64_t>blk
        if not S_ISREG(st.st_mode):
            return <int64_t>blk
        blk += 1
    return <int64_t>nb


cdef void read_lock(tbuf_t *b, int fd3, const char *name, size_t n, where_t *at) noexcept nogil:
    """A lock file's owner string; a lock released since the listing is no lock at all."""
    cdef char owner[256]
    cdef stat st
    cdef ssize_t got = 0
    cdef int fd = openat(fd3, name, FILE_OPEN)
    if fd < 0:
        if errno == ENOENT:
            return
        unreadable(b, errno, name, n, path_of(at), "open")
    elif fstat(fd, &st) != 0 or not S_ISREG(st.st_mode):
        close(fd)  # replaced since it was listed: never read a FIFO or a device
        return
    else:
        got = pread(fd, owner, 255, 0)
        if got < 0:
            unreadable(b, errno, name, n, path_of(at), "read")
        close(fd)
    if got < 0:
        got = 0
    owner[got] = 0
    b.counts[C_LOCKS] += 1
    if owner[0] != 0:  # an empty lock file is only counted: nobody holds it, and a store may have millions
        emit(b, K_LOCK, 0, name, n, path_of(at), owner)


cdef void keep_path(tbuf_t *b, const char *path) noexcept nogil:
    """Keeps ``path`` in the thread's list for the reference stage; past its share, stops keeping."""
    cdef size_t n = strlen(path), cap
    cdef char *grown
    cdef uint16_t len16
    if b.keep_over:
        return
    if b.kept_n + n + 2 > b.kept_max:
        b.keep_over = True
        free(b.kept)
        b.kept, b.kept_n, b.kept_cap = NULL, 0, 0
        return
    if b.kept_n + n + 2 > b.kept_cap:
        cap = b.kept_cap * 2 if b.kept_cap else 1 << 16
        while cap < b.kept_n + n + 2:
            cap *= 2
        grown = <char *>realloc(b.kept, cap)
        if grown == NULL:
            b.keep_over = True  # out of memory: keep nothing, the reference stage walks
            free(b.kept)
            b.kept, b.kept_n, b.kept_cap = NULL, 0, 0
            return
        b.kept, b.kept_cap = grown, cap
    len16 = <uint16_t>n
    memcpy(b.kept + b.kept_n, &len16, 2)
    memcpy(b.kept + b.kept_n + 2, path, n)
    b.kept_n += n + 2


cdef void check_file(ctx_t *ctx, tbuf_t *b, int fd3, const char *d1, const char *d2, const char *d3,
                     const char *name) noexcept nogil:
    """Every rule for one regular file at object depth."""
    cdef size_t n = strlen(name)
    cdef where_t at
    cdef int placement
    cdef char rel[PATHMAX]
    cdef char detail[DETAILMAX]
    cdef unsigned char md[32]
    cdef char hx[6]
    cdef int at_v04, at_old, nc, err, fault
    cdef stat here, there
    b.counts[C_FILES] += 1
    at.d1, at.d2, at.d3, at.name, at.joined = d1, d2, d3, name, False
    if b.kept_max:
        keep_path(b, path_of(&at))
    fault = av_name_fault(name, n, AV_MIN_NAME)
    if fault != AV_NAME_FINE:
        emit(b, K_STRAY, 0, name, n, path_of(&at), av_name_fault_text(fault))
        return
    placement = av_placement(d1, d2, d3, name, n, md)
    at_v04 = placement & AV_AT_V04
    at_old = placement & AV_AT_OLD
    av_hex(md, 3, hx)
    if av_is_hex64(name, n):
        if at_old and at_v04:
            if not ctx.pm_off:
                snprintf(detail, DETAILMAX, "old and v0.4 paths coincide")
                emit(b, K_AT_RISK, 0, name, n, path_of(&at), detail)
        elif at_old:
            snprintf(rel, PATHMAX, "%c%c/%c%c/%c%c/%s", hx[0], hx[1], hx[2], hx[3], hx[4], hx[5], name)
            b.counts[C_PROBES] += 1
            if fstatat(ctx.rootfd, rel, &there, AT_SYMLINK_NOFOLLOW) != 0:
                if errno == ENOENT or errno == ENOTDIR:
                    snprintf(detail, DETAILMAX, "v0.4 path %s absent", rel)
                    emit(b, K_UNMIGRATED, 0, name, n, path_of(&at), detail)
                else:
                    err = errno
                    snprintf(detail, DETAILMAX, "stat of %s", rel)
                    unreadable(b, err, name, n, path_of(&at), detail)
            elif fstatat(fd3, name, &here, AT_SYMLINK_NOFOLLOW) != 0:
                if errno != ENOENT:
                    unreadable(b, errno, name, n, path_of(&at), "stat")
            elif here.st_dev == there.st_dev and here.st_ino == there.st_ino:
                snprintf(detail, DETAILMAX, "same inode at %s", rel)
                emit(b, K_LEFTOVER, 0, name, n, path_of(&at), detail)
            else:
                snprintf(detail, DETAILMAX, "different file at %s (%ld vs %ld bytes)", rel,
                         <long>here.st_size, <long>there.st_size)
                emit(b, K_CONFLICT, 0, name, n, path_of(&at), detail)
        elif not at_v04:
            snprintf(detail, DETAILMAX, "v0.4 path is %c%c/%c%c/%c%c/", hx[0], hx[1], hx[2], hx[3], hx[4], hx[5])
            emit(b, K_MISPLACED, 0, name, n, path_of(&at), detail)
    elif not at_v04:
        snprintf(detail, DETAILMAX, "v0.4 path is %c%c/%c%c/%c%c/", hx[0], hx[1], hx[2], hx[3], hx[4], hx[5])
        emit(b, K_MISPLACED, 0, name, n, path_of(&at), detail)
    nc = av_name_class(name, n)
    if nc == AV_NAME_LOCK:
        read_lock(b, fd3, name, n, &at)
    elif ctx.is_maps and nc == AV_NAME_MAPDATA:
        b.counts[C_MAPDATA] += 1
    elif ctx.is_maps:
        # NAME_hash and temp names are still header candidates: a volume may be called
        # "db_hash_store" (a valid name), and its v1 map "archip_db_hash_store". A real
        # hash or temp file holds hex digits or an owner string, never a map header.
        check_map(ctx, b, fd3, name, n, &at,
                  C_HASH if nc == AV_NAME_HASH else (C_TEMP if nc == AV_NAME_TEMP else C_OTHER))
    elif nc == AV_NAME_HASH:
        b.counts[C_HASH] += 1
    elif nc == AV_NAME_TEMP:
        b.counts[C_TEMP] += 1


cdef void stray(tbuf_t *b, const char *name, const char *path, int t, int depth) noexcept nogil:
    """An entry the layout does not expect; a file counts as one wherever it is, and so does
    anything at object depth."""
    cdef char detail[DETAILMAX]
    if t == DT_REG or depth == 4:
        b.counts[C_FILES] += 1
    if t == DT_LNK:
        snprintf(detail, DETAILMAX, "symlink (never followed)")
    elif t == DT_DIR:
        snprintf(detail, DETAILMAX, "directory at object depth")
    elif t == DT_REG:
        snprintf(detail, DETAILMAX, "file at depth %d (objects live at depth 4)", depth)
    else:
        snprintf(detail, DETAILMAX, "special file")
    emit(b, K_STRAY, 0, name, strlen(name), path, detail)


# ---- the walker's callbacks (verify/native/_walk.h): ctx is a ctx_t, tb a thread's tbuf_t ----

cdef void on_file(void *ctx, void *tb, uint64_t unit, int dirfd, const char *d1, const char *d2, const char *d3,
                  const char *name) noexcept nogil:
    check_file(<ctx_t *>ctx, <tbuf_t *>tb, dirfd, d1, d2, d3, name)


cdef void on_stray(void *ctx, void *tb, const char *name, const char *path, int t, int depth) noexcept nogil:
    stray(<tbuf_t *>tb, name, path, t, depth)


cdef void on_unreadable(void *ctx, void *tb, int err, const char *name, const char *path, int op) noexcept nogil:
    cdef const char *what = b"opendir"
    if op == AV_WALK_READDIR:
        what = b"readdir"
    elif op == AV_WALK_LSTAT:
        what = b"lstat"
    elif op == AV_WALK_NOMEM:
        what = b"readdir buffer"
    unreadable(<tbuf_t *>tb, err, name, strlen(name), path, what)


cdef void on_dir(void *ctx, void *tb) noexcept nogil:
    (<tbuf_t *>tb).counts[C_DIRS] += 1


cdef av_limit_t LIMIT  # the one token bucket of the process (the other modules point at it)


def _limit_configure(double objects_per_second, double bytes_per_second):
    """Sets the caps (0: none) and points this module at the bucket; its address, for the others."""
    LIMIT.ns_per[0] = 1e9 / objects_per_second if objects_per_second > 0 else 0
    LIMIT.ns_per[1] = 1e9 / bytes_per_second if bytes_per_second > 0 else 0
    LIMIT.next[0] = LIMIT.next[1] = 0
    av_limit_use(&LIMIT if objects_per_second > 0 or bytes_per_second > 0 else NULL)
    return <size_t>&LIMIT if objects_per_second > 0 or bytes_per_second > 0 else 0


def _limit_take(uint64_t objects, uint64_t nbytes):
    """Waits, without the GIL, until the caps let ``objects`` objects and ``nbytes`` bytes go (Python paths)."""
    with nogil:
        av_limit_take(objects, nbytes, NULL)


def bucket(name: bytes) -> int:
    """Shard bucket of a top-level entry: its 2-hex value, else 0."""
    if len(name) == 2 and all(c in b"0123456789abcdef" for c in name):
        return int(name, 16)
    return 0


def root_entries(int rootfd, int lo=0, int hi=256):
    """What a walk of the shard [lo, hi) starts from: (its top-level dirs, sorted; the other
    entries at the root as (name, DT_* type or 0)). lost+found and archverify's own store lock
    are no part of the store (verify/core/layout.py skipped_at_root)."""
    import os
    from .core.layout import skipped_at_root
    dirs, others = [], []
    with os.scandir(rootfd) as it:
        for e in it:
            nm = os.fsencode(e.name)
            if not lo <= bucket(nm) < hi:
                continue
            is_dir, is_file = e.is_dir(follow_symlinks=False), e.is_file(follow_symlinks=False)
            if skipped_at_root(nm, is_dir, is_file):
                continue
            if is_dir:
                dirs.append(nm)
            else:
                others.append((nm, DT_LNK if e.is_symlink() else (DT_REG if is_file else 0)))
    dirs.sort()
    return dirs, others


cdef class FiledShard:
    """Scans the top-level dirs of one filed store whose bucket is in [lo, hi)."""

    cdef ctx_t ctx
    cdef tbuf_t *bufs
    cdef int jobs
    cdef object root
    cdef list units
    cdef public int lo, hi
    cdef readonly bint done

    def __cinit__(self, root, int lo=0, int hi=256, int jobs=1, bint maps=False, bint pithos_migrate_off=False,
                  size_t keep=0):
        """``keep``: bytes of RAM for the paths of the files walked (:meth:`kept`); 0 keeps none."""
        import os
        cdef int t
        if jobs < 1:
            raise ValueError("jobs must be >= 1")
        self.root = os.fsencode(root)
        self.lo, self.hi, self.jobs = lo, hi, jobs
        self.ctx.is_maps = maps
        self.ctx.pm_off = pithos_migrate_off
        self.ctx.rootfd = -1
        self.ctx.stop = 0
        self.bufs = <tbuf_t *>calloc(jobs, sizeof(tbuf_t))
        if self.bufs == NULL:
            raise MemoryError()
        for t in range(jobs):
            self.bufs[t].kept_max = keep // jobs  # each thread its part: no lock on the hot path
        self.done = False

    def __dealloc__(self):
        cdef int t
        cdef size_t i
        if self.bufs != NULL:
            for t in range(self.jobs):
                av_recs_free(&self.bufs[t].recs)
                free(self.bufs[t].kept)
            free(self.bufs)
        if self.ctx.rootfd >= 0:
            close(self.ctx.rootfd)

    def run(self):
        """Walk the shard; raises OSError only when the store root itself cannot be opened."""
        import os
        cdef av_walk_t w
        if self.done:
            raise RuntimeError("shard already scanned")
        self.ctx.rootfd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.units, others = root_entries(self.ctx.rootfd, self.lo, self.hi)
        for nm, t in others:
            stray(&self.bufs[0], <const char *>nm, <const char *>nm, t, 1)
        av_walk_init(&w, self.ctx.rootfd, &self.ctx.stop, &self.ctx, self.bufs, sizeof(tbuf_t), on_file)
        w.stray = on_stray
        w.unreadable = on_unreadable
        w.dir = on_dir
        walk_tops(&w, self.units, self.jobs)
        self.done = True

    def stop(self):
        """Make run() return soon (between two directory entries); safe from another thread."""
        av_request_stop(&self.ctx.stop)

    def progress(self):
        """(files, dirs) seen so far; safe to call from another thread while run() works."""
        cdef uint64_t files = 0, dirs = 0
        cdef int t
        for t in range(self.jobs):
            files += self.bufs[t].counts[C_FILES]
            dirs += self.bufs[t].counts[C_DIRS]
        return files, dirs

    def counters(self):
        return walk_counters(<const char *>self.bufs[0].counts, sizeof(tbuf_t), self.jobs, COUNTER_NAMES)

    def kept(self):
        """The paths of every file the walk handed to the rules (uint16 length, then d1/d2/d3/NAME; threads
        one after another), or None when they did not fit in ``keep`` bytes (or none were asked for, or
        the walk did not finish). Then forgotten."""
        cdef int t
        out = None
        if self.done and not any(self.bufs[t].keep_over or self.bufs[t].kept_max == 0 for t in range(self.jobs)):
            out = b"".join([(<char *>self.bufs[t].kept)[:self.bufs[t].kept_n] if self.bufs[t].kept_n else b""
                            for t in range(self.jobs)])
        for t in range(self.jobs):
            free(self.bufs[t].kept)
            self.bufs[t].kept, self.bufs[t].kept_n, self.bufs[t].kept_cap = NULL, 0, 0
        return out

    def records(self):
        """[(kind, name bytes, path bytes, detail bytes, errno, aux)] in no particular order; aux is a
        map verdict's version + 1 (av_verdict_aux), else 0."""
        cdef int t
        out = []
        for t in range(self.jobs):
            if self.bufs[t].recs.oom:
                raise MemoryError("out of memory while recording findings")
            walk_records(out, &self.bufs[t].recs, KIND_NAMES, True)
        return out


# ---- test hooks: the C rules of _rules.h, callable from Python ----------------------
# tests/native/test_rules_twin.py holds each of these against its twin in verify/core/formats.py on
# the same inputs; nothing else calls them.

_CLASS_NAMES = ("not_map", "v0", "v1", "v2", "corrupt_short", "corrupt_version", "corrupt_blocksize",
                "corrupt_v1_short")
_NAME_CLASS_NAMES = ("plain", "lock", "hash", "temp", "mapdata")


def _map_version_for_tests(str cls):
    return av_map_version(_CLASS_NAMES.index(cls))


def _classify_for_tests(bytes head, unsigned long long file_size, bytes name):
    """av_classify: (class name, size, blocksize, flags, epoch, version) for ``head``."""
    cdef av_header_t h
    av_classify(<const unsigned char *>head, len(head), file_size, name, len(name), &h)
    return _CLASS_NAMES[h.cls], h.size, h.blocksize, h.flags, h.epoch, h.version


def _valid_volume_name_for_tests(bytes name):
    """av_valid_volume_name on raw bytes."""
    return bool(av_valid_volume_name(name, len(name)))


def _is_mapdata_name_for_tests(bytes name):
    """av_name_class(name) == AV_NAME_MAPDATA is decided by av_is_mapdata_name."""
    return bool(av_is_mapdata_name(name, len(name)))


def _name_class_for_tests(bytes name):
    """av_name_class as a name: plain, lock, hash, temp or mapdata."""
    return _NAME_CLASS_NAMES[av_name_class(name, len(name))]


def _utf8_valid_for_tests(bytes s):
    """av_utf8_valid: must equal Python's strict UTF-8 decoder."""
    return bool(av_utf8_valid(<const unsigned char *>s, len(s)))


def _name_fault_for_tests(bytes name, size_t min_len):
    """av_name_fault and its text: (fault code, text)."""
    cdef int fault = av_name_fault(name, len(name), min_len)
    return fault, <bytes>av_name_fault_text(fault)


def _is_v2_header_for_tests(bytes head):
    return bool(av_is_v2_header(<const unsigned char *>head, len(head)))


def _is_hex64_for_tests(bytes name):
    return bool(av_is_hex64(name, len(name)))


def _constants_for_tests():
    """The format constants of _rules.h, by the names formats.py gives them."""
    return {"V2_SIGNATURE": AV_V2_SIGNATURE, "V2_HEADER_LEN": AV_V2_HEADER_LEN, "V1_HEADER_LEN": AV_V1_HEADER_LEN,
            "V1_ENTRY_LEN": AV_V1_ENTRY_LEN, "V2_ENTRY_LEN": AV_V2_ENTRY_LEN, "BLOCK_SIZE_4M": AV_BLOCK_4M,
            "V2_NAME_MAX": AV_V2_NAME_MAX, "MF_DELETED": AV_MF_DELETED, "OF_ZERO": AV_OF_ZERO,
            "OF_DELETED": AV_OF_DELETED, "OF_KNOWN": AV_OF_KNOWN, "SCAN_HEADER_READ": AV_HEADER_READ,
            "MIN_NAME_LEN": AV_MIN_NAME}


def _v04_rel_for_tests(bytes name):
    """av_v04_rel: must equal layout.v04_path."""
    cdef char rel[PATHMAX]
    av_v04_rel(name, len(name), rel, PATHMAX)
    return <bytes>rel


def _mapdata_blocks_for_tests(unsigned long long size, unsigned int blocksize):
    """av_mapdata_blocks: how many map-data objects the scanner probes for."""
    return av_mapdata_blocks(size, blocksize)


_MAP_STEPS = {AV_NO_FINDING: None, AV_NEED_SIZE: "need_size", AV_NEED_UPGRADED: "need_upgraded",
              AV_NEED_MAPDATA: "need_mapdata"}


def _map_facts_for_tests(bytes head, unsigned long long size, bint size_known, bytes name):
    """av_map_facts: (header as _classify_for_tests, size, size_known, name_valid, upgraded, nb, missing)."""
    cdef av_map_facts_t f
    av_map_facts(&f, <const unsigned char *>head, len(head), size, size_known, name, len(name))
    h = (_CLASS_NAMES[f.h.cls], f.h.size, f.h.blocksize, f.h.flags, f.h.epoch, f.h.version)
    return (h, f.size, bool(f.size_known), bool(f.name_valid), f.upgraded, f.nb, f.missing, bool(f.name_plain),
            <bytes>f.head[:f.headn])


def _map_verdict_for_tests(str cls, unsigned long long hsize, unsigned int blocksize, unsigned int flags,
                           unsigned long long epoch, unsigned int version, unsigned long long size,
                           bint size_known, bint name_valid, int upgraded, unsigned long long nb,
                           long long missing, bytes name, bint name_plain=True, bytes head=b""):
    """av_map_verdict and av_map_detail on given facts: (kind or step name or None, detail code, text)."""
    cdef av_map_facts_t f
    cdef int code
    cdef char detail[DETAILMAX]
    f.h.cls = _CLASS_NAMES.index(cls)
    f.h.size, f.h.blocksize, f.h.flags, f.h.epoch, f.h.version = hsize, blocksize, flags, epoch, version
    f.size, f.size_known, f.name_valid, f.upgraded, f.nb, f.missing = size, size_known, name_valid, upgraded, nb, missing
    f.name_plain, f.headn = name_plain, min(len(head), AV_HEAD_SHOWN)
    memcpy(f.head, <const char *>head, f.headn)
    kind = av_map_verdict(&f, &code)
    if kind < 0:
        return _MAP_STEPS[kind], code, b""
    av_map_detail(detail, DETAILMAX, code, &f, name, len(name))
    return KIND_NAMES[kind], code, <bytes>detail
