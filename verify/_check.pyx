# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The reference check's hot loops for filed stores, without the GIL, in parallel.

One :class:`FiledRefCheck` runs the passes of ``archverify check`` over a maps dir and
a blocks dir, each pass a walk of ``ROOT/d1/d2/d3/NAME`` by the walker the scan uses
(verify/_walk.h), with the pass's rule as its per-file callback:

1. ``read_maps``: every map's entries (v0, v1, v2 from its map-data objects at
   their v0.4 paths); entry-level corruption; each referenced name's fingerprint
   (first 128 bits of sha256(name), see _check.h) into per-thread arrays.
2. ``freeze``: one sorted, de-duplicated array of referenced fingerprints.
3. ``mark_stored``: every object file at a path v0.4 reads marks its fingerprint
   present; one that no map references is an orphan (so is a ``NAME_hash`` whose
   object is gone). Referenced fingerprints left unmarked are missing.
4. ``explain_missing`` (only when something is missing): the maps again, recording
   the first few entries that name each missing fingerprint.
5. ``verify_data``: sha256 of every (sampled) 64-hex object's content with trailing
   zeros stripped, against its name.

Per-object outcomes are C records turned into Python tuples after the GIL is back.
Map layouts and name rules come from _rules.h, shared with the scanner.
"""

from cython.parallel cimport prange, threadid
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, realloc, free, calloc
from libc.string cimport memcpy, memset, strlen, memchr, memcmp
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

cdef extern from "_check.h" nogil:
    ctypedef struct av_fpbuf_t:
        av_fp_t *a
        size_t n
        size_t cap
        int oom
    ctypedef struct av_fpset_t:
        av_fp_t *a
        size_t n
        uint32_t *idx
        int bits
    void av_fp_from_digest(const unsigned char *md, av_fp_t *out)
    size_t av_fp_sort_unique(av_fp_t *a, size_t n)
    void av_fpbuf_push(av_fpbuf_t *b, const av_fp_t *fp)
    int av_fpset_index(av_fpset_t *s)
    long av_fpset_find(const av_fpset_t *s, const av_fp_t *fp)
    void av_mark(uint8_t *flags, size_t i)
    uint32_t av_fetch_add(uint32_t *p)
    size_t av_nonzero_len(const unsigned char *p, size_t n)
    uint64_t AV_FP_NEEDED

from .findings import RECORD_KINDS as KIND_NAMES

cdef enum:
    MODE_REFS = 0
    MODE_MISSING = 1
    MODE_STORED = 2
    MODE_DATA = 3
    MODE_LIST = 4        # one blocks shard: fingerprints of its stored objects, for a join elsewhere
    MODE_ORPHANS = 5     # one blocks shard again: records for the stored objects a join found orphaned

# ---- counters ----
cdef enum:
    C_MAPS_V0 = 0
    C_MAPS_V1 = 1
    C_MAPS_V2 = 2
    C_MAPS_DELETED = 3
    C_ENTRIES = 4
    C_ZERO = 5
    C_DELETED_ENTRIES = 6
    C_REFERENCES = 7
    C_BAD_ENTRIES = 8
    C_MAP_BYTES = 9
    C_STORED = 10
    C_HASH_FILES = 11
    C_ORPHANS = 12
    C_DATA_OBJECTS = 13
    C_DATA_BYTES = 14
    C_DATA_UNSAMPLED = 15
    C_FILES = 16
    C_KEEPS = 17
    NCOUNT = 18

COUNTER_NAMES = ("maps_v0", "maps_v1", "maps_v2", "maps_deleted", "entries", "zero_entries", "deleted_entries",
                 "references", "bad_entries", "map_bytes", "stored_objects", "hash_files", "orphans",
                 "data_objects", "data_bytes", "data_unsampled", "walked_files", "keeping_references")

DEF PATHMAX = 1200

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
DEF DETAILMAX = 1300
DEF MAX_REFS_SHOWN = 8      # entries recorded per missing object (the detail names these)
REFS_SHOWN = MAX_REFS_SHOWN  # for merging the explain passes of several shards
DEF DATA_CHUNK = 1 << 20
DEF V0_CHUNK = 1 << 20

cdef const char *ZERO_HEX = b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
cdef const char *ARCHIP = b"archip_"

ctypedef struct tbuf_t:
    av_recs_t recs
    int oom              # any other allocation failed (the records keep their own flag)
    av_fpbuf_t refs
    unsigned char *buf
    size_t bufcap
    long *seen           # missing positions already counted for the current map
    size_t nseen
    size_t capseen
    uint8_t *shown       # entries recorded per missing fingerprint by this thread (at most MAX_REFS_SHOWN)
    int unit             # the top-level dir being walked, in sorted order: walk order for the records
    uint64_t counts[NCOUNT]
    char pad[64]

ctypedef struct ctx_t:
    int rootfd
    int mode
    int stop             # set from the main thread (av_request_stop): passes return between work units
    av_fpset_t *refs
    uint8_t *present
    av_fpset_t *missing
    uint32_t *mrefs      # references per missing fingerprint
    uint32_t *mmaps      # maps per missing fingerprint
    uint64_t win_start
    uint64_t win_width
    int sample_all

# The fingerprint sets of one reference check (_check.h): the referenced objects, those found
# stored, the missing ones and who names them. The filed passes and ReferenceIndex hold one each.
ctypedef struct refsets_t:
    av_fpset_t refs
    av_fpset_t missing
    uint8_t *present     # per referenced fingerprint: found stored
    uint32_t *mrefs      # references per missing fingerprint
    uint32_t *mmaps      # maps per missing fingerprint


# one map's problems, folded into a single map_corrupt record
ctypedef struct mapstate_t:
    const char *name
    size_t n
    const char *path
    uint64_t nbad
    int deleted          # a deleted map: its entries keep objects but need none
    int version          # its header's version (0, 1, 2): the map_corrupt record's aux
    char first[600]


cdef inline void emit(tbuf_t *b, int kind, int err, const char *name, size_t namelen, const char *path,
                      size_t pathlen, const char *detail, uint64_t aux) noexcept nogil:
    av_emit(&b.recs, kind, err, aux, name, namelen, path, pathlen, detail)


cdef inline void emit_s(tbuf_t *b, int kind, int err, const char *name, size_t n, const char *path,
                        const char *detail) noexcept nogil:
    emit(b, kind, err, name, n, path, strlen(path) if path != NULL else 0, detail, 0)


cdef int grow(tbuf_t *b, size_t want) noexcept nogil:
    cdef unsigned char *p
    if want <= b.bufcap:
        return 0
    p = <unsigned char *>realloc(b.buf, want)
    if p == NULL:
        b.oom = 1
        return -1
    b.buf = p
    b.bufcap = want
    return 0


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


cdef void problem(mapstate_t *ms, const char *text) noexcept nogil:
    if ms.nbad == 0:
        snprintf(ms.first, sizeof(ms.first), "%s", text)
    ms.nbad += 1


cdef void finish_map(tbuf_t *b, ctx_t *ctx, mapstate_t *ms) noexcept nogil:
    cdef char detail[DETAILMAX]
    if ms.nbad == 0 or ctx.mode != MODE_REFS or ms.deleted:
        return
    if ms.nbad == 1:
        snprintf(detail, DETAILMAX, "%s", ms.first)
    else:
        snprintf(detail, DETAILMAX, "%s; %llu problems in all", ms.first, <unsigned long long>ms.nbad)
    emit(b, K_MAP_CORRUPT, 0, ms.name, ms.n, ms.path, strlen(ms.path) if ms.path != NULL else 0, detail,
         <uint64_t>ms.version)


cdef void reference(ctx_t *ctx, tbuf_t *b, mapstate_t *ms, const char *ename, size_t en,
                    uint64_t index, int needed) noexcept nogil:
    """One entry naming an object: a fingerprint (pass 1) or, if missing, a record (pass 4).

    ``needed``: a live entry of a live map, whose object must exist; otherwise the
    entry only keeps its object from counting as an orphan."""
    cdef av_fp_t fp
    cdef long k
    cdef size_t i
    cdef long *p
    needed = needed and not ms.deleted
    if needed:
        b.counts[C_REFERENCES] += 1
    else:
        b.counts[C_KEEPS] += 1
    if ctx.mode == MODE_MISSING and not needed:
        return
    av_fingerprint(ename, en, &fp)
    if ctx.mode == MODE_REFS:
        if needed:
            fp.lo |= AV_FP_NEEDED
        av_fpbuf_push(&b.refs, &fp)
        return
    k = av_fpset_find(ctx.missing, &fp)
    if k < 0:
        return
    for i in range(b.nseen):
        if b.seen[i] == k:
            break
    else:
        if b.nseen == b.capseen:
            p = <long *>realloc(b.seen, (b.capseen * 2 + 16) * sizeof(long))
            if p == NULL:
                b.oom = 1
                return
            b.seen = p
            b.capseen = b.capseen * 2 + 16
        b.seen[b.nseen] = k
        b.nseen += 1
        av_fetch_add(&ctx.mmaps[k])
    av_fetch_add(&ctx.mrefs[k])
    # each thread keeps its own first few, tagged with the unit: the first few of a
    # one-thread walk are among them whatever the timing (a thread's units ascend)
    if b.shown == NULL:
        b.oom = 1
    elif b.shown[k] < MAX_REFS_SHOWN:
        b.shown[k] += 1
        emit(b, K_REF, b.unit, ename, en, ms.name, ms.n, NULL, index)


cdef void ragged_v0(mapstate_t *ms, uint64_t length) noexcept nogil:
    cdef char text[200]
    if length % 32:
        snprintf(text, sizeof(text), "v0 map length %llu is not a multiple of 32", <unsigned long long>length)
        problem(ms, text)


cdef int entries_v0(ctx_t *ctx, tbuf_t *b, mapstate_t *ms, size_t got, uint64_t first) noexcept nogil:
    """The whole 32-byte digests in b.buf[0:got], entry ``first`` first; 1 once the list has ended."""
    cdef char hexname[64]
    cdef size_t i, count = got // 32
    cdef const unsigned char *d
    cdef int j, allzero
    for i in range(count):
        d = b.buf + i * 32
        allzero = 1
        for j in range(32):
            if d[j]:
                allzero = 0
                break
        if allzero:
            return 1
        b.counts[C_ENTRIES] += 1
        av_hex(d, 32, hexname)
        if memcmp(hexname, ZERO_HEX, 64) == 0:
            b.counts[C_ZERO] += 1
            continue
        reference(ctx, b, ms, hexname, 64, first + i, 1)
    return 0


cdef void entries_v1(ctx_t *ctx, tbuf_t *b, mapstate_t *ms, uint64_t nr, size_t got) noexcept nogil:
    cdef char nm[80]
    cdef char text[200]
    cdef uint64_t i, have
    cdef const unsigned char *e
    have = (got - AV_V1_HEADER_LEN) // AV_V1_ENTRY_LEN if got >= <size_t>AV_V1_HEADER_LEN else 0
    if have < nr:
        snprintf(text, sizeof(text), "v1 map read %zu bytes, %llu entries need %llu", got,
                 <unsigned long long>nr, <unsigned long long>(AV_V1_HEADER_LEN + AV_V1_ENTRY_LEN * nr))
        problem(ms, text)
        nr = have
    memcpy(nm, ARCHIP, 7)
    for i in range(nr):
        e = b.buf + AV_V1_HEADER_LEN + i * AV_V1_ENTRY_LEN
        b.counts[C_ENTRIES] += 1
        av_hex(e + 1, 32, nm + 7)
        if e[0]:
            reference(ctx, b, ms, nm, 71, i, 1)
        elif memcmp(nm + 7, ZERO_HEX, 64) == 0:
            b.counts[C_ZERO] += 1
        else:
            reference(ctx, b, ms, nm + 7, 64, i, 1)


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


cdef void entries_v2_chunk(ctx_t *ctx, tbuf_t *b, mapstate_t *ms, uint64_t cnt, uint64_t first) noexcept nogil:
    """``cnt`` 128-byte entries at b.buf, the first one being entry ``first`` of the map."""
    cdef uint64_t i, idx
    cdef char text[600]
    cdef int flags
    cdef uint32_t objlen
    cdef const unsigned char *e
    cdef const char *nm
    for i in range(cnt):
        e = b.buf + i * AV_V2_ENTRY_LEN
        idx = first + i
        b.counts[C_ENTRIES] += 1
        flags = e[0]
        objlen = <uint32_t>e[1] | (<uint32_t>e[2] << 8) | (<uint32_t>e[3] << 16) | (<uint32_t>e[4] << 24)
        nm = <const char *>(e + 5)
        if objlen == 0 or objlen > <uint32_t>AV_V2_NAME_MAX:
            snprintf(text, sizeof(text), "entry %llu: objectlen %u (1..%d allowed)",
                     <unsigned long long>idx, objlen, AV_V2_NAME_MAX)
        elif flags & ~AV_OF_KNOWN:
            snprintf(text, sizeof(text), "entry %llu: unknown flag bits 0x%02x", <unsigned long long>idx, flags)
        elif memchr(nm, b'/', objlen) != NULL or memchr(nm, 0, objlen) != NULL:
            snprintf(text, sizeof(text), "entry %llu: name contains '/' or NUL", <unsigned long long>idx)
        else:
            text[0] = 0
        if text[0]:
            b.counts[C_BAD_ENTRIES] += 1
            problem(ms, text)
            continue
        if flags & AV_OF_DELETED:
            b.counts[C_DELETED_ENTRIES] += 1
            reference(ctx, b, ms, nm, objlen, idx, 0)
        elif flags & AV_OF_ZERO or (objlen == 64 and memcmp(nm, ZERO_HEX, 64) == 0):
            b.counts[C_ZERO] += 1
        else:
            reference(ctx, b, ms, nm, objlen, idx, 1)


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
    """The walker's callback (verify/_walk.h) for a regular file at object depth: the pass's rule."""
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


cdef size_t count_missing(const av_fpset_t *refs, const uint8_t *present) noexcept nogil:
    """Referenced objects that a live entry needs and that were not found stored."""
    cdef size_t i, m = 0
    for i in range(refs.n):
        if not present[i] and refs.a[i].lo & AV_FP_NEEDED:
            m += 1
    return m


cdef int index_missing(refsets_t *s, ctx_t *ctx) except -1:
    """The referenced fingerprints needed and not found stored as the indexed missing set, with
    counters of who names each (:func:`name_missing`)."""
    cdef size_t i, m = count_missing(&s.refs, s.present)
    free(s.missing.a)
    free(s.missing.idx)
    s.missing.idx = NULL
    s.missing.a = <av_fp_t *>malloc((m + 1) * sizeof(av_fp_t))
    if s.missing.a == NULL:
        raise MemoryError()
    m = 0
    for i in range(s.refs.n):
        if not s.present[i] and s.refs.a[i].lo & AV_FP_NEEDED:
            s.missing.a[m] = s.refs.a[i]
            m += 1
    s.missing.n = m
    if av_fpset_index(&s.missing) != 0:
        raise MemoryError()
    return name_missing(s, ctx)


cdef int name_missing(refsets_t *s, ctx_t *ctx) except -1:
    """Zeroed counters of the entries and maps naming each missing fingerprint, wired into
    ``ctx`` so that the next pass over the maps records who names them."""
    free(s.mrefs)
    free(s.mmaps)
    s.mrefs = <uint32_t *>calloc(s.missing.n + 1, sizeof(uint32_t))
    s.mmaps = <uint32_t *>calloc(s.missing.n + 1, sizeof(uint32_t))
    if s.mrefs == NULL or s.mmaps == NULL:
        raise MemoryError()
    ctx.missing = &s.missing
    ctx.mrefs = s.mrefs
    ctx.mmaps = s.mmaps
    return 0


cdef object export_records(const av_fpset_t *s, bytes locator):
    """A fingerprint set as join records: 16-byte big-endian key, ``locator``, then 1 byte:
    1 if some entry needs the object (a live entry of a live map), else 0."""
    cdef Py_ssize_t lw = len(locator), width = 16 + lw + 1
    cdef size_t i
    cdef int j
    cdef av_fp_t fp
    out = bytearray(s.n * width)
    cdef unsigned char[::1] o = out
    cdef const unsigned char *loc = locator
    for i in range(s.n):
        fp = s.a[i]
        for j in range(8):
            o[i * width + j] = (fp.hi >> (56 - 8 * j)) & 0xFF
            o[i * width + 8 + j] = ((fp.lo & ~AV_FP_NEEDED) >> (56 - 8 * j)) & 0xFF
        memcpy(&o[i * width + 16], loc, lw)
        o[i * width + width - 1] = 1 if fp.lo & AV_FP_NEEDED else 0
    return out


cdef int load_keys(av_fpset_t *s, const unsigned char[::1] recs, Py_ssize_t width) except -1:
    """A set from the keys of join records."""
    cdef Py_ssize_t i, n = recs.shape[0] // width if width > 0 else 0
    cdef int j
    cdef uint64_t hi, lo
    free(s.a)
    free(s.idx)
    memset(s, 0, sizeof(av_fpset_t))
    s.a = <av_fp_t *>malloc((n + 1) * sizeof(av_fp_t))
    if s.a == NULL:
        raise MemoryError()
    for i in range(n):
        hi = 0
        lo = 0
        for j in range(8):
            hi = (hi << 8) | recs[i * width + j]
            lo = (lo << 8) | recs[i * width + 8 + j]
        s.a[i].hi = hi
        s.a[i].lo = lo & ~AV_FP_NEEDED
    s.n = av_fp_sort_unique(s.a, n)
    if av_fpset_index(s) != 0:
        raise MemoryError()
    return 0


cdef void refsets_free(refsets_t *s) noexcept nogil:
    free(s.refs.a)
    free(s.refs.idx)
    free(s.missing.a)
    free(s.missing.idx)
    free(s.present)
    free(s.mrefs)
    free(s.mmaps)


cdef void tbuf_free(tbuf_t *b) noexcept nogil:
    av_recs_free(&b.recs)
    free(b.refs.a)
    free(b.buf)
    free(b.seen)
    free(b.shown)


cdef int refsets_explain(refsets_t *s, ctx_t *ctx, const unsigned char[::1] recs, Py_ssize_t width) except -1:
    """The keys of join records (missing objects found by a join elsewhere) as the missing set."""
    load_keys(&s.missing, recs, width)
    return name_missing(s, ctx)


cdef object refsets_missing_counts(const refsets_t *s, bytes name):
    """(maps, entries) naming this missing object, counted by the last pass that named them."""
    cdef av_fp_t fp
    cdef long k
    if s.missing.a == NULL:
        return 0, 0
    av_fingerprint(name, len(name), &fp)
    k = av_fpset_find(&s.missing, &fp)
    if k < 0:
        return 0, 0
    return s.mmaps[k], s.mrefs[k]


cdef size_t refsets_memory(const refsets_t *s) noexcept nogil:
    """Bytes held by the referenced-fingerprint set (array + index + presence flags)."""
    cdef size_t nb = (<size_t>1 << s.refs.bits) + 1 if s.refs.idx != NULL else 0
    return s.refs.n * sizeof(av_fp_t) + nb * sizeof(uint32_t) + (s.refs.n + 1 if s.present != NULL else 0)


cdef class FiledRefCheck:
    """The passes of the reference and data check over one filed maps dir and blocks dir."""

    cdef ctx_t ctx
    cdef tbuf_t *bufs
    cdef int jobs
    cdef int mapsfd, blocksfd
    cdef refsets_t sets
    cdef object maps_root, blocks_root
    cdef int lo, hi
    cdef readonly bint frozen

    def __cinit__(self, maps_root, blocks_root, int jobs=1, int lo=0, int hi=256):
        """``lo``/``hi``: only the top-level dirs whose shard bucket is in [lo, hi), as the scanner's shards."""
        import os
        if jobs < 1:
            raise ValueError("jobs must be >= 1")
        self.lo = lo
        self.hi = hi
        self.maps_root = os.fsencode(maps_root)
        self.blocks_root = os.fsencode(blocks_root)
        self.jobs = jobs
        self.mapsfd = -1
        self.blocksfd = -1
        self.bufs = <tbuf_t *>calloc(jobs, sizeof(tbuf_t))
        if self.bufs == NULL:
            raise MemoryError()
        memset(&self.sets, 0, sizeof(refsets_t))
        self.frozen = False

    def __dealloc__(self):
        self._free_records()
        cdef int t
        if self.bufs != NULL:
            for t in range(self.jobs):
                tbuf_free(&self.bufs[t])
            free(self.bufs)
        refsets_free(&self.sets)
        if self.mapsfd >= 0:
            close(self.mapsfd)
        if self.blocksfd >= 0:
            close(self.blocksfd)

    cdef void _free_records(self):
        cdef int t
        cdef size_t i
        if self.bufs == NULL:
            return
        for t in range(self.jobs):
            av_recs_clear(&self.bufs[t].recs)

    cdef int _open(self, root) except -1:
        import os
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    cdef void _walk(self, int rootfd, int mode) except *:
        """One pass: the walker (verify/_walk.h) over the store's top-level dirs in [lo, hi)."""
        from ._scan import root_entries
        cdef av_walk_t w
        cdef int t
        tops, _others = root_entries(rootfd, self.lo, self.hi)  # the scan reports the others
        self.ctx.rootfd = rootfd
        self.ctx.mode = mode
        av_walk_init(&w, rootfd, &self.ctx.stop, &self.ctx, self.bufs, sizeof(tbuf_t), on_file)
        w.unreadable = on_unreadable
        walk_tops(&w, tops, self.jobs)
        for t in range(self.jobs):
            if self.bufs[t].oom or self.bufs[t].refs.oom or self.bufs[t].recs.oom:
                raise MemoryError("out of memory during the reference check")

    def read_maps(self):
        """Pass 1: every map's entries into per-thread fingerprint arrays; corrupt maps as records."""
        if self.mapsfd < 0:
            self.mapsfd = self._open(self.maps_root)
        self._walk(self.mapsfd, MODE_REFS)

    def freeze(self):
        """Pass 2: one sorted unique array of referenced fingerprints, indexed. Returns its length."""
        cdef int t
        cdef size_t total = 0, off, take
        cdef av_fp_t *a
        cdef av_fpbuf_t *src
        with nogil:
            for t in prange(self.jobs, num_threads=self.jobs, schedule="static", chunksize=1):
                self.bufs[t].refs.n = av_fp_sort_unique(self.bufs[t].refs.a, self.bufs[t].refs.n)
        for t in range(self.jobs):
            total += self.bufs[t].refs.n
        a = self.bufs[0].refs.a
        self.bufs[0].refs.a = NULL
        off = self.bufs[0].refs.n
        if total > 0:
            a = <av_fp_t *>realloc(a, total * sizeof(av_fp_t))
            if a == NULL:
                raise MemoryError()
        # move each other thread's array over from its tail, shrinking it as we go: peak ~ total + 1 MiB
        for t in range(1, self.jobs):
            src = &self.bufs[t].refs
            while src.n > 0:
                take = src.n if src.n < 65536 else 65536
                memcpy(a + off, src.a + src.n - take, take * sizeof(av_fp_t))
                off += take
                src.n -= take
                if src.n > 0:
                    src.a = <av_fp_t *>realloc(src.a, src.n * sizeof(av_fp_t))
            free(src.a)
            src.a = NULL
            src.cap = 0
        with nogil:
            total = av_fp_sort_unique(a, off)
        if total > 0:
            a = <av_fp_t *>realloc(a, total * sizeof(av_fp_t))
        self.sets.refs.a = a
        self.sets.refs.n = total
        if av_fpset_index(&self.sets.refs) != 0:
            raise MemoryError()
        self.sets.present = <uint8_t *>calloc(total + 1, 1)
        if self.sets.present == NULL:
            raise MemoryError()
        self.ctx.refs = &self.sets.refs
        self.ctx.present = self.sets.present
        self.frozen = True
        return total

    def set_range(self, int lo, int hi):
        """The top-level dirs (shard buckets in [lo, hi)) the next passes walk: a pass over a slice
        of the store at a time holds the records of that slice only."""
        self.lo = lo
        self.hi = hi

    def mark_stored(self):
        """Pass 3: walk the blocks store; present objects marked, orphans recorded. Returns #missing."""
        if not self.frozen:
            raise RuntimeError("freeze() first")
        if self.blocksfd < 0:
            self.blocksfd = self._open(self.blocks_root)
        self._walk(self.blocksfd, MODE_STORED)
        return self._count_missing()

    cdef size_t _count_missing(self):
        return count_missing(&self.sets.refs, self.sets.present)

    cdef int _alloc_shown(self) except -1:
        cdef int t
        for t in range(self.jobs):
            free(self.bufs[t].shown)
            self.bufs[t].shown = <uint8_t *>calloc(self.sets.missing.n + 1, 1)
            if self.bufs[t].shown == NULL:
                raise MemoryError()
        return 0

    def missing_total(self):
        """Referenced objects that must exist and were not found by mark_stored()."""
        return self._count_missing()

    def explain_missing(self):
        """Pass 4: the maps again, recording the first entries that name each missing object."""
        index_missing(&self.sets, &self.ctx)
        self._alloc_shown()
        saved = self.counters()
        self._walk(self.mapsfd, MODE_MISSING)
        # the second pass must not count maps and entries twice
        cdef int t, c
        for t in range(self.jobs):
            for c in range(NCOUNT):
                self.bufs[t].counts[c] = 0
        for c in range(NCOUNT):
            self.bufs[0].counts[c] = saved[COUNTER_NAMES[c]]
        return self.sets.missing.n

    def missing_counts(self, bytes name):
        """(maps, references) that name this missing object, counted in explain_missing()."""
        return refsets_missing_counts(&self.sets, name)

    # -- one shard of a join run elsewhere (--dask): fingerprints out, differences back in --

    def list_stored(self):
        """Pass 3 of one blocks shard without the maps: its stored objects' fingerprints, sorted.

        ``NAME_hash`` orphans are decided here (they need no join). Returns how many
        distinct objects; :meth:`export` hands them out."""
        if self.blocksfd < 0:
            self.blocksfd = self._open(self.blocks_root)
        self._walk(self.blocksfd, MODE_LIST)
        return self.freeze()

    def export(self, bytes locator):
        """The frozen fingerprints as join records (:func:`export_records`)."""
        return export_records(&self.sets.refs, locator)

    def explain(self, const unsigned char[::1] recs, Py_ssize_t width):
        """Pass 4 on this shard's maps for the missing keys in ``recs``: ``ref`` records and
        :meth:`missing_counts` as :meth:`explain_missing` gives them, for this shard alone."""
        refsets_explain(&self.sets, &self.ctx, recs, width)
        self._alloc_shown()
        if self.mapsfd < 0:
            self.mapsfd = self._open(self.maps_root)
        self._walk(self.mapsfd, MODE_MISSING)

    def find_orphans(self, const unsigned char[::1] recs, Py_ssize_t width):
        """This blocks shard again: an ``object_orphan`` record for each stored object keyed in ``recs``."""
        load_keys(&self.sets.refs, recs, width)
        self.ctx.refs = &self.sets.refs
        if self.blocksfd < 0:
            self.blocksfd = self._open(self.blocks_root)
        self._walk(self.blocksfd, MODE_ORPHANS)

    def verify_data(self, uint64_t win_start=0, uint64_t win_width=0, bint sample_all=True):
        """Pass 5: content hashes of the 64-hex objects whose fingerprint falls in the window."""
        if self.blocksfd < 0:
            self.blocksfd = self._open(self.blocks_root)
        self.ctx.win_start = win_start
        self.ctx.win_width = win_width
        self.ctx.sample_all = sample_all
        self._walk(self.blocksfd, MODE_DATA)

    def stop(self):
        """Make the running pass return soon (between two work units); safe from another thread.
        The check's results are incomplete after this: the caller discards them."""
        av_request_stop(&self.ctx.stop)

    def progress(self):
        """Files seen so far by all threads; safe to call while a pass runs in another thread."""
        cdef uint64_t files = 0
        cdef int t
        for t in range(self.jobs):
            files += self.bufs[t].counts[C_FILES]
        return files

    def counters(self):
        return walk_counters(<const char *>self.bufs[0].counts, sizeof(tbuf_t), self.jobs, COUNTER_NAMES)

    def memory(self):
        """Bytes held by the referenced-fingerprint set (array + index + presence flags)."""
        return refsets_memory(&self.sets)

    def take_records(self):
        """[(kind, name, path, detail, errno, aux)] recorded since the last call, then forgotten."""
        cdef int t
        out = []
        for t in range(self.jobs):
            walk_records(out, &self.bufs[t].recs, KIND_NAMES, True)
        self._free_records()
        return out

    def take_record_batches(self, Py_ssize_t batch=16384):
        """:meth:`take_records` in lists of at most ``batch``, each made only when asked for, so a
        pass with a million findings never has them all as Python objects at once."""
        cdef int t
        cdef size_t i, stop, n
        try:
            for t in range(self.jobs):
                i = 0
                n = self.bufs[t].recs.n
                while i < n:
                    stop = min(i + <size_t>batch, n)
                    out = []
                    walk_records_range(out, &self.bufs[t].recs, KIND_NAMES, True, i, stop)
                    i = stop
                    yield out
        finally:
            self._free_records()


