/*
 * xthread-reissue.c - cross-thread completions re-issued from the done
 * callback: the shape of a service whose owner thread submits the next
 * request when the previous one completes.
 *
 * The owner creates each request as it would submit I/O (actx_req_new)
 * and hands it to a producer thread through that producer's SPSC ring of
 * pointers; the producer completes it (actx_req_complete(req, i)).  The
 * owner issues a first window of OUTSTANDING requests per producer, then
 * issues only from the done callbacks: each done callback creates the next
 * request and hands it to the same producer, publishing it at once (no
 * batching outside callbacks).  The owner sits in actx_poll(true).
 * Figure: million completions per second (higher is better); the note
 * gives ns per completion.
 *
 * Peers, on the same rings, producers and owner pattern:
 *   libuv  the uv threadpool idiom: preallocated nodes appended to a
 *          mutex-protected queue + uv_async_send(); the async callback
 *          takes the whole queue under the lock and runs the done
 *          callbacks outside it.  The owner runs uv_run(UV_RUN_DEFAULT)
 *          once; the last done callback stops it.
 *   raw    actx's protocol without a runtime (peers/raw-mailbox): an
 *          intrusive MPSC list, an eventfd in an epoll set, a notify_me
 *          flag; the owner loops on raw_mb_poll(true).
 *
 * Each producer's outstanding requests never exceed its ring's slots, so
 * the owner never waits for ring room: a done callback always finds the
 * slot it writes already consumed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bench-util.h"

#include "actx.h"
#ifdef HAVE_LIBUV
#include <uv.h>
#endif

#define RING 16384 /* slots per producer ring, a power of two */
#define MAX_PRODUCERS 2
#define OUTSTANDING RING /* requests in flight per producer */

enum variant {
    V_ACTX,
    V_UV,
    V_RAW,
};

/* ---------------------------------------------------------------------- */
/* SPSC ring: the owner pushes request pointers, one producer pops them.   */

typedef struct {
    _Alignas(BENCH_CACHELINE) atomic_size_t head; /* owner writes */
    _Alignas(BENCH_CACHELINE) atomic_size_t tail; /* producer writes */
    _Alignas(BENCH_CACHELINE) void *slot[RING];
} spsc_ring;

typedef struct producer {
    spsc_ring ring;
    _Alignas(BENCH_CACHELINE) atomic_int stop;
    enum variant v;
    pthread_t th;
} producer;

static producer *prods[MAX_PRODUCERS];

/* ---------------------------------------------------------------------- */
/* Nodes for the peers: one cache line each, from an owner-local free list. */

typedef struct node {
    struct node *next;
    void (*done)(void *opaque, long ret);
    void *opaque;
    long ret;
} __attribute__((aligned(BENCH_CACHELINE))) node;

static node *node_mem;
static size_t node_count;
static node *node_free;

/*
 * Every run starts with the free list in address order: the order another
 * run left it in changes the per-completion cost (hardware prefetch
 * follows ascending addresses).
 */
static void nodes_reset(void)
{
    node_free = NULL;
    for (size_t i = node_count; i-- > 0;) {
        node_mem[i].next = node_free;
        node_free = &node_mem[i];
    }
}

static inline node *node_get(void (*done)(void *, long), void *opaque)
{
    node *n = node_free;

    node_free = n->next;
    n->next = NULL;
    n->done = done;
    n->opaque = opaque;
    return n;
}

static inline void node_put(node *n)
{
    n->next = node_free;
    node_free = n;
}

/* ---------------------------------------------------------------------- */
/* The raw mailbox (the protocol actx uses, without a runtime around it).  */

typedef struct {
    _Alignas(BENCH_CACHELINE) _Atomic(node *) head;
    _Alignas(BENCH_CACHELINE) atomic_int notify_me; /* consumer may sleep */
    atomic_int notified;                            /* eventfd written */
    int efd;
    int ep;
} raw_mailbox;

static raw_mailbox rawmb;

static void raw_mb_init(raw_mailbox *mb)
{
    struct epoll_event ev = {.events = EPOLLIN};

    atomic_init(&mb->head, NULL);
    atomic_init(&mb->notify_me, 0);
    atomic_init(&mb->notified, 0);
    mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    mb->ep = epoll_create1(EPOLL_CLOEXEC);
    if (mb->efd < 0 || mb->ep < 0 ||
        epoll_ctl(mb->ep, EPOLL_CTL_ADD, mb->efd, &ev) < 0) {
        perror("raw mailbox");
        exit(1);
    }
}

