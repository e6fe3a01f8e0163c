# Cython declarations of _native.h: the stop flag every GIL-free loop checks.
#     from ._native cimport *

from libc.stdint cimport uint64_t

cdef extern from "_native.h" nogil:
    ctypedef struct av_rec_t:
        int kind
        int err
        uint64_t aux
        char *name
        size_t namelen
        char *path
        char *detail
    ctypedef struct av_recs_t:
        av_rec_t *a
        size_t n
        size_t cap
        int oom
    int av_entry_type(int dirfd, const char *name, unsigned char d_type)
    char *av_dupn(const char *s, size_t n)
    void av_emit(av_recs_t *b, int kind, int err, uint64_t aux, const char *name, size_t namelen,
                 const char *path, size_t pathlen, const char *detail)
    void av_recs_clear(av_recs_t *b)
    void av_recs_free(av_recs_t *b)
    int av_stopped(const int *flag)
    void av_request_stop(int *flag)
    void av_v04_rel(const char *name, size_t n, char *out, size_t outlen)
    void av_pithos_rel(const char *name, size_t n, char *out, size_t outlen)
