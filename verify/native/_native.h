/* Pieces every GIL-free loop shares that are not format rules (those are in _rules.h).

   The stop flag: a loop reads it between two work units (a directory entry, a map,
   a chunk of a file, a page of a listing) and returns early once it is set. Python
   sets it from the main thread when SIGINT or SIGTERM arrives, then joins the
   thread running the loop, and only then lets the interpreter free anything. */
#ifndef AV_NATIVE_H
#define AV_NATIVE_H

#include <dirent.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "_check.h"
#include "_rules.h"

static inline int av_stopped(const int *flag)
{
    return __atomic_load_n(flag, __ATOMIC_RELAXED);
}

static inline void av_request_stop(int *flag)
{
    __atomic_store_n(flag, 1, __ATOMIC_RELAXED);
}

/* The load caps (--max-objects-per-second, --max-bytes-per-second; verify/native/limits.py): one token
   bucket per process, shared by every thread of every loop. Each unit is due 1/rate after the
   one before it (idle time is not banked); a caller waits until its last unit is due, so N
   units never take less than N / rate however many threads share them. Lock-free: threads claim their
   slot of the schedule with one compare-and-swap. Each native module keeps a pointer to the one
   bucket (av_limit_use); NULL, as by default, caps nothing. */
typedef struct {
    double ns_per[2];   /* nanoseconds per object, per byte; 0: no cap */
    uint64_t next[2];   /* CLOCK_MONOTONIC ns at which the next object, the next byte is due */
} av_limit_t;

enum { AV_LIMIT_OPS = 0, AV_LIMIT_BYTES = 1 };
#define AV_LIMIT_SLICE_NS 50000000ULL /* a waiting thread looks at the stop flag this often */

static av_limit_t *av_limit = NULL;

static inline void av_limit_use(av_limit_t *l)
{
    __atomic_store_n(&av_limit, l, __ATOMIC_RELEASE);
}

static inline uint64_t av_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Claims n units of kind k; returns when the last of them is due (0 without a cap). */
static inline uint64_t av_limit_claim(av_limit_t *l, int k, uint64_t n)
{
    uint64_t now, old, start, next;
    double per = l->ns_per[k];
    if (per <= 0 || n == 0)
        return 0;
    now = av_now_ns();
    old = __atomic_load_n(&l->next[k], __ATOMIC_RELAXED);
    do {
        start = old > now ? old : now;
        next = start + (uint64_t)((double)n * per);
    } while (!__atomic_compare_exchange_n(&l->next[k], &old, next, 1, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
    return next;
}

/* Waits (in slices, returning early once *stop is set; stop may be NULL) until `ops` objects and
   `bytes` bytes may go under the caps. Called without the GIL, before an op is issued. */
static inline void av_limit_take(uint64_t ops, uint64_t bytes, const int *stop)
{
    av_limit_t *l = __atomic_load_n(&av_limit, __ATOMIC_ACQUIRE);
    uint64_t due, a, b, now;
    struct timespec ts;
    if (l == NULL)
        return;
    a = av_limit_claim(l, AV_LIMIT_OPS, ops);
    b = av_limit_claim(l, AV_LIMIT_BYTES, bytes);
    due = a > b ? a : b;
    while ((now = av_now_ns()) < due && !(stop != NULL && av_stopped(stop))) {
        uint64_t wait = due - now < AV_LIMIT_SLICE_NS ? due - now : AV_LIMIT_SLICE_NS;
        ts.tv_sec = (time_t)(wait / 1000000000ULL);
        ts.tv_nsec = (long)(wait % 1000000000ULL);
        nanosleep(&ts, NULL);
    }
}

/* A directory entry's type: d_type, or lstat's answer where the filesystem leaves it
   DT_UNKNOWN (some NFS and FUSE mounts); -1 with errno when that lstat fails. */
static inline int av_entry_type(int dirfd, const char *name, unsigned char d_type)
{
    struct stat st;
    if (d_type != DT_UNKNOWN)
        return d_type;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return -1;
    if (S_ISDIR(st.st_mode))
        return DT_DIR;
    if (S_ISREG(st.st_mode))
        return DT_REG;
    if (S_ISLNK(st.st_mode))
        return DT_LNK;
    return 0;
}

/* One outcome of a loop (a finding, a lock, an entry naming a missing object), kept in C
   until the GIL is back. kind: the K_* numbers of _rules.pxd (findings.RECORD_KINDS). */
typedef struct {
    int kind;
    int err;          /* errno of an unreadable path, else 0 */
    uint64_t aux;     /* per kind: an entry index, a walk unit */
    char *name;       /* namelen bytes, NUL-terminated */
    size_t namelen;
    char *path;       /* relative to the store root, or the map naming an object; may be NULL */
    char *detail;     /* may be NULL */
} av_rec_t;

/* A thread's records: grown by av_emit, which never fails loudly (oom is set instead). */
typedef struct {
    av_rec_t *a;
    size_t n;
    size_t cap;
    int oom;
} av_recs_t;

static inline char *av_dupn(const char *s, size_t n)
{
    char *p = (char *)malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static inline void av_emit(av_recs_t *b, int kind, int err, uint64_t aux, const char *name, size_t namelen,
                           const char *path, size_t pathlen, const char *detail)
{
    av_rec_t *r;
    if (b->n == b->cap) {
        size_t newcap = b->cap ? b->cap * 2 : 64;
        r = (av_rec_t *)realloc(b->a, newcap * sizeof(av_rec_t));
        if (r == NULL) {
            b->oom = 1;
            return;
        }
        b->a = r;
        b->cap = newcap;
    }
    r = &b->a[b->n];
    r->kind = kind;
    r->err = err;
    r->aux = aux;
    r->name = av_dupn(name, namelen);
    r->namelen = namelen;
    r->path = path != NULL ? av_dupn(path, pathlen) : NULL;
    r->detail = detail != NULL ? av_dupn(detail, strlen(detail)) : NULL;
    if (r->name == NULL || (path != NULL && r->path == NULL) || (detail != NULL && r->detail == NULL))
        b->oom = 1;
    b->n++;
}

/* Forget the records (their strings freed), keep the array for the next ones. */
static inline void av_recs_clear(av_recs_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->a[i].name);
        free(b->a[i].path);
        free(b->a[i].detail);
    }
    b->n = 0;
}

static inline void av_recs_free(av_recs_t *b)
{
    av_recs_clear(b);
    free(b->a);
    b->a = NULL;
    b->cap = 0;
}

/* sha256 of a short string: OpenSSL 3's one-shot call looks the algorithm up on every
   call (about 1 us, five times the hashing of a name); the context calls do not. */
static inline void av_sha256(const void *p, size_t n, unsigned char md[32])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, p, n);
    SHA256_Final(md, &c);
}

