/*
 * xthread-batch.c - completions, 1 and 2 producers into one owner (c1,
 * c2): the owner issues in batches what the rings (RING slots) and the
 * outstanding bound allow, runs actx_poll(false), and actx_poll(true) when
 * it neither issued nor ran anything; it counts the done callbacks.
 * Figure: million completions per second.  Peers: the libuv queue idiom
 * under uv_run(UV_RUN_NOWAIT) / (UV_RUN_ONCE), and the raw mailbox.
 */
#include "xthread.h"

typedef struct {
    int nprod;
    unsigned long sleeps, wakeups, completed;
} batch_arg;

static double run_actx(const bench_rep *r)
{
    batch_arg *a = r->arg;
    xresult x = run_completions(V_ACTX, a->nprod, r->seconds);

    a->sleeps += x.sleeps;
    a->wakeups += x.wakeups;
    a->completed += x.completed;
    return x.mps;
}

#ifdef HAVE_LIBUV
static double run_uv(const bench_rep *r)
{
    return run_completions(V_UV, ((batch_arg *)r->arg)->nprod, r->seconds).mps;
}
#endif

static double run_raw(const bench_rep *r)
{
    return run_completions(V_RAW, ((batch_arg *)r->arg)->nprod, r->seconds).mps;
}

static void finish(bench_fig *f, void *arg)
{
    batch_arg *a = arg;

    bench_note(f, "also >= 0.9x raw mpsc+eventfd");
    if (a->completed) {
        bench_note(f,
                   "actx owner: %.3f sleeps, %.3f wake-ups per 1000 "
                   "completions",
                   1000.0 * (double)a->sleeps / (double)a->completed,
                   1000.0 * (double)a->wakeups / (double)a->completed);
    }
}

static const bench_impl_def impls[] = {
    {"actx", "actx", run_actx},
#ifdef HAVE_LIBUV
    {"libuv mutex+async", "uv", run_uv},
#endif
    {"raw mpsc+eventfd", "raw", run_raw},
    {NULL, NULL, NULL},
};

void xthread_batch(const bench_opts *o)
{
    (void)o;
    for (int nprod = 1; nprod <= MAX_PRODUCERS; nprod++) {
        batch_arg a = {.nprod = nprod};

        /*
         * split 3: short interleaved repetitions give every implementation
         * a quiet turn on a shared machine.
         */
        bench_measure(&(bench_figure){
            .key = nprod == 1 ? "c1" : "c2",
            .name = nprod == 1 ? "completions, 1 producer"
                               : "completions, 2 producers",
            .unit = "M/s",
            .dir = BENCH_HIGHER,
            .impls = impls,
            .arg = &a,
            .split = 3,
            .target_peer = "libuv mutex+async",
            .target_ratio = 1.0,
            .finish = finish,
        });
    }
}
