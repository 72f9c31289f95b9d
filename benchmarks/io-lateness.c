/*
 * io-lateness.c - timer lateness, idle loop (lateness): one 2 ms timer on
 * an otherwise idle loop, 20 times: how long after its deadline it fired,
 * in us.  Peer: a raw epoll_wait with a ms timeout (peers/raw-epoll.c).
 */
#include <stdio.h>
#include <stdlib.h>

#include "io.h"
#include "peers/raw-epoll.h"

static void late_cb(void *opaque)
{
    *(uint64_t *)opaque = bench_now_ns();
}

static double run_actx(const bench_rep *r)
{
    uint64_t fired = 0, deadline = bench_now_ns() + 2000000;
    actx_timer *t = actx_timer_new(late_cb, &fired);

    (void)r;
    actx_timer_mod(t, deadline);
    if (ACTX_WAIT_WHILE(fired == 0) != 0) {
        perror("timer_lateness");
        exit(1);
    }
    actx_timer_free(t);
    return (double)(fired - deadline) / 1000.0;
}

static double run_raw(const bench_rep *r)
{
    (void)r;
    return raw_lateness();
}

static const bench_impl_def impls[] = {
    {"actx", "actx", run_actx},
    {"raw epoll_wait (ms)", "raw", run_raw},
    {NULL, NULL, NULL},
};

static void finish(bench_fig *f, void *arg)
{
    (void)arg;
    bench_note(f, "one 2 ms timer, 20 times: fired after its deadline by");
}

void io_lateness(const io_setup *s)
{
    (void)s;
    bench_measure(&(bench_figure){
        .key = "lateness",
        .name = "timer lateness, idle loop",
        .unit = "us",
        .dir = BENCH_LOWER,
        .impls = impls,
        .reps = 20,
        .target_abs = 1000,
        .finish = finish,
    });
}
