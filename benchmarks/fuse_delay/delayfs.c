/*
 * delayfs: a read-only FUSE passthrough that answers every lookup, getattr,
 * open (files and dirs), read and readdir after a fixed delay: a loaded NFS
 * server, where each of these is a network round trip.
 *
 *   delayfs SOURCE MOUNTPOINT [--delay-us=1000] [--threads=512] [-f]
 *
 * Kernel caching is off (entry, negative and attribute timeouts 0, direct I/O),
 * so every request reaches this process. Requests are served by a pool of up to
 * --threads threads (libfuse's multi-threaded loop), each one a plain syscall
 * plus a nanosleep: many requests wait out their delay at once, as on a real
 * server with many nfsd threads. Real inode numbers are passed through (use_ino),
 * so hard links look like hard links.
 *
 * Build: gcc -O2 -Wall delayfs.c $(pkg-config --cflags --libs fuse3) -o delayfs
 */
#define FUSE_USE_VERSION 314
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct {
    char *source;
    int srcfd;
    long delay_us;
    int threads;
} g = {NULL, -1, 1000, 512};

/* requests served, per kind, printed on unmount so a benchmark can say what it cost */
enum { R_GETATTR, R_READLINK, R_OPEN, R_READ, R_OPENDIR, R_READDIR, R_N };
static const char *req_names[R_N] = {"getattr", "readlink", "open", "read", "opendir", "readdir"};
static unsigned long reqs[R_N];

static void delay_req(int kind)
{
    __atomic_fetch_add(&reqs[kind], 1, __ATOMIC_RELAXED);
    if (g.delay_us <= 0)
        return;
    struct timespec ts = {g.delay_us / 1000000, (g.delay_us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* paths from libfuse start with '/': make them relative to the source dir fd */
static const char *rel(const char *path)
{
    while (*path == '/')
        path++;
    return *path ? path : ".";
}

static void *dfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    (void)conn;
    cfg->use_ino = 1;
    cfg->entry_timeout = 0;
    cfg->attr_timeout = 0;
    cfg->negative_timeout = 0;
    cfg->direct_io = 1;
    cfg->kernel_cache = 0;
    cfg->nullpath_ok = 1;
    return NULL;
}

/* getattr serves both the kernel's LOOKUP and its GETATTR */
static int dfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    delay_req(R_GETATTR);
    int r = fi ? fstat((int)fi->fh, st) : fstatat(g.srcfd, rel(path), st, AT_SYMLINK_NOFOLLOW);
    return r == 0 ? 0 : -errno;
}

static int dfs_readlink(const char *path, char *buf, size_t size)
{
    delay_req(R_READLINK);
    ssize_t n = readlinkat(g.srcfd, rel(path), buf, size - 1);
    if (n < 0)
        return -errno;
    buf[n] = 0;
    return 0;
}

static int dfs_open(const char *path, struct fuse_file_info *fi)
{
    delay_req(R_OPEN);
    if ((fi->flags & O_ACCMODE) != O_RDONLY)
        return -EROFS;
    int fd = openat(g.srcfd, rel(path), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    fi->fh = (uint64_t)fd;
    fi->direct_io = 1;
    fi->keep_cache = 0;
    return 0;
}

static int dfs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)path;
    delay_req(R_READ);
    ssize_t n = pread((int)fi->fh, buf, size, off);
    return n < 0 ? -errno : (int)n;
}

static int dfs_release(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    close((int)fi->fh);
    return 0;
}

static int dfs_opendir(const char *path, struct fuse_file_info *fi)
{
    delay_req(R_OPENDIR);
    int fd = openat(g.srcfd, rel(path), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int e = errno;
        close(fd);
        return -e;
    }
    fi->fh = (uint64_t)(uintptr_t)d;
    return 0;
}

