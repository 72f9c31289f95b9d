/* io.h - what bench-io's scenarios (io-*.c) share. */
#ifndef BENCH_IO_H
#define BENCH_IO_H

#include <stdbool.h>

#include "actx.h"
#include "harness/harness.h"

typedef struct {
    int reps;      /* -n */
    bool quick;    /* -q */
    int rtt_iters; /* round trips per fd repetition */
    bool curve;    /* the timers curve (not --no-curve) */
} io_setup;

/* The scenarios, one per file. */
void io_timers(const io_setup *s);       /* timers */
void io_timers_curve(const io_setup *s); /* curve (after io_timers) */
void io_fd(const io_setup *s);           /* fd wake-up round trip */
void io_lateness(const io_setup *s);     /* timer lateness */

#endif /* BENCH_IO_H */
