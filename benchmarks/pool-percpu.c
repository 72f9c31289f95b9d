/*
 * pool-percpu.c - file reads with one loop per CPU (percpu): as many
 * threads as CPUs, each with its own loop keeping INFLIGHT_IO
 * actx_aio_pread of random 4 KiB page-cached blocks in flight on the
 * default I/O path, against synchronous preads in a tight loop on as many
 * threads (peers/raw-pread.c).  Two figures from the same runs: reads per
 * second (target >= 0.8x the synchronous threads), and CPU time per read
 * of the whole process, user+sys, every thread counted (target at most
 * 1.15x the synchronous loop's), as issue 22 states them.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "pool.h"

typedef struct loop_run loop_run;

typedef struct {
    loop_run *lr;
    char *buf;
} slot;

struct loop_run {
    pthread_t th;
    pthread_barrier_t *start;
    long total, left, done;
    uint64_t seed;
    slot slots[INFLIGHT_IO];
    char *bufs;
    bool failed;
};

static off_t next_off(loop_run *lr)
{
    return (off_t)(bench_rnd(&lr->seed) % NBLOCKS) * BENCH_BS;
}

static void read_done(void *opaque, long ret)
{
    slot *s = opaque;
    loop_run *lr = s->lr;

    if (ret != BENCH_BS) {
        lr->failed = true;
    }
    lr->done++;
    if (lr->left > 0) {
        lr->left--;
        if (!actx_aio_pread(pool.file_fd, s->buf, BENCH_BS, next_off(lr),
                            read_done, s)) {
            lr->failed = true;
        }
    }
}

static void *loop_main(void *arg)
{
    loop_run *lr = arg;

    if (actx_thread_init() < 0) {
        lr->failed = true;
    }
    pthread_barrier_wait(lr->start);
    lr->left = lr->total - INFLIGHT_IO;
    for (int i = 0; i < INFLIGHT_IO && !lr->failed; i++) {
        lr->slots[i] = (slot){lr, lr->bufs + (size_t)i * BENCH_BS};
        if (!actx_aio_pread(pool.file_fd, lr->slots[i].buf, BENCH_BS,
                            next_off(lr), read_done, &lr->slots[i])) {
            lr->failed = true;
        }
    }
    actx_flush();
    if (lr->done != lr->total) {
        lr->failed = true;
    }
    actx_thread_shutdown();
    return NULL;
}

static double cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

typedef struct {
    double rate;   /* reads per second, all loops */
    double cpu_us; /* process CPU time per read, us */
    bool ok;
} percpu_result;

/* nloops loops of `each` reads; the clock starts when all are set up. */
static percpu_result run_loops(int nloops, long each)
{
    loop_run *lr = calloc((size_t)nloops, sizeof(*lr));
    pthread_barrier_t start;
    percpu_result res = {0, 0, true};
    double c0;
    uint64_t t0;

    pthread_barrier_init(&start, NULL, (unsigned)nloops + 1);
    for (int i = 0; i < nloops; i++) {
        lr[i].start = &start;
        lr[i].total = each;
        lr[i].seed = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 7);
        lr[i].bufs = aligned_alloc(4096, (size_t)INFLIGHT_IO * BENCH_BS);
        if (pthread_create(&lr[i].th, NULL, loop_main, &lr[i])) {
            perror("pthread_create");
            exit(1);
        }
    }
    pthread_barrier_wait(&start);
    c0 = cpu_s();
    t0 = bench_now_ns();
    for (int i = 0; i < nloops; i++) {
        pthread_join(lr[i].th, NULL);
        res.ok &= !lr[i].failed;
        free(lr[i].bufs);
    }
    res.rate = (double)nloops * each / ((bench_now_ns() - t0) / 1e9);
    res.cpu_us = (cpu_s() - c0) * 1e6 / ((double)nloops * each);
    pthread_barrier_destroy(&start);
    free(lr);
    return res;
}

/* The synchronous peer, with its CPU time per read. */
static percpu_result run_sync(int nthreads, double seconds)
{
    percpu_result res = {0, 0, true};
    double c0 = cpu_s();
    uint64_t t0 = bench_now_ns();

    res.rate = raw_preads(pool.file_fd, NBLOCKS, nthreads, seconds);
    res.cpu_us =
        (cpu_s() - c0) * 1e6 / (res.rate * ((bench_now_ns() - t0) / 1e9));
    return res;
}

void pool_percpu(void)
{
    int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
    long each = 2000;
    bench_fig *rate, *cpu;
    bool ok = true;

    if (!pool_want("percpu")) {
        return;
    }
    if (ncpu < 1) {
        ncpu = 1;
    }
    /* Calibrate the reads per loop to about -t seconds. */
    each = (long)(run_loops(ncpu, each).rate / ncpu * pool.rep_s) + 64;
    rate = bench_fig_new("preads, 64 in flight, a loop per CPU", "M/s",
                         BENCH_HIGHER);
    cpu = bench_fig_new("CPU per read, a loop per CPU", "us/read", BENCH_LOWER);
    for (int r = 0; r < pool.reps; r++) {
        percpu_result a = {0, 0, true}, s;

        if (pool_want("actx")) {
            a = run_loops(ncpu, each);
            ok &= a.ok;
            bench_add(rate, "actx", a.rate / 1e6);
            bench_add(cpu, "actx", a.cpu_us);
        }
        if (pool_want("raw")) {
            s = run_sync(ncpu, pool.rep_s);
            bench_add(rate, "sync pread, thread/CPU", s.rate / 1e6);
            bench_add(cpu, "sync pread, thread/CPU", s.cpu_us);
        }
    }
    bench_target_ratio(rate, "sync pread, thread/CPU", 0.8);
    bench_note(rate,
               "%d loops on the default I/O path, page-cached 64 MiB "
               "file, random blocks",
               ncpu);
    bench_fig_check(rate, ok, "every read returned 4 KiB");
    bench_fig_done(rate);
    /* At most 1.15x the synchronous loop's CPU time per read. */
    bench_target_ratio(cpu, "sync pread, thread/CPU", 1 / 1.15);
    bench_note(cpu, "user+sys of the whole process (every thread) per read");
    bench_fig_done(cpu);
}
