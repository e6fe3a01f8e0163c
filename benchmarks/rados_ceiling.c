/*
 * The ceiling a RADOS scan can reach on a cluster: list a pool and aio-read the
 * first 32 bytes of every object, N reads in flight, nothing else. No rules, no
 * records. Built and run by benchmarks/rados_bench.py.
 *
 *   rados_ceiling CONF POOL [INFLIGHT]   prints "<objects> <bytes read> <seconds>"
 */
#include <rados/librados.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGE 1024

static long long errors;

struct slot {
    rados_completion_t c;
    char buf[32];
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long reap(struct slot *s)
{
    long long r;
    rados_aio_wait_for_complete(s->c);
    r = rados_aio_get_return_value(s->c);
    rados_aio_release(s->c);
    s->c = NULL;
    if (r < 0)
        errors++;
    return r > 0 ? r : 0;
}

int main(int argc, char **argv)
{
    rados_t cl;
    rados_ioctx_t io;
    int inflight = argc > 3 ? atoi(argv[3]) : 256, r;
    long long n = 0, bytes = 0;
    if (argc < 3) {
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
        for (int i = 0; i < r; i++, n++) {
            struct slot *s = &slots[n % inflight];
            if (s->c)
                bytes += reap(s);
            char oid[4096]; /* listed names are not NUL-terminated */
            size_t len = items[i].oid_length < sizeof(oid) - 1 ? items[i].oid_length : sizeof(oid) - 1;
            memcpy(oid, items[i].oid, len);
            oid[len] = 0;
            rados_aio_create_completion2(NULL, NULL, &s->c);
            rados_aio_read(io, oid, s->c, s->buf, sizeof(s->buf), 0);
        }
        rados_object_list_free(r, items);
        tmp = cur, cur = next, next = tmp;
    }
    for (int i = 0; i < inflight; i++)
        if (slots[i].c)
            bytes += reap(&slots[i]);
    printf("%lld %lld %.6f\n", n, bytes, now() - t0);
    if (errors)
        fprintf(stderr, "rados_ceiling: %lld reads failed\n", errors);
    rados_object_list_cursor_free(io, cur);
    rados_object_list_cursor_free(io, next);
    rados_object_list_cursor_free(io, end);
    rados_ioctx_destroy(io);
    rados_shutdown(cl);
    return 0;
}
