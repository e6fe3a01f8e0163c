# Cython declarations of _native.h: the stop flag every GIL-free loop checks, and the rules
# that hash a name or content (the fingerprint, placement, probe order, content hash).
#     from ._native cimport *

from libc.stdint cimport uint64_t

cdef extern from "_check.h" nogil:
    ctypedef struct av_fp_t:
        uint64_t hi
        uint64_t lo

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
    void av_fingerprint(const char *name, size_t n, av_fp_t *fp)
    ctypedef struct av_content_t:
        uint64_t total
    void av_content_init(av_content_t *h)
    void av_content_update(av_content_t *h, const unsigned char *p, size_t n)
    void av_content_final(av_content_t *h, char *hex)
    int AV_AT_V04, AV_AT_OLD
    int av_placement(const char *d1, const char *d2, const char *d3, const char *name, size_t n, unsigned char *md)
    int av_probe_rel(int step, const char *name, size_t n, char *out, size_t outlen)
    ctypedef struct av_limit_t:
        double ns_per[2]
        uint64_t next[2]
    void av_limit_use(av_limit_t *l)
    void av_limit_take(uint64_t ops, uint64_t bytes, const int *stop)
