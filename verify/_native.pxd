# Cython declarations of _native.h: the stop flag every GIL-free loop checks.
#     from ._native cimport av_stopped, av_request_stop

cdef extern from "_native.h" nogil:
    int av_stopped(const int *flag)
    void av_request_stop(int *flag)
