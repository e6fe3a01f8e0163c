/*
 * The ceiling a RADOS scan of a maps pool can reach: the same librados calls
 * `archverify scan --backend rados` makes, and nothing else. It lists the pool
 * (rados_object_list, pages of 1024) and sorts each name with the scanner's own
 * name rules (verify/native/_rules.h, av_name_class), then keeps INFLIGHT aio ops going:
 *
 *   NAME_hash, temporary and map-data names   nothing (listed only)
 *   NAME_lock                                 read of the owner (255 bytes)
 *   every other name (a header candidate)     read of AV_HEADER_READ bytes; then
 *       archip_NAME with a v1/v2 header       read 8 bytes of NAME (the upgrade probe)
 *       v1 header read in full                stat (is the map as long as it says?)
 *
 * Map-data of v2 maps is checked against the listing, as the scanner does once it
 * has listed everything; the benchmark pool has all of it, so neither side stats it.
 * No findings, no records, no Python: what is left is librados and the OSD.
 *
 *   rados_ceiling CONF POOL [INFLIGHT]
 *   prints "<objects listed> <reads> <probes> <seconds after exec>"
 *
 * Built and run by benchmarks/rados_bench.py, which checks that reads and probes
 * equal the scan's own counters in the same run.
 */
#include <rados/librados.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../verify/native/_rules.h"

#define PAGE 1024
#define LOCKREAD 255

enum { FREE, HEADER, LOCK, PROBE, V1SIZE };

struct slot {
    rados_completion_t c;
    int state;
    char name[4096];
    unsigned char buf[256];
    uint64_t size;
    time_t mtime;
};

static long long reads, probes, errors;
static rados_ioctx_t io;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void issue(struct slot *s)
{
    rados_aio_create_completion2(NULL, NULL, &s->c);
    switch (s->state) {
    case HEADER:
        reads++;
        rados_aio_read(io, s->name, s->c, (char *)s->buf, AV_HEADER_READ, 0);
        break;
    case LOCK:
        reads++;
        rados_aio_read(io, s->name, s->c, (char *)s->buf, LOCKREAD, 0);
        break;
    case PROBE:
        probes++;
        rados_aio_read(io, s->name + 7, s->c, (char *)s->buf + AV_HEADER_READ, 8, 0);
        break;
    case V1SIZE:
        probes++;
        rados_aio_stat(io, s->name, s->c, &s->size, &s->mtime);
        break;
    }
}

/* Wait for the slot's op; start its next op (returns 1) or free it (returns 0). */
static int reap(struct slot *s)
{
    rados_aio_wait_for_complete(s->c);
    int r = rados_aio_get_return_value(s->c);
    rados_aio_release(s->c);
    s->c = NULL;
    if (r < 0 && s->state != PROBE) {
        errors++;
        s->state = FREE;
        return 0;
    }
    if (s->state == HEADER) {
        av_header_t h;
        size_t n = strlen(s->name);
        av_classify(s->buf, (size_t)r, r < AV_HEADER_READ ? (uint64_t)r : (uint64_t)-1, s->name, n, &h);
        if (h.cls == AV_V1 && r >= AV_HEADER_READ &&
            AV_V1_HEADER_LEN + AV_V1_ENTRY_LEN * av_div_ceil(h.size, AV_BLOCK_4M) > (uint64_t)r) {
            s->state = V1SIZE;
            issue(s);
            return 1;
        }
        if ((h.cls == AV_V1 || h.cls == AV_V2) && n > 7 && av_starts_with(s->name, n, "archip_") &&
            n - 7 >= AV_MIN_NAME) {
            s->state = PROBE;
            issue(s);
            return 1;
        }
    } else if (s->state == V1SIZE) {
        /* the scanner classifies again with the real length, then probes archip_ names */
        size_t n = strlen(s->name);
        if (n > 7 && av_starts_with(s->name, n, "archip_") && n - 7 >= AV_MIN_NAME) {
            s->state = PROBE;
            issue(s);
            return 1;
        }
    }
    s->state = FREE;
    return 0;
}

int main(int argc, char **argv)
{
    rados_t cl;
    int inflight = argc > 3 ? atoi(argv[3]) : 256, r;
    long long listed = 0;
    unsigned long long next_slot = 0;
    if (argc < 3 || inflight < 1) {
        fprintf(stderr, "usage: %s CONF POOL [INFLIGHT]\n", argv[0]);
        return 64;
    }
    double t0 = now();
    if ((r = rados_create(&cl, NULL)) < 0 || (r = rados_conf_read_file(cl, argv[1])) < 0 ||
        (r = rados_conf_parse_env(cl, NULL)) < 0 || (r = rados_connect(cl)) < 0 ||
        (r = rados_ioctx_create(cl, argv[2], &io)) < 0) {
        fprintf(stderr, "rados_ceiling: %s\n", strerror(-r));
        return 2;
    }
    struct slot *slots = calloc(inflight, sizeof(*slots));
    rados_object_list_item *items = calloc(PAGE, sizeof(*items));
    rados_object_list_cursor cur = rados_object_list_begin(io), end = rados_object_list_end(io);
    rados_object_list_cursor next = rados_object_list_begin(io), tmp;
    while (!rados_object_list_is_end(io, cur)) {
        r = rados_object_list(io, cur, end, PAGE, NULL, 0, items, &next);
        if (r < 0) {
            fprintf(stderr, "rados_ceiling: list: %s\n", strerror(-r));
            return 2;
        }
        for (int i = 0; i < r; i++) {
            const char *oid = items[i].oid; /* listed names are not NUL-terminated */
            size_t len = items[i].oid_length;
            listed++;
            int nc = av_name_class(oid, len);
            if (nc != AV_NAME_PLAIN && nc != AV_NAME_LOCK)
                continue;
            struct slot *s;
            for (;;) { /* the next slot whose op chain has ended */
                s = &slots[next_slot++ % inflight];
                if (s->state == FREE || !reap(s))
                    break;
            }
            if (len >= sizeof(s->name))
                len = sizeof(s->name) - 1;
            memcpy(s->name, oid, len);
            s->name[len] = 0;
            s->state = nc == AV_NAME_LOCK ? LOCK : HEADER;
            issue(s);
        }
        rados_object_list_free(r, items);
        tmp = cur, cur = next, next = tmp;
    }
    for (int busy = 1; busy;) {
        busy = 0;
        for (int i = 0; i < inflight; i++)
            if (slots[i].state != FREE)
                busy |= reap(&slots[i]);
    }
    printf("%lld %lld %lld %.6f\n", listed, reads, probes, now() - t0);
    if (errors)
        fprintf(stderr, "rados_ceiling: %lld reads failed\n", errors);
    rados_object_list_cursor_free(io, cur);
    rados_object_list_cursor_free(io, next);
    rados_object_list_cursor_free(io, end);
    rados_ioctx_destroy(io);
    rados_shutdown(cl);
    return 0;
}