cdef class ReferenceIndex:
    """The reference stage for a backend that lists and reads its objects itself (RADOS).

    Same fingerprints, set and entry rules as the filed passes; the backend hands in
    bytes: each map's entries (``add_v0``/``add_v1``/``add_v2``), then ``freeze()``, then
    the names it lists in the blocks store (``mark_stored``, which returns orphans),
    and, if ``missing_total()`` is not 0, the maps again after ``start_explain()``
    (the same ``add_*`` calls then return the entries that name missing objects).
    Not thread-safe: one index per listing thread is not supported; feed it from one.
    """

    cdef ctx_t ctx
    cdef tbuf_t b
    cdef refsets_t sets
    cdef bytes last_map
    cdef readonly bint frozen

    def __cinit__(self):
        self.last_map = None
        memset(&self.ctx, 0, sizeof(ctx_t))
        memset(&self.b, 0, sizeof(tbuf_t))
        memset(&self.sets, 0, sizeof(refsets_t))
        self.ctx.mode = MODE_REFS

    def __dealloc__(self):
        self._clear()
        tbuf_free(&self.b)
        refsets_free(&self.sets)

    cdef void _clear(self):
        av_recs_clear(&self.b.recs)

    cdef object _entries(self, int version, bytes map_name, const unsigned char[:] data, uint64_t count,
                         uint64_t first, bint deleted):
        cdef mapstate_t ms
        cdef size_t n = data.shape[0]
        if self.ctx.mode == MODE_STORED:
            raise RuntimeError("frozen: call start_explain() before reading maps again")
        if grow(&self.b, n + 1) != 0:
            raise MemoryError()
        if n:
            memcpy(self.b.buf, &data[0], n)
        ms.name = map_name
        ms.n = len(map_name)
        ms.path = NULL
        ms.nbad = 0
        ms.deleted = deleted
        ms.version = version
        if map_name != self.last_map:  # a map's chunks come one after another: count each map once
            self.b.nseen = 0
            self.last_map = map_name
        if version == 0:
            ragged_v0(&ms, n)
            entries_v0(&self.ctx, &self.b, &ms, n, 0)
        elif version == 1:
            entries_v1(&self.ctx, &self.b, &ms, count, n)
        else:
            if n < count * AV_V2_ENTRY_LEN:
                problem(&ms, b"map-data shorter than its entries")
                count = n // AV_V2_ENTRY_LEN
            entries_v2_chunk(&self.ctx, &self.b, &ms, count, first)
        if self.b.oom or self.b.refs.oom or self.b.recs.oom:
            raise MemoryError()
        if self.ctx.mode == MODE_MISSING:
            out = [(<bytes>self.b.recs.a[i].name, <uint64_t>self.b.recs.a[i].aux) for i in range(self.b.recs.n)]
            self._clear()
            self._unshow(out)
            return out
        return (ms.nbad, (<bytes>ms.first).decode("utf-8", "replace") if ms.nbad and not ms.deleted else "")

    cdef void _unshow(self, list refs):
        """The first few entries per missing object are counted per call, not per index: the caller
        ranks what each call returns (verify/backends/rados_check.py), whatever the listing order."""
        cdef av_fp_t fp
        cdef long k
        cdef bytes nm
        for nm, _index in refs:
            av_fingerprint(nm, len(nm), &fp)
            k = av_fpset_find(&self.sets.missing, &fp)
            if k >= 0:
                self.b.shown[k] = 0

    def add_v0(self, bytes map_name, data):
        """A v0 map object's bytes. Returns (problems, first problem) or, explaining, [(name, index)]."""
        return self._entries(0, map_name, data, 0, 0, False)

    def add_v1(self, bytes map_name, data, uint64_t nr_objs):
        """A v1 map object's bytes (header included) and its entry count from the header."""
        return self._entries(1, map_name, data, nr_objs, 0, False)

    def add_v2(self, bytes map_name, data, uint64_t first_index, uint64_t count, bint deleted_map=False):
        """One map-data object's bytes: ``count`` entries, the first being entry ``first_index``."""
        return self._entries(2, map_name, data, count, first_index, deleted_map)

    def add_names(self, names, bint needed=True):
        """Referenced names given directly (already parsed elsewhere)."""
        cdef av_fp_t fp
        cdef bytes nm
        for nm in names:
            av_fingerprint(nm, len(nm), &fp)
            if needed:
                fp.lo |= AV_FP_NEEDED
            av_fpbuf_push(&self.b.refs, &fp)
        if self.b.refs.oom:
            raise MemoryError()

    def freeze(self):
        """No more references: the sorted set. Returns how many distinct objects are referenced."""
        self.b.refs.n = av_fp_sort_unique(self.b.refs.a, self.b.refs.n)
        self.sets.refs.a = self.b.refs.a
        self.sets.refs.n = self.b.refs.n
        self.b.refs.a = NULL
        self.b.refs.n = self.b.refs.cap = 0
        if av_fpset_index(&self.sets.refs) != 0:
            raise MemoryError()
        self.sets.present = <uint8_t *>calloc(self.sets.refs.n + 1, 1)
        if self.sets.present == NULL:
            raise MemoryError()
        self.ctx.refs = &self.sets.refs
        self.ctx.present = self.sets.present
        self.ctx.mode = MODE_STORED
        self.frozen = True
        return self.sets.refs.n

    def mark_stored(self, names):
        """Names listed in the blocks store (objects only: no _lock, _hash); returns those no map names."""
        cdef av_fp_t fp
        cdef long k
        cdef bytes nm
        if not self.frozen:
            raise RuntimeError("freeze() first")
        orphans = []
        for nm in names:
            av_fingerprint(nm, len(nm), &fp)
            k = av_fpset_find(&self.sets.refs, &fp)
            if k >= 0:
                av_mark(self.sets.present, <size_t>k)
            else:
                orphans.append(nm)
        return orphans

    def missing_total(self):
        return count_missing(&self.sets.refs, self.sets.present)

    def start_explain(self):
        """After mark_stored: the add_* calls now return the entries naming missing objects."""
        index_missing(&self.sets, &self.ctx)
        free(self.b.shown)
        self.b.shown = <uint8_t *>calloc(self.sets.missing.n + 1, 1)
        if self.b.shown == NULL:
            raise MemoryError()
        self.ctx.mode = MODE_MISSING

    def export(self, bytes locator):
        """After freeze(): the referenced fingerprints as join records (:func:`export_records`)."""
        return export_records(&self.sets.refs, locator)

    def explain(self, const unsigned char[::1] recs, Py_ssize_t width):
        """Instead of freeze(): the add_* calls now return the entries naming the keys of ``recs``
        (missing objects found by a join elsewhere), and :meth:`missing_counts` counts them."""
        refsets_explain(&self.sets, &self.ctx, recs, width)
        free(self.b.shown)
        self.b.shown = <uint8_t *>calloc(self.sets.missing.n + 1, 1)
        if self.b.shown == NULL:
            raise MemoryError()
        self.ctx.mode = MODE_MISSING

    def missing_counts(self, bytes name):
        """(maps, entries) naming this missing object, counted while explaining."""
        return refsets_missing_counts(&self.sets, name)

    def counters(self):
        return {COUNTER_NAMES[c]: self.b.counts[c] for c in range(NCOUNT)}

    def memory(self):
        return refsets_memory(&self.sets)