/*
 * Any thread.  Push (seq_cst CAS), then read notify_me (seq_cst): in the
 * single total order either raw_mb_poll's re-check of head sees this node
 * or this load sees notify_me == 1, so a sleeping consumer is always woken.
 */
static inline void raw_mb_post(raw_mailbox *mb, node *n)
{
    node *old = atomic_load_explicit(&mb->head, memory_order_relaxed);
    uint64_t one = 1;

    do {
        n->next = old;
    } while (!atomic_compare_exchange_weak(&mb->head, &old, n));
    if (atomic_load(&mb->notify_me) && !atomic_exchange(&mb->notified, 1)) {
        if (write(mb->efd, &one, sizeof(one)) < 0) {
            BENCH_USE(errno);
        }
    }
}

/* Owner.  Run everything that arrived; sleep first if empty. */
static void raw_mb_poll_blocking(raw_mailbox *mb)
{
    node *l = atomic_exchange(&mb->head, NULL);
    node *rev = NULL;

    if (!l) {
        /* Clear notified before publishing notify_me (see raw_mb_post). */
        atomic_store(&mb->notified, 0);
        atomic_store(&mb->notify_me, 1);
        l = atomic_exchange(&mb->head, NULL);
        if (!l) {
            struct epoll_event ev;
            uint64_t v;

            while (epoll_wait(mb->ep, &ev, 1, -1) < 0 && errno == EINTR) {
            }
            if (read(mb->efd, &v, sizeof(v)) < 0) {
                BENCH_USE(errno);
            }
        }
        atomic_store(&mb->notify_me, 0);
        if (!l) {
            l = atomic_exchange(&mb->head, NULL);
        }
    }
    while (l) { /* LIFO to FIFO */
        node *next = l->next;

        l->next = rev;
        rev = l;
        l = next;
    }
    while (rev) {
        node *next = rev->next;

        rev->done(rev->opaque, rev->ret);
        node_put(rev);
        rev = next;
    }
}

/* ---------------------------------------------------------------------- */
/* The libuv idiom: mutex-protected queue + uv_async_send.                 */

#ifdef HAVE_LIBUV
static uv_loop_t uvl;
static uv_async_t uv_wake;
static pthread_mutex_t uvq_lock = PTHREAD_MUTEX_INITIALIZER;
static node *uvq_head;
static node **uvq_tail = &uvq_head;

static void uvq_post(node *n)
{
    n->next = NULL;
    pthread_mutex_lock(&uvq_lock);
    *uvq_tail = n;
    uvq_tail = &n->next;
    pthread_mutex_unlock(&uvq_lock);
    uv_async_send(&uv_wake);
}

static void uvq_drain_cb(uv_async_t *h)
{
    node *l;

    (void)h;
    pthread_mutex_lock(&uvq_lock);
    l = uvq_head;
    uvq_head = NULL;
    uvq_tail = &uvq_head;
    pthread_mutex_unlock(&uvq_lock);
    while (l) {
        node *next = l->next;

        l->done(l->opaque, l->ret);
        node_put(l);
        l = next;
    }
}
#endif

/* ---------------------------------------------------------------------- */
/* Producers.                                                              */

static inline void complete_one(enum variant v, void *p, long ret)
{
    switch (v) {
    case V_ACTX:
        actx_req_complete((actx_req *)p, ret);
        break;
    case V_UV:
#ifdef HAVE_LIBUV
        ((node *)p)->ret = ret;
        uvq_post((node *)p);
#endif
        break;
    case V_RAW:
        ((node *)p)->ret = ret;
        raw_mb_post(&rawmb, (node *)p);
        break;
    }
}

static void *producer_main(void *arg)
{
    producer *pr = arg;
    size_t t = atomic_load_explicit(&pr->ring.tail, memory_order_relaxed);
    long i = 0;
    int idle = 0;

    for (;;) {
        /* Pairs with the owner's release store of head after the slot. */
        size_t h = atomic_load_explicit(&pr->ring.head, memory_order_acquire);

        if (h == t) {
            if (atomic_load_explicit(&pr->stop, memory_order_acquire) &&
                atomic_load_explicit(&pr->ring.head, memory_order_acquire) ==
                    t) {
                break;
            }
            if (++idle < 256) {
                bench_cpu_relax();
            } else {
                sched_yield();
            }
            continue;
        }
        idle = 0;
        while (t != h) {
            complete_one(pr->v, pr->ring.slot[t & (RING - 1)], ++i);
            t++;
        }
        atomic_store_explicit(&pr->ring.tail, t, memory_order_release);
    }
    return NULL;
}

