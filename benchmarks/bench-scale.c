/*
 * bench-scale.c - scaling curves: how actx's costs grow, beside libuv (and
 * the raw protocol where it applies).  Every point checks that each
 * completion, call or token hop happened exactly once.
 *
 *   producers      P threads (1, 2, 4, 8) complete a fixed total of
 *                  requests the owner made beforehand (actx_req_new; for
 *                  the peers, preallocated nodes); the owner waits in its
 *                  loop until every done callback ran.  ns per completion.
 *                  Peers: libuv (mutex-protected queue + uv_async_send,
 *                  the owner in uv_run(UV_RUN_ONCE)); raw (CAS-push MPSC
 *                  list, one exchange takes it all, a blocking eventfd read
 *                  written only when the owner said it may sleep).
 *   outer queue    N completions of the root context (10 .. 1e6) have
 *                  arrived and sit queued while an inner context (after
 *                  actx_push) takes M completions that a helper thread
 *                  made (all arrived before the clock starts: the owner's
 *                  cost alone).  ns per inner completion; target: flat
 *                  within 1.2x.
 *                  Afterwards the pop lets the N outer ones run (checked).
 *                  libuv reference: the N sit in another loop's queue while
 *                  the inner loop runs (libuv has no context stack).
 *   stack depth    the same inner completions with the stack d deep (1 ..
 *                  256, nothing queued outside).  libuv reference: one loop.
 *
 *                  What these two curves control for, so that every point
 *                  measures the same thing: the completions have all
 *                  arrived before the clock starts and the clock is the
 *                  owner thread's CPU time (no other thread takes part; a
 *                  time slice another process takes is not the owner's
 *                  cost); unmeasured warm-up rounds, the last at the
 *                  curve's largest point, grow every allocator first;
 *                  the points are measured in interleaved rounds (each
 *                  round every point once, starting one point later each
 *                  round; 3 rounds per repetition) and each reports its
 *                  median, so that load from other processes falls on all
 *                  points alike.  Memory state: runtime/src/req.c carves
 *                  the requests' slabs in address order from chunks, so
 *                  a point's cost does not depend on the allocator's
 *                  history.
 *   token ring     n threads (2 .. 64), each in its own blocking loop, pass
 *                  one token around a ring: thread k hands it to k+1 with
 *                  actx_ctx_call.  us per hop.  Peers: libuv (one loop and
 *                  uv_async per thread), raw (a blocking eventfd read per
 *                  thread).
 *
 * Options: see --help (-only LIST picks curves).  Each point reports the
 * median of its repetitions and their spread.
 */
#define _GNU_SOURCE
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

enum impl { I_ACTX, I_UV, I_RAW };

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    if (!p) {
        die("calloc");
    }
    return p;
}

/* ---------------------------------------------------------------------- */
/* Exactly-once bookkeeping (owner thread only).                            */

typedef struct {
    unsigned char *hits; /* hits[i]: times completion i ran */
    long n, done;
    bool ok; /* every ret matched its id */
} tally;

static void tally_reset(tally *t, long n)
{
    free(t->hits);
    t->hits = xcalloc((size_t)n, 1);
    t->n = n;
    t->done = 0;
    t->ok = true;
}

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

static bool tally_once(const tally *t)
{
    if (!t->ok || t->done != t->n) {
        return false;
    }
    for (long i = 0; i < t->n; i++) {
        if (t->hits[i] != 1) {
            return false;
        }
    }
    return true;
}

static tally t_outer, t_inner;

static void done_outer(void *opaque, long ret)
{
    tally_hit(&t_outer, (long)(intptr_t)opaque, ret);
}

static void done_inner(void *opaque, long ret)
{
    tally_hit(&t_inner, (long)(intptr_t)opaque, ret);
}

/* ---------------------------------------------------------------------- */
/* The peers' completion channels.                                          */

typedef struct node {
    struct node *next;
    long id;
} node;

