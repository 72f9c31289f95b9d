/*
 * xthread-polling.c - actx with adaptive polling on (actx_set_poll_max_ns):
 *   p1, p2  the batch completions (xthread-batch.c) with POLL_NS on the
 *           owner, against actx with polling off in the same run: not
 *           slower;
 *   ppp     the ping-pong with POLL_NS on both loops, against the sleeping
 *           raw eventfd+epoll round trip and two threads spinning on
 *           atomics (the floor); medians, as in xthread-pingpong.c;
 *   idle    the CPU an idle loop with polling on uses in 1 s (getrusage),
 *           after its window was grown to the maximum.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "xthread.h"

static double run_polling(const bench_rep *r)
{
    actx_set_poll_max_ns(POLL_NS);
    double v =
        run_completions(V_ACTX, ((xthread_arg *)r->arg)->nprod, r->seconds).mps;

    actx_set_poll_max_ns(0);
    return v;
}

static double run_not_polling(const bench_rep *r)
{
    return run_completions(V_ACTX, ((xthread_arg *)r->arg)->nprod, r->seconds)
        .mps;
}

static void finish_completions(bench_fig *f, void *arg)
{
    (void)arg;
    bench_note(f,
               "actx = poll_max_ns %d on the owner; target: not slower, "
               "within 3%% noise",
               POLL_NS);
}

static const bench_impl_def completions[] = {
    {"actx", "actx", run_polling},
    {"actx, polling off", "actx", run_not_polling},
    {NULL, NULL, NULL},
};

static double ppp_actx(const bench_rep *r)
{
    return pingpong_actx(r->seconds, POLL_NS).median_us;
}

static double ppp_raw(const bench_rep *r)
{
    return pingpong_raw(r->seconds).median_us;
}

static double ppp_spin(const bench_rep *r)
{
    return pingpong_spin(r->seconds).median_us;
}

static void finish_ppp(bench_fig *f, void *arg)
{
    (void)arg;
    bench_note(f, "poll_max_ns %d on both loops; medians; also <= 2 us",
               POLL_NS);
}

static const bench_impl_def pingpong[] = {
    {"actx", "actx", ppp_actx},
    {"raw eventfd+epoll", "raw", ppp_raw},
    {"raw spin (floor)", "raw", ppp_spin},
    {NULL, NULL, NULL},
};

static void idle_timer_cb(void *opaque)
{
    *(int *)opaque = 1;
}

static double thread_cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_THREAD, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/*
 * A loop with polling on and nothing to do for 1 s: its window is first
 * grown to the maximum by a polling ping-pong, then it waits for a timer
 * 1 s away.  Figure: % of one CPU used meanwhile (getrusage).
 */
static void fig_idle(void)
{
    bench_fig *f =
        bench_fig_new("idle 1 s, polling on", "% of a CPU", BENCH_LOWER);
    actx_timer *t;
    int fired = 0;
    double c0, c1;
    uint64_t w0, w1;

    pingpong_actx(0.05, POLL_NS);
    actx_set_poll_max_ns(POLL_NS);
    t = actx_timer_new(idle_timer_cb, &fired);
    if (!t) {
        perror("actx_timer_new");
        exit(1);
    }
    c0 = thread_cpu_s();
    w0 = bench_now_ns();
    actx_timer_mod(t, actx_now_ns() + 1000000000ull);
    while (!fired) {
        actx_poll(true);
    }
    w1 = bench_now_ns();
    c1 = thread_cpu_s();
    actx_timer_free(t);
    actx_set_poll_max_ns(0);
    bench_add(f, "actx", 100.0 * (c1 - c0) / ((double)(w1 - w0) / 1e9));
    bench_target_abs(f, 2.0);
    bench_note(f,
               "getrusage of the owner thread; window first grown to "
               "poll_max_ns %d",
               POLL_NS);
    bench_fig_done(f);
}

void xthread_polling(const bench_opts *o)
{
    static const char *const keys[] = {"p1", "p2"};
    static const char *const names[] = {"completions 1p, polling on",
                                        "completions 2p, polling on"};

    (void)o;
    /*
     * "Not slower": the two arms run the same code while the owner is
     * busy, so the target allows the noise between two runs of the same
     * code, not a real loss.
     */
    xthread_measure_1p2p(keys, names, completions, "actx, polling off", 0.97,
                         finish_completions);
    /* The polled round trip is >= 4x faster than the sleeping raw one. */
    bench_measure(&(bench_figure){
        .key = "ppp",
        .name = "ping-pong, polling on",
        .unit = "us/rt",
        .dir = BENCH_LOWER,
        .impls = pingpong,
        .split = 10,
        .target_peer = "raw eventfd+epoll",
        .target_ratio = 4.0,
        .finish = finish_ppp,
    });
    if (bench_want_fig("idle")) {
        fig_idle();
    }
}
