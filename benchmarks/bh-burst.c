/*
 * bh-burst.c - bh burst x1024 (burst): BENCH_BH_BURST BHs created once;
 * each round schedules all of them and runs them with one actx_bh_poll().
 * ns per BH.  Peers: the raw run queue, libuv idle handles, libevent
 * active events (peers/).
 */
#include <stdio.h>
#include <stdlib.h>

#include "bh.h"

static actx_bh *bhs[BENCH_BH_BURST];
static unsigned long counter;
unsigned long bh_burst_allocs; /* over the measured runs */

static void count_cb(void *opaque)
{
    (void)opaque;
    counter++;
}

static double run_actx(const bench_rep *r)
{
    long rounds = ((const bh_sizes *)r->arg)->burst_rounds;
    uint64_t t0;
    unsigned long a0;

    if (r->rep == 0) {
        bh_burst_allocs = 0; /* the warm-up's do not count */
    }
    counter = 0;
    a0 = allocs_now();
    t0 = bench_now_ns();
    for (long k = 0; k < rounds; k++) {
        for (int i = 0; i < BENCH_BH_BURST; i++) {
            actx_bh_schedule(bhs[i]);
        }
        actx_bh_poll();
    }
    t0 = bench_now_ns() - t0;
    bh_burst_allocs += allocs_now() - a0;
    if (counter != (unsigned long)rounds * BENCH_BH_BURST) {
        fprintf(stderr, "burst_actx: ran %lu of %ld\n", counter,
                rounds * BENCH_BH_BURST);
    }
    return (double)t0 / ((double)rounds * BENCH_BH_BURST);
}

static double run_raw(const bench_rep *r)
{
    return bh_burst_raw(((const bh_sizes *)r->arg)->burst_rounds);
}

#ifdef HAVE_LIBUV
static double run_uv(const bench_rep *r)
{
    return bh_burst_uv(((const bh_sizes *)r->arg)->burst_rounds);
}
#endif

#ifdef HAVE_LIBEVENT
static double run_ev(const bench_rep *r)
{
    return bh_burst_ev(((const bh_sizes *)r->arg)->burst_rounds);
}
#endif

static const bench_impl_def impls[] = {
    {"actx", "actx", run_actx},
    {"raw run queue", "raw", run_raw},
#ifdef HAVE_LIBUV
    {"libuv idle", "uv", run_uv},
#endif
#ifdef HAVE_LIBEVENT
    {"libevent active", "libevent", run_ev},
#endif
    {NULL, NULL, NULL},
};

void bh_burst(const bh_sizes *z)
{
    for (int i = 0; i < BENCH_BH_BURST; i++) {
        bhs[i] = actx_bh_new(count_cb, NULL);
        if (!bhs[i]) {
            perror("actx_bh_new");
            exit(1);
        }
    }
    /* The warm-up run fills caches and free lists. */
    bench_measure(&(bench_figure){
        .key = "burst",
        .name = "bh burst x1024",
        .unit = "ns/BH",
        .dir = BENCH_LOWER,
        .impls = impls,
        .arg = (void *)z,
        .warmup = 1,
        .target_peer = "libuv idle", /* issue 22: at most libuv idle's time */
        .target_ratio = 1.0,
        .target_abs = 8,
    });
    for (int i = 0; i < BENCH_BH_BURST; i++) {
        actx_bh_delete(bhs[i]);
    }
}