/* raw: CAS-push MPSC list + a blocking eventfd, written only on demand. */
typedef struct {
    _Alignas(BENCH_CACHELINE) _Atomic(node *) head;
    _Alignas(BENCH_CACHELINE) atomic_int sleeping;
    int efd;
    tally *t;
} raw_q;

static void raw_init(raw_q *q, tally *t)
{
    atomic_init(&q->head, NULL);
    atomic_init(&q->sleeping, 0);
    q->efd = eventfd(0, EFD_CLOEXEC);
    q->t = t;
    if (q->efd < 0) {
        die("eventfd");
    }
}

/*
 * Any thread.  Push (seq_cst), then read sleeping (seq_cst): either the
 * owner's re-check after it set sleeping sees this node, or this sees
 * sleeping == 1 and writes the eventfd.
 */
static void raw_post(raw_q *q, node *n)
{
    node *old = atomic_load_explicit(&q->head, memory_order_relaxed);
    uint64_t one = 1;

    do {
        n->next = old;
    } while (!atomic_compare_exchange_weak(&q->head, &old, n));
    if (atomic_load(&q->sleeping) && atomic_exchange(&q->sleeping, 0)) {
        if (write(q->efd, &one, sizeof(one)) < 0) {
            die("write eventfd");
        }
    }
}

/* Owner: run what arrived, in arrival order; sleep first if there is none. */
static void raw_poll(raw_q *q)
{
    node *l = atomic_exchange(&q->head, NULL);
    node *rev = NULL;

    if (!l) {
        atomic_store(&q->sleeping, 1);
        l = atomic_exchange(&q->head, NULL);
        if (!l) {
            uint64_t v;

            /* A stale write (a post that saw sleeping after the re-check
             * found work) only makes a later read return early. */
            if (read(q->efd, &v, sizeof(v)) < 0 && errno != EINTR) {
                die("read eventfd");
            }
            l = atomic_exchange(&q->head, NULL);
        }
        atomic_store(&q->sleeping, 0);
    }
    while (l) {
        node *next = l->next;

        l->next = rev;
        rev = l;
        l = next;
    }
    for (; rev; rev = rev->next) {
        tally_hit(q->t, rev->id, rev->id);
    }
}

static void raw_destroy(raw_q *q)
{
    close(q->efd);
}

#ifdef HAVE_LIBUV
/* libuv: the threadpool idiom, a mutex-protected queue + uv_async_send. */
typedef struct {
    uv_loop_t loop;
    uv_async_t wake;
    pthread_mutex_t lock;
    node *head, **tail;
    tally *t;
} uv_q;

static void uvq_drain(uv_async_t *a)
{
    uv_q *q = a->data;
    node *l;

    pthread_mutex_lock(&q->lock);
    l = q->head;
    q->head = NULL;
    q->tail = &q->head;
    pthread_mutex_unlock(&q->lock);
    for (; l; l = l->next) {
        tally_hit(q->t, l->id, l->id);
    }
}

static void uvq_init(uv_q *q, tally *t)
{
    uv_loop_init(&q->loop);
    uv_async_init(&q->loop, &q->wake, uvq_drain);
    q->wake.data = q;
    pthread_mutex_init(&q->lock, NULL);
    q->head = NULL;
    q->tail = &q->head;
    q->t = t;
}

static void uvq_post(uv_q *q, node *n)
{
    n->next = NULL;
    pthread_mutex_lock(&q->lock);
    *q->tail = n;
    q->tail = &n->next;
    pthread_mutex_unlock(&q->lock);
    uv_async_send(&q->wake);
}

static void uvq_destroy(uv_q *q)
{
    uv_close((uv_handle_t *)&q->wake, NULL);
    uv_run(&q->loop, UV_RUN_DEFAULT);
    uv_loop_close(&q->loop);
    pthread_mutex_destroy(&q->lock);
}
#endif

