/* Pieces every GIL-free loop shares that are not format rules (those are in _rules.h).

   The stop flag: a loop reads it between two work units (a directory entry, a map,
   a chunk of a file, a page of a listing) and returns early once it is set. Python
   sets it from the main thread when SIGINT or SIGTERM arrives, then joins the
   thread running the loop, and only then lets the interpreter free anything. */
#ifndef AV_NATIVE_H
#define AV_NATIVE_H

#include <openssl/sha.h>
#include <stdio.h>

#include "_rules.h"

static inline int av_stopped(const int *flag)
{
    return __atomic_load_n(flag, __ATOMIC_RELAXED);
}

static inline void av_request_stop(int *flag)
{
    __atomic_store_n(flag, 1, __ATOMIC_RELAXED);
}

/* The v0.4 filed path of NAME relative to the store root, "hh/hh/hh/NAME" from sha256(NAME)
   (verify/layout.py v04_path). */
static inline void av_v04_rel(const char *name, size_t n, char *out, size_t outlen)
{
    unsigned char md[32];
    char hx[6];
    SHA256((const unsigned char *)name, n, md);
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
