/*
 * ceiling: how many stat requests per second a mount can answer with N parallel
 * readers (C threads, no interpreter in the way). Each reader lstats one entry
 * relative to an open directory fd, over and over, for a fixed time.
 *
 *   ceiling DIR THREADS SECONDS    ->  prints "<threads> <stats/s>"
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int dirfd_;
static char names[256][256];
static int nnames;
static double stop_at;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *reader(void *arg)
{
    long k = (long)arg, n = 0;
    struct stat st;
    const char *name = names[k % nnames];
    while (now() < stop_at) {
        fstatat(dirfd_, name, &st, AT_SYMLINK_NOFOLLOW);
        n++;
    }
    return (void *)n;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s DIR THREADS SECONDS\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[2]);
    double secs = atof(argv[3]);
    dirfd_ = open(argv[1], O_RDONLY | O_DIRECTORY);
    DIR *d = dirfd_ < 0 ? NULL : fdopendir(dup(dirfd_));
    if (d == NULL || threads < 1) {
        perror(argv[1]);
        return 2;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL && nnames < 256)
        if (e->d_name[0] != '.')
            snprintf(names[nnames++], sizeof(names[0]), "%s", e->d_name);
    closedir(d);
    if (nnames == 0)
        return 2;
    pthread_t *t = calloc((size_t)threads, sizeof(pthread_t));
    double t0 = now();
    stop_at = t0 + secs;
    for (long i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, reader, (void *)i);
    long total = 0;
    for (int i = 0; i < threads; i++) {
        void *r;
        pthread_join(t[i], &r);
        total += (long)r;
    }
    printf("%d %.0f\n", threads, total / (now() - t0));
    return 0;
}
