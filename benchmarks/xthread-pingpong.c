/*
 * xthread-pingpong.c - round trips between two threads' blocking loops
 * (pp): thread A actx_ctx_call()s into B's root context, B's function
 * actx_ctx_call()s back into A; A sits in actx_poll(true), B in
 * actx_run().  Figures: the median round trip (the target compares
 * medians), and the fastest block of PP_BLOCK round trips of each
 * repetition as a labelled second figure.  Peers (peers/pingpong.h): two
 * eventfds, each in its thread's epoll set; uv_async between two libuv
 * loops (reference).
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include "xthread.h"

static actx_ctx *_Atomic pp_ctx_b;
static int64_t pp_poll_ns; /* actx_set_poll_max_ns of both loops */
static actx_ctx *pp_ctx_a;
static int pp_got;

static void actx_pong_fn(void *opaque)
{
    (void)opaque;
    pp_got = 1; /* runs on A */
}

static void actx_ping_fn(void *opaque)
{
    (void)opaque;
    actx_ctx_call(pp_ctx_a, actx_pong_fn, NULL); /* runs on B */
}

static void *actx_pong_main(void *arg)
{
    (void)arg;
    if (actx_thread_init() < 0) {
        fprintf(stderr, "actx_thread_init failed on B\n");
        exit(1);
    }
    actx_set_poll_max_ns(pp_poll_ns);
    atomic_store(&pp_ctx_b, actx_ctx_current());
    actx_run();
    actx_thread_shutdown();
    return NULL;
}

pp_result pingpong_actx(double seconds, int64_t poll_ns)
{
    pthread_t th;
    actx_ctx *b;
    pp_clock clk;

    pp_poll_ns = poll_ns;
    pp_ctx_a = actx_ctx_current();
    actx_set_poll_max_ns(pp_poll_ns);
    atomic_store(&pp_ctx_b, NULL);
    pthread_create(&th, NULL, actx_pong_main, NULL);
    while (!(b = atomic_load(&pp_ctx_b))) {
        sched_yield();
    }
    pp_clock_start(&clk, seconds);
    for (;;) {
        pp_got = 0;
        if (actx_ctx_call(b, actx_ping_fn, NULL) < 0) {
            fprintf(stderr, "actx_ctx_call failed\n");
            exit(1);
        }
        while (!pp_got) {
            actx_poll(true);
        }
        if (pp_clock_tick(&clk)) {
            break;
        }
    }
    actx_stop(b);
    actx_ctx_unref(b);
    pthread_join(th, NULL);
    actx_ctx_unref(pp_ctx_a);
    actx_set_poll_max_ns(0);
    return pp_clock_result(&clk);
}

static pp_result pp_actx(double seconds)
{
    return pingpong_actx(seconds, 0);
}

static const struct {
    const char *name, *key;
    pp_result (*run)(double seconds);
} impls[] = {
    {"actx", "actx", pp_actx},
    {"raw eventfd+epoll", "raw", pingpong_raw},
#ifdef HAVE_LIBUV
    {"libuv async", "uv", pingpong_uv},
#endif
};
#define NIMPLS (int)(sizeof(impls) / sizeof(impls[0]))

void xthread_pingpong(const bench_opts *o)
{
    bench_fig *med, *fast;

    if (!bench_want_fig("pp")) {
        return;
    }
    med = bench_fig_new("ping-pong round trip", "us/rt", BENCH_LOWER);
    fast =
        bench_fig_new("ping-pong round trip, fastest 32", "us/rt", BENCH_LOWER);
    /*
     * Round trips are wake-up latencies, the noisiest figure on a shared
     * VM: ten times as many repetitions, a tenth as long, so that every
     * implementation gets turns in the machine's fast and slow periods.
     * Both figures come from the same runs.
     */
    for (int r = 0; r < 10 * o->reps; r++) {
        for (int k = 0; k < NIMPLS; k++) {
            int i = r % 2 ? NIMPLS - 1 - k : k;
            pp_result x;

            if (!bench_want_impl(impls[i].key)) {
                continue;
            }
            x = impls[i].run(o->rep_seconds / 10);
            bench_add(med, impls[i].name, x.median_us);
            bench_add(fast, impls[i].name, x.fastest_us);
        }
    }
    bench_target_ratio(med, "raw eventfd+epoll", 1 / 1.1);
    bench_note(med, "each repetition: its median round trip");
    bench_fig_done(med);
    bench_note(fast,
               "each repetition: its fastest block of %d round trips "
               "(no target: the median above is the figure)",
               PP_BLOCK);
    bench_fig_done(fast);
}
