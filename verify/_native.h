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

#include "_rules.h"

static inline int av_stopped(const int *flag)
{
    return __atomic_load_n(flag, __ATOMIC_RELAXED);
}

static inline void av_request_stop(int *flag)
{
    __atomic_store_n(flag, 1, __ATOMIC_RELAXED);
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

/* sha256 of a short string: OpenSSL 3's one-shot SHA256() looks the algorithm up on every
   call (about 1 us, five times the hashing of a name); the context calls do not. */
static inline void av_sha256(const void *p, size_t n, unsigned char md[32])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, p, n);
    SHA256_Final(md, &c);
}

/* The v0.4 filed path of NAME relative to the store root, "hh/hh/hh/NAME" from sha256(NAME)
   (verify/layout.py v04_path). */
static inline void av_v04_rel(const char *name, size_t n, char *out, size_t outlen)
{
    unsigned char md[32];
    char hx[6];
    av_sha256(name, n, md);
    av_hex(md, 3, hx);
    snprintf(out, outlen, "%c%c/%c%c/%c%c/%.*s", hx[0], hx[1], hx[2], hx[3], hx[4], hx[5], (int)n, name);
}

/* The old Pithos path of a 64-hex NAME, "nn/nn/nn/NAME" from its own first digits
   (verify/layout.py pithos_path); only for names av_is_hex64 accepts. */
static inline void av_pithos_rel(const char *name, size_t n, char *out, size_t outlen)
{
    snprintf(out, outlen, "%.2s/%.2s/%.2s/%.*s", name, name + 2, name + 4, (int)n, name);
}

#endif
