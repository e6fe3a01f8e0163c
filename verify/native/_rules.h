/*
 * archverify: the classification rules of verify/core/formats.py, in C, for the
 * GIL-free hot loops (verify/_scan.pyx for filed, verify/native/_radoscan.pyx for RADOS).
 *
 * Pure functions over bytes and facts: no I/O, no allocation. tests/native/test_rules_twin.py
 * holds every function here against its Python twin on the same inputs.
 */
#ifndef ARCHVERIFY_RULES_H
#define ARCHVERIFY_RULES_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define AV_V2_SIGNATURE 0x414d462eu
#define AV_V2_HEADER_LEN 32
#define AV_V1_HEADER_LEN 12
#define AV_V1_ENTRY_LEN 33
#define AV_V2_ENTRY_LEN 128
#define AV_BLOCK_4M (1ull << 22)
#define AV_HEADER_READ 64 /* bytes read of a header candidate: 32 needed, <= 512 allowed */
#define AV_MIN_NAME 6
#define AV_V2_NAME_MAX 123 /* bytes of an object name in a v2 entry */
#define AV_MF_DELETED (1u << 1) /* v2 map flag */
#define AV_OF_ZERO (1u << 2)    /* v2 entry flags */
#define AV_OF_DELETED (1u << 3)
#define AV_OF_KNOWN 15u         /* writable | archip | zero | deleted */

/* what the first bytes of an object in the maps store say (formats.HeaderClass) */
enum av_header_class {
    AV_NOT_MAP = 0,
    AV_V0 = 1,
    AV_V1 = 2,
    AV_V2 = 3,
    AV_CORRUPT_SHORT = 4,
    AV_CORRUPT_VERSION = 5,
    AV_CORRUPT_BLOCKSIZE = 6,
    AV_CORRUPT_V1_SHORT = 7,
};

/* what an object's name alone says, before any read */
enum av_name_class {
    AV_NAME_PLAIN = 0,   /* header candidate in the maps store, plain object in blocks */
    AV_NAME_LOCK = 1,    /* NAME_lock */
    AV_NAME_HASH = 2,    /* NAME_hash */
    AV_NAME_TEMP = 3,    /* NAME_lock<unique>_xx, NAME_hash<unique>_xx: interrupted ops */
    AV_NAME_MAPDATA = 4, /* NAME_<16 hex>: map-data in the maps store, copy-up in blocks */
};

typedef struct {
    int cls;
    uint64_t size;
    uint32_t blocksize;
    uint32_t flags;
    uint64_t epoch;
    uint32_t version;
} av_header_t;

static inline uint32_t av_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline uint64_t av_be64(const unsigned char *p)
{
    return ((uint64_t)av_be32(p) << 32) | av_be32(p + 4);
}

static inline uint64_t av_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static const char av_hexdigits[] = "0123456789abcdef";

static inline void av_hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = av_hexdigits[in[i] >> 4];
        out[2 * i + 1] = av_hexdigits[in[i] & 15];
    }
}

static inline int av_is_lower_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static inline int av_is_hex64(const char *name, size_t len)
{
    if (len != 64)
        return 0;
    for (size_t i = 0; i < 64; i++)
        if (!av_is_lower_hex((unsigned char)name[i]))
            return 0;
    return 1;
}

static inline int av_ends_with(const char *name, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(name + len - n, suffix, n) == 0;
}

static inline int av_starts_with(const char *name, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(name, prefix, n) == 0;
}

/* "_" followed by 16 lowercase hex digits at the end, with a non-empty NAME before */
static inline int av_is_mapdata_name(const char *name, size_t len)
{
    if (len <= 17 || name[len - 17] != '_')
        return 0;
    for (size_t i = len - 16; i < len; i++)
        if (!av_is_lower_hex((unsigned char)name[i]))
            return 0;
    return 1;
}

static inline const char *av_memmem(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
    if (nlen > hlen)
        return NULL;
    for (size_t i = 0; i + nlen <= hlen; i++)
        if (memcmp(hay + i, needle, nlen) == 0)
            return hay + i;
    return NULL;
}

static inline int av_name_class(const char *name, size_t len)
{
    if (av_ends_with(name, len, "_lock"))
        return AV_NAME_LOCK;
    if (av_ends_with(name, len, "_hash"))
        return AV_NAME_HASH;
    if (av_is_mapdata_name(name, len))
        return AV_NAME_MAPDATA;
    if (av_memmem(name, len, "_lock", 5) || av_memmem(name, len, "_hash", 5))
        return AV_NAME_TEMP;
    return AV_NAME_PLAIN;
}

