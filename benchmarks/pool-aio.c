/*
 * pool-aio.c - file AIO (io, uring, direct): random 4 KiB preads of a
 * page-cached 64 MiB file, 64 in flight, kept in flight by one thread
 * with actx_aio_pread (each done reads the next).
 *   io      on today's path (a loop with ACTX_IO=pool: preadv2 RWF_NOWAIT,
 *           else the pool), beside synchronous preads in a tight loop on
 *           as many threads as the pool has (peers/raw-pread.c, target
 *           >= 0.8x) and on one thread (what one loop's thread is), and
 *           uv_fs_read (peers/uv-pool.c, also >= 1x);
 *   uring   the same reads on a loop whose file AIO uses io_uring (the
 *           default where the kernel allows it) beside today's path, and
 *           round trips with one read in flight (sync pread on one
 *           thread is the floor);
 *   direct  uncached reads (a 256 MiB file opened O_DIRECT), 64 in flight
 *           and one in flight, io_uring beside the pool path; with 64 in
 *           flight also the device's ceiling (synchronous preads on 64
 *           threads), which bounds how far any path can lead another.
 * All of one repetition's figures are measured in the same repetition:
 * the uring figure's sync and libuv samples are the io figure's.
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "pool.h"

/* Synchronous O_DIRECT preads on INFLIGHT_IO threads: the device's limit. */
#define DEVICE_CEILING "device, 64 sync thr"
/* Synchronous preads on one thread: one CPU's worth of page-cached reads. */
#define ONE_THREAD "sync pread, 1 thread"

static char *a_bufs;
static uint64_t a_seed = 88172645463325252ull;
static long a_left, a_done;

/*
 * ACTX_IO is read when a loop is created, so each measurement runs on a
 * fresh thread (a fresh loop) created with or without ACTX_IO=pool; the
 * pool threads are shared.
 */
static int x_fd;
static long x_window;
static int x_backend;

static off_t x_off(void)
{
    uint64_t blocks = x_fd == pool.direct_fd ? DIRECT_BLOCKS : NBLOCKS;

    return (off_t)(bench_rnd(&a_seed) % blocks) * BENCH_BS;
}

static void x_done(void *opaque, long ret)
{
    char *buf = opaque;

    if (ret != BENCH_BS) {
        fprintf(stderr, "actx pread: %ld\n", ret);
        abort();
    }
    a_done++;
    if (a_left > 0) {
        a_left--;
        if (!actx_aio_pread(x_fd, buf, BENCH_BS, x_off(), x_done, buf)) {
            abort();
        }
    }
}

/* Reads per second with x_window in flight on x_fd. */
static double x_preads(long total)
{
    struct actx_stats st;
    uint64_t t0;

    actx_stats(&st);
    x_backend = st.io_backend;
    a_left = total - x_window;
    a_done = 0;
    t0 = bench_now_ns();
    for (long i = 0; i < x_window; i++) {
        char *buf = a_bufs + (size_t)i * BENCH_BS;

        if (!actx_aio_pread(x_fd, buf, BENCH_BS, x_off(), x_done, buf)) {
            abort();
        }
    }
    actx_flush();
    if (a_done != total) {
        abort();
    }
    return total / ((bench_now_ns() - t0) / 1e9);
}

struct x_run {
    long total;
    double rate;
};

static void *x_thread(void *p)
{
    struct x_run *r = p;

    actx_thread_init(); /* the loop reads ACTX_IO now */
    r->rate = x_preads(r->total);
    actx_thread_shutdown();
    return NULL;
}

double x_on(bool uring, int fd, long window, long total)
{
    struct x_run r = {total, 0};
    pthread_t t;

    if (!a_bufs) {
        a_bufs = aligned_alloc(4096, (size_t)INFLIGHT_IO * BENCH_BS);
    }
    x_fd = fd;
    x_window = window;
    if (uring) {
        unsetenv("ACTX_IO");
    } else {
        setenv("ACTX_IO", "pool", 1);
    }
    if (pthread_create(&t, NULL, x_thread, &r) != 0 ||
        pthread_join(t, NULL) != 0) {
        abort();
    }
    unsetenv("ACTX_IO");
    if (x_backend != (uring ? 1 : 0)) {
        fprintf(stderr, "bench-pool: wanted the %s path, got the other\n",
                uring ? "io_uring" : "pool");
    }
    return r.rate;
}

