# Declarations of verify/native/_filedpass.pyx: the walker's callbacks of the filed reference check,
# cimported by verify/native/_check.pyx, which hands them to the walker (verify/native/_walk.h).
#     from ._filedpass cimport on_file, on_unreadable

from libc.stdint cimport uint64_t

cdef void on_file(void *vctx, void *tb, uint64_t unit, int fd3, const char *d1, const char *d2, const char *d3,
                  const char *name) noexcept nogil
cdef void on_unreadable(void *ctx, void *tb, int err, const char *name, const char *path, int op) noexcept nogil
