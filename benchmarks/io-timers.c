/*
 * io-timers.c - timers arm+fire (timers, curve): NTIMERS timers made
 * once; per run each is armed with a random deadline in the past (all
 * due, random order), then one actx_poll(false) fires them all.  ns per
 * timer arm+fire; every run checks that each timer fired exactly once.
 * Peers: a raw binary min-heap (peers/raw-timerheap.c) on the same
 * deadlines; libuv uv_timer (peers/uv-timer.c; all timeouts 0).  The
 * curve: the same for 10, 100, ... 1e6 timers armed at once; its target
 * is a cost per timer growing at most like the raw heap's (O(log n) by
 * construction; time per timer also grows with cache misses, for both).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "peers/raw-timerheap.h"
#include "peers/uv-timer.h"

#define NTIMERS 10000      /* the timers figure */
#define TIMERS_MAX 1000000 /* the end of the curve */

static uint64_t *deadlines; /* [TIMERS_MAX], random, all in the past */
static unsigned char *hits; /* [TIMERS_MAX]: times timer i fired */
static long fired;
static bool timers_ok = true; /* every run so far fired each timer once */

static void count_cb(void *opaque)
{
    hits[(intptr_t)opaque]++;
    fired++;
}

/* Did every one of the n timers fire exactly once since hits were reset? */
static bool hits_once(int n)
{
    if (fired != n) {
        return false;
    }
    for (int i = 0; i < n; i++) {
        if (hits[i] != 1) {
            return false;
        }
    }
    return true;
}

static double timers_actx(int n)
{
    static actx_timer **t;
    static int made;
    uint64_t t0, t1;

    if (!t) {
        t = calloc(TIMERS_MAX, sizeof(*t));
    }
    for (; made < n; made++) {
        t[made] = actx_timer_new(count_cb, (void *)(intptr_t)made);
        if (!t[made]) {
            perror("actx_timer_new");
            exit(1);
        }
    }
    t0 = bench_now_ns();
    for (int i = 0; i < n; i++) {
        actx_timer_mod(t[i], deadlines[i]);
    }
    actx_poll(false);
    t1 = bench_now_ns();
    return (double)(t1 - t0) / n;
}

enum timer_impl { T_ACTX, T_RAW, T_UV };

/*
 * One sample of n timers: runs of n repeated until at least 1e5 timers
 * were armed (so that small n are not one clock read), ns per timer.
 */
static double timers_sample(enum timer_impl im, int n)
{
    int runs = n >= 100000 ? 1 : 100000 / n;
    double sum = 0;

    for (int i = 0; i < runs; i++) {
        memset(hits, 0, (size_t)n);
        fired = 0;
        switch (im) {
        case T_ACTX:
            sum += timers_actx(n);
            break;
        case T_RAW:
            sum += raw_timers_run(n, TIMERS_MAX, deadlines, count_cb);
            break;
        case T_UV:
#ifdef HAVE_LIBUV
            sum += uv_timers_run(n, TIMERS_MAX, count_cb);
#endif
            break;
        }
        timers_ok &= hits_once(n);
    }
    return sum / runs;
}

static double run_actx(const bench_rep *r)
{
    return timers_sample(T_ACTX, *(int *)r->arg);
}

static double run_raw(const bench_rep *r)
{
    return timers_sample(T_RAW, *(int *)r->arg);
}

#ifdef HAVE_LIBUV
static double run_uv(const bench_rep *r)
{
    return timers_sample(T_UV, *(int *)r->arg);
}
#endif

static const bench_impl_def impls[] = {
    {"actx", "actx", run_actx},
    {"raw binary heap", "raw", run_raw},
#ifdef HAVE_LIBUV
    {"libuv uv_timer", "uv", run_uv},
#endif
    {NULL, NULL, NULL},
};

static void finish_fig(bench_fig *f, void *arg)
{
    (void)arg;
    bench_peer(f, "libuv uv_timer");
    bench_note(f, "libuv: all timeouts 0, fired in insertion order");
    bench_fig_check(f, timers_ok, "every timer fired exactly once");
}

static void finish_point(bench_fig *f, void *arg)
{
    bench_peer(f, "libuv uv_timer");
    bench_fig_x(f, "timers armed", "timers armed at once", *(int *)arg);
    bench_curve_target(f, "log raw binary heap");
    bench_fig_check(f, timers_ok, "every timer fired exactly once");
}

void io_timers(const io_setup *s)
{
    static const int fig_n = NTIMERS;
    uint64_t base = bench_now_ns();
    uint64_t rng = 0x9E3779B97F4A7C15ULL;

    (void)s;
    deadlines = malloc(TIMERS_MAX * sizeof(*deadlines));
    hits = malloc(TIMERS_MAX);
    if (!deadlines || !hits) {
        perror("malloc");
        exit(1);
    }
    for (int i = 0; i < TIMERS_MAX; i++) {
        deadlines[i] = 1 + bench_rnd(&rng) % (base - 1); /* all past */
    }
    /* split 2: 2 x -n repetitions, the order reversed every other one. */
    bench_measure(&(bench_figure){
        .key = "timers",
        .name = "timers arm+fire x10k",
        .unit = "ns/timer",
        .dir = BENCH_LOWER,
        .impls = impls,
        .arg = (void *)&fig_n,
        .split = 2,
        .target_abs = 100,
        .finish = finish_fig,
    });
}

void io_timers_curve(const io_setup *s)
{
    int curve_max = s->quick ? TIMERS_MAX / 10 : TIMERS_MAX;

    if (s->curve && bench_want_fig("curve")) {
        bench_group("timers-curve",
                    "timers: cost per timer as armed timers grow");
        for (int n = 10; n <= curve_max; n *= 10) {
            char name[64];

            snprintf(name, sizeof(name), "timers arm+fire, %d armed", n);
            /* Fewer repetitions where one run is long (1e6: ~1 s). */
            bench_measure(&(bench_figure){
                .name = name,
                .unit = "ns/timer",
                .dir = BENCH_LOWER,
                .impls = impls,
                .arg = &n,
                .split = n >= 100000 ? 1 : 2,
                .reps = n >= 1000000  ? 1
                        : n >= 100000 ? 2
                                      : (s->reps + 1) / 2,
                .finish = finish_point,
            });
        }
    }
    free(deadlines);
    free(hits);
}
