# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""What one file is worth to each pass of the filed reference check: the walker's callbacks.

verify/native/_check.pyx runs the passes (the walker of verify/native/_walk.h over a store, one pass
mode at a time); each regular file at object depth comes here: a map's entries read
(v0, v1, v2 with its map-data files) and decided by the shared entry rules
(verify/native/_refsets.pyx), a stored object marked, listed or found orphaned, an object's
content hashed against its name. Its own module so that the passes' bookkeeping and the
per-file I/O can be read apart; the callbacks reach the walker as C function pointers,
called as before.
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport realloc
from libc.string cimport strlen, memcmp
from libc.errno cimport errno, ENOENT, ENOTDIR, ELOOP, ENXIO, ENODEV

from ._sys cimport *  # the POSIX and libcrypto calls, declared once: _sys.pxd

cdef extern from *:
    """
    #include <errno.h>
    static inline void errno_set(int e) { errno = e; }
    """
    void errno_set(int e) nogil


from ._rules cimport *  # the C twin of formats.py: _rules.h, declared in _rules.pxd
from ._native cimport *  # the stop flag, the record buffer, the v0.4 path: _native.h
from ._walk cimport *  # the filed directory walker: _walk.h
from ._refsets cimport *  # the entry rules and the fingerprint sets: _refsets.pxd

DEF DATA_CHUNK = 1 << 20
DEF V0_CHUNK = 1 << 20

# How every store file is opened: read-only, never through a symlink, non-blocking so that
# a FIFO cannot hang the check; then fstat, and only a regular file is ever read.
cdef int FILE_OPEN = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK


cdef int open_regular(int dirfd, const char *rel, stat *st) noexcept nogil:
    """An fd of the regular file ``rel``; -1 with errno, ELOOP for anything that is not a
    regular file (a symlink, FIFO, socket, device or directory: never read, as if absent)."""
    cdef int fd = openat(dirfd, rel, FILE_OPEN)
    if fd < 0:
        if errno == ENXIO or errno == ENODEV:  # a socket, or a device without its driver
            errno_set(ELOOP)
        return -1
    if fstat(fd, st) != 0:
        close(fd)
        return -1
    if not S_ISREG(st.st_mode):
        close(fd)
        errno_set(ELOOP)
        return -1
    return fd



cdef long read_upto(tbuf_t *b, int fd, size_t want, uint64_t off=0) noexcept nogil:
    """Reads up to ``want`` bytes from ``off`` into b.buf; bytes read, or -1 (errno set)."""
    cdef size_t got = 0
    cdef ssize_t r
    if grow(b, want if want > 0 else 1) != 0:
        return -1
    while got < want:
        r = pread(fd, b.buf + got, want - got, <long>(off + got))
        if r < 0:
            return -1
        if r == 0:
            break
        got += <size_t>r
    b.counts[C_MAP_BYTES] += got
    av_limit_take(0, got, NULL)
    return <long>got



cdef void entries_v2(ctx_t *ctx, tbuf_t *b, mapstate_t *ms, av_header_t *h) noexcept nogil:
    cdef uint64_t nr = av_div_ceil(h.size, h.blocksize)
    cdef uint64_t per = h.blocksize // AV_V2_ENTRY_LEN
    cdef uint64_t nb = av_div_ceil(nr, per)
    cdef uint64_t blk, cnt, have
    cdef char mdname[300]
    cdef char rel[PATHMAX]
    cdef char text[600]
    cdef stat st
    cdef int fd
    cdef long got
    for blk in range(nb):
        if av_stopped(&ctx.stop):
            return
        snprintf(mdname, sizeof(mdname), "%.*s_%016llx", <int>ms.n, ms.name, <unsigned long long>blk)
        av_v04_rel(mdname, strlen(mdname), rel, PATHMAX)
        fd = open_regular(ctx.rootfd, rel, &st)
        if fd < 0:
            if errno == ENOENT or errno == ENOTDIR or errno == ELOOP:
                # the scan reports it for maps under valid names; the others are ours to report
                if ctx.mode == MODE_REFS and not ms.deleted and not av_valid_volume_name(ms.name, ms.n):
                    snprintf(text, sizeof(text), "map-data %s missing (block %llu of %llu)", mdname,
                             <unsigned long long>blk, <unsigned long long>nb)
                    emit_s(b, K_MAP_DATA_MISSING, 0, ms.name, ms.n, ms.path, text)
                return  # the map cannot load; a bogus size must not make us probe millions of names
            elif ctx.mode == MODE_REFS and not ms.deleted:
                snprintf(text, sizeof(text), "open of map-data %s", mdname)
                emit_s(b, K_UNREADABLE, errno, ms.name, ms.n, ms.path, text)
            continue
        cnt = nr - blk * per
        if cnt > per:
            cnt = per
        got = read_upto(b, fd, cnt * AV_V2_ENTRY_LEN)
        if got < 0:
            if ctx.mode == MODE_REFS:
                snprintf(text, sizeof(text), "read of map-data %s", mdname)
                emit_s(b, K_UNREADABLE, errno, ms.name, ms.n, ms.path, text)
            close(fd)
            continue
        close(fd)
        have = <uint64_t>got // AV_V2_ENTRY_LEN
        if have < cnt:
            snprintf(text, sizeof(text), "map-data %s is %ld bytes, its %llu entries need %llu", mdname, got,
                     <unsigned long long>cnt, <unsigned long long>(cnt * AV_V2_ENTRY_LEN))
            problem(ms, text)
            cnt = have
        entries_v2_chunk(ctx, b, ms, cnt, blk * per)



