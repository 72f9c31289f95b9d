/*
 * raw-timerheap.h - what a minimal timer heap costs: a binary min-heap of
 * the same shape as a loop's (deadline beside the pointer, index in the
 * timer, callback through a pointer), out of line like a library call.
 */
#ifndef BENCH_RAW_TIMERHEAP_H
#define BENCH_RAW_TIMERHEAP_H

#include <stdint.h>

/*
 * Main thread.  Arm timers 0..n-1 (n <= max, the first call's max is
 * kept) with deadlines[i], then run every due one: cb((void *)i) each.
 * ns per timer arm+fire.
 */
double raw_timers_run(int n, int max, const uint64_t *deadlines,
                      void (*cb)(void *opaque));

#endif /* BENCH_RAW_TIMERHEAP_H */