/* vlmc.is_valid_name, with ASCII digits (see formats.is_valid_volume_name) */
static inline int av_valid_volume_name(const char *name, size_t len)
{
    if (av_starts_with(name, len, "archip_") || av_ends_with(name, len, "_lock"))
        return 0;
    /* re.match(".*_[0-9a-f]{16}"): some '_' at i >= 0 followed by 16 hex digits,
       with no newline before it ('.' does not match '\n') */
    for (size_t i = 0; i + 17 <= len; i++) {
        if (name[i] == '\n')
            break;
        if (name[i] != '_')
            continue;
        size_t k = 1;
        while (k <= 16 && av_is_lower_hex((unsigned char)name[i + k]))
            k++;
        if (k == 17)
            return 0;
    }
    return 1;
}

static inline int av_valid_blocksize(uint32_t bs)
{
    return bs > 128 && (bs & (bs - 1)) == 0;
}

static inline uint64_t av_div_ceil(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* number of NAME_<16 hex> map-data objects of a v2 map */
static inline uint64_t av_mapdata_blocks(uint64_t size, uint32_t blocksize)
{
    uint64_t nr = av_div_ceil(size, blocksize);
    return av_div_ceil(nr, blocksize / AV_V2_ENTRY_LEN);
}

/* Which of the loops' four map tallies a header class adds to: 0 v0, 1 v1, 2 v2, 3 corrupt
   (AV_NOT_MAP is counted by each loop as it sees fit). */
static inline int av_class_tally(int cls)
{
    return cls == AV_V0 ? 0 : cls == AV_V1 ? 1 : cls == AV_V2 ? 2 : 3;
}

/* The map format a header class belongs to, which a map finding names (Finding.version;
   formats.HeaderClass.map_version): 0 unsigned (v0), 1 the v1 magic, 2 the v2 signature. */
static inline int av_map_version(int cls)
{
    return (cls == AV_V0 || cls == AV_NOT_MAP) ? 0 : (cls == AV_V1 || cls == AV_CORRUPT_V1_SHORT) ? 1 : 2;
}

/* formats.is_v1_header: do the n bytes read of an object start with the v1 magic (01 00 00 00)? */
static inline int av_is_v1_header(const unsigned char *head, size_t n)
{
    return n >= 4 && head[0] == 1 && head[1] == 0 && head[2] == 0 && head[3] == 0;
}

/* what a blocks store's name is to the reference check (formats.StoredClass) */
enum av_stored_class {
    AV_STORED_SKIP = 0,   /* a lock or an interrupted op's temp: neither stored nor an orphan */
    AV_STORED_OBJECT = 1, /* an object maps may name */
    AV_STORED_HASH = 2,   /* NAME_hash: an orphan when NAME is not stored */
};

static inline int av_stored_class(const char *name, size_t len)
{
    int nc = av_name_class(name, len);
    if (nc == AV_NAME_HASH)
        return AV_STORED_HASH;
    return nc == AV_NAME_LOCK || nc == AV_NAME_TEMP ? AV_STORED_SKIP : AV_STORED_OBJECT;
}

/* formats.hash_target: the length of NAME in NAME_hash (the object a hash file belongs to) */
static inline size_t av_hash_target_len(size_t len)
{
    return len - 5;
}

/* formats.in_window: is a name whose fingerprint starts with fp_hi in the sample window? */
static inline int av_in_window(uint64_t fp_hi, uint64_t start, uint64_t width, int everything)
{
    return everything || fp_hi - start < width;
}

/* formats.is_v2_header: do the n bytes read of an object start a v2 map header (signature, version 2)? */
static inline int av_is_v2_header(const unsigned char *head, size_t n)
{
    return n >= 8 && av_be32(head) == AV_V2_SIGNATURE && av_be32(head + 4) == 2;
}

/* formats.classify: head = first n bytes read, file_size = the object's length */
static inline void av_classify(const unsigned char *head, size_t n, uint64_t file_size,
                               const char *name, size_t namelen, av_header_t *out)
{
    memset(out, 0, sizeof(*out));
    if (n >= 4 && av_be32(head) == AV_V2_SIGNATURE) {
        if (n < AV_V2_HEADER_LEN || file_size < AV_V2_HEADER_LEN) {
            out->cls = AV_CORRUPT_SHORT;
            return;
        }
        out->version = av_be32(head + 4);
        if (out->version != 2) {
            out->cls = AV_CORRUPT_VERSION;
            return;
        }
        out->size = av_be64(head + 8);
        out->blocksize = av_be32(head + 16);
        out->flags = av_be32(head + 20);
        out->epoch = av_be64(head + 24);
        out->cls = av_valid_blocksize(out->blocksize) ? AV_V2 : AV_CORRUPT_BLOCKSIZE;
        return;
    }
    if (av_is_v1_header(head, n)) {
        out->version = 1;
        if (n < AV_V1_HEADER_LEN || file_size < AV_V1_HEADER_LEN) {
            out->cls = AV_CORRUPT_V1_SHORT;
            return;
        }
        out->size = av_le64(head + 4);
        out->blocksize = (uint32_t)AV_BLOCK_4M;
        uint64_t need = AV_V1_HEADER_LEN + AV_V1_ENTRY_LEN * av_div_ceil(out->size, AV_BLOCK_4M);
        out->cls = file_size < need ? AV_CORRUPT_V1_SHORT : AV_V1;
        return;
    }
    out->cls = av_is_hex64(name, namelen) ? AV_V0 : AV_NOT_MAP;
}

/* Outcome codes of the hot loops' C records, shared by _scan, _radoscan and _filedpass/_refsets; their
   strings are verify.core.findings.RECORD_KINDS, in this order (tests hold the two together). */
enum av_record_kind {
    K_LOCK = 0, /* not a finding: a lock file or object, detail = owner string */
    K_STRAY = 1,
    K_UNREADABLE = 2,
    K_UNMIGRATED = 3,
    K_LEFTOVER = 4,
    K_CONFLICT = 5,
    K_MISPLACED = 6,
    K_AT_RISK = 7,
    K_MAP_CORRUPT = 8,
    K_MAP_INCOMPLETE = 9,
    K_MAP_INVALID = 10,
    K_MAP_DATA_MISSING = 11,
    K_MAP_V1 = 12,
    K_MAP_V0 = 13,
    K_ORPHAN = 14,
    K_REF = 15, /* not a finding: one entry naming a missing object */
    K_MISMATCH = 16,
    K_NOT_A_MAP = 17, /* a plain name in the maps store whose bytes are no map: the mapper cannot open it */
};

/* What a map verdict's record carries as aux, in every scan: its map version (av_map_version)
   plus one, or 0 for an object that is no map, which has no version (Finding.version None). */
static inline uint64_t av_verdict_aux(int kind, int cls)
{
    return kind == K_NOT_A_MAP ? 0 : 1 + (uint64_t)av_map_version(cls);
}

/* ---- one map's verdict: facts in, finding out (verdict.map_verdict is the twin) ----

   A loop reads a header candidate, fills the facts with av_map_facts, and asks
   av_map_verdict. The answer is a finding kind (K_MAP_*), AV_NO_FINDING, or a
   request for one more fact that takes I/O; the loop finds it out, fills it in and
   asks again. So every loop does exactly the I/O the rules need, in their order,
   and the order of the rules (corrupt > incomplete > v1 > invalid name > map-data
   missing; v0 alone) is written here only. */

#define AV_UNKNOWN (-1) /* a fact not yet found out */
#define AV_HEAD_SHOWN 16 /* first bytes of a non-map kept for its detail */

typedef struct {
    av_header_t h;      /* av_classify of its first bytes */
    uint64_t size;      /* the object's length; only a lower bound while !size_known */
    int size_known;
    int name_valid;     /* av_valid_volume_name(its name) */
    int upgraded;       /* archip_NAME: NAME holds a v2 header (1/0); AV_UNKNOWN until probed */
    uint64_t nb;        /* map-data objects its v2 header calls for */
    int64_t missing;    /* first missing map-data block, nb when none; AV_UNKNOWN until checked */
    int name_plain;     /* av_name_class(its name) == AV_NAME_PLAIN: no lock, hash or temp name */
    uint32_t headn;     /* bytes kept in head (<= AV_HEAD_SHOWN) */
    unsigned char head[AV_HEAD_SHOWN]; /* its first bytes, for the detail of a non-map */
} av_map_facts_t;

/* what av_map_verdict answers besides a K_MAP_* kind */
enum av_map_step {
    AV_NO_FINDING = -1,  /* not a map, or a complete v2 map */
    AV_NEED_SIZE = -2,   /* the object's real length (a v1 map whose entries go past what was read, a non-map) */
    AV_NEED_UPGRADED = -3, /* does NAME hold a v2 header? (for archip_NAME) */
    AV_NEED_MAPDATA = -4,  /* the first missing map-data block, or none */
};

/* which detail goes with the finding (formats.MapDetail, in this order) */
enum av_map_detail {
    AV_D_NONE = 0,
    AV_D_SHORT_HEADER = 1,
    AV_D_UNKNOWN_VERSION = 2,
    AV_D_BAD_BLOCKSIZE = 3,
    AV_D_V1_TRUNCATED = 4,
    AV_D_UPGRADED_EXISTS = 5,
    AV_D_V1 = 6,
    AV_D_INVALID_NAME = 7,
    AV_D_MAPDATA_MISSING = 8,
    AV_D_V0 = 9,
    AV_D_NOT_A_MAP = 10,
};

static inline uint64_t av_v1_length(uint64_t size)
{
    return AV_V1_HEADER_LEN + AV_V1_ENTRY_LEN * av_div_ceil(size, AV_BLOCK_4M);
}

/* The facts the first bytes and the name give: head = the n bytes read of it; size = its
   length when size_known, else n (a read as long as asked: the object may be longer). */
static inline void av_map_facts(av_map_facts_t *f, const unsigned char *head, size_t n, uint64_t size,
                                int size_known, const char *name, size_t namelen)
{
    av_classify(head, n, size_known ? size : UINT64_MAX, name, namelen, &f->h);
    f->size = size;
    f->size_known = size_known;
    f->name_valid = av_valid_volume_name(name, namelen);
    /* only archip_NAME with a NAME long enough to be an object can have been upgraded to NAME */
    f->upgraded = av_starts_with(name, namelen, "archip_") && namelen - 7 >= AV_MIN_NAME ? AV_UNKNOWN : 0;
    f->nb = f->h.cls == AV_V2 ? av_mapdata_blocks(f->h.size, f->h.blocksize) : 0;
    f->missing = AV_UNKNOWN;
    f->name_plain = av_name_class(name, namelen) == AV_NAME_PLAIN;
    f->headn = (uint32_t)(n < AV_HEAD_SHOWN ? n : AV_HEAD_SHOWN);
    memcpy(f->head, head, f->headn);
}

/* The one map finding of a header candidate (first applicable wins), or the fact still needed. */
static inline int av_map_verdict(const av_map_facts_t *f, int *detail)
{
    *detail = AV_D_NONE;
    switch (f->h.cls) {
    case AV_CORRUPT_SHORT:
        *detail = AV_D_SHORT_HEADER;
        return K_MAP_CORRUPT;
    case AV_CORRUPT_VERSION:
        *detail = AV_D_UNKNOWN_VERSION;
        return K_MAP_CORRUPT;
    case AV_CORRUPT_BLOCKSIZE:
        *detail = AV_D_BAD_BLOCKSIZE;
        return K_MAP_CORRUPT;
    case AV_CORRUPT_V1_SHORT:
        *detail = AV_D_V1_TRUNCATED;
        return K_MAP_CORRUPT;
    case AV_V0:
        *detail = AV_D_V0;
        return K_MAP_V0;
    case AV_V1:
        if (!f->size_known && av_v1_length(f->h.size) > f->size)
            return AV_NEED_SIZE;
        break;
    case AV_V2:
        break;
    default:
        /* no signature and no 64-hex name: "No signature found" for the mapper. A hash or temp
           name holds digits or an owner string, never a map: not a finding (counted only). */
        if (f->h.cls == AV_NOT_MAP && f->name_plain) {
            if (!f->size_known) /* its length goes in the detail */
                return AV_NEED_SIZE;
            *detail = AV_D_NOT_A_MAP;
            return K_NOT_A_MAP;
        }
        return AV_NO_FINDING;
    }
    if (f->upgraded == AV_UNKNOWN)
        return AV_NEED_UPGRADED;
    if (f->upgraded) {
        *detail = AV_D_UPGRADED_EXISTS;
        return K_MAP_INCOMPLETE;
    }
    if (f->h.cls == AV_V1) {
        *detail = AV_D_V1;
        return K_MAP_V1;
    }
    if (!f->name_valid) {
        *detail = AV_D_INVALID_NAME;
        return K_MAP_INVALID;
    }
    if (f->nb == 0)
        return AV_NO_FINDING;
    if (f->missing == AV_UNKNOWN)
        return AV_NEED_MAPDATA;
    if ((uint64_t)f->missing < f->nb) {
        *detail = AV_D_MAPDATA_MISSING;
        return K_MAP_DATA_MISSING;
    }
    return AV_NO_FINDING;
}

/* The detail text of a verdict (verdict.map_detail): what an operator reads beside the kind. */
static inline void av_map_detail(char *out, size_t cap, int detail, const av_map_facts_t *f, const char *name,
                                 size_t namelen)
{
    const av_header_t *h = &f->h;
    unsigned long long size = (unsigned long long)f->size;
    switch (detail) {
    case AV_D_SHORT_HEADER:
        snprintf(out, cap, "signed header of %llu bytes (32 needed)", size);
        break;
    case AV_D_UNKNOWN_VERSION:
        snprintf(out, cap, "signed header with unknown version %u", h->version);
        break;
    case AV_D_BAD_BLOCKSIZE:
        snprintf(out, cap, "invalid blocksize %u", h->blocksize);
        break;
    case AV_D_V1_TRUNCATED:
        snprintf(out, cap, "v1 map of %llu bytes, header size %llu needs %llu", size, (unsigned long long)h->size,
                 (unsigned long long)av_v1_length(h->size));
        break;
    case AV_D_UPGRADED_EXISTS:
        snprintf(out, cap, "v%u map; upgraded map %.*s exists", h->version, (int)(namelen - 7), name + 7);
        break;
    case AV_D_V1:
        snprintf(out, cap, "size %llu", (unsigned long long)h->size);
        break;
    case AV_D_INVALID_NAME:
        snprintf(out, cap, "v2 map, flags %u, epoch %llu", h->flags, (unsigned long long)h->epoch);
        break;
    case AV_D_MAPDATA_MISSING:
        snprintf(out, cap, "map-data %.*s_%016llx missing (block %llu of %llu)", (int)namelen, name,
                 (unsigned long long)f->missing, (unsigned long long)f->missing, (unsigned long long)f->nb);
        break;
    case AV_D_V0:
        snprintf(out, cap, "%s%llu bytes", f->size_known ? "" : ">= ", size);
        break;
    case AV_D_NOT_A_MAP: {
        char hx[2 * AV_HEAD_SHOWN + 1];
        uint32_t k = f->headn;
        if (f->size_known && f->size < k)
            k = (uint32_t)f->size;
        av_hex(f->head, k, hx);
        hx[2 * k] = 0;
        snprintf(out, cap, "%s%llu bytes, no map signature; starts %s", f->size_known ? "" : ">= ", size,
                 k ? hx : "(empty)");
        break;
    }
    default:
        snprintf(out, cap, "%s", "");
    }
}

/* strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF), as Python's decoder */
static inline int av_utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + n >= len) /* needs n continuation bytes after s[i] */
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* ---- a name that is no map's and no object's on either backend: a stray_entry (formats.name_fault) ----
   Archipelago names are text: vlmc, the mapper's requests and python-rados carry them as UTF-8,
   so a name that is not UTF-8 was put there by hand, on filed and on RADOS alike. Filed's peers
   also refuse names under AV_MIN_NAME bytes; RADOS has no such floor (min_len 0). */
enum av_name_fault {
    AV_NAME_FINE = 0,
    AV_NAME_SHORT = 1,    /* shorter than min_len bytes */
    AV_NAME_NOT_UTF8 = 2, /* not strict UTF-8 */
};

static inline int av_name_fault(const char *name, size_t len, size_t min_len)
{
    if (len < min_len)
        return AV_NAME_SHORT;
    if (!av_utf8_valid((const unsigned char *)name, len))
        return AV_NAME_NOT_UTF8;
    return AV_NAME_FINE;
}

/* the detail of its stray_entry */
static inline const char *av_name_fault_text(int fault)
{
    return fault == AV_NAME_SHORT ? "name shorter than 6 bytes" : fault == AV_NAME_NOT_UTF8 ? "name is not valid UTF-8" : "";
}

/* readdir() tells end-of-dir from an error only through errno */
static inline void av_errno_clear(void)
{
    errno = 0;
}

#endif
