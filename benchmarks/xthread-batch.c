/*
 * xthread-batch.c - completions, 1 and 2 producers into one owner (c1,
 * c2): the owner issues in batches what the rings (RING slots) and the
 * outstanding bound allow, runs actx_poll(false), and actx_poll(true) when
 * it neither issued nor ran anything; it counts the done callbacks.
 * Figure: million completions per second.  Peers: the libuv queue idiom
 * under uv_run(UV_RUN_NOWAIT) / (UV_RUN_ONCE), and the raw mailbox.
 */
#include "xthread.h"

static double run_actx(const bench_rep *r)
{
    xthread_arg *a = r->arg;
    xresult x = run_completions(V_ACTX, a->nprod, r->seconds);

    a->sleeps += x.sleeps;
    a->wakeups += x.wakeups;
    a->completed += x.completed;
    return x.mps;
}

#ifdef HAVE_LIBUV
static double run_uv(const bench_rep *r)
{
    return run_completions(V_UV, ((xthread_arg *)r->arg)->nprod, r->seconds)
        .mps;
}
#endif

static double run_raw(const bench_rep *r)
{
    return run_completions(V_RAW, ((xthread_arg *)r->arg)->nprod, r->seconds)
        .mps;
}

static void finish(bench_fig *f, void *arg)
{
    bench_note(f, "also >= 0.9x raw mpsc+eventfd");
    xthread_note_owner(f, arg);
}

static const bench_impl_def impls[] = XTHREAD_IMPLS(run_actx, run_uv, run_raw);

void xthread_batch(const bench_opts *o)
{
    static const char *const keys[] = {"c1", "c2"};
    static const char *const names[] = {"completions, 1 producer",
                                        "completions, 2 producers"};

    (void)o;
    xthread_measure_1p2p(keys, names, impls, "libuv mutex+async", 1.0, finish);
}
