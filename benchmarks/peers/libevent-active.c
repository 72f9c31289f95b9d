/* libevent-active.c - libevent active events as BHs (libevent-active.h). */
#include "libevent-active.h"

#ifdef HAVE_LIBEVENT
#include <event2/event.h>
#include <stdio.h>

#include "harness/harness.h"
#include "raw-runqueue.h" /* BENCH_BH_BURST */

static struct event_base *evb;
static struct event *ev_burst[BENCH_BH_BURST];
static struct event *ev_chain;
static unsigned long ev_chain_loops;
static unsigned long counter;
static long chain_left;

static void ev_count_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    counter++;
}

static void ev_chain_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (--chain_left > 0) {
        event_active(ev_chain, EV_READ, 0);
    }
}

void ev_active_peer_init(void)
{
    evb = event_base_new();
    for (int i = 0; i < BENCH_BH_BURST; i++) {
        ev_burst[i] = event_new(evb, -1, 0, ev_count_cb, NULL);
    }
    ev_chain = event_new(evb, -1, 0, ev_chain_cb, NULL);
}

void ev_active_peer_fini(void)
{
    for (int i = 0; i < BENCH_BH_BURST; i++) {
        event_free(ev_burst[i]);
    }
    event_free(ev_chain);
    event_base_free(evb);
}

double bh_burst_ev(long rounds)
{
    uint64_t t0;

    counter = 0;
    t0 = bench_now_ns();
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < BENCH_BH_BURST; i++) {
            event_active(ev_burst[i], EV_READ, 0);
        }
        event_base_loop(evb, EVLOOP_NONBLOCK);
    }
    t0 = bench_now_ns() - t0;
    if (counter != (unsigned long)rounds * BENCH_BH_BURST) {
        fprintf(stderr, "burst_ev: ran %lu of %ld\n", counter,
                rounds * BENCH_BH_BURST);
    }
    return (double)t0 / ((double)rounds * BENCH_BH_BURST);
}

double bh_chain_ev(long n)
{
    uint64_t t0;

    chain_left = n;
    ev_chain_loops = 0;
    t0 = bench_now_ns();
    event_active(ev_chain, EV_READ, 0);
    while (chain_left > 0) {
        event_base_loop(evb, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        ev_chain_loops++;
    }
    t0 = bench_now_ns() - t0;
    return (double)t0 / (double)n;
}

unsigned long bh_chain_ev_loops(void)
{
    return ev_chain_loops;
}
#endif
