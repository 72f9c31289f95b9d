/*
 * bh-chain.c - bh chain (chain): one BH whose callback schedules itself
 * again, driven by actx_poll(false) with no fd handler registered: the
 * whole per-iteration cost of the loop.  ns per BH.  Peers: the raw run
 * queue + its poll, a libuv idle handle with uv_run(UV_RUN_NOWAIT) per
 * iteration, a libevent event that re-activates itself (peers/).
 */
#include <stdio.h>
#include <stdlib.h>

#include "bh.h"

static actx_bh *chain_bh;
static long chain_left;
unsigned long bh_chain_allocs; /* over the measured runs */

static void chain_cb(void *opaque)
{
    (void)opaque;
    if (--chain_left > 0) {
        actx_bh_schedule(chain_bh);
    }
}

static double run_actx(const bench_rep *r)
{
    long n = ((const bh_sizes *)r->arg)->chain_n;
    uint64_t t0;
    unsigned long a0;

    if (r->rep == 0) {
        bh_chain_allocs = 0; /* the warm-up's do not count */
    }
    chain_left = n;
    a0 = allocs_now();
    t0 = bench_now_ns();
    actx_bh_schedule(chain_bh);
    while (chain_left > 0) {
        actx_poll(false);
    }
    t0 = bench_now_ns() - t0;
    bh_chain_allocs += allocs_now() - a0;
    return (double)t0 / (double)n;
}

static double run_raw(const bench_rep *r)
{
    return bh_chain_raw(((const bh_sizes *)r->arg)->chain_n);
}

#ifdef HAVE_LIBUV
static double run_uv(const bench_rep *r)
{
    /* An epoll_wait per iteration makes libuv's slow: a 16th is plenty. */
    return bh_chain_uv(((const bh_sizes *)r->arg)->chain_n / 16);
}
#endif

#ifdef HAVE_LIBEVENT
static double run_ev(const bench_rep *r)
{
    return bh_chain_ev(((const bh_sizes *)r->arg)->chain_n);
}

static void finish(bench_fig *f, void *arg)
{
    if (bh_chain_ev_loops()) {
        bench_note(f, "libevent ran the chain in %lu loop calls for %ld BHs",
                   bh_chain_ev_loops(), ((const bh_sizes *)arg)->chain_n);
    }
}
#endif

static const bench_impl_def impls[] = {
    {"actx", "actx", run_actx},
    {"raw run queue", "raw", run_raw},
#ifdef HAVE_LIBUV
    {"libuv idle NOWAIT", "uv", run_uv},
#endif
#ifdef HAVE_LIBEVENT
    {"libevent active chain", "libevent", run_ev},
#endif
    {NULL, NULL, NULL},
};

void bh_chain(const bh_sizes *z)
{
    chain_bh = actx_bh_new(chain_cb, NULL);
    if (!chain_bh) {
        perror("actx_bh_new");
        exit(1);
    }
    bench_measure(&(bench_figure){
        .key = "chain",
        .name = "bh chain (poll per BH)",
        .unit = "ns/BH",
        .dir = BENCH_LOWER,
        .impls = impls,
        .arg = (void *)z,
        .warmup = 1,
        .target_abs = 15,
#ifdef HAVE_LIBEVENT
        .finish = finish,
#endif
    });
    actx_bh_delete(chain_bh);
}