# ---- the rules as batches, for a backend that lists and reads its objects in Python (RADOS) ----
# One call per page or window of names: the loop over names runs here, each name decided by
# the same _rules.h/_native.h rule the filed passes use (formats.py holds the Python twins).

_HEADER_CLASSES = ("not_map", "v0", "v1", "v2", "corrupt_short", "corrupt_version", "corrupt_blocksize",
                   "corrupt_v1_short")  # formats.HeaderClass values, in av_header_class order


def _limit_use(size_t address):
    """Points this module's loops at the process's one token bucket (verify/limits.py); 0: no caps."""
    av_limit_use(<av_limit_t *>address)


def fingerprints(names):
    """The 16-byte fingerprints of ``names`` (formats.fingerprint), concatenated in order."""
    cdef list ns = list(names)
    cdef Py_ssize_t i, n = len(ns)
    cdef int j
    cdef av_fp_t fp
    cdef bytes nm
    out = bytearray(16 * n)
    cdef unsigned char[::1] o = out
    for i in range(n):
        nm = ns[i]
        av_fingerprint(nm, len(nm), &fp)
        for j in range(8):
            o[16 * i + j] = (fp.hi >> (56 - 8 * j)) & 0xFF
            o[16 * i + 8 + j] = (fp.lo >> (56 - 8 * j)) & 0xFF
    return bytes(out)


