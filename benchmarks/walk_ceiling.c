/*
 * The single-thread floor of a filed scan: the syscalls `archverify scan` makes on
 * a healthy store, one after the other, and no rules beyond what picks them.
 *
 *   per directory       openat(O_DIRECTORY|O_NOFOLLOW), getdents64 until 0, close
 *   per map candidate   openat, fstat, pread(64 bytes), close       (maps store)
 *   per lock            openat, fstat, pread(255 bytes), close      (maps store)
 *   per v2 map          fstatat of each NAME_<16 hex> map-data object at its v0.4 path
 *   per blocks object   sha256 of the name, compared with its directories (placement)
 *
 * Names are sorted with the scanner's own rules (verify/native/_rules.h). Only the three
 * 2-hex levels of a v0.4 store are walked, as the scanner does.
 *
 *   walk_ceiling MAPS_DIR BLOCKS_DIR
 *   prints "<files> <dirs> <header reads> <probes> <misplaced> <seconds>"
 *
 * Built and run by benchmarks/scan_bench.py (gcc -O2 ... -lcrypto).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../verify/native/_rules.h"

#define DIRBUF 32768

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

static long long files, dirs, headers, probes, misplaced;

static void hexpath(const char *name, size_t n, char *out, size_t outlen)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    static const char hx[] = "0123456789abcdef";
    SHA256((const unsigned char *)name, n, md);
    char h[6];
    for (int i = 0; i < 3; i++)
        h[2 * i] = hx[md[i] >> 4], h[2 * i + 1] = hx[md[i] & 15];
    snprintf(out, outlen, "%.2s/%.2s/%.2s/%.*s", h, h + 2, h + 4, (int)n, name);
}

static void map_file(int rootfd, int dirfd, const char *name)
{
    size_t n = strlen(name);
    int nc = av_name_class(name, n);
    if (nc != AV_NAME_PLAIN && nc != AV_NAME_LOCK)
        return;
    unsigned char buf[256];
    struct stat st;
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return;
    }
    ssize_t got = pread(fd, buf, nc == AV_NAME_LOCK ? 255 : AV_HEADER_READ, 0);
    close(fd);
    headers++;
    if (nc == AV_NAME_LOCK || got < 0)
        return;
    av_header_t h;
    av_classify(buf, (size_t)got, (uint64_t)st.st_size, name, n, &h);
    if (h.cls != AV_V2 || !av_valid_volume_name(name, n))
        return;
    uint64_t nb = av_mapdata_blocks(h.size, h.blocksize);
    char md[300], rel[600];
    for (uint64_t blk = 0; blk < nb; blk++) {
        snprintf(md, sizeof(md), "%s_%016llx", name, (unsigned long long)blk);
        hexpath(md, strlen(md), rel, sizeof(rel));
        probes++;
        if (fstatat(rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) != 0)
            break;
    }
}

static void walk(int rootfd, int parentfd, const char *dname, int depth, int is_maps, const char *hex)
{
    int fd = openat(parentfd, dname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    dirs++;
    char buf[DIRBUF];
    char h[7];
    memcpy(h, hex, 6);
    if (depth > 0)
        memcpy(h + 2 * (depth - 1), dname, 2);
    for (;;) {
        long nread = syscall(SYS_getdents64, fd, buf, DIRBUF);
        if (nread <= 0)
            break;
        for (long pos = 0; pos < nread;) {
            struct linux_dirent64 *e = (struct linux_dirent64 *)(buf + pos);
            pos += e->d_reclen;
            const char *nm = e->d_name;
            if (nm[0] == '.' && (nm[1] == 0 || (nm[1] == '.' && nm[2] == 0)))
                continue;
            if (depth < 3 && e->d_type == DT_DIR)
                walk(rootfd, fd, nm, depth + 1, is_maps, h);
            else if (depth == 3 && e->d_type == DT_REG) {
                files++;
                if (is_maps) {
                    map_file(rootfd, fd, nm);
                } else {
                    char rel[600];
                    hexpath(nm, strlen(nm), rel, sizeof(rel));
                    if (memcmp(rel, h, 2) || memcmp(rel + 3, h + 2, 2) || memcmp(rel + 6, h + 4, 2))
                        misplaced++;
                }
            }
        }
    }
    close(fd);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s MAPS_DIR BLOCKS_DIR\n", argv[0]);
        return 64;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 1; i <= 2; i++) {
        int rootfd = open(argv[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0) {
            perror(argv[i]);
            return 2;
        }
        walk(rootfd, rootfd, ".", 0, i == 1, "000000");
        close(rootfd);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%lld %lld %lld %lld %lld %.6f\n", files, dirs, headers, probes, misplaced,
           (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