/* ---------------------------------------------------------------------- */
/* Completing threads: each completes ids [lo, hi) after a barrier.         */

typedef struct {
    pthread_t th;
    enum impl im;
    long lo, hi;
    actx_req **reqs; /* I_ACTX */
    node *nodes;     /* I_UV, I_RAW */
    void *q;         /* raw_q or uv_q */
    pthread_barrier_t *start;
} completer;

static void *completer_main(void *arg)
{
    completer *c = arg;

    pthread_barrier_wait(c->start);
    for (long i = c->lo; i < c->hi; i++) {
        switch (c->im) {
        case I_ACTX:
            if (actx_req_complete(c->reqs[i], i) < 0) {
                fprintf(stderr, "actx_req_complete failed\n");
                exit(1);
            }
            break;
        case I_RAW:
            c->nodes[i].id = i;
            raw_post(c->q, &c->nodes[i]);
            break;
        case I_UV:
#ifdef HAVE_LIBUV
            c->nodes[i].id = i;
            uvq_post(c->q, &c->nodes[i]);
#endif
            break;
        }
    }
    return NULL;
}

#define P_MAX 8

/*
 * Start nthreads completers of ids [0, total) split evenly; returns after
 * they passed the barrier with the owner (the caller starts its clock
 * then).  Join with completers_join.
 */
static completer comp[P_MAX];
static pthread_barrier_t comp_start;

static void completers_start(enum impl im, int nthreads, long total,
                             actx_req **reqs, node *nodes, void *q)
{
    pthread_barrier_init(&comp_start, NULL, (unsigned)nthreads + 1);
    for (int p = 0; p < nthreads; p++) {
        completer *c = &comp[p];

        c->im = im;
        c->lo = total * p / nthreads;
        c->hi = total * (p + 1) / nthreads;
        c->reqs = reqs;
        c->nodes = nodes;
        c->q = q;
        c->start = &comp_start;
        if (pthread_create(&c->th, NULL, completer_main, c)) {
            die("pthread_create");
        }
    }
    pthread_barrier_wait(&comp_start);
}

static void completers_join(int nthreads)
{
    for (int p = 0; p < nthreads; p++) {
        pthread_join(comp[p].th, NULL);
    }
    pthread_barrier_destroy(&comp_start);
}

/* Requests of the current context with ids [0, n). */
static actx_req **make_reqs(long n, actx_done_fn *done)
{
    actx_req **r = xcalloc((size_t)n, sizeof(*r));

    for (long i = 0; i < n; i++) {
        r[i] = actx_req_new(done, (void *)(intptr_t)i);
        if (!r[i]) {
            die("actx_req_new");
        }
    }
    return r;
}

/*
 * The owner thread's CPU time in ns: what a queued measurement counts (see
 * completions).
 */
static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0) {
        die("clock_gettime");
    }
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * total completions from nthreads threads into this thread's loop, the
 * done callbacks counted in t_inner; ns per completion (owner's view: from
 * the barrier to the last done callback).  queued: the completers finish
 * before the clock starts, so that only the owner's side is measured
 * (taking them from the mailbox and running them), without the races of
 * two threads on a shared machine; the clock is then the owner thread's
 * CPU time, since no other thread takes part: a time slice that another
 * process takes from the owner is not the owner's cost.
 */