/* Median of a over median of b in f; NAN when either was not measured. */
static double median_ratio(bench_fig *f, const char *a, const char *b)
{
    bench_impl *x = bench_impl_of(f, a), *y = bench_impl_of(f, b);

    if (x->n == 0 || y->n == 0) {
        return NAN;
    }
    return bench_stat_of(x).median / bench_stat_of(y).median;
}

/*
 * A loop reads page-cached blocks on its own thread (inline, or by one
 * io_uring_enter per batch): one CPU's worth, however many the machine
 * has.  Say how actx compares with that and how many CPUs the sync peer
 * had, so that a miss against pool-size threads reads for what it is.
 */
static void one_cpu_note(bench_fig *f)
{
    double r = median_ratio(f, "actx", ONE_THREAD);

    if (!isnan(r)) {
        bench_note(f,
                   "one loop reads on one thread: actx %.2fx sync preads on "
                   "1 thread; the pool-size peer ran %d threads on %ld CPUs",
                   r, pool.nthreads, sysconf(_SC_NPROCESSORS_ONLN));
    }
}

/*
 * O_DIRECT: no path beats the device (its ceiling impl in f): say how far
 * any path could lead the pool path here.
 */
static void device_note(bench_fig *f, const char *ceiling, const char *what)
{
    double r = median_ratio(f, ceiling, "pool path");

    if (!isnan(r)) {
        bench_note(f,
                   "%s: the most any path can lead the pool path (%d "
                   "threads) by is %.2fx",
                   what, pool.nthreads, r);
    }
}

