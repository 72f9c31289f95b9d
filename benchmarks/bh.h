/*
 * bh.h - what bench-bh's scenarios (bh-*.c) share: the allocation counter
 * (bench-bh.c) and the peers.
 */
#ifndef BENCH_BH_H
#define BENCH_BH_H

#include "actx.h"
#include "harness/harness.h"
#include "peers/glib-context.h"
#include "peers/libevent-active.h"
#include "peers/raw-runqueue.h"
#include "peers/uv-idle.h"

/* Main thread.  Allocations made so far (0 where counting is off). */
unsigned long allocs_now(void);
/* Is allocation counting on (not in sanitizer builds)? */
extern const bool bench_count_malloc;

/* Iterations of one repetition, from -q's scale. */
typedef struct {
    long burst_rounds, chain_n, pushpop_n;
} bh_sizes;

/* The scenarios, one per file. */
void bh_burst(const bh_sizes *z);   /* burst, and its mallocs */
void bh_chain(const bh_sizes *z);   /* chain */
void bh_pushpop(const bh_sizes *z); /* push+pop, and its mallocs */
/* Allocations of actx's measured burst and chain runs. */
extern unsigned long bh_burst_allocs, bh_chain_allocs;
/* After bh_burst and bh_chain: mallocs per BH over both. */
void bh_mallocs_per_bh(const bh_sizes *z, int reps);

#endif /* BENCH_BH_H */
