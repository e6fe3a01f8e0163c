# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Fixed-width fingerprint records: split by key range, sort, and diff two sorted runs.

A record is ``width`` bytes: a 16-byte big-endian fingerprint (the key), then an
optional payload (e.g. where the name came from). Byte order of the key is its
numeric order, so ``memcmp`` sorts and the first 4 bytes pick a key range.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcmp, memcpy


cdef enum:
    KEY = 16


cdef extern from "stdlib.h" nogil:
    void qsort_r(void *base, size_t nmemb, size_t size,
                 int (*compar)(const void *, const void *, void *) noexcept nogil, void *arg)


cdef int _cmp_record(const void *a, const void *b, void *arg) noexcept nogil:
    return memcmp(a, b, (<size_t *> arg)[0])


cdef inline Py_ssize_t _part_of(const unsigned char *rec, uint64_t parts) noexcept nogil:
    cdef uint32_t top = ((<uint32_t> rec[0] << 24) | (<uint32_t> rec[1] << 16)
                         | (<uint32_t> rec[2] << 8) | <uint32_t> rec[3])
    return <Py_ssize_t> ((<uint64_t> top * parts) >> 32)


cdef Py_ssize_t _count(Py_ssize_t nbytes, Py_ssize_t width) except -1:
    if width < KEY:
        raise ValueError(f"record width {width} is shorter than the {KEY}-byte key")
    if nbytes % width:
        raise ValueError(f"{nbytes} bytes is not a whole number of {width}-byte records")
    return nbytes // width


def sort_records(unsigned char[::1] buf, Py_ssize_t width):
    """Sorts the records of a writable buffer in place, by key then payload."""
    cdef Py_ssize_t n = _count(buf.shape[0], width)
    cdef size_t w = width
    if n > 1:
        with nogil:
            qsort_r(&buf[0], n, w, _cmp_record, &w)


def partition(const unsigned char[::1] buf, Py_ssize_t width, Py_ssize_t parts):
    """``parts`` bytearrays: part i holds the records whose key lies in the i-th of equal key ranges."""
    cdef Py_ssize_t n = _count(buf.shape[0], width)
    if not 1 <= parts <= 1 << 24:
        raise ValueError(f"parts must be from 1 to 2^24, not {parts}")
    cdef Py_ssize_t i, p
    cdef uint64_t P = parts
    cdef Py_ssize_t *counts = <Py_ssize_t *> calloc(parts, sizeof(Py_ssize_t))
    cdef unsigned char **dst = <unsigned char **> malloc(parts * sizeof(unsigned char *))
    if counts == NULL or dst == NULL:
        free(counts)
        free(dst)
        raise MemoryError()
    try:
        with nogil:
            for i in range(n):
                counts[_part_of(&buf[i * width], P)] += 1
        outs = []
        for p in range(parts):
            o = bytearray(counts[p] * width)
            outs.append(o)
            dst[p] = <unsigned char *> PyByteArray_AS_STRING(o)
        with nogil:
            for i in range(n):
                p = _part_of(&buf[i * width], P)
                memcpy(dst[p], &buf[i * width], width)
                dst[p] += width
    finally:
        free(counts)
        free(dst)
    return outs


cdef Py_ssize_t _diff_pass(const unsigned char *a, Py_ssize_t na, const unsigned char *b, Py_ssize_t nb,
                           Py_ssize_t width, unsigned char *out, Py_ssize_t *distinct_a) noexcept nogil:
    """Records of sorted ``a`` whose key is absent from sorted ``b``; copied to ``out`` when given."""
    cdef Py_ssize_t i = 0, j = 0, k = 0, d = 0
    cdef int c
    cdef const unsigned char *prev = NULL
    while i < na:
        if prev == NULL or memcmp(prev, a + i * width, KEY) != 0:
            d += 1
            prev = a + i * width
        while j < nb and memcmp(b + j * width, a + i * width, KEY) < 0:
            j += 1
        if j < nb and memcmp(b + j * width, a + i * width, KEY) == 0:
            c = 0
        else:
            c = 1
        if c:
            if out != NULL:
                memcpy(out + k * width, a + i * width, width)
            k += 1
        i += 1
    distinct_a[0] = d
    return k


def diff(const unsigned char[::1] a, const unsigned char[::1] b, Py_ssize_t width):
    """For two sorted runs: (records of a with a key not in b, distinct keys in a)."""
    cdef Py_ssize_t na = _count(a.shape[0], width), nb = _count(b.shape[0], width)
    cdef Py_ssize_t k, d
    cdef const unsigned char *pa = &a[0] if na else NULL
    cdef const unsigned char *pb = &b[0] if nb else NULL
    with nogil:
        k = _diff_pass(pa, na, pb, nb, width, NULL, &d)
    out = bytearray(k * width)
    cdef unsigned char[::1] o = out
    if k:
        with nogil:
            _diff_pass(pa, na, pb, nb, width, &o[0], &d)
    return out, d
