/*
 * bench-pool.c - the worker pool and file AIO against libuv's thread pool
 * and against plain synchronous preads, all in the same run.
 *
 * Figures (rates; median and spread of N interleaved repetitions):
 *   null jobs, W in flight   one submitting thread keeps W null jobs in
 *                            flight; each done submits the next.  W=1 is a
 *                            pure round trip (latency), W=64 a pipeline.
 *                            Peer: uv_queue_work the same way.
 *                            Target: actx >= 1.5x libuv.
 *   4 KiB preads, 64 in      one thread keeps 64 actx_aio_pread of random
 *   flight                   4 KiB blocks of a file in the page cache in
 *                            flight.  Peers: the same preads done
 *                            synchronously in a tight loop by as many
 *                            threads as the pool has (target >= 0.8x), and
 *                            uv_fs_read with 64 in flight (target >= 1x).
 *
 *   io_uring beside today's  the same 4 KiB preads, 64 in flight, on a
 *   path                     loop whose file AIO uses io_uring (the default
 *                            where the kernel allows it) and on one created
 *                            with ACTX_IO=pool (today's path: preadv2
 *                            RWF_NOWAIT, else the pool).  Targets: >= 1.3x
 *                            today's path, >= 0.8x synchronous preads on
 *                            pool-size threads, >= 4x uv_fs_read.  Also
 *                            uncached reads (a 256 MiB file opened with
 *                            O_DIRECT, 64 in flight; target >= 1x the pool)
 *                            and round trips with one read in flight
 *                            (target >= 2x).  Syscalls per 64-read batch:
 *                            `strace -f -c bench-pool -only uring-io`.
 *
 * Both pools have the same size: actx_pool_set_size(N) and
 * UV_THREADPOOL_SIZE=N (default 4, -p N).  Nothing asserts on timing: the
 * table says met or MISSED and the program exits 0.
 *
 * Options: see --help (-p THREADS, -only LIST for profiling a subset).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness/harness.h"

#ifndef BENCH_NO_ACTX
#include "actx.h"
#endif
#ifdef HAVE_LIBUV
#include <uv.h>
#endif

#define FILE_MB 64
#define BS 4096
#define NBLOCKS ((FILE_MB << 20) / BS)
#define INFLIGHT_IO 64

static int reps = 5;
static double rep_s = 0.3;
static int nthreads = 4;
static int file_fd = -1;
static int direct_fd = -1; /* the 256 MiB O_DIRECT file */
#define DIRECT_MB 256
#define DIRECT_BLOCKS ((DIRECT_MB << 20) / BS)
static const char *only; /* -only LIST (profiling) */

/* Is this figure or implementation selected by -only? */
static bool want(const char *who)
{
    return bench_list_has("actx,uv,raw", who) ? bench_want_impl(who)
                                              : bench_want_fig(who);
}

static uint64_t now_ns(void)
{
    return bench_now_ns();
}

/* xorshift: cheap random block numbers, one state per user. */
static inline uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static inline off_t rnd_off(uint64_t *s)
{
    return (off_t)(rnd(s) % NBLOCKS) * BS;
}

/* ------------------------------------------------------------------------ */
/* actx.                                                                     */

#ifndef BENCH_NO_ACTX
static long a_left, a_done;
static uint64_t a_seed = 88172645463325252ull;

static long null_work(void *opaque)
{
    (void)opaque;
    return 0;
}

static void null_done(void *opaque, long ret)
{
    (void)opaque;
    (void)ret;
    a_done++;
    if (a_left > 0) {
        a_left--;
        if (!actx_submit(null_work, null_done, NULL)) {
            abort();
        }
    }
}

/* Jobs per second with `window` in flight, for about rep_s seconds. */
static double actx_null(int window, long total)
{
    uint64_t t0;

    a_left = total - window;
    a_done = 0;
    t0 = now_ns();
    for (int i = 0; i < window; i++) {
        if (!actx_submit(null_work, null_done, NULL)) {
            abort();
        }
    }
    actx_flush();
    if (a_done != total) {
        fprintf(stderr, "actx: %ld of %ld done\n", a_done, total);
        abort();
    }
    return total / ((now_ns() - t0) / 1e9);
}

static char *a_bufs;

/*
 * io_uring beside today's path.  ACTX_IO is read when a loop is created,
 * so each measurement runs on a fresh thread (a fresh loop) created with
 * or without ACTX_IO=pool; the pool threads are shared.
 */
static int x_fd;
static long x_window;
static int x_backend;

