/*
 * libevent-active.h - libevent's nearest to bottom halves: events made
 * active by hand.  Burst: BENCH_BH_BURST event_active() + one
 * event_base_loop(EVLOOP_NONBLOCK).  Chain: an event that event_active()s
 * itself from its callback, event_base_loop(EVLOOP_ONCE|EVLOOP_NONBLOCK)
 * per iteration (libevent runs the whole chain inside one loop call: it
 * is its active-queue cost, not a per-poll cost).  Only with HAVE_LIBEVENT.
 */
#ifndef BENCH_LIBEVENT_ACTIVE_H
#define BENCH_LIBEVENT_ACTIVE_H

#ifdef HAVE_LIBEVENT
/* Main thread. */
void ev_active_peer_init(void);
void ev_active_peer_fini(void);
double bh_burst_ev(long rounds); /* ns per BH */
double bh_chain_ev(long n);      /* ns per BH */
/* Loop calls the last chain took. */
unsigned long bh_chain_ev_loops(void);
#endif

#endif /* BENCH_LIBEVENT_ACTIVE_H */
