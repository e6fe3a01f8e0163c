/* The filed directory walker: ROOT/d1/d2/d3/NAME in parallel, one callback per file.

   The scan and every pass of the reference check walk a filed store the same way, so
   the walk exists once, here; what each does with a file is its callback. A walk
   opens every directory with openat relative to its parent's fd, never follows a
   symlink, reads entries with getdents64 straight into a buffer (no DIR stream: no
   fstat per directory, which on NFS or FUSE is a round trip), and takes an entry's
   type from d_type (lstat only where the filesystem leaves it out).

   Work units: phase 1 lists the top-level dirs (one thread each), phase 2 walks their
   subdirectories, up to 65,536 units: fine enough that --jobs 128 keeps every thread
   busy to the end (one unit per top-level dir leaves most threads idle in the last
   round). A store with more top-level dirs than fds kept open walks one unit per
   top-level dir. Threads take units in ascending order (dynamic schedule), and every
   file is handed the number of the unit it is in: sorted by it, records come out in
   the order of a one-thread walk, whatever --jobs.

   Nothing is done per entry that the entry does not need: a path is joined only for a
   callback that reports one (a file's callback gets the names, and joins its path only
   for a record), and each thread lists into its own buffers, one per depth, allocated
   once per walk rather than once per directory.

   The stop flag is read before every unit and every entry. Compiled into each
   extension that includes it (with -fopenmp); called without the GIL. */
#ifndef AV_WALK_H
#define AV_WALK_H

#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "_native.h"

#define AV_WALK_PATHMAX 1200   /* d1/d2/d3/NAME with each part <= 255 bytes */
#define AV_WALK_DIRBUF 32768   /* getdents64 buffer: a leaf dir of a big store fits in one call */
#define AV_WALK_MAX_TOP_FDS 512 /* top-level dirs kept open between the phases (256 in a sane store) */

/* What could not be read, for the unreadable callback. */
enum { AV_WALK_OPENDIR = 0, AV_WALK_READDIR = 1, AV_WALK_LSTAT = 2, AV_WALK_NOMEM = 3 };

/* One walk: the store, the callbacks, and one state per thread (the callbacks' `tb`:
   `threads + tid * thread_size`). `ctx` is handed to every callback as it is. */
typedef struct {
    int rootfd;
    const int *stop;
    void *ctx;
    char *threads;
    size_t thread_size;
    /* a regular file at object depth: NAME in dirfd, which is ROOT/d1/d2/d3 */
    void (*file)(void *ctx, void *tb, uint64_t unit, int dirfd, const char *d1, const char *d2, const char *d3,
                 const char *name);
    /* optional: what the layout does not expect (a non-dir above object depth, a non-file at
       it); type is a DT_* or 0 for a special file, depth that of NAME (objects are at 4) */
    void (*stray)(void *ctx, void *tb, const char *name, const char *path, int type, int depth);
    /* optional: a path that could not be read (never ENOENT: what vanished meanwhile is not
       an error); op is an AV_WALK_* */
    void (*unreadable)(void *ctx, void *tb, int err, const char *name, const char *path, int op);
    /* optional: a directory opened and about to be listed */
    void (*dir)(void *ctx, void *tb);
} av_walk_t;

/* A walk of the store at ROOTFD handing each file to FILE, with one state of THREAD_SIZE bytes
   per thread at THREADS; the optional callbacks are left out (set them after). */
static inline void av_walk_init(av_walk_t *w, int rootfd, const int *stop, void *ctx, void *threads,
                                size_t thread_size,
                                void (*file)(void *, void *, uint64_t, int, const char *, const char *,
                                             const char *, const char *))
{
    memset(w, 0, sizeof(*w));
    w->rootfd = rootfd;
    w->stop = stop;
    w->ctx = ctx;
    w->threads = (char *)threads;
    w->thread_size = thread_size;
    w->file = file;
}

/* the kernel's record, read straight from getdents64 */
struct av_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[256]; /* as glibc's struct dirent64: names end at their NUL */
};

static inline long av_getdents64(int fd, void *buf, size_t n)
{
    return syscall(SYS_getdents64, fd, buf, n);
}

static inline int av_is_dot(const char *s)
{
    return s[0] == '.' && (s[1] == 0 || (s[1] == '.' && s[2] == 0));
}