static off_t x_off(void)
{
    uint64_t blocks = x_fd == direct_fd ? DIRECT_BLOCKS : NBLOCKS;

    return (off_t)(rnd(&a_seed) % blocks) * BS;
}

static void x_done(void *opaque, long ret)
{
    char *buf = opaque;

    if (ret != BS) {
        fprintf(stderr, "actx pread: %ld\n", ret);
        abort();
    }
    a_done++;
    if (a_left > 0) {
        a_left--;
        if (!actx_aio_pread(x_fd, buf, BS, x_off(), x_done, buf)) {
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
    t0 = now_ns();
    for (long i = 0; i < x_window; i++) {
        char *buf = a_bufs + (size_t)i * BS;

        if (!actx_aio_pread(x_fd, buf, BS, x_off(), x_done, buf)) {
            abort();
        }
    }
    actx_flush();
    if (a_done != total) {
        abort();
    }
    return total / ((now_ns() - t0) / 1e9);
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

/* x_preads on a new loop: io_uring (uring) or ACTX_IO=pool. */
static double x_on(bool uring, int fd, long window, long total)
{
    struct x_run r = {total, 0};
    pthread_t t;

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
#endif

/* ------------------------------------------------------------------------ */
/* libuv.                                                                    */

#ifdef HAVE_LIBUV
static uv_loop_t *uvl;
static long u_left, u_done;
static uint64_t u_seed = 1181783497276652981ull;

static void uv_null_work(uv_work_t *w)
{
    (void)w;
}

static void uv_null_after(uv_work_t *w, int status)
{
    (void)status;
    u_done++;
    if (u_left > 0) {
        u_left--;
        uv_queue_work(uvl, w, uv_null_work, uv_null_after);
    }
}

static double uv_null(int window, long total)
{
    uv_work_t *w = calloc((size_t)window, sizeof(*w));
    uint64_t t0;

    u_left = total - window;
    u_done = 0;
    t0 = now_ns();
    for (int i = 0; i < window; i++) {
        uv_queue_work(uvl, &w[i], uv_null_work, uv_null_after);
    }
    uv_run(uvl, UV_RUN_DEFAULT);
    if (u_done != total) {
        abort();
    }
    free(w);
    return total / ((now_ns() - t0) / 1e9);
}

struct uv_io {
    uv_fs_t req;
    uv_buf_t buf;
};

static void uv_io_cb(uv_fs_t *req)
{
    struct uv_io *io = (struct uv_io *)req;

    if (req->result != BS) {
        fprintf(stderr, "uv_fs_read: %zd\n", req->result);
        abort();
    }
    uv_fs_req_cleanup(req);
    u_done++;
    if (u_left > 0) {
        u_left--;
        uv_fs_read(uvl, &io->req, file_fd, &io->buf, 1, rnd_off(&u_seed),
                   uv_io_cb);
    }
}

static double uv_preads(long total)
{
    struct uv_io *io = calloc(INFLIGHT_IO, sizeof(*io));
    char *bufs = aligned_alloc(4096, (size_t)INFLIGHT_IO * BS);
    uint64_t t0;

    u_left = total - INFLIGHT_IO;
    u_done = 0;
    t0 = now_ns();
    for (int i = 0; i < INFLIGHT_IO; i++) {
        io[i].buf = uv_buf_init(bufs + (size_t)i * BS, BS);
        uv_fs_read(uvl, &io[i].req, file_fd, &io[i].buf, 1, rnd_off(&u_seed),
                   uv_io_cb);
    }
    uv_run(uvl, UV_RUN_DEFAULT);
    if (u_done != total) {
        abort();
    }
    free(io);
    free(bufs);
    return total / ((now_ns() - t0) / 1e9);
}
#endif

/* ------------------------------------------------------------------------ */
/* Raw: synchronous preads by nthreads threads.                              */

struct raw_arg {
    pthread_barrier_t *bar;
    atomic_bool *stop;
    long ops;
    uint64_t seed;
};

static void *raw_main(void *p)
{
    struct raw_arg *a = p;
    char *buf = aligned_alloc(4096, BS);

    pthread_barrier_wait(a->bar);
    while (!atomic_load_explicit(a->stop, memory_order_relaxed)) {
        for (int i = 0; i < 64; i++) {
            if (pread(file_fd, buf, BS, rnd_off(&a->seed)) != BS) {
                abort();
            }
        }
        a->ops += 64;
    }
    free(buf);
    return NULL;
}

static double raw_preads(double seconds)
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
        a[i].seed = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
        pthread_create(&t[i], NULL, raw_main, &a[i]);
    }
    pthread_barrier_wait(&bar);
    t0 = now_ns();
    usleep((useconds_t)(seconds * 1e6));
    atomic_store(&stop, true);
    for (int i = 0; i < nthreads; i++) {
        pthread_join(t[i], NULL);
        ops += a[i].ops;
    }
    t1 = now_ns();
    pthread_barrier_destroy(&bar);
    free(t);
    free(a);
    return ops / ((t1 - t0) / 1e9);
}

/*
 * The floor of any design with one read in flight: one thread doing the
 * same random 4 KiB preads synchronously, back to back (one syscall each,
 * no hand-off, no loop).
 */
static double raw_single(int fd, long blocks, double seconds)
{
    char *buf = aligned_alloc(4096, BS);
    uint64_t seed = 0x2545f4914f6cdd1dull, t0 = now_ns(), t;
    long ops = 0;

    do {
        for (int i = 0; i < 16; i++) {
            if (pread(fd, buf, BS, (off_t)(rnd(&seed) % blocks) * BS) != BS) {
                abort();
            }
        }
        ops += 16;
        t = now_ns();
    } while (t - t0 < seconds * 1e9);
    free(buf);
    return ops / ((t - t0) / 1e9);
}

/* ------------------------------------------------------------------------ */

/* 256 MiB written, synced, then reopened with O_DIRECT (no page cache). */
static void make_direct_file(void)
{
    char path[] = "/tmp/actx-bench-direct-XXXXXX";
    char *buf = malloc(1 << 20);
    int fd = mkstemp(path);

    if (fd < 0 || !buf) {
        perror("mkstemp");
        exit(1);
    }
    for (int i = 0; i < DIRECT_MB; i++) {
        memset(buf, i, 1 << 20);
        if (pwrite(fd, buf, 1 << 20, (off_t)i << 20) != 1 << 20) {
            perror("pwrite");
            exit(1);
        }
    }
    fdatasync(fd);
    direct_fd = open(path, O_RDONLY | O_DIRECT);
    if (direct_fd < 0) {
        perror("open O_DIRECT");
        exit(1);
    }
    unlink(path);
    close(fd);
    free(buf);
}

static void make_file(void)
{
    char path[] = "/tmp/actx-bench-pool-XXXXXX";
    char *buf = malloc(1 << 20);

    file_fd = mkstemp(path);
    if (file_fd < 0 || !buf) {
        perror("mkstemp");
        exit(1);
    }
    unlink(path);
    for (int i = 0; i < FILE_MB; i++) {
        memset(buf, i, 1 << 20);
        if (pwrite(file_fd, buf, 1 << 20, (off_t)i << 20) != 1 << 20) {
            perror("pwrite");
            exit(1);
        }
    }
    /* Read it all once: in the page cache from here on. */
    for (int i = 0; i < FILE_MB; i++) {
        if (pread(file_fd, buf, 1 << 20, (off_t)i << 20) != 1 << 20) {
            exit(1);
        }
    }
    free(buf);
}

int main(int argc, char **argv)
{
    static const char *threads_arg;
    static const bench_option extra[] = {
        {"-p", "THREADS", "threads in both pools (default 4)", &threads_arg,
         NULL},
        {NULL, NULL, NULL, NULL, NULL},
    };
    static const bench_spec spec = {
        .prog = "bench-pool",
        .what = "the worker pool (null jobs, 1 and 64 in flight) and file "
                "AIO (4 KiB page-cached\npreads, 64 in flight): actx "
                "beside libuv's pool and synchronous preads.",
        .reps = 5,
        .rep_seconds = 0.3,
        .extra = extra,
        .usage_more = "-only uring-io: only the io_uring preads, 64 in "
                      "flight (for strace -c).",
        .figures = "pp,pipe,io,uring,direct,uring-io",
        .impls = "actx,uv,raw",
    };
    bench_fig *f_pp, *f_pipe, *f_io;
    bench_fig *f_x = NULL, *f_p = NULL, *f_d = NULL, *f_dp = NULL;
    double x_ring;
    long n_pp, n_pipe, n_io;
    long n_x = 20000, n_d = 2000, n_p = 2000, n_dp = 500;
    char env[32];

    {
        bench_opts o;

        bench_init(&o, &spec, argc, argv);
        only = o.only;
        reps = o.reps;
        rep_s = o.rep_seconds;
    }
    if (threads_arg) {
        nthreads = atoi(threads_arg);
    }
    if (reps < 1) {
        reps = 1;
    }
    if (nthreads < 1) {
        nthreads = 4;
    }
    snprintf(env, sizeof(env), "%d", nthreads);
    setenv("UV_THREADPOOL_SIZE", env, 1);
#ifndef BENCH_NO_ACTX
    actx_pool_set_size(nthreads);
    a_bufs = aligned_alloc(4096, (size_t)INFLIGHT_IO * BS);
#endif
#ifdef HAVE_LIBUV
    uvl = uv_default_loop();
#endif
    make_file();
    if (want("direct")) {
        make_direct_file();
    }
#ifndef BENCH_NO_ACTX
    if (only && !strcmp(only, "uring-io")) {
        /* For strace -c: only the io_uring preads, 64 in flight. */
        long n = 200000;

        x_ring = x_on(true, file_fd, INFLIGHT_IO, n);
        printf("bench-pool: %ld 4 KiB preads on io_uring, 64 in flight, "
               "%.2f M/s (%ld batches of 64)\n",
               n, x_ring / 1e6, n / INFLIGHT_IO);
        return 0;
    }
#endif

    /* Calibrate counts to about rep_s seconds from a short actx run. */
    n_pp = 2000;
    n_pipe = 20000;
    n_io = 20000;
#ifndef BENCH_NO_ACTX
    actx_null(1, 200); /* warm-up: starts the pool */
    actx_null(64, 2000);
    if (want("pp")) {
        n_pp = (long)(actx_null(1, n_pp) * rep_s) + 1;
    }
    if (want("pipe")) {
        n_pipe = (long)(actx_null(64, n_pipe) * rep_s) + 64;
    }
    if (want("io")) {
        n_io = (long)(x_on(false, file_fd, INFLIGHT_IO, n_io) * rep_s) + 64;
    }
    if (want("uring")) {
        n_x = (long)(x_on(true, file_fd, INFLIGHT_IO, n_x) * rep_s) + 64;
        n_p = (long)(x_on(false, file_fd, 1, n_p) * rep_s) + 1;
    }
    if (want("direct")) {
        n_d = (long)(x_on(true, direct_fd, INFLIGHT_IO, n_d) * rep_s) + 64;
        n_dp = (long)(x_on(false, direct_fd, 1, n_dp) * rep_s) + 1;
    }
#endif
#ifdef HAVE_LIBUV
    uv_null(64, 2000); /* warm-up: starts libuv's pool */
#endif

    printf("bench-pool: %d pool threads in both pools, %d repetitions of "
           "~%.2f s each\n",
           nthreads, reps, rep_s);
    bench_group("pool", "worker pool and file AIO");
    f_pp = bench_fig_new("null job round trip, W=1", "M/s", BENCH_HIGHER);
    f_pipe = bench_fig_new("null jobs, 64 in flight", "M/s", BENCH_HIGHER);
    f_io = bench_fig_new("4 KiB preads, 64 in flight", "M/s", BENCH_HIGHER);
    if (want("uring")) {
        f_x = bench_fig_new("io_uring: 4 KiB preads, 64 in flight", "M/s",
                            BENCH_HIGHER);
        f_p = bench_fig_new("io_uring: pread round trip, W=1", "M/s",
                            BENCH_HIGHER);
    }
    if (want("direct")) {
        f_d = bench_fig_new("io_uring: O_DIRECT 4 KiB, 64 in flight", "M/s",
                            BENCH_HIGHER);
        f_dp = bench_fig_new("io_uring: O_DIRECT round trip, W=1", "M/s",
                             BENCH_HIGHER);
    }
    for (int r = 0; r < reps; r++) {
#ifndef BENCH_NO_ACTX
        if (want("actx") && want("pp")) {
            bench_add(f_pp, "actx", actx_null(1, n_pp) / 1e6);
        }
#endif
#ifdef HAVE_LIBUV
        if (want("uv")) {
            bench_add(f_pp, "libuv uv_queue_work", uv_null(1, n_pp) / 1e6);
            bench_add(f_pipe, "libuv uv_queue_work", uv_null(64, n_pipe) / 1e6);
        }
#endif
#ifndef BENCH_NO_ACTX
        if (want("actx") && want("pipe")) {
            bench_add(f_pipe, "actx", actx_null(64, n_pipe) / 1e6);
        }
        if (want("actx") && want("io")) {
            /* Today's path: preadv2(RWF_NOWAIT), else the pool. */
            bench_add(f_io, "actx",
                      x_on(false, file_fd, INFLIGHT_IO, n_io) / 1e6);
        }
        if (want("uring")) {
            bench_add(f_x, "actx", x_on(true, file_fd, INFLIGHT_IO, n_x) / 1e6);
            bench_add(f_x, "today's path (NOWAIT+pool)",
                      x_on(false, file_fd, INFLIGHT_IO, n_x) / 1e6);
            bench_add(f_p, "today's path (NOWAIT+pool)",
                      x_on(false, file_fd, 1, n_p) / 1e6);
            bench_add(f_p, "actx", x_on(true, file_fd, 1, n_p) / 1e6);
            bench_add(f_p, "sync pread, 1 thread",
                      raw_single(file_fd, NBLOCKS, rep_s) / 1e6);
        }
        if (want("direct")) {
            bench_add(f_d, "pool path",
                      x_on(false, direct_fd, INFLIGHT_IO, n_d) / 1e6);
            bench_add(f_d, "actx",
                      x_on(true, direct_fd, INFLIGHT_IO, n_d) / 1e6);
            bench_add(f_dp, "actx", x_on(true, direct_fd, 1, n_dp) / 1e6);
            bench_add(f_dp, "pool path", x_on(false, direct_fd, 1, n_dp) / 1e6);
            bench_add(f_dp, "sync pread, 1 thread",
                      raw_single(direct_fd, DIRECT_BLOCKS, rep_s) / 1e6);
        }
#endif
        if (want("raw")) {
            bench_add(f_io, "sync pread, pool-size thr",
                      raw_preads(rep_s) / 1e6);
        }
#ifdef HAVE_LIBUV
        if (want("uv")) {
            bench_add(f_io, "libuv uv_fs_read", uv_preads(n_io) / 1e6);
        }
#endif
    }

    bench_peer(f_pp, "libuv uv_queue_work");
    bench_target_ratio(f_pp, "libuv uv_queue_work", 1.5);
    bench_note(f_pp, "one job in flight: submit -> work -> done -> submit");
    bench_fig_done(f_pp);
    bench_peer(f_pipe, "libuv uv_queue_work");
    bench_target_ratio(f_pipe, "libuv uv_queue_work", 1.5);
    bench_note(f_pipe, "one submitting thread; each done submits the next");
    bench_fig_done(f_pipe);
    bench_peer(f_io, "sync pread, pool-size thr");
    bench_peer(f_io, "libuv uv_fs_read");
    bench_target_ratio(f_io, "sync pread, pool-size thr", 0.8);
    bench_note(f_io, "page-cached 64 MiB file, random blocks; also >= 1x "
                     "libuv uv_fs_read");
#ifndef BENCH_NO_ACTX
    {
        struct actx_stats st;

        actx_stats(&st);
        bench_note(f_io,
                   "actx loop over the whole run: %lu sleeps, %lu "
                   "wake-ups for %lu completions",
                   st.sleeps, st.wakeups, st.completions_run);
    }
#endif
    bench_fig_done(f_io);
    if (f_x) {
        bench_peer(f_x, "today's path (NOWAIT+pool)");
        bench_peer(f_x, "sync pread, pool-size thr");
        bench_peer(f_x, "libuv uv_fs_read");
        /* The other peers' samples are those of the figure above, measured
         * in the same repetitions. */
        for (int i = 0; f_io && i < 2; i++) {
            const char *peer =
                i ? "libuv uv_fs_read" : "sync pread, pool-size thr";
            bench_impl *m = bench_impl_of(f_io, peer);

            for (int k = 0; m && k < m->n; k++) {
                bench_add(f_x, peer, m->v[k]);
            }
        }
        bench_target_ratio(f_x, "today's path (NOWAIT+pool)", 1.3);
        bench_target_ratio(f_x, "sync pread, pool-size thr", 0.8);
        bench_target_ratio(f_x, "libuv uv_fs_read", 4.0);
        bench_note(f_x, "actx here = io_uring; today's path = the same "
                        "preads on a loop with ACTX_IO=pool");
        bench_fig_done(f_x);
        bench_peer(f_p, "today's path (NOWAIT+pool)");
        bench_target_ratio(f_p, "today's path (NOWAIT+pool)", 2.0);
        bench_note(f_p, "page-cached, one read in flight; sync pread on 1 "
                        "thread is the floor");
        bench_fig_done(f_p);
    }
    if (f_d) {
        bench_target_ratio(f_d, "pool path", 1.0);
        bench_note(f_d, "uncached: 256 MiB file opened O_DIRECT");
        bench_fig_done(f_d);
        bench_target_ratio(f_dp, "pool path", 2.0);
        bench_note(f_dp, "uncached, one read in flight; sync pread on 1 "
                         "thread is the device's latency");
        bench_fig_done(f_dp);
    }
    close(file_fd);
    if (direct_fd >= 0) {
        close(direct_fd);
    }
    return bench_finish();
}
