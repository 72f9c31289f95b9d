/*
 * xthread.h - what bench-xthread's scenarios (xthread-*.c) share: the
 * pipeline of cross-thread completions (xthread-pipeline.c).
 *
 * The owner (the main thread) creates each request as it would submit
 * I/O and hands it to a producer thread through that producer's SPSC ring
 * of pointers; the producer completes it.  actx: actx_req_new and
 * actx_req_complete; the peers complete bench_nodes through the libuv
 * queue idiom (peers/uv-queue.h) or the raw mailbox (peers/raw-mailbox.h),
 * on the same rings, producers and owner loops.
 */
#ifndef BENCH_XTHREAD_H
#define BENCH_XTHREAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "actx.h"
#include "harness/harness.h"
#include "peers/pingpong.h"
#include "peers/raw-mailbox.h"
#include "peers/uv-queue.h"

#define RING 4096      /* the batch scenarios' ring slots per producer */
#define RING_MAX 16384 /* the largest ring (a power of two, as all are) */
#define MAX_PRODUCERS 2
#define OUTSTANDING_PER_PRODUCER (2 * RING) /* the batch scenarios' bound */

/* The poll_max_ns the polling figures use (QEMU's default is 32 us). */
#define POLL_NS 50000

enum variant {
    V_ACTX,
    V_UV,
    V_RAW,
};

/* SPSC ring: the owner pushes request pointers, one producer pops them. */
typedef struct {
    _Alignas(BENCH_CACHELINE) atomic_size_t head; /* owner writes */
    _Alignas(BENCH_CACHELINE) atomic_size_t tail; /* producer writes */
    _Alignas(BENCH_CACHELINE) size_t size;        /* slots in use */
    void *slot[RING_MAX];
} spsc_ring;

typedef struct {
    spsc_ring ring;
    _Alignas(BENCH_CACHELINE) atomic_int stop;
    enum variant v;
    bool idle_sleeps; /* producer_idle_sleeps when it started */
    pthread_t th;
} producer;

extern producer *prods[MAX_PRODUCERS];
/*
 * What a producer does when it finds its ring empty: spin (256 pauses,
 * then sched_yield at each look), or, if set, sleep: nanosleep(0) at each
 * look, which lasts up to the thread's timer slack (50 us by default), as
 * a producer that blocks when it has nothing to do.  Set before
 * producers_start.
 */
extern bool producer_idle_sleeps;
extern raw_mailbox rawmb;
/* Done callbacks run by the owner in this run (xthread_done_cb counts). */
extern unsigned long done_count;

/* Main thread: set up and tear down the pipeline (and the peers). */
void xthread_init(void);
void xthread_fini(void);

/* Start nprod producers of variant v on empty rings of ring_size slots. */
void producers_start(enum variant v, int nprod, size_t ring_size);
/* Stop them once they have completed everything pushed. */
void producers_stop(int nprod);

/* Any thread.  Complete p (ret) as the producers do. */
void xthread_complete(enum variant v, void *p, long ret);
/* The done callback that counts into done_count. */
void xthread_done_cb(void *opaque, long ret);
/* A new request of variant v (actx_req_new or a node). */
void *new_request(enum variant v, void (*done)(void *, long), void *opaque);
/* Run what arrived (sleep first if blocking); 1 if anything ran. */
int owner_poll(enum variant v, bool blocking);

/*
 * The batch owner loop: issue what the rings and the outstanding bound
 * allow, actx_poll(false), actx_poll(true) when it neither issued nor ran
 * anything.  Million completions per second.
 */
typedef struct {
    double mps;
    unsigned long sleeps;    /* owner's blocking waits (actx stats) */
    unsigned long wakeups;   /* owner's eventfd wake-ups (actx stats) */
    unsigned long completed; /* completions in this repetition */
} xresult;
xresult run_completions(enum variant v, int nprod, double seconds);

/*
 * The implementations of a completions figure on the batch owner's
 * peers: actx, the libuv queue idiom, the raw mailbox.
 */
#ifdef HAVE_LIBUV
#define XTHREAD_UV_IMPL(run_uv) {"libuv mutex+async", "uv", run_uv},
#else
#define XTHREAD_UV_IMPL(run_uv)
#endif
#define XTHREAD_IMPLS(run_actx, run_uv, run_raw)                               \
    {                                                                          \
        {"actx", "actx", run_actx},                                            \
            XTHREAD_UV_IMPL(run_uv){"raw mpsc+eventfd", "raw", run_raw},       \
        {                                                                      \
            NULL, NULL, NULL                                                   \
        }                                                                      \
    }

/* A completions figure's argument: its producers and actx's owner stats. */
typedef struct {
    int nprod;
    unsigned long sleeps, wakeups, completed; /* actx's, summed */
} xthread_arg;

/* Note how often actx's owner slept and was woken per 1000 completions. */
void xthread_note_owner(bench_fig *f, const xthread_arg *a);

/*
 * Measure a completions figure with 1 and then 2 producers (keys[n-1],
 * names[n-1]; M/s): split 3, short interleaved repetitions that give every
 * implementation a quiet turn on a shared machine.  Each run gets an
 * xthread_arg; finish (or NULL) adds the notes.
 */
void xthread_measure_1p2p(const char *const keys[2], const char *const names[2],
                          const bench_impl_def *impls, const char *peer,
                          double ratio, void (*finish)(bench_fig *, void *));

/* actx's ping-pong (xthread-pingpong.c), both loops with poll_ns. */
pp_result pingpong_actx(double seconds, int64_t poll_ns);

/* The scenarios, one per file. */
void xthread_batch(const bench_opts *o);    /* c1, c2 */
void xthread_blocking(const bench_opts *o); /* b1, b2 */
void xthread_reissue(const bench_opts *o);  /* r1, r2 */
void xthread_stages(const bench_opts *o);   /* os, ps */
void xthread_pingpong(const bench_opts *o); /* pp */
void xthread_polling(const bench_opts *o);  /* p1, p2, ppp, idle */

#endif /* BENCH_XTHREAD_H */