def map_candidates(names):
    """The header candidates of a maps page (av_name_class plain, no av_name_fault), in order."""
    cdef bytes nm
    return [nm for nm in names if av_name_class(nm, len(nm)) == AV_NAME_PLAIN
            and av_name_fault(nm, len(nm), 0) == AV_NAME_FINE]  # a stray entry: the scan reports it


def stored_split(names):
    """A blocks page by av_stored_class: (objects maps may name, [(NAME_hash, NAME)]); locks, temps and
    stray names (av_name_fault) dropped."""
    cdef bytes nm
    cdef int sc
    objs, hashes = [], []
    for nm in names:
        if av_name_fault(nm, len(nm), 0) != AV_NAME_FINE:
            continue  # a stray entry: the scan reports it
        sc = av_stored_class(nm, len(nm))
        if sc == AV_STORED_OBJECT:
            objs.append(nm)
        elif sc == AV_STORED_HASH:
            hashes.append((nm, nm[:av_hash_target_len(len(nm))]))
    return objs, hashes


def data_sample(names, uint64_t start=0, uint64_t width=0, bint everything=True):
    """The Pithos blocks (64-hex names) of a page in the sample window (av_in_window of their
    fingerprint), and how many 64-hex names fell outside it: (names, unsampled)."""
    cdef bytes nm
    cdef av_fp_t fp
    cdef Py_ssize_t unsampled = 0
    todo = []
    for nm in names:
        if not av_is_hex64(nm, len(nm)):
            continue
        av_fingerprint(nm, len(nm), &fp)
        if av_in_window(fp.hi, start, width, everything):
            todo.append(nm)
        else:
            unsampled += 1
    return todo, unsampled


