/*
 * archverify: compact fingerprint sets for the reference check (verify/native/_refsets.pyx).
 *
 * An object name's fingerprint is the first 128 bits of sha256(name): the same
 * digest that gives its v0.4 path, so it costs nothing extra. Two names share a
 * fingerprint with probability ~n^2 / 2^129 (nil for any store that exists).
 *
 * The lowest bit of `lo` is not part of the fingerprint: it marks a reference
 * that *needs* its object (a live entry of a live map), as opposed to one that only
 * *keeps* it from being an orphan (entries of deleted maps, entries flagged deleted).
 * Duplicates merge by OR-ing it.
 *
 * A set is a sorted, de-duplicated array of 16-byte fingerprints plus a bucket
 * index on the top bits (sha256 is uniform, so every bucket holds ~4): a lookup
 * touches two or three cache lines. 16 + 2 bytes per name, no pointers.
 */
#ifndef ARCHVERIFY_CHECK_H
#define ARCHVERIFY_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t hi;
    uint64_t lo;
} av_fp_t;

static inline uint64_t av_load_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static inline void av_fp_from_digest(const unsigned char *md, av_fp_t *out)
{
    out->hi = av_load_be64(md);
    out->lo = av_load_be64(md + 8) & ~(uint64_t)1;
}

#define AV_FP_NEEDED ((uint64_t)1)

static inline int av_fp_lt(const av_fp_t *a, const av_fp_t *b)
{
    return a->hi < b->hi || (a->hi == b->hi && (a->lo >> 1) < (b->lo >> 1));
}

static inline int av_fp_eq(const av_fp_t *a, const av_fp_t *b)
{
    return a->hi == b->hi && (a->lo >> 1) == (b->lo >> 1);
}

/* in-place quicksort: glibc's qsort may allocate a copy of the whole array
 * (merge sort), which would double the peak memory this module exists to bound */
static inline void av_fp_sort(av_fp_t *a, size_t n)
{
    while (n > 16) {
        av_fp_t *x = &a[0], *y = &a[n / 2], *z = &a[n - 1], pivot, t;
        if (av_fp_lt(y, x)) { t = *x; *x = *y; *y = t; }
        if (av_fp_lt(z, y)) { t = *y; *y = *z; *z = t; }
        if (av_fp_lt(y, x)) { t = *x; *x = *y; *y = t; }
        pivot = *y;
        size_t i = 0, j = n - 1;
        for (;;) {
            while (av_fp_lt(&a[i], &pivot))
                i++;
            while (av_fp_lt(&pivot, &a[j]))
                j--;
            if (i >= j)
                break;
            t = a[i]; a[i] = a[j]; a[j] = t;
            i++;
            j--;
        }
        /* [0, j] and [j+1, n): recurse on the smaller part, loop on the larger */
        size_t left = j + 1;
        if (left < n - left) {
            av_fp_sort(a, left);
            a += left;
            n -= left;
        } else {
            av_fp_sort(a + left, n - left);
            n = left;
        }
    }
    for (size_t i = 1; i < n; i++) {
        av_fp_t v = a[i];
        size_t k = i;
        while (k > 0 && av_fp_lt(&v, &a[k - 1])) {
            a[k] = a[k - 1];
            k--;
        }
        a[k] = v;
    }
}

/* sort in place and drop duplicates; returns the new length */
static inline size_t av_fp_sort_unique(av_fp_t *a, size_t n)
{
    if (n < 2)
        return n;
    av_fp_sort(a, n);
    size_t w = 1;
    for (size_t r = 1; r < n; r++)
        if (!av_fp_eq(&a[r], &a[w - 1]))
            a[w++] = a[r];
        else
            a[w - 1].lo |= a[r].lo & AV_FP_NEEDED;
    return w;
}

/* a growable per-thread list of fingerprints that compacts itself before growing,
 * so that names referenced by many maps (snapshots, clones) cost one slot */
typedef struct {
    av_fp_t *a;
    size_t n;
    size_t cap;
    int oom;
} av_fpbuf_t;

static inline void av_fpbuf_push(av_fpbuf_t *b, const av_fp_t *fp)
{
    if (b->n == b->cap) {
        if (b->cap >= 4096) {
            b->n = av_fp_sort_unique(b->a, b->n);
            if (b->n <= b->cap / 2) {
                b->a[b->n++] = *fp;
                return;
            }
        }
        size_t ncap = b->cap ? b->cap * 2 : 1024;
        av_fp_t *p = (av_fp_t *)realloc(b->a, ncap * sizeof(av_fp_t));
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->a = p;
        b->cap = ncap;
    }
    b->a[b->n++] = *fp;
}

/* a frozen set: sorted unique fingerprints + bucket index on the top `bits` bits */
typedef struct {
    av_fp_t *a;
    size_t n;
    uint32_t *idx; /* idx[b] = first position whose bucket >= b; nb + 1 entries */
    int bits;
} av_fpset_t;

static inline int av_fpset_index(av_fpset_t *s)
{
    if (s->n > UINT32_MAX)
        return -1;
    int bits = 1;
    while (bits < 40 && ((size_t)1 << bits) < s->n / 4)
        bits++;
    size_t nb = (size_t)1 << bits;
    s->bits = bits;
    s->idx = (uint32_t *)malloc((nb + 1) * sizeof(uint32_t));
    if (s->idx == NULL)
        return -1;
    size_t pos = 0;
    for (size_t b = 0; b < nb; b++) {
        while (pos < s->n && (s->a[pos].hi >> (64 - bits)) < b)
            pos++;
        s->idx[b] = (uint32_t)pos;
    }
    s->idx[nb] = (uint32_t)s->n;
    return 0;
}

/* position of fp in the set, or -1 */
static inline long av_fpset_find(const av_fpset_t *s, const av_fp_t *fp)
{
    if (s->n == 0)
        return -1;
    size_t b = fp->hi >> (64 - s->bits);
    size_t lo = s->idx[b], hi = s->idx[b + 1];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (av_fp_lt(&s->a[mid], fp))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->n && av_fp_eq(&s->a[lo], fp))
        return (long)lo;
    return -1;
}

static inline void av_mark(uint8_t *flags, size_t i)
{
    __atomic_store_n(&flags[i], 1, __ATOMIC_RELAXED);
}

static inline uint32_t av_fetch_add(uint32_t *p)
{
    return __atomic_fetch_add(p, 1, __ATOMIC_RELAXED);
}

/* the last non-zero byte's position + 1 (0 when all zero) */
static inline size_t av_nonzero_len(const unsigned char *p, size_t n)
{
    while (n > 0 && p[n - 1] == 0)
        n--;
    return n;
}

#endif