static double completions(enum impl im, int nthreads, long total, bool queued)
{
    uint64_t (*now)(void) = queued ? thread_cpu_ns : bench_now_ns;
    uint64_t t0, t1;

    tally_reset(&t_inner, total);
    if (im == I_ACTX) {
        actx_req **reqs = make_reqs(total, done_inner);

        completers_start(im, nthreads, total, reqs, NULL, NULL);
        if (queued) {
            completers_join(nthreads);
        }
        t0 = now();
        if (ACTX_WAIT_WHILE(t_inner.done < total) < 0) {
            fprintf(stderr, "actx: completions stalled\n");
            exit(1);
        }
        t1 = now();
        if (!queued) {
            completers_join(nthreads);
        }
        free(reqs);
    } else if (im == I_RAW) {
        node *nodes = xcalloc((size_t)total, sizeof(node));
        raw_q q;

        raw_init(&q, &t_inner);
        completers_start(im, nthreads, total, NULL, nodes, &q);
        if (queued) {
            completers_join(nthreads);
        }
        t0 = now();
        while (t_inner.done < total && t_inner.ok) {
            raw_poll(&q);
        }
        t1 = now();
        if (!queued) {
            completers_join(nthreads);
        }
        raw_destroy(&q);
        free(nodes);
    } else {
#ifdef HAVE_LIBUV
        node *nodes = xcalloc((size_t)total, sizeof(node));
        uv_q *q = xcalloc(1, sizeof(*q));

        uvq_init(q, &t_inner);
        completers_start(im, nthreads, total, NULL, nodes, q);
        if (queued) {
            completers_join(nthreads);
        }
        t0 = now();
        while (t_inner.done < total && t_inner.ok) {
            uv_run(&q->loop, UV_RUN_ONCE);
        }
        t1 = now();
        if (!queued) {
            completers_join(nthreads);
        }
        uvq_destroy(q);
        free(q);
        free(nodes);
#else
        return NAN;
#endif
    }
    return (double)(t1 - t0) / (double)total;
}

/* ---------------------------------------------------------------------- */
/* Curve: producers.                                                        */

static void curve_producers(const bench_opts *o)
{
    long total = (long)(400000 * o->scale);

    bench_group("scale-producers",
                "cross-thread completions: cost per completion as "
                "producers grow");
    for (int p = 1; p <= P_MAX; p *= 2) {
        char name[64];
        bench_fig *f;
        bool ok = true;

        snprintf(name, sizeof(name), "completions, %d producer%s", p,
                 p > 1 ? "s" : "");
        f = bench_fig_new(name, "ns/compl", BENCH_LOWER);
        bench_fig_x(f, "producers", "producer threads", p);
        for (int r = 0; r < o->reps; r++) {
            bench_add(f, "actx", completions(I_ACTX, p, total, false));
            ok &= tally_once(&t_inner);
#ifdef HAVE_LIBUV
            bench_add(f, "libuv mutex+async",
                      completions(I_UV, p, total, false));
            ok &= tally_once(&t_inner);
#endif
            bench_add(f, "raw mpsc+eventfd",
                      completions(I_RAW, p, total, false));
            ok &= tally_once(&t_inner);
        }
        bench_peer(f, "libuv mutex+async");
        bench_note(f, "%ld completions per repetition", total);
        bench_fig_check(f, ok, "every completion ran exactly once");
        bench_fig_done(f);
    }
}

/* ---------------------------------------------------------------------- */
/* Curves: outer queue, stack depth.                                        */

/*
 * ns per inner completion (M of them, one helper thread) with n completions
 * of the root context queued, at stack depth `depth` (>= 1).  Checks the
 * inner and the outer completions; *ok is cleared on a miss.
 */
static double inner_actx(long n, int depth, long m, bool *ok)
{
    actx_req **outer = NULL;
    double ns;

    tally_reset(&t_outer, n);
    if (n) {
        outer = make_reqs(n, done_outer);
        /* Complete them all now: they arrive and wait for the root. */
        completers_start(I_ACTX, 1, n, outer, NULL, NULL);
        completers_join(1);
    }
    for (int d = 0; d < depth; d++) {
        if (actx_push() < 0) {
            die("actx_push");
        }
    }
    /* Move the arrivals into the root's queue before the clock starts. */
    actx_poll(false);
    ns = completions(I_ACTX, 1, m, true);
    *ok &= tally_once(&t_inner) && t_outer.done == 0;
    for (int d = 0; d < depth; d++) {
        actx_pop();
    }
    if (ACTX_WAIT_WHILE(t_outer.done < n) < 0) {
        fprintf(stderr, "actx: outer completions stalled\n");
        exit(1);
    }
    *ok &= tally_once(&t_outer);
    free(outer);
    return ns;
}