def content_mismatches(names, datas):
    """The av_content_* hash of each read object against its 64-hex name, without the GIL:
    [(position, hex digest)] of those whose content does not hash to their name (None datas skipped)."""
    cdef list ns = list(names), ds = list(datas)
    cdef Py_ssize_t i, n = len(ns)
    cdef av_content_t h
    cdef char hexmd[65]
    cdef const unsigned char *p
    cdef size_t ln
    cdef const char *nm
    out = []
    if len(ds) != n:
        raise ValueError("names and datas differ in length")
    for i in range(n):
        if ds[i] is None:
            continue
        p = <const unsigned char *>(<bytes>ds[i])
        ln = len(<bytes>ds[i])
        nm = <bytes>ns[i]
        with nogil:
            av_content_init(&h)
            av_content_update(&h, p, ln)
            av_content_final(&h, hexmd)
        if len(<bytes>ns[i]) != 64 or memcmp(hexmd, nm, 64) != 0:
            out.append((i, (<bytes>hexmd[:64]).decode("ascii")))
    return out


def classify_heads(names, datas):
    """av_classify of each object read (its first bytes, its length): per object None (not read)
    or (formats.HeaderClass value, size, blocksize, flags)."""
    cdef av_header_t h
    cdef bytes nm, d
    cdef size_t ln
    out = []
    for nm, d in zip(names, datas):
        if d is None:
            out.append(None)
            continue
        ln = len(d)
        av_classify(<const unsigned char *>d, ln if ln < <size_t>AV_HEADER_READ else <size_t>AV_HEADER_READ, ln,
                    nm, len(nm), &h)
        out.append((_HEADER_CLASSES[h.cls], h.size, h.blocksize, h.flags))
    return out


# single rules, for the twin tests (tests/native/test_rules_twin.py)

def _placement_for_tests(bytes d1, bytes d2, bytes d3, bytes name):
    cdef unsigned char md[32]
    return av_placement(d1, d2, d3, name, len(name), md)


def _probe_paths_for_tests(bytes name):
    cdef char rel[PATHMAX]
    cdef int step
    out = []
    for step in range(3):
        if av_probe_rel(step, name, len(name), rel, PATHMAX):
            out.append(<bytes>rel)
    return out


def _in_window_for_tests(uint64_t fp_hi, uint64_t start, uint64_t width, bint everything):
    return bool(av_in_window(fp_hi, start, width, everything))


def _is_v1_header_for_tests(bytes head):
    return bool(av_is_v1_header(<const unsigned char *>head, len(head)))


def _content_hash_for_tests(pieces):
    """av_content_* fed ``pieces`` one after another (as a read loop feeds its chunks)."""
    cdef av_content_t h
    cdef char hexmd[65]
    cdef bytes p
    av_content_init(&h)
    for p in pieces:
        av_content_update(&h, <const unsigned char *>p, len(p))
    av_content_final(&h, hexmd)
    return (<bytes>hexmd[:64]).decode("ascii"), h.total
