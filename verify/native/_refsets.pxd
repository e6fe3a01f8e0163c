# Declarations of verify/native/_refsets.pyx, the reference rules the filed passes (verify/native/_check.pyx)
# and the RADOS reference index (verify/native/_refindex.pyx) share: one definition of the per-thread
# buffer, the pass context, the fingerprint sets and the entry rules, cimported by both.
#     from ._refsets cimport *

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport strlen

from ._rules cimport *
from ._native cimport *

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

cdef enum:
    MODE_REFS = 0
    MODE_MISSING = 1
    MODE_STORED = 2
    MODE_DATA = 3
    MODE_LIST = 4        # one blocks shard: fingerprints of its stored objects, for a join elsewhere
    MODE_ORPHANS = 5     # one blocks shard again: records for the stored objects a join found orphaned

# ---- counters (their names: COUNTER_NAMES in _refsets.pyx) ----
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

cdef enum:
    PATHMAX = 1200
    DETAILMAX = 1300
    MAX_REFS_SHOWN = 8   # entries recorded per missing object (the detail names these)

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


# the entry rules: one map's entries into fingerprints (pass 1) or records of who names a missing one
cdef int grow(tbuf_t *b, size_t want) noexcept nogil
cdef void problem(mapstate_t *ms, const char *text) noexcept nogil
cdef void finish_map(tbuf_t *b, ctx_t *ctx, mapstate_t *ms) noexcept nogil
cdef void ragged_v0(mapstate_t *ms, uint64_t length) noexcept nogil
cdef int entries_v0(ctx_t *ctx, tbuf_t *b, mapstate_t *ms, size_t got, uint64_t first) noexcept nogil
cdef void entries_v1(ctx_t *ctx, tbuf_t *b, mapstate_t *ms, uint64_t nr, size_t got) noexcept nogil
cdef void entries_v2_chunk(ctx_t *ctx, tbuf_t *b, mapstate_t *ms, uint64_t cnt, uint64_t first) noexcept nogil

# the sets: missing, who names them, join records in and out, memory, freeing
cdef size_t count_missing(const av_fpset_t *refs, const uint8_t *present) noexcept nogil
cdef int index_missing(refsets_t *s, ctx_t *ctx) except -1
cdef object export_records(const av_fpset_t *s, bytes locator)
cdef int load_keys(av_fpset_t *s, const unsigned char[::1] recs, Py_ssize_t width) except -1
cdef int refsets_explain(refsets_t *s, ctx_t *ctx, const unsigned char[::1] recs, Py_ssize_t width) except -1
cdef object refsets_missing_counts(const refsets_t *s, bytes name)
cdef size_t refsets_memory(const refsets_t *s) noexcept nogil
cdef void refsets_free(refsets_t *s) noexcept nogil
cdef void tbuf_free(tbuf_t *b) noexcept nogil
