# Cython declarations of _rules.h (the C twin of formats.py), cimported by every hot loop:
#     from ._rules cimport *
from libc.stdint cimport uint32_t, uint64_t

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
    int av_is_hex64(const char *name, size_t n)
    int av_is_mapdata_name(const char *name, size_t n)
    int av_starts_with(const char *name, size_t len, const char *prefix)
    int av_name_class(const char *name, size_t n)
    int av_valid_volume_name(const char *name, size_t n)
    int av_utf8_valid(const unsigned char *s, size_t n)
    uint64_t av_mapdata_blocks(uint64_t size, uint32_t bs)
    uint64_t av_div_ceil(uint64_t a, uint64_t b)
    void av_classify(const unsigned char *head, size_t n, uint64_t fsize, const char *name, size_t nl,
                     av_header_t *out)
    void av_hex(const unsigned char *inp, size_t n, char *out)
    void av_errno_clear()


# Outcome codes of the hot loops' C records, shared by _scan, _rados and _check; their
# strings are verify.findings.RECORD_KINDS, in this order (tests hold the two together).
cdef enum:
    K_LOCK = 0              # not a finding: a lock file or object, detail = owner string
    K_STRAY = 1
    K_UNREADABLE = 2
    K_UNMIGRATED = 3
    K_LEFTOVER = 4
    K_CONFLICT = 5
    K_MISPLACED = 6
    K_AT_RISK = 7
    K_MAP_CORRUPT = 8
    K_MAP_INCOMPLETE = 9
    K_MAP_INVALID = 10
    K_MAP_DATA_MISSING = 11
    K_MAP_V1 = 12
    K_MAP_V0 = 13
    K_ORPHAN = 14
    K_REF = 15              # not a finding: one entry naming a missing object
    K_MISMATCH = 16
