/* raw-pread.c - synchronous preads, the file-AIO floors (raw-pread.h). */
#define _GNU_SOURCE
#include "raw-pread.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness/harness.h"

struct raw_arg {
    pthread_barrier_t *bar;
    atomic_bool *stop;
    int fd;
    long blocks;
    long ops;
    uint64_t seed;
};

static void *raw_main(void *p)
{
    struct raw_arg *a = p;
    char *buf = aligned_alloc(4096, BENCH_BS);

    pthread_barrier_wait(a->bar);
    while (!atomic_load_explicit(a->stop, memory_order_relaxed)) {
        for (int i = 0; i < 64; i++) {
            off_t off = (off_t)(bench_rnd(&a->seed) % a->blocks) * BENCH_BS;

            if (pread(a->fd, buf, BENCH_BS, off) != BENCH_BS) {
                abort();
            }
        }
        a->ops += 64;
    }
    free(buf);
    return NULL;
}

double raw_preads(int fd, long blocks, int nthreads, double seconds)
{
    pthread_t *t = calloc((size_t)nthreads, sizeof(*t));
    struct raw_arg *a = calloc((size_t)nthreads, sizeof(*a));
    pthread_barrier_t bar;
    atomic_bool stop = false;
    uint64_t t0, t1;
    long ops = 0;

    pthread_barrier_init(&bar, NULL, (unsigned)nthreads + 1);
    for (int i = 0; i < nthreads; i++) {
        a[i].bar = &bar;
        a[i].stop = &stop;
        a[i].fd = fd;
        a[i].blocks = blocks;
        a[i].seed = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
        pthread_create(&t[i], NULL, raw_main, &a[i]);
    }
    pthread_barrier_wait(&bar);
    t0 = bench_now_ns();
    usleep((useconds_t)(seconds * 1e6));
    atomic_store(&stop, true);
    for (int i = 0; i < nthreads; i++) {
        pthread_join(t[i], NULL);
        ops += a[i].ops;
    }
    t1 = bench_now_ns();
    pthread_barrier_destroy(&bar);
    free(t);
    free(a);
    return ops / ((t1 - t0) / 1e9);
}

double raw_single(int fd, long blocks, double seconds)
{
    char *buf = aligned_alloc(4096, BENCH_BS);
    uint64_t seed = 0x2545f4914f6cdd1dull, t0 = bench_now_ns(), t;
    long ops = 0;

    do {
        for (int i = 0; i < 16; i++) {
            off_t off = (off_t)(bench_rnd(&seed) % blocks) * BENCH_BS;

            if (pread(fd, buf, BENCH_BS, off) != BENCH_BS) {
                abort();
            }
        }
        ops += 16;
        t = bench_now_ns();
    } while (t - t0 < seconds * 1e9);
    free(buf);
    return ops / ((t - t0) / 1e9);
}
