/*
 * xthread-blocking.c - completions with the owner loop of a C service
 * (b1, b2): `while (!done) { issue; actx_poll(true); }` (raw: the same
 * with raw_mb_poll(true)); libuv runs uv_run(UV_RUN_DEFAULT) once and
 * issues from the async callback after each drain.  Issuing is in batches,
 * as in xthread-batch.c.
 */
#include "xthread.h"

static struct {
    enum variant v;
    int nprod;
    unsigned long issued, cap;
    uint64_t deadline;
    bool stopping;
} blk;

/*
 * The owner step: issue what the rings and the outstanding bound allow
 * (nothing once the repetition is over).  With nothing outstanding the
 * owner must issue something before it blocks (else it would sleep for
 * ever): retry until the producers have published the ring room they
 * freed.
 */
static void blocking_issue(void)
{
    do {
        if (bench_now_ns() >= blk.deadline) {
            blk.stopping = true;
            return;
        }
        for (int p = 0; p < blk.nprod; p++) {
            spsc_ring *r = &prods[p]->ring;
            size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
            /* Pairs with the producer's release store of tail. */
            size_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
            size_t room = RING - (h - t);
            unsigned long out = blk.issued - done_count;
            size_t n = blk.cap - out < room ? blk.cap - out : room;

            for (size_t k = 0; k < n; k++) {
                r->slot[(h + k) & (RING - 1)] =
                    new_request(blk.v, xthread_done_cb, NULL);
            }
            if (n) {
                atomic_store_explicit(&r->head, h + n, memory_order_release);
                blk.issued += n;
            }
        }
    } while (blk.issued == done_count);
}

#ifdef HAVE_LIBUV
/* libuv: the owner step runs after each drain, inside uv_run(DEFAULT). */
static void uv_blocking_step(void)
{
    blocking_issue();
    if (blk.stopping && done_count == blk.issued) {
        uv_stop(&uvq_loop);
    }
}
#endif

static double run_blocking(enum variant v, int nprod, double seconds)
{
    uint64_t t0, t1;

    done_count = 0;
    bench_nodes_reset();
    blk.v = v;
    blk.nprod = nprod;
    blk.issued = 0;
    blk.cap = (unsigned long)nprod * OUTSTANDING_PER_PRODUCER;
    blk.stopping = false;
    producers_start(v, nprod, RING);
    t0 = bench_now_ns();
    blk.deadline = t0 + (uint64_t)(seconds * 1e9);
    if (v == V_UV) {
#ifdef HAVE_LIBUV
        blocking_issue();
        uvq_set_after_drain(uv_blocking_step);
        uv_run(&uvq_loop, UV_RUN_DEFAULT);
        uvq_set_after_drain(NULL);
#endif
    } else {
        for (;;) {
            blocking_issue();
            if (blk.stopping && done_count == blk.issued) {
                break;
            }
            owner_poll(v, true);
        }
    }
    t1 = bench_now_ns();
    producers_stop(nprod);
    return (double)done_count / ((double)(t1 - t0) / 1e3);
}

static double run_actx(const bench_rep *r)
{
    return run_blocking(V_ACTX, ((xthread_arg *)r->arg)->nprod, r->seconds);
}

#ifdef HAVE_LIBUV
static double run_uv(const bench_rep *r)
{
    return run_blocking(V_UV, ((xthread_arg *)r->arg)->nprod, r->seconds);
}
#endif

static double run_raw(const bench_rep *r)
{
    return run_blocking(V_RAW, ((xthread_arg *)r->arg)->nprod, r->seconds);
}

static void finish(bench_fig *f, void *arg)
{
    (void)arg;
    bench_note(f, "the owner calls actx_poll(true) every iteration");
}

static const bench_impl_def impls[] = {
    {"actx", "actx", run_actx},
#ifdef HAVE_LIBUV
    {"libuv RUN_DEFAULT", "uv", run_uv},
#endif
    {"raw, always blocking", "raw", run_raw},
    {NULL, NULL, NULL},
};

void xthread_blocking(const bench_opts *o)
{
    static const char *const keys[] = {"b1", "b2"};
    static const char *const names[] = {"completions 1p, poll(true)",
                                        "completions 2p, poll(true)"};

    (void)o;
    xthread_measure_1p2p(keys, names, impls, "libuv RUN_DEFAULT", 1.0, finish);
}