#ifdef HAVE_LIBUV
/* The libuv reference: n completions wait in another loop's queue. */
static double inner_uv(long n, long m, bool *ok)
{
    uv_q *outer = xcalloc(1, sizeof(*outer));
    node *onodes = xcalloc((size_t)(n ? n : 1), sizeof(node));
    double ns;

    tally_reset(&t_outer, n);
    uvq_init(outer, &t_outer);
    if (n) {
        completers_start(I_UV, 1, n, NULL, onodes, outer);
        completers_join(1);
    }
    ns = completions(I_UV, 1, m, true);
    *ok &= tally_once(&t_inner) && t_outer.done == 0;
    while (t_outer.done < n && t_outer.ok) {
        uv_run(&outer->loop, UV_RUN_ONCE);
    }
    *ok &= tally_once(&t_outer);
    uvq_destroy(outer);
    free(outer);
    free(onodes);
    return ns;
}
#endif

/*
 * Unmeasured rounds of each: the first runs pay for cold caches and for
 * growing the allocators.  The last round is the curve's largest point (n
 * outer completions queued, the stack depth deep), so that the requests'
 * slabs, the contexts and the peer's nodes have grown to what every point
 * needs before any is measured: growth happens once in a loop's life (the
 * slabs live until it shuts down), and without this the first repetition
 * of the largest point alone would touch fresh memory.
 */
static void inner_warm_up(long m, long n, int depth)
{
    bool ok = true;

    for (int i = 0; i < 3; i++) {
        inner_actx(0, 1, m, &ok);
#ifdef HAVE_LIBUV
        inner_uv(0, m, &ok);
#endif
    }
    inner_actx(n, depth, m, &ok);
#ifdef HAVE_LIBUV
    inner_uv(n, m, &ok);
#endif
    if (!ok) {
        fprintf(stderr, "bench-scale: warm-up: a completion was lost\n");
        exit(1);
    }
}

/*
 * The points of the outer-queue and depth curves are measured in
 * interleaved rounds: each round measures every point once, and a point's
 * figure is the median over the rounds.  A burst of load from other
 * processes (a compilation on a shared machine lasts longer than a point's
 * repetitions) then falls on the points of a round alike instead of on one
 * point's repetitions.  Round r starts at point r (mod the number of
 * points) and goes on in order, so that each point takes a different place
 * in each round and never runs twice in a row.
 *
 * ROUNDS_PER_REP rounds per repetition (-n): a round of a curve takes
 * about half a second, and a burst of load of a few seconds must cover a
 * minority of a curve's rounds, which the median leaves out.
 */
#define ROUNDS_PER_REP 3
#define CURVE_MAX 16
#define DEPTH_MAX 256

/* Round r's k-th point of n. */
static int round_point(int r, int k, int n)
{
    return (r + k) % n;
}

/*
 * A million inner completions per repetition (about 10 ms): a repetition
 * must be long against thread start-up and scheduling.
 */