static void producers_start(enum variant v, int nprod)
{
    for (int p = 0; p < nprod; p++) {
        producer *pr = prods[p];

        atomic_store(&pr->ring.head, 0);
        atomic_store(&pr->ring.tail, 0);
        atomic_store(&pr->stop, 0);
        pr->v = v;
        if (pthread_create(&pr->th, NULL, producer_main, pr)) {
            perror("pthread_create");
            exit(1);
        }
    }
}

static void producers_stop(int nprod)
{
    for (int p = 0; p < nprod; p++) {
        atomic_store_explicit(&prods[p]->stop, 1, memory_order_release);
        pthread_join(prods[p]->th, NULL);
    }
}

/* ---------------------------------------------------------------------- */
/* The owner: issue from the done callback.                                */

static struct {
    enum variant v;
    unsigned long issued, done;
    uint64_t deadline;
    bool stopping;
} own;

static void done_cb(void *opaque, long ret);

/* Hand one new request to producer pr and publish it at once. */
static inline void issue(producer *pr)
{
    spsc_ring *r = &pr->ring;
    size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    void *req;

    if (own.v == V_ACTX) {
        req = actx_req_new(done_cb, pr);
        if (!req) {
            perror("actx_req_new");
            exit(1);
        }
    } else {
        req = node_get(done_cb, pr);
    }
    r->slot[h & (RING - 1)] = req;
    /* Pairs with the producer's acquire load of head. */
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
    own.issued++;
}

static void done_cb(void *opaque, long ret)
{
    (void)ret;
    own.done++;
    if (!own.stopping && (own.done & 1023) == 0 &&
        bench_now_ns() >= own.deadline) {
        own.stopping = true;
    }
    if (!own.stopping) {
        issue(opaque);
    }
#ifdef HAVE_LIBUV
    else if (own.v == V_UV && own.done == own.issued) {
        uv_stop(&uvl);
    }
#endif
}

typedef struct {
    double mps;           /* million completions per second */
    unsigned long done;   /* completions in this repetition */
    unsigned long sleeps; /* owner's blocking waits (actx stats) */
    unsigned long wakeups;
} rresult;

static rresult run_reissue(enum variant v, int nprod, double seconds)
{
    struct actx_stats st0, st1;
    uint64_t t0, t1;
    rresult res = {0};

    memset(&own, 0, sizeof(own));
    own.v = v;
    nodes_reset();
    producers_start(v, nprod);
    actx_stats(&st0);
    t0 = bench_now_ns();
    own.deadline = t0 + (uint64_t)(seconds * 1e9);
    for (int k = 0; k < OUTSTANDING; k++) {
        for (int p = 0; p < nprod; p++) {
            issue(prods[p]);
        }
    }
    switch (v) {
    case V_ACTX:
        while (!own.stopping || own.done != own.issued) {
            actx_poll(true);
        }
        break;
    case V_UV:
#ifdef HAVE_LIBUV
        uv_run(&uvl, UV_RUN_DEFAULT);
#endif
        break;
    case V_RAW:
        while (!own.stopping || own.done != own.issued) {
            raw_mb_poll_blocking(&rawmb);
        }
        break;
    }
    t1 = bench_now_ns();
    actx_stats(&st1);
    producers_stop(nprod);
    res.done = own.done;
    res.mps = (double)own.done / ((double)(t1 - t0) / 1e3);
    if (v == V_ACTX) {
        res.sleeps = st1.sleeps - st0.sleeps;
        res.wakeups = st1.wakeups - st0.wakeups;
    }
    return res;
}

/* ---------------------------------------------------------------------- */

static const char *only;

/* Selected by -only?  A kind (figure, implementation) it omits is all in. */
static bool want(const char *name, const char *const *kind)
{
    if (!only) {
        return true;
    }
    for (const char *const *k = kind; *k; k++) {
        if (bench_list_has(only, *k)) {
            return bench_list_has(only, name);
        }
    }
    return true;
}

static const char *const figures[] = {"r1", "r2", NULL};
static const char *const impls[] = {"actx", "uv", "raw", NULL};

