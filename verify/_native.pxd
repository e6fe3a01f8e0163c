# Cython declarations of _native.h: the stop flag every GIL-free loop checks.
#     from ._native cimport av_stopped, av_request_stop, av_v04_rel, av_pithos_rel

cdef extern from "_native.h" nogil:
    int av_stopped(const int *flag)
    void av_request_stop(int *flag)
    void av_v04_rel(const char *name, size_t n, char *out, size_t outlen)
    void av_pithos_rel(const char *name, size_t n, char *out, size_t outlen)