static void curve_outer(const bench_opts *o, long nmax)
{
    long m = (long)(1000000 * o->scale);
    bench_fig *f[CURVE_MAX];
    long queued[CURVE_MAX];
    bool ok[CURVE_MAX];
    int np = 0;

    inner_warm_up(m, nmax, 1);
    bench_group("scale-outer",
                "inner-context completions while outer completions wait");
    for (long n = 10; n <= nmax && np < CURVE_MAX; n *= 10, np++) {
        char name[64];

        snprintf(name, sizeof(name), "inner compl, %ld outer queued", n);
        f[np] = bench_fig_new(name, "ns/compl", BENCH_LOWER);
        bench_fig_x(f[np], "outer queue", "outer completions queued",
                    (double)n);
        bench_curve_target(f[np], "flat 1.2");
        queued[np] = n;
        ok[np] = true;
    }
    for (int r = 0; r < ROUNDS_PER_REP * o->reps; r++) {
        for (int k = 0; k < np; k++) {
            int i = round_point(r, k, np);

            bench_add(f[i], "actx", inner_actx(queued[i], 1, m, &ok[i]));
#ifdef HAVE_LIBUV
            bench_add(f[i], "libuv (other loop)",
                      inner_uv(queued[i], m, &ok[i]));
#endif
        }
    }
    for (int i = 0; i < np; i++) {
        bench_peer(f[i], "libuv (other loop)");
        bench_note(f[i], "%ld inner completions from one thread", m);
        bench_note(f[i], "points measured in %d interleaved rounds",
                   ROUNDS_PER_REP * o->reps);
        bench_fig_check(f[i], ok[i],
                        "inner and outer completions each ran exactly once, "
                        "outer ones only after the pop");
        bench_fig_done(f[i]);
    }
}

static void curve_depth(const bench_opts *o)
{
    long m = (long)(1000000 * o->scale);
    bench_fig *f[CURVE_MAX];
    int depth[CURVE_MAX];
    bool ok[CURVE_MAX];
    int np = 0;

    inner_warm_up(m, 0, DEPTH_MAX);
    bench_group("scale-depth",
                "completions in the innermost context as the stack deepens");
    for (int d = 1; d <= DEPTH_MAX && np < CURVE_MAX; d *= 2, np++) {
        char name[64];

        snprintf(name, sizeof(name), "inner compl, depth %d", d);
        f[np] = bench_fig_new(name, "ns/compl", BENCH_LOWER);
        bench_fig_x(f[np], "stack depth", "context stack depth", d);
        bench_curve_target(f[np], "flat 1.2");
        depth[np] = d;
        ok[np] = true;
    }
    for (int r = 0; r < ROUNDS_PER_REP * o->reps; r++) {
        for (int k = 0; k < np; k++) {
            int i = round_point(r, k, np);

            bench_add(f[i], "actx", inner_actx(0, depth[i], m, &ok[i]));
#ifdef HAVE_LIBUV
            bench_add(f[i], "libuv (one loop)", inner_uv(0, m, &ok[i]));
#endif
        }
    }
    for (int i = 0; i < np; i++) {
        bench_peer(f[i], "libuv (one loop)");
        bench_note(f[i], "%ld completions from one thread", m);
        bench_note(f[i], "points measured in %d interleaved rounds",
                   ROUNDS_PER_REP * o->reps);
        bench_fig_check(f[i], ok[i], "every completion ran exactly once");
        bench_fig_done(f[i]);
    }
}

/* ---------------------------------------------------------------------- */
/* Curve: token ring.                                                       */

#define RING_MAX 64

typedef struct {
    pthread_t th;
    int k;
    long recv; /* tokens received: written by this ring thread only */
    actx_ctx *ctx;
    int efd; /* raw */
#ifdef HAVE_LIBUV
    uv_loop_t loop;
    uv_async_t async;
#endif
} ring_thread;

static ring_thread ring[RING_MAX];
static int ring_n;
static long ring_total; /* hops to make */
static atomic_long ring_hops;
static atomic_int ring_stop;
static int ring_done_efd; /* written once the last hop arrived */
static pthread_barrier_t ring_ready;
static __thread ring_thread *ring_me;

static void ring_finish(void)
{
    uint64_t one = 1;

    if (write(ring_done_efd, &one, sizeof(one)) < 0) {
        die("write eventfd");
    }
}

/* A hop arrived at ring_me; true if the token goes on. */
static bool ring_arrive(void)
{
    ring_me->recv++;
    if (atomic_fetch_add_explicit(&ring_hops, 1, memory_order_relaxed) + 1 ==
        ring_total) {
        ring_finish();
        return false;
    }
    return true;
}