static inline void *av_walk_thread(const av_walk_t *w)
{
    return w->threads + (size_t)omp_get_thread_num() * w->thread_size;
}

/* A path relative to the root from up to three dir names (each NULL where absent) and a name,
   "/"-joined into out (AV_WALK_PATHMAX bytes; never more than 4 parts of <= 255 bytes). */
static inline void av_walk_join(char *out, const char *a, const char *b, const char *c, const char *name)
{
    const char *parts[4] = {a, b, c, name};
    size_t len = 0, n;
    int i;
    for (i = 0; i < 4; i++) {
        if (parts[i] == NULL)
            continue;
        if (len > 0 && len < AV_WALK_PATHMAX - 1)
            out[len++] = '/';
        n = strnlen(parts[i], AV_WALK_PATHMAX - 1 - len);
        memcpy(out + len, parts[i], n);
        len += n;
    }
    out[len] = 0;
}

/* PATH/NAME into out (AV_WALK_PATHMAX bytes; never more than 4 parts of <= 255 bytes). */
static inline void av_walk_child(char *out, const char *path, const char *name)
{
    size_t p = strnlen(path, AV_WALK_PATHMAX - 2), n = strnlen(name, AV_WALK_PATHMAX - 2 - p);
    memcpy(out, path, p);
    out[p] = '/';
    memcpy(out + p + 1, name, n);
    out[p + 1 + n] = 0;
}

static inline void av_walk_unreadable(const av_walk_t *w, void *tb, int err, const char *name, const char *path,
                                      int op)
{
    if (w->unreadable != NULL)
        w->unreadable(w->ctx, tb, err, name, path, op);
}

static inline void av_walk_stray(const av_walk_t *w, void *tb, const char *name, const char *path, int type,
                                 int depth)
{
    if (w->stray != NULL)
        w->stray(w->ctx, tb, name, path, type, depth);
}

/* A walk's listing buffers for one thread: one per depth (1..3) of a directory being listed. */
#define AV_WALK_DEPTHS 3
#define av_walk_bufs_alloc() ((char *)malloc((size_t)AV_WALK_DEPTHS * AV_WALK_DIRBUF))
#define av_walk_buf_at(bufs, depth) ((bufs) + (size_t)((depth) - 1) * AV_WALK_DIRBUF)

/* Opens DNAME in PARENTFD (its path ROOT/[A/[B/]]DNAME, A and B NULL where absent) for listing into
   *BUF: the caller's buffer if it has one, else one allocated here (*OWNED then set: free it).
   -1 when the dir is gone or unreadable (reported). */
