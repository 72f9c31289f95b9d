/*
 * xthread-reissue.c - completions re-issued from the done callback (r1,
 * r2): the shape of a service whose owner submits the next request when
 * the previous one completes.
 *
 * The owner issues a first window of REISSUE_OUTSTANDING requests per
 * producer, then issues only from the done callbacks: each creates the
 * next request (actx_req_new) and hands it to the same producer,
 * publishing it at once (no batching outside callbacks).  The owner sits
 * in actx_poll(true).  libuv: the same pipeline (mutex queue +
 * uv_async_send) under one uv_run(UV_RUN_DEFAULT), stopped by the last
 * done callback; raw: a raw_mb_poll(true) loop.  Figure: million
 * completions per second.
 *
 * A producer's outstanding requests never exceed its ring's slots, so a
 * done callback always finds the slot it writes already consumed: the
 * owner never waits for ring room.
 */
#include <string.h>

#include "xthread.h"

#define REISSUE_OUTSTANDING RING_MAX /* per producer */

static struct {
    enum variant v;
    unsigned long issued;
    uint64_t deadline;
    bool stopping;
    /* Ring occupancy seen at every 256th issue, per variant, this figure. */
    double occ_sum[3];
    unsigned long occ_n[3];
} own;

static void reissue_done(void *opaque, long ret);

/* Hand one new request to producer pr and publish it at once. */
static inline void issue(producer *pr)
{
    spsc_ring *r = &pr->ring;
    size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);

    if ((own.issued & 255) == 0) {
        own.occ_sum[own.v] +=
            (double)(h - atomic_load_explicit(&r->tail, memory_order_relaxed));
        own.occ_n[own.v]++;
    }

    r->slot[h & (REISSUE_OUTSTANDING - 1)] =
        new_request(own.v, reissue_done, pr);
    /* Pairs with the producer's acquire load of head. */
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
    own.issued++;
}

static void reissue_done(void *opaque, long ret)
{
    (void)ret;
    done_count++;
    if (!own.stopping && (done_count & 1023) == 0 &&
        bench_now_ns() >= own.deadline) {
        own.stopping = true;
    }
    if (!own.stopping) {
        issue(opaque);
    }
#ifdef HAVE_LIBUV
    else if (own.v == V_UV && done_count == own.issued) {
        uv_stop(&uvq_loop);
    }
#endif
}

static double run_reissue(enum variant v, xthread_arg *a, double seconds)
{
    struct actx_stats st0, st1;
    uint64_t t0, t1;

    own.v = v;
    own.issued = 0;
    own.stopping = false;
    done_count = 0;
    bench_nodes_reset();
    producers_start(v, a->nprod, REISSUE_OUTSTANDING);
    actx_stats(&st0);
    t0 = bench_now_ns();
    own.deadline = t0 + (uint64_t)(seconds * 1e9);
    for (int k = 0; k < REISSUE_OUTSTANDING; k++) {
        for (int p = 0; p < a->nprod; p++) {
            issue(prods[p]);
        }
    }
    if (v == V_UV) {
#ifdef HAVE_LIBUV
        uv_run(&uvq_loop, UV_RUN_DEFAULT);
#endif
    } else {
        while (!own.stopping || done_count != own.issued) {
            owner_poll(v, true);
        }
    }
    t1 = bench_now_ns();
    actx_stats(&st1);
    producers_stop(a->nprod);
    if (v == V_ACTX) {
        a->sleeps += st1.sleeps - st0.sleeps;
        a->wakeups += st1.wakeups - st0.wakeups;
        a->completed += done_count;
    }
    return (double)done_count / ((double)(t1 - t0) / 1e3);
}

static double run_actx(const bench_rep *r)
{
    return run_reissue(V_ACTX, r->arg, r->seconds);
}

#ifdef HAVE_LIBUV
static double run_uv(const bench_rep *r)
{
    return run_reissue(V_UV, r->arg, r->seconds);
}
#endif

static double run_raw(const bench_rep *r)
{
    return run_reissue(V_RAW, r->arg, r->seconds);
}

static void finish(bench_fig *f, void *arg)
{
    xthread_arg *a = arg;
    bench_stat s = bench_stat_of(&f->impl[0]);

    bench_note(f, "%d outstanding; actx %.1f ns per completion",
               a->nprod * REISSUE_OUTSTANDING, 1e3 / s.median);
    xthread_note_owner(f, a);
    /*
     * Where the requests wait tells which stage is the slower: a full
     * ring, the producers (the owner sleeps between batches); an empty
     * one, the owner (the producers spin on the ring head it writes).
     */
    bench_note(f,
               "requests waiting in a producer's ring (mean, of %d): "
               "actx %.0f, libuv %.0f, raw %.0f",
               REISSUE_OUTSTANDING,
               own.occ_n[V_ACTX] ? own.occ_sum[V_ACTX] / own.occ_n[V_ACTX]
                                 : NAN,
               own.occ_n[V_UV] ? own.occ_sum[V_UV] / own.occ_n[V_UV] : NAN,
               own.occ_n[V_RAW] ? own.occ_sum[V_RAW] / own.occ_n[V_RAW] : NAN);
    memset(own.occ_sum, 0, sizeof(own.occ_sum));
    memset(own.occ_n, 0, sizeof(own.occ_n));
}

static const bench_impl_def impls[] = XTHREAD_IMPLS(run_actx, run_uv, run_raw);

void xthread_reissue(const bench_opts *o)
{
    static const char *const keys[] = {"r1", "r2"};
    static const char *const names[] = {"completions re-issued from done, 1p",
                                        "completions re-issued from done, 2p"};
    static const char *const skeys[] = {"r1s", "r2s"};
    static const char *const snames[] = {"re-issued, producer sleeps idle, 1p",
                                         "re-issued, producer sleeps idle, 2p"};

    (void)o;
    xthread_measure_1p2p(keys, names, impls, "libuv mutex+async", 1.2, finish);
    /*
     * The same pipeline with producers that sleep when their ring is
     * empty instead of spinning on its head (xthread.h): no target, it
     * tells how much of r1/r2 the spinning producer sets.
     */
    producer_idle_sleeps = true;
    xthread_measure_1p2p(skeys, snames, impls, NULL, 0, finish);
    producer_idle_sleeps = false;
}