static void ring_actx_fn(void *opaque)
{
    (void)opaque;
    if (ring_arrive()) {
        ring_thread *next = &ring[(ring_me->k + 1) % ring_n];

        if (actx_ctx_call(next->ctx, ring_actx_fn, NULL) < 0) {
            fprintf(stderr, "actx_ctx_call failed\n");
            exit(1);
        }
    }
}

static void *ring_actx_main(void *arg)
{
    ring_me = arg;
    if (actx_thread_init() < 0) {
        fprintf(stderr, "actx_thread_init failed\n");
        exit(1);
    }
    ring_me->ctx = actx_ctx_current();
    pthread_barrier_wait(&ring_ready);
    actx_run();
    actx_thread_shutdown();
    return NULL;
}

static void *ring_raw_main(void *arg)
{
    ring_me = arg;
    pthread_barrier_wait(&ring_ready);
    for (;;) {
        uint64_t v, one = 1;

        if (read(ring_me->efd, &v, sizeof(v)) < 0 && errno != EINTR) {
            die("read eventfd");
        }
        if (atomic_load(&ring_stop)) {
            break;
        }
        for (uint64_t i = 0; i < v; i++) {
            if (ring_arrive()) {
                if (write(ring[(ring_me->k + 1) % ring_n].efd, &one,
                          sizeof(one)) < 0) {
                    die("write eventfd");
                }
            }
        }
    }
    return NULL;
}

#ifdef HAVE_LIBUV
static void ring_uv_cb(uv_async_t *a)
{
    if (atomic_load(&ring_stop)) {
        uv_close((uv_handle_t *)a, NULL);
        return;
    }
    /* uv_async_send coalesces, but one token means one send at a time. */
    if (ring_arrive()) {
        uv_async_send(&ring[(ring_me->k + 1) % ring_n].async);
    }
}

static void *ring_uv_main(void *arg)
{
    ring_me = arg;
    pthread_barrier_wait(&ring_ready);
    uv_run(&ring_me->loop, UV_RUN_DEFAULT);
    return NULL;
}
#endif

/* us per hop for n threads passing one token `laps` times round. */
static double ring_run(enum impl im, int n, long laps, bool *ok)
{
    void *(*fn)(void *) = im == I_ACTX  ? ring_actx_main
                          : im == I_RAW ? ring_raw_main
#ifdef HAVE_LIBUV
                                        : ring_uv_main;
#else
                                        : NULL;
#endif
    uint64_t t0, t1, v, one = 1;

    if (!fn) {
        return NAN;
    }
    ring_n = n;
    ring_total = laps * n;
    atomic_store(&ring_hops, 0);
    atomic_store(&ring_stop, 0);
    ring_done_efd = eventfd(0, EFD_CLOEXEC);
    pthread_barrier_init(&ring_ready, NULL, (unsigned)n + 1);
    for (int k = 0; k < n; k++) {
        ring_thread *t = &ring[k];

        t->k = k;
        t->recv = 0;
        if (im == I_RAW && (t->efd = eventfd(0, EFD_CLOEXEC)) < 0) {
            die("eventfd");
        }
#ifdef HAVE_LIBUV
        if (im == I_UV) {
            uv_loop_init(&t->loop);
            uv_async_init(&t->loop, &t->async, ring_uv_cb);
        }
#endif
        if (pthread_create(&t->th, NULL, fn, t)) {
            die("pthread_create");
        }
    }
    pthread_barrier_wait(&ring_ready);
    t0 = bench_now_ns();
    switch (im) {
    case I_ACTX:
        if (actx_ctx_call(ring[0].ctx, ring_actx_fn, NULL) < 0) {
            die("actx_ctx_call");
        }
        break;
    case I_RAW:
        if (write(ring[0].efd, &one, sizeof(one)) < 0) {
            die("write eventfd");
        }
        break;
    case I_UV:
#ifdef HAVE_LIBUV
        uv_async_send(&ring[0].async);
#endif
        break;
    }
    if (read(ring_done_efd, &v, sizeof(v)) < 0) {
        die("read eventfd");
    }
    t1 = bench_now_ns();
    atomic_store(&ring_stop, 1);
    for (int k = 0; k < n; k++) {
        ring_thread *t = &ring[k];

        switch (im) {
        case I_ACTX:
            actx_stop(t->ctx);
            break;
        case I_RAW:
            if (write(t->efd, &one, sizeof(one)) < 0) {
                die("write eventfd");
            }
            break;
        case I_UV:
#ifdef HAVE_LIBUV
            uv_async_send(&t->async);
#endif
            break;
        }
    }
    for (int k = 0; k < n; k++) {
        ring_thread *t = &ring[k];

        pthread_join(t->th, NULL);
        *ok &= t->recv == laps;
        if (im == I_ACTX) {
            actx_ctx_unref(t->ctx);
        } else if (im == I_RAW) {
            close(t->efd);
        }
#ifdef HAVE_LIBUV
        if (im == I_UV) {
            uv_loop_close(&t->loop);
        }
#endif
    }
    *ok &= atomic_load(&ring_hops) == ring_total;
    pthread_barrier_destroy(&ring_ready);
    close(ring_done_efd);
    return (double)(t1 - t0) / 1e3 / (double)ring_total;
}