static int av_walk_open(const av_walk_t *w, void *tb, int parentfd, const char *a, const char *b, const char *dname,
                        char **buf, int *owned)
{
    char path[AV_WALK_PATHMAX];
    int err, fd = openat(parentfd, dname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    *owned = 0;
    if (fd < 0) {
        err = errno;
        if (err != ENOENT) {
            av_walk_join(path, a, b, NULL, dname);
            av_walk_unreadable(w, tb, err, dname, path, AV_WALK_OPENDIR);
        }
        return -1;
    }
    if (*buf == NULL) {
        *buf = (char *)malloc(AV_WALK_DIRBUF);
        if (*buf == NULL) {
            av_walk_join(path, a, b, NULL, dname);
            av_walk_unreadable(w, tb, ENOMEM, dname, path, AV_WALK_NOMEM);
            close(fd);
            return -1;
        }
        *owned = 1;
    }
    if (w->dir != NULL)
        w->dir(w->ctx, tb);
    return fd;
}

/* The next batch of entries of FD (ROOT/[A/[B/]]DNAME): bytes read, 0 at the end (or when stopped
   or unreadable). */
static long av_walk_read(const av_walk_t *w, void *tb, int fd, char *buf, const char *a, const char *b,
                         const char *dname)
{
    char path[AV_WALK_PATHMAX];
    long nread = av_getdents64(fd, buf, AV_WALK_DIRBUF);
    int err = errno;
    if (nread < 0 && err != ENOENT) {
        av_walk_join(path, a, b, NULL, dname);
        av_walk_unreadable(w, tb, err, dname, path, AV_WALK_READDIR);
    }
    if (nread < 0 || av_stopped(w->stop))
        return 0;
    return nread;
}

/* Walks directory DNAME (inside PARENTFD) at depth 1..3 and below; d1, d2 name its parents. BUFS
   are the thread's listing buffers (av_walk_bufs_alloc), or NULL: one is allocated per directory. */
static void av_walk_dir(const av_walk_t *w, void *tb, uint64_t unit, int parentfd, const char *d1, const char *d2,
                        const char *dname, int depth, char *bufs)
{
    const char *a = depth > 1 ? d1 : NULL, *b = depth > 2 ? d2 : NULL; /* the parents, as a path has them */
    char epath[AV_WALK_PATHMAX];
    char *buf = bufs != NULL ? av_walk_buf_at(bufs, depth) : NULL;
    long nread, pos;
    int fd, t, err, owned;
    fd = av_walk_open(w, tb, parentfd, a, b, dname, &buf, &owned);
    if (fd < 0)
        return;
    while ((nread = av_walk_read(w, tb, fd, buf, a, b, dname)) > 0) {
        for (pos = 0; pos < nread && !av_stopped(w->stop);) {
            struct av_dirent64 *e = (struct av_dirent64 *)(buf + pos);
            pos += e->d_reclen;
            if (av_is_dot(e->d_name))
                continue;
            t = av_entry_type(fd, e->d_name, e->d_type);
            err = errno;
            if (t < 0) {
                /* no d_type and the entry is gone by now: vanished, not an error */
                if (err != ENOENT) {
                    av_walk_join(epath, a, b, dname, e->d_name);
                    av_walk_unreadable(w, tb, err, e->d_name, epath, AV_WALK_LSTAT);
                }
                continue;
            }
            if (depth == 3 && t == DT_REG) {
                av_limit_take(1, 0, w->stop); /* --max-objects-per-second: one object, opened next */
                w->file(w->ctx, tb, unit, fd, d1, d2, dname, e->d_name);
            } else if (depth < 3 && t == DT_DIR) {
                if (depth == 1)
                    av_walk_dir(w, tb, unit, fd, dname, NULL, e->d_name, 2, bufs);
                else
                    av_walk_dir(w, tb, unit, fd, d1, dname, e->d_name, 3, bufs);
            } else if (w->stray != NULL) {
                av_walk_join(epath, a, b, dname, e->d_name);
                av_walk_stray(w, tb, e->d_name, epath, t, depth + 1);
            }
        }
    }
    if (owned)
        free(buf);
    close(fd);
}

/* A top-level dir between the phases. */
typedef struct {
    int fd;        /* kept open for phase 2; -1 if it could not be opened */
    const char *name;
    char **subs;   /* names of its subdirectories: phase 2's work units */
    size_t nsubs;
    size_t cap;
} av_walk_top_t;

/* Phase 1: lists one top-level dir, hands on what is not a dir, keeps its subdirs as work
   units. A subdir whose name cannot be kept (out of memory) is walked here and now, as unit
   UNIT (before every unit of phase 2, as in a one-thread walk). */
static void av_walk_list_top(const av_walk_t *w, void *tb, uint64_t unit, av_walk_top_t *t)
{
    char path[AV_WALK_PATHMAX];
    char *buf = NULL;
    long nread, pos;
    int fd, ty, owned;
    t->fd = -1;
    fd = av_walk_open(w, tb, w->rootfd, NULL, NULL, t->name, &buf, &owned);
    if (fd < 0)
        return;
    while ((nread = av_walk_read(w, tb, fd, buf, NULL, NULL, t->name)) > 0) {
        for (pos = 0; pos < nread;) {
            struct av_dirent64 *e = (struct av_dirent64 *)(buf + pos);
            pos += e->d_reclen;
            if (av_is_dot(e->d_name))
                continue;
            ty = av_entry_type(fd, e->d_name, e->d_type);
            if (ty < 0) {
                if (errno != ENOENT) {
                    int err = errno;
                    av_walk_child(path, t->name, e->d_name);
                    av_walk_unreadable(w, tb, err, e->d_name, path, AV_WALK_LSTAT);
                }
                continue;
            }
            if (ty != DT_DIR) {
                av_walk_child(path, t->name, e->d_name);
                av_walk_stray(w, tb, e->d_name, path, ty, 2);
                continue;
            }
            if (t->nsubs == t->cap) {
                char **grown = (char **)realloc(t->subs, (t->cap * 2 + 16) * sizeof(char *));
                if (grown != NULL) {
                    t->subs = grown;
                    t->cap = t->cap * 2 + 16;
                }
            }
            if (t->nsubs < t->cap) {
                t->subs[t->nsubs] = av_dupn(e->d_name, strlen(e->d_name));
                if (t->subs[t->nsubs] != NULL) {
                    t->nsubs++;
                    continue;
                }
            }
            av_walk_dir(w, tb, unit, fd, t->name, NULL, e->d_name, 2, NULL);
        }
    }
    free(buf);
    t->fd = fd;
}

static inline int av_walk_threads(int jobs, size_t units)
{
    /* more threads than units would only idle */
    if ((size_t)jobs > units)
        return units > 0 ? (int)units : 1;
    return jobs;
}

/* Walks N work units with up to JOBS threads, each listing into its own buffers: unit i is the
   dir NAMES[i] at DEPTH (1 or 2) in FDS[i] (the root when FDS is NULL), under the top-level dir
   PARENTS[i] at depth 2; its files are handed unit number FIRST + i. */
static void av_walk_units(const av_walk_t *w, size_t n, int jobs, const int *fds, char *const *parents,
                          char *const *names, int depth, uint64_t first)
{
#pragma omp parallel num_threads(av_walk_threads(jobs, n))
    {
        char *bufs = av_walk_bufs_alloc(); /* NULL: each directory allocates its own */
        long i;
#pragma omp for schedule(dynamic, 1)
        for (i = 0; i < (long)n; i++)
            if (!av_stopped(w->stop))
                av_walk_dir(w, av_walk_thread(w), first + (uint64_t)i, fds != NULL ? fds[i] : w->rootfd,
                            parents != NULL ? parents[i] : NULL, NULL, names[i], depth, bufs);
        free(bufs);
    }
}

/* Walks the top-level dirs TOPS (sorted; what else lies at the root is the caller's) with up
   to JOBS threads, in the units described above. 0, or -1 out of memory (nothing walked in
   phase 2 then). */
static int av_walk_run(const av_walk_t *w, char *const *tops, size_t ntop, int jobs)
{
    av_walk_top_t *t;
    int *ufd = NULL;
    char **upar = NULL, **usub = NULL;
    size_t i, k, nunits = 0;
    long u;
    int rc = 0;
    if (ntop > AV_WALK_MAX_TOP_FDS) { /* too many to keep open: one unit per top-level dir */
        av_walk_units(w, ntop, jobs, NULL, NULL, tops, 1, 0);
        return 0;
    }
    t = (av_walk_top_t *)calloc(ntop + 1, sizeof(av_walk_top_t));
    if (t == NULL)
        return -1;
    for (i = 0; i < ntop; i++) {
        t[i].fd = -1;
        t[i].name = tops[i];
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(av_walk_threads(jobs, ntop))
    for (u = 0; u < (long)ntop; u++)
        if (!av_stopped(w->stop))
            av_walk_list_top(w, av_walk_thread(w), (uint64_t)u, &t[u]);
    for (i = 0; i < ntop; i++)
        nunits += t[i].nsubs;
    ufd = (int *)malloc((nunits + 1) * sizeof(int));
    upar = (char **)malloc((nunits + 1) * sizeof(char *));
    usub = (char **)malloc((nunits + 1) * sizeof(char *));
    if (ufd == NULL || upar == NULL || usub == NULL) {
        rc = -1;
    } else {
        nunits = 0;
        for (i = 0; i < ntop; i++)
            for (k = 0; k < t[i].nsubs; k++) {
                ufd[nunits] = t[i].fd;
                upar[nunits] = (char *)t[i].name;
                usub[nunits] = t[i].subs[k];
                nunits++;
            }
        av_walk_units(w, nunits, jobs, ufd, upar, usub, 2, ntop);
    }
    for (i = 0; i < ntop; i++) {
        if (t[i].fd >= 0)
            close(t[i].fd);
        for (k = 0; k < t[i].nsubs; k++)
            free(t[i].subs[k]);
        free(t[i].subs);
    }
    free(t);
    free(ufd);
    free(upar);
    free(usub);
    return rc;
}

#endif
