/*
 * scale-pipeline.c - bench-scale's shared parts: exactly-once
 * bookkeeping, the completing threads and the completions measurement.
 */
#define _GNU_SOURCE
#include "scale.h"

void die(const char *what)
{
    perror(what);
    exit(1);
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    if (!p) {
        die("calloc");
    }
    return p;
}

/* ---------------------------------------------------------------------- */
/* Exactly-once bookkeeping (owner thread only).                            */

void tally_reset(tally *t, long n)
{
    free(t->hits);
    t->hits = xcalloc((size_t)n, 1);
    t->n = n;
    t->done = 0;
    t->ok = true;
}

bool tally_once(const tally *t)
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

tally t_outer, t_inner;

void done_outer(void *opaque, long ret)
{
    tally_hit(&t_outer, (long)(intptr_t)opaque, ret);
}

void done_inner(void *opaque, long ret)
{
    tally_hit(&t_inner, (long)(intptr_t)opaque, ret);
}

/* ---------------------------------------------------------------------- */
/* Completing threads: each completes ids [lo, hi) after a barrier.         */

typedef struct {
    pthread_t th;
    enum impl im;
    long lo, hi;
    actx_req **reqs; /* I_ACTX */
    idq_node *nodes; /* I_UV, I_RAW */
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
            idq_raw_post(c->q, &c->nodes[i]);
            break;
        case I_UV:
#ifdef HAVE_LIBUV
            c->nodes[i].id = i;
            idq_uv_post(c->q, &c->nodes[i]);
#endif
            break;
        }
    }
    return NULL;
}

/*
 * Start nthreads completers of ids [0, total) split evenly; returns after
 * they passed the barrier with the owner (the caller starts its clock
 * then).  Join with completers_join.
 */
static completer comp[P_MAX];
static pthread_barrier_t comp_start;

void completers_start(enum impl im, int nthreads, long total, actx_req **reqs,
                      idq_node *nodes, void *q)
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

void completers_join(int nthreads)
{
    for (int p = 0; p < nthreads; p++) {
        pthread_join(comp[p].th, NULL);
    }
    pthread_barrier_destroy(&comp_start);
}

/* Requests of the current context with ids [0, n). */
actx_req **make_reqs(long n, actx_done_fn *done)
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
uint64_t thread_cpu_ns(void)
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
double completions(enum impl im, int nthreads, long total, bool queued)
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
        idq_node *nodes = xcalloc((size_t)total, sizeof(idq_node));
        raw_q q;

        idq_raw_init(&q, &t_inner);
        completers_start(im, nthreads, total, NULL, nodes, &q);
        if (queued) {
            completers_join(nthreads);
        }
        t0 = now();
        while (t_inner.done < total && t_inner.ok) {
            idq_raw_poll(&q);
        }
        t1 = now();
        if (!queued) {
            completers_join(nthreads);
        }
        idq_raw_destroy(&q);
        free(nodes);
    } else {
#ifdef HAVE_LIBUV
        idq_node *nodes = xcalloc((size_t)total, sizeof(idq_node));
        uv_q *q = xcalloc(1, sizeof(*q));

        idq_uv_init(q, &t_inner);
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
        idq_uv_destroy(q);
        free(q);
        free(nodes);
#else
        return NAN;
#endif
    }
    return (double)(t1 - t0) / (double)total;
}

/* ---------------------------------------------------------------------- */
/* The peers' completion channels (scale.h).                               */

void idq_raw_init(raw_q *q, tally *t)
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
void idq_raw_post(raw_q *q, idq_node *n)
{
    idq_node *old = atomic_load_explicit(&q->head, memory_order_relaxed);
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
void idq_raw_poll(raw_q *q)
{
    idq_node *l = atomic_exchange(&q->head, NULL);
    idq_node *rev = NULL;

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
        idq_node *next = l->next;

        l->next = rev;
        rev = l;
        l = next;
    }
    for (; rev; rev = rev->next) {
        tally_hit(q->t, rev->id, rev->id);
    }
}

void idq_raw_destroy(raw_q *q)
{
    close(q->efd);
}

#ifdef HAVE_LIBUV

static void idq_uv_drain(uv_async_t *a)
{
    uv_q *q = a->data;
    idq_node *l;

    pthread_mutex_lock(&q->lock);
    l = q->head;
    q->head = NULL;
    q->tail = &q->head;
    pthread_mutex_unlock(&q->lock);
    for (; l; l = l->next) {
        tally_hit(q->t, l->id, l->id);
    }
}

void idq_uv_init(uv_q *q, tally *t)
{
    uv_loop_init(&q->loop);
    uv_async_init(&q->loop, &q->wake, idq_uv_drain);
    q->wake.data = q;
    pthread_mutex_init(&q->lock, NULL);
    q->head = NULL;
    q->tail = &q->head;
    q->t = t;
}

void idq_uv_post(uv_q *q, idq_node *n)
{
    n->next = NULL;
    pthread_mutex_lock(&q->lock);
    *q->tail = n;
    q->tail = &n->next;
    pthread_mutex_unlock(&q->lock);
    uv_async_send(&q->wake);
}

void idq_uv_destroy(uv_q *q)
{
    uv_close((uv_handle_t *)&q->wake, NULL);
    uv_run(&q->loop, UV_RUN_DEFAULT);
    uv_loop_close(&q->loop);
    pthread_mutex_destroy(&q->lock);
}
#endif
