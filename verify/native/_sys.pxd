# The POSIX calls the filed loops make (_scan, _check, _probe), declared once (sha256 is _native.h's).
#     from ._sys cimport *

cdef extern from "<fcntl.h>" nogil:
    int openat(int dirfd, const char *path, int flags, ...)
    int O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_CLOEXEC, O_NONBLOCK
    int AT_SYMLINK_NOFOLLOW
    int posix_fadvise(int fd, long off, long n, int advice)
    int POSIX_FADV_SEQUENTIAL

cdef extern from "<unistd.h>" nogil:
    ssize_t pread(int fd, void *buf, size_t n, long off)
    ssize_t read(int fd, void *buf, size_t n)
    int close(int fd)

cdef extern from "<sys/stat.h>" nogil:
    ctypedef unsigned long dev_t
    ctypedef unsigned long ino_t
    cdef struct stat:
        dev_t st_dev
        ino_t st_ino
        unsigned int st_mode
        long st_size
    int fstatat(int dirfd, const char *path, stat *buf, int flags)
    int fstat(int fd, stat *buf)
    bint S_ISREG(unsigned int m)
    bint S_ISDIR(unsigned int m)
    bint S_ISLNK(unsigned int m)

cdef extern from "<dirent.h>" nogil:
    unsigned char DT_UNKNOWN, DT_DIR, DT_REG, DT_LNK

cdef extern from "<stdio.h>" nogil:
    int snprintf(char *buf, size_t n, const char *fmt, ...)

