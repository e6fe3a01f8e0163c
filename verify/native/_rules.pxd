# Cython declarations of _rules.h (the C twin of formats.py), cimported by every hot loop:
#     from ._rules cimport *
from libc.stdint cimport int64_t, uint32_t, uint64_t

cdef extern from "_rules.h" nogil:
    ctypedef struct av_header_t:
        int cls
        uint64_t size
        uint32_t blocksize
        uint32_t flags
        uint64_t epoch
        uint32_t version
    int AV_NOT_MAP, AV_V0, AV_V1, AV_V2, AV_CORRUPT_SHORT, AV_CORRUPT_VERSION
    int AV_CORRUPT_BLOCKSIZE, AV_CORRUPT_V1_SHORT
    int AV_NAME_PLAIN, AV_NAME_LOCK, AV_NAME_HASH, AV_NAME_TEMP, AV_NAME_MAPDATA
    int AV_HEADER_READ, AV_MIN_NAME, AV_V1_HEADER_LEN, AV_V1_ENTRY_LEN, AV_V2_HEADER_LEN, AV_V2_ENTRY_LEN
    int AV_V2_NAME_MAX
    unsigned int AV_MF_DELETED, AV_OF_ZERO, AV_OF_DELETED, AV_OF_KNOWN
    unsigned long long AV_BLOCK_4M
    uint32_t AV_V2_SIGNATURE
    uint32_t av_be32(const unsigned char *p)
    int av_is_v2_header(const unsigned char *head, size_t n)
    int av_is_v1_header(const unsigned char *head, size_t n)
    int AV_STORED_SKIP, AV_STORED_OBJECT, AV_STORED_HASH
    int av_stored_class(const char *name, size_t n)
    size_t av_hash_target_len(size_t n)
    int av_in_window(uint64_t fp_hi, uint64_t start, uint64_t width, int everything)
    int av_class_tally(int cls)
    int av_map_version(int cls)
    int av_is_hex64(const char *name, size_t n)
    int av_is_mapdata_name(const char *name, size_t n)
    int av_starts_with(const char *name, size_t len, const char *prefix)
    int av_name_class(const char *name, size_t n)
    int av_valid_volume_name(const char *name, size_t n)
    int av_utf8_valid(const unsigned char *s, size_t n)
    int AV_NAME_FINE, AV_NAME_SHORT, AV_NAME_NOT_UTF8
    int av_name_fault(const char *name, size_t n, size_t min_len)
    const char *av_name_fault_text(int fault)
    uint64_t av_mapdata_blocks(uint64_t size, uint32_t bs)
    uint64_t av_div_ceil(uint64_t a, uint64_t b)
    void av_classify(const unsigned char *head, size_t n, uint64_t fsize, const char *name, size_t nl,
                     av_header_t *out)
    void av_hex(const unsigned char *inp, size_t n, char *out)
    void av_errno_clear()

    # the record kinds (enum av_record_kind), named by verify.core.findings.RECORD_KINDS in order
    enum:
        K_LOCK, K_STRAY, K_UNREADABLE, K_UNMIGRATED, K_LEFTOVER, K_CONFLICT, K_MISPLACED, K_AT_RISK
        K_MAP_CORRUPT, K_MAP_INCOMPLETE, K_MAP_INVALID, K_MAP_DATA_MISSING, K_MAP_V1, K_MAP_V0
        K_ORPHAN, K_REF, K_MISMATCH, K_NOT_A_MAP
    uint64_t av_verdict_aux(int kind, int cls)
    # one map's verdict: facts in, a K_MAP_* kind or the next fact to find out
    ctypedef struct av_map_facts_t:
        av_header_t h
        uint64_t size
        int size_known
        int name_valid
        int upgraded
        uint64_t nb
        int64_t missing
        int name_plain
        uint32_t headn
        unsigned char head[16]
    int AV_HEAD_SHOWN
    int AV_UNKNOWN, AV_NO_FINDING, AV_NEED_SIZE, AV_NEED_UPGRADED, AV_NEED_MAPDATA
    void av_map_facts(av_map_facts_t *f, const unsigned char *head, size_t n, uint64_t size, int size_known,
                      const char *name, size_t namelen)
    int av_map_verdict(const av_map_facts_t *f, int *detail)
    void av_map_detail(char *out, size_t cap, int detail, const av_map_facts_t *f, const char *name,
                       size_t namelen)
