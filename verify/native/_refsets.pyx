# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The reference rules both reference checks share: one map's entries into fingerprints, and the sets.

The filed passes (verify/native/_check.pyx) read maps from files, the RADOS reference index
(verify/native/_refindex.pyx) is handed their bytes; both then decide each entry (v0, v1, v2)
here, by the same rule, into the same per-thread buffer and fingerprint sets (declared in
_refsets.pxd), and name the missing objects, export and load join records the same way.
One module, so that the two checks cannot drift apart.
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, realloc, free, calloc
from libc.string cimport memcpy, memset, strlen, memchr, memcmp

from ._sys cimport snprintf  # declared once: _sys.pxd
from ._rules cimport *  # the C twin of formats.py: _rules.h, declared in _rules.pxd
from ._native cimport *  # the record buffer, the fingerprint: _native.h
from ._refsets cimport *  # the buffer, context and sets this module fills: _refsets.pxd

COUNTER_NAMES = ("maps_v0", "maps_v1", "maps_v2", "maps_deleted", "entries", "zero_entries", "deleted_entries",
                 "references", "bad_entries", "map_bytes", "stored_objects", "hash_files", "orphans",
                 "data_objects", "data_bytes", "data_unsampled", "walked_files", "keeping_references")
REFS_SHOWN = MAX_REFS_SHOWN  # for merging the explain passes of several shards

cdef const char *ZERO_HEX = b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
cdef const char *ARCHIP = b"archip_"


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

