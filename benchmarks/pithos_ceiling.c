/*
 * The floor of a Pithos cross-check on filed: for each row (mapfile, size) read
 * from stdin, the lookup pithos-check makes for a map that is where it should be,
 * one row after the other, in one thread:
 *
 *   sha256(NAME) -> hh/hh/hh/NAME; openat; fstat; pread(4096); close;
 *   count the v0 entries read and compare them with the row's size.
 *
 * It leaves out what pithos-check also does: archip_NAME when NAME is missing and
 * counting past 4 KiB (which never happen on the benchmark's store) and, unless
 * --old-path is given, the old Pithos path of a 64-hex name, which filed serves first
 * and so must be tried first: with --old-path, one openat of d1/d2/d3/NAME before the
 * sha256 path (on the benchmark's store it fails: one more path lookup per row, the
 * cheapest way to ask when few rows share a d1/d2 dir). Without it this is a floor the
 * real check cannot beat with one thread; with it, the same lookups as the check's.
 * Rows come from the database through `psql -c "COPY (...) TO STDOUT"`, so both sides
 * pay for fetching them.
 *
 *   psql URL -c "COPY (SELECT mapfile, size FROM versions WHERE mapfile IS NOT NULL) TO STDOUT" \
 *       | pithos_ceiling [--old-path] MAPS_DIR
 *   prints "<rows> <missing> <size mismatches>"
 *
 * Built and run by benchmarks/pithos_bench.py (gcc -O2 ... -lcrypto).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK (4ull << 20)

static const unsigned char zero32[32];

int main(int argc, char **argv)
{
    int old_path = argc == 3 && strcmp(argv[1], "--old-path") == 0;
    if (argc != 2 + old_path) {
        fprintf(stderr, "usage: %s [--old-path] MAPS_DIR < rows\n", argv[0]);
        return 64;
    }
    const char *maps = argv[1 + old_path];
    int rootfd = open(maps, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) {
        perror(maps);
        return 2;
    }
    static const char hx[] = "0123456789abcdef";
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long long rows = 0, missing = 0, mismatch = 0;
    unsigned char head[4096], md[SHA256_DIGEST_LENGTH];
    char rel[600];
    while ((len = getline(&line, &cap, stdin)) > 0) {
        char *tab = memchr(line, '\t', (size_t)len);
        if (tab == NULL)
            continue;
        size_t n = (size_t)(tab - line);
        unsigned long long size = strtoull(tab + 1, NULL, 10);
        rows++;
        if (n + 10 > sizeof(rel))
            continue;
        int fd = -1;
        if (old_path && n == 64 && strspn(line, "0123456789abcdef") >= 64) {
            for (int i = 0; i < 3; i++) {
                rel[3 * i] = line[2 * i];
                rel[3 * i + 1] = line[2 * i + 1];
                rel[3 * i + 2] = '/';
            }
            memcpy(rel + 9, line, n);
            rel[9 + n] = 0;
            fd = openat(rootfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        }
        if (fd < 0) {
            SHA256((const unsigned char *)line, n, md);
            for (int i = 0; i < 3; i++) {
                rel[3 * i] = hx[md[i] >> 4];
                rel[3 * i + 1] = hx[md[i] & 15];
                rel[3 * i + 2] = '/';
            }
            memcpy(rel + 9, line, n);
            rel[9 + n] = 0;
            fd = openat(rootfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        }
        if (fd < 0) {
            missing++;
            continue;
        }
        struct stat st;
        ssize_t got = -1;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
            got = pread(fd, head, sizeof(head), 0);
        close(fd);
        unsigned long long entries = 0;
        for (ssize_t off = 0; off + 32 <= got; off += 32, entries++)
            if (off > 0 && memcmp(head + off, zero32, 32) == 0)
                break;
        unsigned long long want = size == 0 ? 1 : (size + BLOCK - 1) / BLOCK;
        if (entries != want)
            mismatch++;
    }
    free(line);
    printf("%lld %lld %lld\n", rows, missing, mismatch);
    return 0;
}
