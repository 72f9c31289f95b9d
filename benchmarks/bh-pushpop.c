/*
 * bh-pushpop.c - push+pop (pushpop): actx_push() + actx_pop(), ns per
 * pair, beside GLib's g_main_context_push/pop_thread_default() of one
 * context; and the allocation figures: malloc/calloc/realloc/memalign
 * calls per push+pop and per BH in the steady state (counted by
 * bench-bh.c's wrappers over the measured runs).
 */
#include "bh.h"

static unsigned long actx_allocs, actx_pairs;
#ifdef HAVE_GLIB
static unsigned long glib_allocs, glib_pairs;
#endif

static double run_actx(const bench_rep *r)
{
    long n = ((const bh_sizes *)r->arg)->pushpop_n;
    uint64_t t0;
    unsigned long a0;

    a0 = allocs_now();
    t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        actx_push();
        actx_pop();
    }
    t0 = bench_now_ns() - t0;
    if (r->rep >= 0) { /* the warm-up's allocations do not count */
        actx_allocs += allocs_now() - a0;
        actx_pairs += (unsigned long)n;
    }
    return (double)t0 / (double)n;
}

#ifdef HAVE_GLIB
static double run_glib(const bench_rep *r)
{
    long n = ((const bh_sizes *)r->arg)->pushpop_n;
    unsigned long a0 = allocs_now();
    double v = pushpop_glib(n);

    if (r->rep >= 0) {
        glib_allocs += allocs_now() - a0;
        glib_pairs += (unsigned long)n;
    }
    return v;
}
#endif

static const bench_impl_def impls[] = {
    {"actx", "actx", run_actx},
#ifdef HAVE_GLIB
    {"glib push/pop default", "glib", run_glib},
#endif
    {NULL, NULL, NULL},
};

void bh_pushpop(const bh_sizes *z)
{
    bench_fig *f;

    bench_measure(&(bench_figure){
        .key = "pushpop",
        .name = "push+pop",
        .unit = "ns/pair",
        .dir = BENCH_LOWER,
        .impls = impls,
        .arg = (void *)z,
        .warmup = 1,
        .target_abs = 20,
    });
    if (!bench_count_malloc || !bench_want_fig("pushpop")) {
        return;
    }
    /* Counts, not timings: one "sample" over all the measured runs. */
    f = bench_fig_new("mallocs per push+pop", "calls", BENCH_LOWER);
    bench_add(f, "actx", actx_pairs ? (double)actx_allocs / actx_pairs : NAN);
#ifdef HAVE_GLIB
    bench_add(f, "glib push/pop default",
              glib_pairs ? (double)glib_allocs / glib_pairs : NAN);
#endif
    bench_target_abs(f, 0);
    bench_fig_done(f);
}

void bh_mallocs_per_bh(const bh_sizes *z, int reps)
{
    bench_fig *f;

    if (!bench_count_malloc || !bench_want_fig("burst") ||
        !bench_want_fig("chain") || !bench_want_impl("actx")) {
        return;
    }
    f = bench_fig_new("mallocs per BH (burst+chain)", "calls", BENCH_LOWER);
    bench_add(
        f, "actx",
        (double)(bh_burst_allocs + bh_chain_allocs) /
            ((double)reps * (z->burst_rounds * BENCH_BH_BURST + z->chain_n)));
    bench_target_abs(f, 0);
    bench_fig_done(f);
}