/* An object name's fingerprint (verify/native/_check.h; formats.fingerprint is the twin): the only
   place a name is hashed for it, so that every pass and backend keys a name alike. */
static inline void av_fingerprint(const char *name, size_t n, av_fp_t *fp)
{
    unsigned char md[32];
    av_sha256(name, n, md);
    av_fp_from_digest(md, fp);
}

/* The sha256 of content with its trailing zeros stripped (formats.content_hash), streamed:
   a run of zeros is held back until non-zero bytes follow it, and dropped at the end. */
typedef struct {
    SHA256_CTX c;
    uint64_t zeros; /* zeros seen and not yet hashed */
    uint64_t total; /* bytes seen */
} av_content_t;

static inline void av_content_init(av_content_t *h)
{
    SHA256_Init(&h->c);
    h->zeros = 0;
    h->total = 0;
}

static inline void av_content_update(av_content_t *h, const unsigned char *p, size_t n)
{
    static const unsigned char zeros[4096];
    size_t nz = av_nonzero_len(p, n);
    h->total += n;
    if (nz == 0) {
        h->zeros += n;
        return;
    }
    while (h->zeros > 0) { /* zeros between non-zero data are content */
        size_t k = h->zeros < sizeof(zeros) ? (size_t)h->zeros : sizeof(zeros);
        SHA256_Update(&h->c, zeros, k);
        h->zeros -= k;
    }
    SHA256_Update(&h->c, p, nz);
    h->zeros = n - nz;
}

/* the digest as 64 lowercase hex digits and a NUL */
static inline void av_content_final(av_content_t *h, char hex[65])
{
    unsigned char md[32];
    SHA256_Final(md, &h->c);
    av_hex(md, 32, hex);
    hex[64] = 0;
}

/* Where a file at d1/d2/d3/NAME of a filed store stands for v0.4 (layout.placement): AV_AT_V04
   at its sha256 path, AV_AT_OLD at its old Pithos path (64-hex names); both bits when the two
   coincide, none when v0.4 cannot reach it. md: sha256(NAME), for the caller's fingerprint. */
enum { AV_AT_V04 = 1, AV_AT_OLD = 2 };

static inline int av_dirs_are(const char *d1, const char *d2, const char *d3, const char *hx)
{
    return d1[0] == hx[0] && d1[1] == hx[1] && d1[2] == 0 && d2[0] == hx[2] && d2[1] == hx[3] && d2[2] == 0 &&
           d3[0] == hx[4] && d3[1] == hx[5] && d3[2] == 0;
}

static inline int av_placement(const char *d1, const char *d2, const char *d3, const char *name, size_t n,
                               unsigned char md[32])
{
    char hx[6];
    av_sha256(name, n, md);
    av_hex(md, 3, hx);
    return (av_dirs_are(d1, d2, d3, hx) ? AV_AT_V04 : 0) |
           (av_is_hex64(name, n) && av_dirs_are(d1, d2, d3, name) ? AV_AT_OLD : 0);
}

/* The v0.4 filed path of NAME relative to the store root, "hh/hh/hh/NAME" from sha256(NAME)
   (verify/core/layout.py v04_path). */
static inline void av_v04_rel(const char *name, size_t n, char *out, size_t outlen)
{
    unsigned char md[32];
    char hx[6];
    av_sha256(name, n, md);
    av_hex(md, 3, hx);
    snprintf(out, outlen, "%c%c/%c%c/%c%c/%.*s", hx[0], hx[1], hx[2], hx[3], hx[4], hx[5], (int)n, name);
}

/* The old Pithos path of a 64-hex NAME, "nn/nn/nn/NAME" from its own first digits
   (verify/core/layout.py pithos_path); only for names av_is_hex64 accepts. */
static inline void av_pithos_rel(const char *name, size_t n, char *out, size_t outlen)
{
    snprintf(out, outlen, "%.2s/%.2s/%.2s/%.*s", name, name + 2, name + 4, (int)n, name);
}

/* The paths v0.4 filed tries for NAME, in its order (layout.probe_paths): step 0 the old Pithos
   path (64-hex names only), step 1 the sha256 path. 1 with the path in out, 0 when the step has none. */
static inline int av_probe_rel(int step, const char *name, size_t n, char *out, size_t outlen)
{
    if (step == 0) {
        if (!av_is_hex64(name, n))
            return 0;
        av_pithos_rel(name, n, out, outlen);
        return 1;
    }
    if (step == 1) {
        av_v04_rel(name, n, out, outlen);
        return 1;
    }
    return 0;
}

#endif