cdef void read_map(ctx_t *ctx, tbuf_t *b, int fd3, const char *name, size_t n, const char *path) noexcept nogil:
    cdef unsigned char head[64]
    cdef stat st
    cdef av_header_t h
    cdef mapstate_t ms
    cdef int fd
    cdef ssize_t got
    cdef long whole
    cdef uint64_t nr, off, want
    fd = open_regular(fd3, name, &st)
    if fd < 0:
        # gone, or replaced by something that is not a file since it was listed (the scan reports that)
        if errno != ENOENT and errno != ELOOP and ctx.mode == MODE_REFS:
            emit_s(b, K_UNREADABLE, errno, name, n, path, "open")
        return
    got = pread(fd, head, AV_HEADER_READ, 0)
    if got < 0:
        if ctx.mode == MODE_REFS:
            emit_s(b, K_UNREADABLE, errno, name, n, path, "read")
        close(fd)
        return
    av_classify(head, <size_t>got, <uint64_t>st.st_size, name, n, &h)
    ms.name = name
    ms.n = n
    ms.path = path
    ms.nbad = 0
    ms.deleted = 0
    ms.version = av_map_version(h.cls)
    b.nseen = 0
    if h.cls == AV_V0:
        b.counts[C_MAPS_V0] += 1
        ragged_v0(&ms, <uint64_t>st.st_size)
        off = 0
        while off + 32 <= <uint64_t>st.st_size and not av_stopped(&ctx.stop):  # in chunks: a stray huge file must not become one malloc
            want = <uint64_t>st.st_size - off
            if want > V0_CHUNK:
                want = V0_CHUNK
            want -= want % 32
            whole = read_upto(b, fd, want, off)
            if whole < 0:
                if ctx.mode == MODE_REFS:
                    emit_s(b, K_UNREADABLE, errno, name, n, path, "read")
                break
            if entries_v0(ctx, b, &ms, <size_t>whole, off // 32) or <uint64_t>whole < want:
                break
            off += <uint64_t>whole
        close(fd)
    elif h.cls == AV_V1:
        b.counts[C_MAPS_V1] += 1
        nr = av_div_ceil(h.size, AV_BLOCK_4M)
        whole = read_upto(b, fd, AV_V1_HEADER_LEN + AV_V1_ENTRY_LEN * nr)
        if whole < 0:
            if ctx.mode == MODE_REFS:
                emit_s(b, K_UNREADABLE, errno, name, n, path, "read")
        else:
            entries_v1(ctx, b, &ms, nr, <size_t>whole)
        close(fd)
    elif h.cls == AV_V2:
        close(fd)
        b.counts[C_MAPS_V2] += 1
        if h.flags & AV_MF_DELETED:
            # a deleted map's entries may name objects that are gone on purpose
            b.counts[C_MAPS_DELETED] += 1
            ms.deleted = 1
        entries_v2(ctx, b, &ms, &h)
    else:
        close(fd)
        return
    finish_map(b, ctx, &ms)


cdef int probe_object(int rootfd, const char *name, size_t n) noexcept nogil:
    """Is there a regular file for NAME where v0.4 filed looks (old Pithos path, then sha256 path)?"""
    cdef char rel[PATHMAX]
    cdef stat st
    cdef int step
    for step in range(2):
        if av_probe_rel(step, name, n, rel, PATHMAX) and fstatat(rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 \
                and S_ISREG(st.st_mode):
            return 1
    return 0


cdef inline int placed(const char *d1, const char *d2, const char *d3, const char *name, size_t n,
                       unsigned char *md) noexcept nogil:
    """sha256(name) into md; 1 if the file is at a path v0.4 filed reads (sha256 or old Pithos path)."""
    return av_placement(d1, d2, d3, name, n, md) != 0


cdef void stored_file(ctx_t *ctx, tbuf_t *b, const char *d1, const char *d2, const char *d3,
                      const char *name, size_t n, const char *path) noexcept nogil:
    cdef unsigned char md[32]
    cdef av_fp_t fp
    cdef long k
    cdef char detail[DETAILMAX]
    cdef int sc = av_stored_class(name, n)
    cdef size_t tn
    if sc == AV_STORED_SKIP:
        return
    if sc == AV_STORED_HASH:
        if ctx.mode == MODE_ORPHANS:
            return  # decided (and counted) while listing: it needs no join
        b.counts[C_HASH_FILES] += 1
        tn = av_hash_target_len(n)
        if not probe_object(ctx.rootfd, name, tn):
            b.counts[C_ORPHANS] += 1
            snprintf(detail, DETAILMAX, "hash file of %.*s, which is not in the store", <int>tn, name)
            emit_s(b, K_ORPHAN, 0, name, n, path, detail)
        return
    if not placed(d1, d2, d3, name, n, md):
        return  # unreachable for v0.4: the scan reports it (object_misplaced)
    av_fp_from_digest(md, &fp)
    if ctx.mode == MODE_ORPHANS:
        if av_fpset_find(ctx.refs, &fp) >= 0:
            b.counts[C_ORPHANS] += 1
            emit_s(b, K_ORPHAN, 0, name, n, path, "referenced by no map")
        return
    b.counts[C_STORED] += 1
    if ctx.mode == MODE_LIST:
        av_fpbuf_push(&b.refs, &fp)
        return
    k = av_fpset_find(ctx.refs, &fp)
    if k >= 0:
        av_mark(ctx.present, <size_t>k)
    else:
        b.counts[C_ORPHANS] += 1
        emit_s(b, K_ORPHAN, 0, name, n, path, "referenced by no map")


cdef void data_file(ctx_t *ctx, tbuf_t *b, int fd3, const char *d1, const char *d2, const char *d3,
                    const char *name, size_t n, const char *path) noexcept nogil:
    """sha256 of the content with trailing zeros stripped, streamed, against the 64-hex name."""
    cdef unsigned char md[32]
    cdef char hexmd[65]
    cdef char detail[DETAILMAX]
    cdef av_fp_t fp
    cdef av_content_t sha
    cdef int fd
    cdef ssize_t r
    cdef stat st
    if not av_is_hex64(name, n) or not placed(d1, d2, d3, name, n, md):
        return
    av_fp_from_digest(md, &fp)
    if not av_in_window(fp.hi, ctx.win_start, ctx.win_width, ctx.sample_all):
        b.counts[C_DATA_UNSAMPLED] += 1
        return
    fd = open_regular(fd3, name, &st)
    if fd < 0:
        if errno != ENOENT and errno != ELOOP:  # ELOOP: not a file any more, the scan reports it
            emit_s(b, K_UNREADABLE, errno, name, n, path, "open")
        return
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
    if grow(b, DATA_CHUNK) != 0:
        close(fd)
        return
    av_content_init(&sha)
    while True:
        if av_stopped(&ctx.stop):
            close(fd)
            return
        r = read(fd, b.buf, DATA_CHUNK)
        if r < 0:
            emit_s(b, K_UNREADABLE, errno, name, n, path, "read")
            close(fd)
            return
        if r == 0:
            break
        av_content_update(&sha, b.buf, <size_t>r)
        av_limit_take(0, <uint64_t>r, &ctx.stop)
    close(fd)
    av_content_final(&sha, hexmd)
    b.counts[C_DATA_OBJECTS] += 1
    b.counts[C_DATA_BYTES] += sha.total
    if memcmp(hexmd, name, 64) != 0:
        snprintf(detail, DETAILMAX, "content (%llu bytes) hashes to %s", <unsigned long long>sha.total, hexmd)
        emit_s(b, K_MISMATCH, 0, name, n, path, detail)



cdef void on_file(void *vctx, void *tb, uint64_t unit, int fd3, const char *d1, const char *d2, const char *d3,
                  const char *name) noexcept nogil:
    """The walker's callback (verify/native/_walk.h) for a regular file at object depth: the pass's rule."""
    cdef ctx_t *ctx = <ctx_t *>vctx
    cdef tbuf_t *b = <tbuf_t *>tb
    cdef size_t n = strlen(name)
    cdef char path[PATHMAX]
    cdef int nc
    b.unit = <int>unit
    b.counts[C_FILES] += 1
    if av_name_fault(name, n, AV_MIN_NAME) != AV_NAME_FINE:
        return  # a stray entry: the scan reports it
    av_walk_join(path, d1, d2, d3, name)
    if ctx.mode == MODE_REFS or ctx.mode == MODE_MISSING:
        nc = av_name_class(name, n)
        if nc == AV_NAME_PLAIN:
            read_map(ctx, b, fd3, name, n, path)
    elif ctx.mode == MODE_STORED or ctx.mode == MODE_LIST or ctx.mode == MODE_ORPHANS:
        stored_file(ctx, b, d1, d2, d3, name, n, path)
    else:
        data_file(ctx, b, fd3, d1, d2, d3, name, n, path)


cdef void on_unreadable(void *ctx, void *tb, int err, const char *name, const char *path, int op) noexcept nogil:
    """A directory that cannot be opened or listed. What is not a directory any more, and an
    entry whose type cannot be read, are the scan's to report (stray, unreadable)."""
    if op == AV_WALK_LSTAT or (op == AV_WALK_OPENDIR and (err == ENOTDIR or err == ELOOP)):
        return
    emit_s(<tbuf_t *>tb, K_UNREADABLE, err, name, strlen(name), path,
           b"readdir" if op == AV_WALK_READDIR else (b"readdir buffer" if op == AV_WALK_NOMEM else b"opendir"))


def _limit_use(size_t address):
    """Points this module's loops at the process's one token bucket (verify/native/limits.py); 0: no caps."""
    av_limit_use(<av_limit_t *>address)
