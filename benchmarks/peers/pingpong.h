/*
 * pingpong.h - round trips between two threads: the clock every ping-pong
 * figure uses, and the peers' ping-pongs (raw-pingpong.c: two eventfds,
 * each in its thread's epoll set, and two threads spinning on atomics;
 * uv-pingpong.c: uv_async between two libuv loops).
 *
 * A repetition times every round trip; its figures are the median round
 * trip and, as a labelled second figure, the fastest block of PP_BLOCK
 * consecutive round trips (what the loop costs when nothing preempts it).
 */
#ifndef BENCH_PINGPONG_H
#define BENCH_PINGPONG_H

#include <stdbool.h>
#include <stdint.h>

#define PP_BLOCK 32

typedef struct {
    double median_us;  /* the median round trip */
    double fastest_us; /* per round trip, in the fastest block */
} pp_result;

typedef struct {
    uint64_t deadline;
    uint64_t last;
    double *rt; /* round trips, ns */
    unsigned long n, cap;
} pp_clock;

/* The thread that pings.  Start a repetition of `seconds`. */
void pp_clock_start(pp_clock *c, double seconds);
/* After each round trip; true when the repetition is over. */
bool pp_clock_tick(pp_clock *c);
/* The repetition's figures; frees what the clock held. */
pp_result pp_clock_result(pp_clock *c);

/* Main thread.  One repetition of each peer. */
pp_result pingpong_raw(double seconds);
pp_result pingpong_spin(double seconds);
#ifdef HAVE_LIBUV
pp_result pingpong_uv(double seconds);
#endif

#endif /* BENCH_PINGPONG_H */