static void curve_ring(const bench_opts *o)
{
    long hops = (long)(16000 * o->scale);

    bench_group("scale-ring", "a token passed around a ring of loops "
                              "(one thread each)");
    for (int n = 2; n <= RING_MAX; n *= 2) {
        char name[64];
        long laps = hops / n > 0 ? hops / n : 1;
        bench_fig *f;
        bool ok = true;

        snprintf(name, sizeof(name), "token ring, %d loops", n);
        f = bench_fig_new(name, "us/hop", BENCH_LOWER);
        bench_fig_x(f, "token ring", "loops (threads) in the ring", n);
        for (int r = 0; r < o->reps; r++) {
            bench_add(f, "actx", ring_run(I_ACTX, n, laps, &ok));
#ifdef HAVE_LIBUV
            bench_add(f, "libuv async", ring_run(I_UV, n, laps, &ok));
#endif
            bench_add(f, "raw eventfd", ring_run(I_RAW, n, laps, &ok));
        }
        bench_peer(f, "libuv async");
        bench_note(f, "%ld laps of %d hops", laps, n);
        bench_fig_check(f, ok, "every loop got the token exactly once a lap");
        bench_fig_done(f);
    }
}

/* ---------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static const bench_spec spec = {
        .prog = "bench-scale",
        .what = "scaling curves: cost per completion as producers grow "
                "(1-8), as outer-context\ncompletions wait (10-1e6) and as "
                "the context stack deepens (1-256); a token\npassed around "
                "a ring of 2-64 loops.  Every point checks exactly-once "
                "delivery.\nThe outer and depth curves measure their points "
                "in 3 interleaved rounds per\nrepetition.",
        .reps = 5,
        .figures = "producers,outer,depth,ring",
    };
    bench_opts o;

    bench_init(&o, &spec, argc, argv);
    if (actx_thread_init() < 0) {
        fprintf(stderr, "actx_thread_init failed\n");
        return 1;
    }
    if (bench_want_fig("producers")) {
        curve_producers(&o);
    }
    if (bench_want_fig("outer")) {
        curve_outer(&o, o.quick ? 100000 : 1000000);
    }
    if (bench_want_fig("depth")) {
        curve_depth(&o);
    }
    if (bench_want_fig("ring")) {
        curve_ring(&o);
    }
    free(t_inner.hits);
    free(t_outer.hits);
    actx_thread_shutdown();
    return bench_finish();
}