void pool_aio(void)
{
    const int fd = pool.file_fd, dfd = pool.direct_fd;
    const double s = pool.rep_s;
    bench_fig *f_io = NULL, *f_x = NULL, *f_p = NULL, *f_d = NULL;
    bench_fig *f_dp = NULL;
    long n_io = 20000, n_x = 20000, n_p = 2000, n_d = 2000, n_dp = 500;

    /* Calibrate the counts to about -t seconds from a short actx run. */
    if (pool_want("io")) {
        n_io = (long)(x_on(false, fd, INFLIGHT_IO, n_io) * s) + 64;
        f_io = bench_fig_new("4 KiB preads, 64 in flight", "M/s", BENCH_HIGHER);
    }
    if (pool_want("uring")) {
        n_x = (long)(x_on(true, fd, INFLIGHT_IO, n_x) * s) + 64;
        n_p = (long)(x_on(false, fd, 1, n_p) * s) + 1;
        f_x = bench_fig_new("io_uring: 4 KiB preads, 64 in flight", "M/s",
                            BENCH_HIGHER);
        f_p = bench_fig_new("io_uring: pread round trip, W=1", "M/s",
                            BENCH_HIGHER);
    }
    if (pool_want("direct") && dfd >= 0) {
        n_d = (long)(x_on(true, dfd, INFLIGHT_IO, n_d) * s) + 64;
        n_dp = (long)(x_on(false, dfd, 1, n_dp) * s) + 1;
        f_d = bench_fig_new("io_uring: O_DIRECT 4 KiB, 64 in flight", "M/s",
                            BENCH_HIGHER);
        f_dp = bench_fig_new("io_uring: O_DIRECT round trip, W=1", "M/s",
                             BENCH_HIGHER);
    }
    for (int r = 0; r < pool.reps; r++) {
        if (f_io && pool_want("actx")) {
            bench_add(f_io, "actx", x_on(false, fd, INFLIGHT_IO, n_io) / 1e6);
        }
        if (f_x && pool_want("actx")) {
            bench_add(f_x, "actx", x_on(true, fd, INFLIGHT_IO, n_x) / 1e6);
            bench_add(f_x, "today's path (NOWAIT+pool)",
                      x_on(false, fd, INFLIGHT_IO, n_x) / 1e6);
            bench_add(f_p, "today's path (NOWAIT+pool)",
                      x_on(false, fd, 1, n_p) / 1e6);
            bench_add(f_p, "actx", x_on(true, fd, 1, n_p) / 1e6);
        }
        if ((f_io || f_x) && pool_want("raw")) {
            /* One thread's preads: all one loop's thread could do alone. */
            double one = raw_single(fd, NBLOCKS, s) / 1e6;

            for (int k = 0; k < 3; k++) {
                bench_fig *f = k == 0 ? f_io : k == 1 ? f_x : f_p;

                if (f) {
                    bench_add(f, ONE_THREAD, one);
                }
            }
        }
        if (f_d && pool_want("actx")) {
            bench_add(f_d, "pool path",
                      x_on(false, dfd, INFLIGHT_IO, n_d) / 1e6);
            bench_add(f_d, "actx", x_on(true, dfd, INFLIGHT_IO, n_d) / 1e6);
            bench_add(f_dp, "actx", x_on(true, dfd, 1, n_dp) / 1e6);
            bench_add(f_dp, "pool path", x_on(false, dfd, 1, n_dp) / 1e6);
        }
        if (f_dp && pool_want("raw")) {
            bench_add(f_d, DEVICE_CEILING,
                      raw_preads(dfd, DIRECT_BLOCKS, INFLIGHT_IO, s) / 1e6);
            bench_add(f_dp, ONE_THREAD,
                      raw_single(dfd, DIRECT_BLOCKS, s) / 1e6);
        }
        if ((f_io || f_x) && pool_want("raw")) {
            bench_add(f_io ? f_io : f_x, "sync pread, pool-size thr",
                      raw_preads(fd, NBLOCKS, pool.nthreads, s) / 1e6);
        }
#ifdef HAVE_LIBUV
        if ((f_io || f_x) && pool_want("uv")) {
            bench_add(f_io ? f_io : f_x, "libuv uv_fs_read",
                      uv_pool_preads(fd, NBLOCKS, INFLIGHT_IO, n_io) / 1e6);
        }
#endif
    }

    if (f_io) {
        struct actx_stats st;

        bench_peer(f_io, "sync pread, pool-size thr");
        bench_peer(f_io, "libuv uv_fs_read");
        bench_target_ratio(f_io, "sync pread, pool-size thr", 0.8);
        bench_note(f_io, "page-cached 64 MiB file, random blocks; also >= 1x "
                         "libuv uv_fs_read");
        one_cpu_note(f_io);
        actx_stats(&st);
        bench_note(f_io,
                   "actx loop over the whole run: %lu sleeps, %lu "
                   "wake-ups for %lu completions",
                   st.sleeps, st.wakeups, st.completions_run);
        bench_fig_done(f_io);
    }
    if (f_x) {
        bench_peer(f_x, "today's path (NOWAIT+pool)");
        bench_peer(f_x, "sync pread, pool-size thr");
        bench_peer(f_x, "libuv uv_fs_read");
        for (int i = 0; f_io && i < 2; i++) {
            const char *peer =
                i ? "libuv uv_fs_read" : "sync pread, pool-size thr";
            bench_impl *m = bench_impl_of(f_io, peer);

            for (int k = 0; k < m->n; k++) {
                bench_add(f_x, peer, m->v[k]);
            }
        }
        /* The default path is never slower than ACTX_IO=pool. */
        bench_target_ratio(f_x, "today's path (NOWAIT+pool)", 0.95);
        bench_target_ratio(f_x, "sync pread, pool-size thr", 0.8);
        bench_target_ratio(f_x, "libuv uv_fs_read", 4.0);
        bench_note(f_x, "actx here = the default I/O path (io_uring where "
                        "the kernel has it); today's path = the same preads "
                        "on a loop with ACTX_IO=pool");
        one_cpu_note(f_x);
        bench_fig_done(f_x);
        bench_peer(f_p, "today's path (NOWAIT+pool)");
        bench_target_ratio(f_p, "today's path (NOWAIT+pool)", 0.95);
        bench_note(f_p, "page-cached, one read in flight; sync pread on 1 "
                        "thread is the floor");
        bench_fig_done(f_p);
    }
    if (f_d) {
        bench_target_ratio(f_d, "pool path", 4.0);
        bench_note(f_d, "uncached: 256 MiB file opened O_DIRECT");
        device_note(f_d, DEVICE_CEILING,
                    "the device's ceiling is its sync preads on 64 threads");
        bench_fig_done(f_d);
        bench_target_ratio(f_dp, "pool path", 2.0);
        bench_note(f_dp, "uncached, one read in flight; sync pread on 1 "
                         "thread is the device's latency");
        device_note(f_dp, ONE_THREAD, "no path waits less than the device");
        bench_fig_done(f_dp);
    }
}
