/*
 * pool-roundtrip.c - null jobs through the worker pool (pp, pipe): one
 * submitting thread keeps W null jobs in flight, each done submits the
 * next.  W=1 is a pure round trip (latency: submit -> work -> done ->
 * submit), W=64 a pipeline.  Peer: uv_queue_work the same way
 * (peers/uv-pool.c).  Rates, M jobs/s.
 */
#include <stdio.h>
#include <stdlib.h>

#include "pool.h"

static long a_left, a_done;

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

/* Jobs per second with `window` in flight, `total` in all. */
static double actx_null(int window, long total)
{
    uint64_t t0;

    a_left = total - window;
    a_done = 0;
    t0 = bench_now_ns();
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
    return total / ((bench_now_ns() - t0) / 1e9);
}

typedef struct {
    int window;
    long total; /* calibrated to about -t seconds of actx */
} null_arg;

static double run_actx(const bench_rep *r)
{
    const null_arg *a = r->arg;

    return actx_null(a->window, a->total) / 1e6;
}

#ifdef HAVE_LIBUV
static double run_uv(const bench_rep *r)
{
    const null_arg *a = r->arg;

    return uv_pool_null(a->window, a->total) / 1e6;
}
#endif

static const bench_impl_def impls[] = {
    {"actx", "actx", run_actx},
#ifdef HAVE_LIBUV
    {"libuv uv_queue_work", "uv", run_uv},
#endif
    {NULL, NULL, NULL},
};

static void note_pp(bench_fig *f, void *arg)
{
    (void)arg;
    bench_note(f, "one job in flight: submit -> work -> done -> submit; "
                  "the goal stays 1.5x libuv");
}

static void note_pipe(bench_fig *f, void *arg)
{
    (void)arg;
    bench_note(f, "one submitting thread; each done submits the next");
}

void pool_roundtrip(void)
{
    null_arg pp = {1, 2000}, pipe = {64, 20000};

    /* Warm-up: start both pools. */
    actx_null(1, 200);
    actx_null(64, 2000);
#ifdef HAVE_LIBUV
    uv_pool_null(64, 2000);
#endif
    /* Calibrate the counts to about -t seconds from a short actx run. */
    if (pool_want("pp")) {
        pp.total = (long)(actx_null(1, pp.total) * pool.rep_s) + 1;
    }
    if (pool_want("pipe")) {
        pipe.total = (long)(actx_null(64, pipe.total) * pool.rep_s) + 64;
    }
    bench_measure(&(bench_figure){
        .key = "pp",
        .name = "null job round trip, W=1",
        .unit = "M/s",
        .dir = BENCH_HIGHER,
        .impls = impls,
        .arg = &pp,
        .target_peer = "libuv uv_queue_work",
        .target_ratio = 1.0,
        .finish = note_pp,
    });
    bench_measure(&(bench_figure){
        .key = "pipe",
        .name = "null jobs, 64 in flight",
        .unit = "M/s",
        .dir = BENCH_HIGHER,
        .impls = impls,
        .arg = &pipe,
        .target_peer = "libuv uv_queue_work",
        .target_ratio = 1.5,
        .finish = note_pipe,
    });
}
