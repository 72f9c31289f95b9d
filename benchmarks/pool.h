/*
 * pool.h - what bench-pool's scenarios (pool-*.c) share: the files read,
 * the pool size and the repetitions.
 */
#ifndef BENCH_POOL_H
#define BENCH_POOL_H

#include <stdbool.h>

#include "actx.h"
#include "harness/harness.h"
#include "peers/raw-pread.h"
#include "peers/uv-pool.h"

#define FILE_MB 64 /* the page-cached file */
#define NBLOCKS ((FILE_MB << 20) / BENCH_BS)
#define DIRECT_MB 256 /* the O_DIRECT file */
#define DIRECT_BLOCKS ((DIRECT_MB << 20) / BENCH_BS)
#define INFLIGHT_IO 64

typedef struct {
    int reps;      /* -n */
    double rep_s;  /* -t: seconds per repetition */
    int nthreads;  /* both pools' size (-p) */
    int file_fd;   /* FILE_MB, in the page cache */
    int direct_fd; /* DIRECT_MB opened O_DIRECT, or -1 (not wanted) */
} pool_setup;

extern pool_setup pool;

/* Is this figure or implementation selected by -only? */
bool pool_want(const char *key);

/*
 * pool-aio.c: reads per second on a new loop (so that ACTX_IO is read
 * again): io_uring (uring) or ACTX_IO=pool, `window` in flight.
 */
double x_on(bool uring, int fd, long window, long total);

/* The scenarios, one per file. */
void pool_roundtrip(void); /* pp, pipe: null jobs */
void pool_aio(void);       /* io, uring, direct: file reads */
void pool_percpu(void);    /* percpu: a loop per CPU */

#endif /* BENCH_POOL_H */