/* the whole listing in one call (libfuse buffers it), with each entry's type */
static int dfs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
                       struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    (void)path;
    (void)off;
    (void)flags;
    delay_req(R_READDIR);
    DIR *d = (DIR *)(uintptr_t)fi->fh;
    rewinddir(d);
    struct dirent *e;
    struct stat st;
    memset(&st, 0, sizeof(st));
    while ((e = readdir(d)) != NULL) {
        st.st_ino = e->d_ino;
        st.st_mode = (mode_t)DTTOIF(e->d_type);
        if (filler(buf, e->d_name, &st, 0, 0))
            break;
    }
    return 0;
}

static int dfs_releasedir(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    closedir((DIR *)(uintptr_t)fi->fh);
    return 0;
}

static int dfs_statfs(const char *path, struct statvfs *sv)
{
    (void)path;
    return fstatvfs(g.srcfd, sv) == 0 ? 0 : -errno;
}

static void dfs_destroy(void *data)
{
    (void)data;
    unsigned long total = 0;
    fprintf(stderr, "delayfs: requests:");
    for (int k = 0; k < R_N; k++) {
        fprintf(stderr, " %s=%lu", req_names[k], reqs[k]);
        total += reqs[k];
    }
    fprintf(stderr, " total=%lu\n", total);
}

static const struct fuse_operations ops = {
    .destroy = dfs_destroy,
    .init = dfs_init,
    .getattr = dfs_getattr,
    .readlink = dfs_readlink,
    .open = dfs_open,
    .read = dfs_read,
    .release = dfs_release,
    .opendir = dfs_opendir,
    .readdir = dfs_readdir,
    .releasedir = dfs_releasedir,
    .statfs = dfs_statfs,
};

static void usage(const char *prog)
{
    fprintf(stderr, "usage: %s SOURCE MOUNTPOINT [--delay-us=N] [--threads=N] [-f] [-o opt,...]\n", prog);
}

int main(int argc, char **argv)
{
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    char *mountpoint = NULL;
    int foreground = 0;
    fuse_opt_add_arg(&args, argv[0]);
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--delay-us=", 11) == 0)
            g.delay_us = atol(argv[i] + 11);
        else if (strncmp(argv[i], "--threads=", 10) == 0)
            g.threads = atoi(argv[i] + 10);
        else if (strcmp(argv[i], "-f") == 0)
            foreground = 1;
        else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
            fuse_opt_add_arg(&args, "-o");
            fuse_opt_add_arg(&args, argv[++i]);
        } else if (argv[i][0] == '-') {
            usage(argv[0]);
            return 2;
        } else if (g.source == NULL)
            g.source = realpath(argv[i], NULL);
        else if (mountpoint == NULL)
            mountpoint = argv[i];
        else {
            usage(argv[0]);
            return 2;
        }
    }
    if (g.source == NULL || mountpoint == NULL || g.threads < 1) {
        usage(argv[0]);
        return 2;
    }
    g.srcfd = open(g.source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (g.srcfd < 0) {
        perror(g.source);
        return 2;
    }
    fuse_opt_add_arg(&args, "-o");
    fuse_opt_add_arg(&args, "ro,fsname=delayfs");

    struct fuse *f = fuse_new(&args, &ops, sizeof(ops), NULL);
    if (f == NULL)
        return 1;
    if (fuse_mount(f, mountpoint) != 0) {
        fuse_destroy(f);
        return 1;
    }
    if (fuse_daemonize(foreground) != 0 || fuse_set_signal_handlers(fuse_get_session(f)) != 0) {
        fuse_unmount(f);
        fuse_destroy(f);
        return 1;
    }
    struct fuse_loop_config *cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(cfg, (unsigned)g.threads);
    fuse_loop_cfg_set_idle_threads(cfg, (unsigned)g.threads);
    fuse_loop_cfg_set_clone_fd(cfg, 0);
    int r = fuse_loop_mt(f, cfg);
    fuse_loop_cfg_destroy(cfg);
    fuse_remove_signal_handlers(fuse_get_session(f));
    fuse_unmount(f);
    fuse_destroy(f);
    fuse_opt_free_args(&args);
    return r == 0 ? 0 : 1;
}