static void fig_reissue(int nprod, const bench_opts *o)
{
    unsigned long sleeps = 0, wakeups = 0, done = 0;
    bench_fig *f =
        bench_fig_new(nprod == 1 ? "completions re-issued from done, 1p"
                                 : "completions re-issued from done, 2p",
                      "M/s", BENCH_HIGHER);
    double secs = o->rep_seconds / 3;

    /* Short interleaved repetitions give every implementation quiet turns. */
    for (int r = 0; r < 3 * o->reps; r++) {
        rresult x;

        if (want("actx", impls)) {
            x = run_reissue(V_ACTX, nprod, secs);
            bench_add(f, "actx", x.mps);
            sleeps += x.sleeps;
            wakeups += x.wakeups;
            done += x.done;
        }
#ifdef HAVE_LIBUV
        if (want("uv", impls)) {
            bench_add(f, "libuv mutex+async",
                      run_reissue(V_UV, nprod, secs).mps);
        }
#endif
        if (want("raw", impls)) {
            bench_add(f, "raw mpsc+eventfd",
                      run_reissue(V_RAW, nprod, secs).mps);
        }
    }
    bench_peer(f, "libuv mutex+async");
    bench_target_ratio(f, "libuv mutex+async", 1.2);
    if (done) {
        bench_note(f,
                   "%d outstanding; actx owner: %.3f sleeps, %.3f wake-ups "
                   "per 1000 completions",
                   nprod * OUTSTANDING, 1000.0 * (double)sleeps / (double)done,
                   1000.0 * (double)wakeups / (double)done);
    }
    bench_fig_done(f);
}

int main(int argc, char **argv)
{
    static const bench_option extra[] = {
        {"-only", "LIST",
         "comma-separated subset of the figures r1,r2 and the "
         "implementations actx,uv,raw (e.g. -only r2,actx)",
         &only, NULL},
        {NULL, NULL, NULL, NULL, NULL},
    };
    static const bench_spec spec = {
        .prog = "xthread-reissue",
        .what = "cross-thread completions whose done callback issues the "
                "next request (1 and 2\nproducers into one owner that sits "
                "in actx_poll(true)): actx, the libuv idiom\nand the raw "
                "protocol.",
        .reps = 5,
        .rep_seconds = 0.3,
        .extra = extra,
        .usage_more = "Each figure gets 3xREPS repetitions of SECONDS/3 per "
                      "implementation, interleaved.",
    };
    bench_opts o;

    bench_init(&o, &spec, argc, argv);
    for (int p = 0; p < MAX_PRODUCERS; p++) {
        if (posix_memalign((void **)&prods[p], BENCH_CACHELINE,
                           sizeof(producer))) {
            perror("posix_memalign");
            return 1;
        }
        memset(prods[p], 0, sizeof(producer));
    }
    node_count = (size_t)MAX_PRODUCERS * OUTSTANDING + 1;
    if (posix_memalign((void **)&node_mem, BENCH_CACHELINE,
                       node_count * sizeof(node))) {
        perror("posix_memalign");
        return 1;
    }
    raw_mb_init(&rawmb);
#ifdef HAVE_LIBUV
    uv_loop_init(&uvl);
    uv_async_init(&uvl, &uv_wake, uvq_drain_cb);
#endif
    if (actx_thread_init() < 0) {
        fprintf(stderr, "actx_thread_init failed\n");
        return 1;
    }

    printf("xthread-reissue: %d interleaved repetitions of %.2f s; "
           "%d requests outstanding per producer\n",
           3 * o.reps, o.rep_seconds / 3, OUTSTANDING);
    bench_group("xthread-reissue",
                "cross-thread completions re-issued from the done callback");
    for (int nprod = 1; nprod <= MAX_PRODUCERS; nprod++) {
        if (want(nprod == 1 ? "r1" : "r2", figures)) {
            fig_reissue(nprod, &o);
        }
    }

#ifdef HAVE_LIBUV
    uv_close((uv_handle_t *)&uv_wake, NULL);
    uv_run(&uvl, UV_RUN_DEFAULT);
    uv_loop_close(&uvl);
#endif
    close(rawmb.efd);
    close(rawmb.ep);
    for (int p = 0; p < MAX_PRODUCERS; p++) {
        free(prods[p]);
    }
    free(node_mem);
    return bench_finish();
}
