/*
 * scale.h - what bench-scale's curves (scale-*.c) share: exactly-once
 * bookkeeping and the completion pipeline (scale-pipeline.c).
 */
#ifndef BENCH_SCALE_H
#define BENCH_SCALE_H

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "actx.h"
#include "harness/harness.h"

#ifdef HAVE_LIBUV
#include <uv.h>
#endif
#include <stdbool.h>

#include <stdatomic.h>
#include <sys/eventfd.h>
#ifdef HAVE_LIBUV
#include <uv.h>
#endif

enum impl { I_ACTX, I_UV, I_RAW };

#define P_MAX 8 /* the most producer threads */

void die(const char *what);
void *xcalloc(size_t n, size_t size);

/* Exactly-once bookkeeping (owner thread only). */
typedef struct {
    unsigned char *hits; /* hits[i]: times completion i ran */
    long n, done;
    bool ok; /* every ret matched its id */
} tally;

void tally_reset(tally *t, long n);
static inline void tally_hit(tally *t, long id, long ret)
{
    if (id < 0 || id >= t->n || ret != id) {
        t->ok = false;
        return;
    }
    if (t->hits[id] < 255) {
        t->hits[id]++;
    }
    t->done++;
}
bool tally_once(const tally *t);

extern tally t_outer, t_inner;

/*
 * The peers' completion channels, on nodes that carry an id: raw, a
 * CAS-push MPSC list, one exchange takes it all, a blocking eventfd read
 * written only when the owner said it may sleep; libuv, a mutex-protected
 * queue + uv_async_send.  They live here, not in peers/, because they
 * count into a tally inline: the queued curves measure about 1.5 ns per
 * completion, which a callback through a pointer would raise by half.
 */
typedef struct idq_node {
    struct idq_node *next;
    long id;
} idq_node;

/* raw: CAS-push MPSC list + a blocking eventfd, written only on demand. */
typedef struct {
    _Alignas(BENCH_CACHELINE) _Atomic(idq_node *) head;
    _Alignas(BENCH_CACHELINE) atomic_int sleeping;
    int efd;
    tally *t;
} raw_q;

/* Owner.  Completions are counted in t. */
void idq_raw_init(raw_q *q, tally *t);
/* Any thread. */
void idq_raw_post(raw_q *q, idq_node *n);
/* Owner: run what arrived, in arrival order; sleep first if there is none. */
void idq_raw_poll(raw_q *q);
void idq_raw_destroy(raw_q *q);

#ifdef HAVE_LIBUV
/* libuv: the threadpool idiom, a mutex-protected queue + uv_async_send. */
typedef struct {
    uv_loop_t loop;
    uv_async_t wake;
    pthread_mutex_t lock;
    idq_node *head, **tail;
    tally *t;
} uv_q;

/* Owner; the owner runs q->loop (UV_RUN_ONCE) to take completions. */
void idq_uv_init(uv_q *q, tally *t);
/* Any thread. */
void idq_uv_post(uv_q *q, idq_node *n);
void idq_uv_destroy(uv_q *q);
#endif

void done_outer(void *opaque, long ret);
void done_inner(void *opaque, long ret);

/*
 * Start nthreads completers of ids [0, total) split evenly; returns after
 * they passed the barrier with the owner.  Join with completers_join.
 */
void completers_start(enum impl im, int nthreads, long total, actx_req **reqs,
                      idq_node *nodes, void *q);
void completers_join(int nthreads);
/* Requests of the current context with ids [0, n). */
actx_req **make_reqs(long n, actx_done_fn *done);
/* The calling thread's CPU time, ns. */
uint64_t thread_cpu_ns(void);
/* ns per completion (see scale-pipeline.c). */
double completions(enum impl im, int nthreads, long total, bool queued);

/* The curves, one per file (scale-inner.c has two). */
void curve_producers(const bench_opts *o);
void curve_outer(const bench_opts *o, long nmax);
void curve_depth(const bench_opts *o);
void curve_ring(const bench_opts *o);

#endif /* BENCH_SCALE_H */
