/*
 * bench-pool.c - the worker pool and file AIO against libuv's thread pool
 * and against plain synchronous preads, all in the same run.  One
 * scenario per file (pool.h):
 *   pool-roundtrip.c  pp, pipe             null jobs, 1 and 64 in flight
 *   pool-aio.c        io, uring, direct    4 KiB preads: today's path,
 *                                          io_uring, O_DIRECT
 *   pool-percpu.c     percpu               4 KiB preads, a loop per CPU:
 *                                          rate and CPU time per read
 * Both pools have the same size: actx_pool_set_size(N) and
 * UV_THREADPOOL_SIZE=N (default 4, -p N).  `strace -f -c bench-pool -only
 * uring-io` does only io_uring reads, 64 in flight, and says how many
 * batches it made: the syscalls per batch.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool.h"

pool_setup pool = {.nthreads = 4, .file_fd = -1, .direct_fd = -1};

bool pool_want(const char *key)
{
    return bench_list_has("actx,uv,raw", key) ? bench_want_impl(key)
                                              : bench_want_fig(key);
}

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
    pool.direct_fd = open(path, O_RDONLY | O_DIRECT);
    if (pool.direct_fd < 0) {
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

    pool.file_fd = mkstemp(path);
    if (pool.file_fd < 0 || !buf) {
        perror("mkstemp");
        exit(1);
    }
    unlink(path);
    for (int i = 0; i < FILE_MB; i++) {
        memset(buf, i, 1 << 20);
        if (pwrite(pool.file_fd, buf, 1 << 20, (off_t)i << 20) != 1 << 20) {
            perror("pwrite");
            exit(1);
        }
    }
    /* Read it all once: in the page cache from here on. */
    for (int i = 0; i < FILE_MB; i++) {
        if (pread(pool.file_fd, buf, 1 << 20, (off_t)i << 20) != 1 << 20) {
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
        .figures = "pp,pipe,io,uring,direct,percpu,uring-io",
        .impls = "actx,uv,raw",
    };
    bench_opts o;
    char env[32];

    bench_init(&o, &spec, argc, argv);
    pool.reps = o.reps;
    pool.rep_s = o.rep_seconds;
    if (threads_arg) {
        pool.nthreads = atoi(threads_arg);
    }
    if (pool.nthreads < 1) {
        pool.nthreads = 4;
    }
    snprintf(env, sizeof(env), "%d", pool.nthreads);
    setenv("UV_THREADPOOL_SIZE", env, 1);
    actx_pool_set_size(pool.nthreads);
    make_file();
    if (o.only && !strcmp(o.only, "uring-io")) {
        long n = 200000;
        double rate = x_on(true, pool.file_fd, INFLIGHT_IO, n);

        printf("bench-pool: %ld 4 KiB preads on io_uring, 64 in flight, "
               "%.2f M/s (%ld batches of 64)\n",
               n, rate / 1e6, n / INFLIGHT_IO);
        return 0;
    }
    if (pool_want("direct")) {
        make_direct_file();
    }

    printf("bench-pool: %d pool threads in both pools, %d repetitions of "
           "~%.2f s each\n",
           pool.nthreads, pool.reps, pool.rep_s);
    bench_group("pool", "worker pool and file AIO");
    pool_roundtrip();
    pool_aio();
    pool_percpu();
    close(pool.file_fd);
    if (pool.direct_fd >= 0) {
        close(pool.direct_fd);
    }
    return bench_finish();
}
