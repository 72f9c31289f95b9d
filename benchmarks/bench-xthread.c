/*
 * bench-xthread.c - cross-thread completions and cross-thread round trips.
 *
 * completions (1 and 2 producers into one owner)
 *   The owner creates each request as it would submit I/O (actx_req_new)
 *   and hands it to a producer thread through a per-producer SPSC ring of
 *   pointers (RING slots, filled in batches); the producer completes it
 *   (actx_req_complete(req, i)); the owner runs actx_poll(false), and
 *   actx_poll(true) when it neither issued nor ran anything, and counds the
 *   done callbacks.  Figure: million completions per second (higher is
 *   better).  The same rings, producers and owner loop drive the peers:
 *     libuv  the uv threadpool idiom: preallocated nodes appended to a
 *            mutex-protected queue + uv_async_send(); the async callback
 *            takes the whole queue under the lock and runs the callbacks
 *            outside it.  Owner: uv_run(UV_RUN_NOWAIT) / (UV_RUN_ONCE).
 *     raw    the protocol actx uses, without a runtime around it: an
 *            intrusive MPSC list (CAS push, the consumer takes it all with
 *            one exchange and reverses it), an eventfd in an epoll set, and
 *            a notify_me flag so the eventfd is written only when the
 *            consumer may sleep.
 *
 * ping-pong (round trip between two threads' blocking loops)
 *   Thread A actx_ctx_call()s into B's root context, B's function
 *   actx_ctx_call()s back into A; each sits in actx_poll(true) (A) or
 *   actx_run() (B).  Figure: microseconds per round trip (lower is
 *   better).  Peers: two eventfds, each in its thread's epoll set (each
 *   thread blocks in epoll_wait on its own); libuv uv_async ping-pong
 *   between two loops (reference).
 *
 * completions, owner always blocking (b1, b2)
 *   The same pipeline with the owner loop of a C service: `while (!done)
 *   { issue; actx_poll(true); }` (raw: raw_mb_poll(true)); libuv runs
 *   uv_run(UV_RUN_DEFAULT) once and issues from its async callback.
 *
 * completions with polling on (p1, p2)
 *   The completions figure with actx_set_poll_max_ns(POLL_NS) on the owner,
 *   against actx with polling off in the same run: not slower (within the
 *   3% that two runs of the same code differ by here).
 *
 * ping-pong with polling on both loops (ppp), against the sleeping raw
 * eventfd+epoll round trip and two threads spinning on atomics (the floor);
 * and the CPU an idle loop with polling on uses in 1 s (idle, getrusage),
 * after its window was grown to the maximum.
 *
 * Options: see --help (bench-util.h has the common ones); -only LIST
 * selects figures and implementations, for profiling one of them.  Each
 * figure reports the median of its repetitions and their spread.
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
#include <sys/resource.h>
#include <unistd.h>

#include "bench-util.h"

#ifndef BENCH_NO_ACTX
#include "actx.h"
#endif
#ifdef HAVE_LIBUV
#include <uv.h>
#endif

#define RING 4096 /* slots per producer ring, a power of two */
#define MAX_PRODUCERS 2
#define OUTSTANDING_PER_PRODUCER (2 * RING)

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
 * Put every node back in address order.  Called before each run: the
 * order a free list ends up in after another implementation's run changes
 * the per-completion cost by up to 2.5x on this machine kind (hardware
 * prefetch follows ascending addresses), so each run starts the same way.
 */
static void nodes_reset(void)
{
    node_free = NULL;
    for (size_t i = node_count; i-- > 0;) {
        node_mem[i].next = node_free;
        node_free = &node_mem[i];
    }
}

static void nodes_init(size_t n)
{
    if (posix_memalign((void **)&node_mem, BENCH_CACHELINE, n * sizeof(node))) {
        perror("posix_memalign");
        exit(1);
    }
    node_count = n;
    nodes_reset();
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
/* The raw mailbox: the floor for a cross-thread completion channel.       */

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

static void raw_mb_destroy(raw_mailbox *mb)
{
    close(mb->efd);
    close(mb->ep);
}

/*
 * Any thread.  Push (seq_cst CAS), then read notify_me (seq_cst).  Pairs
 * with raw_mb_poll's store of notify_me followed by its re-check of head:
 * in the single total order either the consumer's re-check sees this node
 * or this load sees notify_me == 1, so a sleeping consumer is always woken.
 * notified coalesces the eventfd writes of one sleep.
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

/* Owner.  Run everything that arrived; sleep first if asked and empty. */
static int raw_mb_poll(raw_mailbox *mb, bool blocking)
{
    node *l = atomic_exchange(&mb->head, NULL);
    node *rev = NULL;

    if (!l && blocking) {
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
    if (!l) {
        return 0;
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
    return 1;
}

/* ---------------------------------------------------------------------- */
/* The libuv idiom: mutex-protected queue + uv_async_send.                 */

#ifdef HAVE_LIBUV
static uv_loop_t uvl;
static uv_async_t uv_wake;
static pthread_mutex_t uvq_lock = PTHREAD_MUTEX_INITIALIZER;
static node *uvq_head;
static node **uvq_tail = &uvq_head;
static void (*uv_after_drain)(void);

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
    if (uv_after_drain) {
        uv_after_drain(); /* run_completions_blocking's owner step */
    }
}
#endif

/* ---------------------------------------------------------------------- */
/* Producers.                                                              */

typedef struct {
    spsc_ring ring;
    _Alignas(BENCH_CACHELINE) atomic_int stop;
    enum variant v;
    pthread_t th;
} producer;

static producer *prods[MAX_PRODUCERS];

static inline void complete_one(enum variant v, void *p, long ret)
{
    switch (v) {
    case V_ACTX:
#ifndef BENCH_NO_ACTX
        actx_req_complete((actx_req *)p, ret);
#endif
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
        /* Pairs with the owner's release store of head after the slots. */
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
            if ((t & 63) == 0) {
                /* Pairs with the owner's acquire load of tail. */
                atomic_store_explicit(&pr->ring.tail, t, memory_order_release);
            }
        }
        atomic_store_explicit(&pr->ring.tail, t, memory_order_release);
    }
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* The owner loop, shared by all variants.                                  */

static unsigned long done_count;

static void done_cb(void *opaque, long ret)
{
    (void)opaque;
    (void)ret;
    done_count++;
}

static inline void *new_request(enum variant v)
{
    switch (v) {
    case V_ACTX:
#ifndef BENCH_NO_ACTX
    {
        actx_req *r = actx_req_new(done_cb, NULL);

        if (!r) {
            perror("actx_req_new");
            exit(1);
        }
        return r;
    }
#else
        return NULL;
#endif
    default:
        return node_get(done_cb, NULL);
    }
}

static inline int owner_poll(enum variant v, bool blocking)
{
    switch (v) {
    case V_ACTX:
#ifndef BENCH_NO_ACTX
        return actx_poll(blocking);
#else
        return 0;
#endif
    case V_UV:
#ifdef HAVE_LIBUV
    {
        unsigned long before = done_count;

        uv_run(&uvl, blocking ? UV_RUN_ONCE : UV_RUN_NOWAIT);
        return done_count != before;
    }
#else
        return 0;
#endif
    case V_RAW:
        return raw_mb_poll(&rawmb, blocking);
    }
    return 0;
}

typedef struct {
    double mps;              /* million completions per second */
    unsigned long sleeps;    /* owner's blocking waits (actx stats) */
    unsigned long wakeups;   /* owner's eventfd wake-ups (actx stats) */
    unsigned long completed; /* completions in this repetition */
} xresult;

/* Start nprod producer threads of variant v on empty rings. */
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

static xresult run_completions(enum variant v, int nprod, double seconds)
{
    unsigned long issued = 0;
    unsigned long cap = (unsigned long)nprod * OUTSTANDING_PER_PRODUCER;
    uint64_t t0, deadline, t1;
    xresult res = {0};
#ifndef BENCH_NO_ACTX
    struct actx_stats st0, st1;
#endif

    done_count = 0;
    nodes_reset();
    producers_start(v, nprod);
#ifndef BENCH_NO_ACTX
    actx_stats(&st0);
#endif
    t0 = bench_now_ns();
    deadline = t0 + (uint64_t)(seconds * 1e9);
    for (;;) {
        bool stopping = bench_now_ns() >= deadline;
        unsigned long n_issued = 0;

        if (!stopping) {
            for (int p = 0; p < nprod; p++) {
                spsc_ring *r = &prods[p]->ring;
                size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
                /* Pairs with the producer's release store of tail. */
                size_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
                size_t room = RING - (h - t);
                unsigned long out = issued - done_count;
                size_t n = cap - out < room ? cap - out : room;

                for (size_t k = 0; k < n; k++) {
                    r->slot[(h + k) & (RING - 1)] = new_request(v);
                }
                if (n) {
                    atomic_store_explicit(&r->head, h + n,
                                          memory_order_release);
                    issued += n;
                    n_issued += n;
                }
            }
        } else if (done_count == issued) {
            break;
        }
        if (!owner_poll(v, false) && !n_issued) {
            owner_poll(v, true);
        }
    }
    t1 = bench_now_ns();
#ifndef BENCH_NO_ACTX
    actx_stats(&st1);
    if (v == V_ACTX) {
        res.sleeps = st1.sleeps - st0.sleeps;
        res.wakeups = st1.wakeups - st0.wakeups;
    }
#endif
    for (int p = 0; p < nprod; p++) {
        atomic_store_explicit(&prods[p]->stop, 1, memory_order_release);
        pthread_join(prods[p]->th, NULL);
    }
    res.completed = done_count;
    res.mps = (double)done_count / ((double)(t1 - t0) / 1e3);
    return res;
}

/* ---------------------------------------------------------------------- */
/* Ping-pong.                                                               */

static atomic_int pp_stop;

/*
 * Round-trip timing: the figure of a repetition is its fastest block of
 * PP_BLOCK consecutive round trips, which filters out the preemptions and
 * host scheduling hiccups of a shared VM (the same filter for every
 * implementation).
 */
#define PP_BLOCK 32

typedef struct {
    uint64_t deadline;
    uint64_t last;
    uint64_t best;
} pp_clock;

static void pp_clock_start(pp_clock *c, double seconds)
{
    c->last = bench_now_ns();
    c->deadline = c->last + (uint64_t)(seconds * 1e9);
    c->best = UINT64_MAX;
}

/* Call after round trip n (1-based); true when the repetition is over. */
static inline bool pp_clock_tick(pp_clock *c, unsigned long n)
{
    uint64_t now;

    if (n % PP_BLOCK != 0) {
        return false;
    }
    now = bench_now_ns();
    if (now - c->last < c->best) {
        c->best = now - c->last;
    }
    c->last = now;
    return now >= c->deadline;
}

/* Microseconds per round trip. */
static double pp_clock_us(const pp_clock *c)
{
    return (double)c->best / 1e3 / PP_BLOCK;
}

static void raw_ep_pair(int *efd, int *ep)
{
    struct epoll_event ev = {.events = EPOLLIN};

    *efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    *ep = epoll_create1(EPOLL_CLOEXEC);
    if (*efd < 0 || *ep < 0 || epoll_ctl(*ep, EPOLL_CTL_ADD, *efd, &ev) < 0) {
        perror("eventfd/epoll");
        exit(1);
    }
}

static void raw_wait(int ep, int efd)
{
    struct epoll_event ev;
    uint64_t v;

    while (epoll_wait(ep, &ev, 1, -1) < 0 && errno == EINTR) {
    }
    if (read(efd, &v, sizeof(v)) < 0) {
        BENCH_USE(errno);
    }
}

static void raw_signal(int efd)
{
    uint64_t one = 1;

    if (write(efd, &one, sizeof(one)) < 0) {
        BENCH_USE(errno);
    }
}

static int raw_efd_a, raw_ep_a, raw_efd_b, raw_ep_b;

static void *raw_pong_main(void *arg)
{
    (void)arg;
    for (;;) {
        raw_wait(raw_ep_b, raw_efd_b);
        if (atomic_load(&pp_stop)) {
            break;
        }
        raw_signal(raw_efd_a);
    }
    return NULL;
}

static double pingpong_raw(double seconds)
{
    pthread_t th;
    pp_clock clk;
    unsigned long n = 0;

    raw_ep_pair(&raw_efd_a, &raw_ep_a);
    raw_ep_pair(&raw_efd_b, &raw_ep_b);
    atomic_store(&pp_stop, 0);
    pthread_create(&th, NULL, raw_pong_main, NULL);
    pp_clock_start(&clk, seconds);
    for (;;) {
        raw_signal(raw_efd_b);
        raw_wait(raw_ep_a, raw_efd_a);
        if (pp_clock_tick(&clk, ++n)) {
            break;
        }
    }
    atomic_store(&pp_stop, 1);
    raw_signal(raw_efd_b);
    pthread_join(th, NULL);
    close(raw_efd_a);
    close(raw_ep_a);
    close(raw_efd_b);
    close(raw_ep_b);
    return pp_clock_us(&clk);
}

#ifndef BENCH_NO_ACTX
static actx_ctx *_Atomic pp_ctx_b;
static int64_t pp_poll_ns; /* actx_set_poll_max_ns of both loops */
static actx_ctx *pp_ctx_a;
static int pp_got;

static void actx_pong_fn(void *opaque)
{
    (void)opaque;
    pp_got = 1; /* runs on A */
}

static void actx_ping_fn(void *opaque)
{
    (void)opaque;
    actx_ctx_call(pp_ctx_a, actx_pong_fn, NULL); /* runs on B */
}

static void *actx_pong_main(void *arg)
{
    (void)arg;
    if (actx_thread_init() < 0) {
        fprintf(stderr, "actx_thread_init failed on B\n");
        exit(1);
    }
    actx_set_poll_max_ns(pp_poll_ns);
    atomic_store(&pp_ctx_b, actx_ctx_current());
    actx_run();
    actx_thread_shutdown();
    return NULL;
}

static double pingpong_actx(double seconds)
{
    pthread_t th;
    actx_ctx *b;
    pp_clock clk;
    unsigned long n = 0;

    pp_ctx_a = actx_ctx_current();
    actx_set_poll_max_ns(pp_poll_ns);
    atomic_store(&pp_ctx_b, NULL);
    pthread_create(&th, NULL, actx_pong_main, NULL);
    while (!(b = atomic_load(&pp_ctx_b))) {
        sched_yield();
    }
    pp_clock_start(&clk, seconds);
    for (;;) {
        pp_got = 0;
        if (actx_ctx_call(b, actx_ping_fn, NULL) < 0) {
            fprintf(stderr, "actx_ctx_call failed\n");
            exit(1);
        }
        while (!pp_got) {
            actx_poll(true);
        }
        if (pp_clock_tick(&clk, ++n)) {
            break;
        }
    }
    actx_stop(b);
    actx_ctx_unref(b);
    pthread_join(th, NULL);
    actx_ctx_unref(pp_ctx_a);
    actx_set_poll_max_ns(0);
    return pp_clock_us(&clk);
}
#endif

#ifdef HAVE_LIBUV
static uv_loop_t uv_la, uv_lb;
static uv_async_t uv_aa, uv_ab;
static unsigned long uv_pp_n;
static pp_clock uv_pp_clk;

static void uv_b_cb(uv_async_t *h)
{
    if (atomic_load(&pp_stop)) {
        uv_close((uv_handle_t *)h, NULL);
        return;
    }
    uv_async_send(&uv_aa);
}

static void uv_a_cb(uv_async_t *h)
{
    if (pp_clock_tick(&uv_pp_clk, ++uv_pp_n)) {
        uv_close((uv_handle_t *)h, NULL);
        return;
    }
    uv_async_send(&uv_ab);
}

static void *uv_pong_main(void *arg)
{
    (void)arg;
    uv_run(&uv_lb, UV_RUN_DEFAULT);
    return NULL;
}

static double pingpong_uv(double seconds)
{
    pthread_t th;

    uv_loop_init(&uv_la);
    uv_loop_init(&uv_lb);
    uv_async_init(&uv_la, &uv_aa, uv_a_cb);
    uv_async_init(&uv_lb, &uv_ab, uv_b_cb);
    atomic_store(&pp_stop, 0);
    uv_pp_n = 0;
    pthread_create(&th, NULL, uv_pong_main, NULL);
    pp_clock_start(&uv_pp_clk, seconds);
    uv_async_send(&uv_ab);
    uv_run(&uv_la, UV_RUN_DEFAULT);
    atomic_store(&pp_stop, 1);
    uv_async_send(&uv_ab);
    pthread_join(th, NULL);
    uv_loop_close(&uv_la);
    uv_loop_close(&uv_lb);
    return pp_clock_us(&uv_pp_clk);
}
#endif

/* ---------------------------------------------------------------------- */

static const char *only;

/*
 * Is this figure ("fig") or implementation ("impl") selected by -only?  A
 * group that -only does not mention is selected entirely.
 */
static bool want(const char *name, const char *group)
{
    static const char *const figures[] = {"c1", "c2", "pp",  "b1",   "b2",
                                          "p1", "p2", "ppp", "idle", NULL};
    static const char *const impls[] = {"actx", "uv", "raw", NULL};
    const char *const *g = !strcmp(group, "fig") ? figures : impls;

    if (!only) {
        return true;
    }
    for (; *g; g++) {
        if (bench_list_has(only, *g)) {
            return bench_list_has(only, name);
        }
    }
    return true;
}

/* ---------------------------------------------------------------------- */
/* Completions with an owner that always blocks, and with polling on.      */

/*
 * The owner step of the blocking pattern: issue what the rings and the
 * outstanding bound allow (nothing once the repetition is over).
 */
static struct {
    enum variant v;
    int nprod;
    unsigned long issued, cap;
    uint64_t deadline;
    bool stopping;
} blk;

static void blocking_issue(void)
{
    /*
     * With nothing outstanding the owner must issue something before it
     * blocks (else it would sleep for ever): retry until the producers
     * have published the ring room they freed.
     */
    do {
        if (bench_now_ns() >= blk.deadline) {
            blk.stopping = true;
            return;
        }
        for (int p = 0; p < blk.nprod; p++) {
            spsc_ring *r = &prods[p]->ring;
            size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
            /* Pairs with the producer's release store of tail. */
            size_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
            size_t room = RING - (h - t);
            unsigned long out = blk.issued - done_count;
            size_t n = blk.cap - out < room ? blk.cap - out : room;

            for (size_t k = 0; k < n; k++) {
                r->slot[(h + k) & (RING - 1)] = new_request(blk.v);
            }
            if (n) {
                atomic_store_explicit(&r->head, h + n, memory_order_release);
                blk.issued += n;
            }
        }
    } while (blk.issued == done_count);
}

#ifdef HAVE_LIBUV
/* libuv: the owner step runs after each drain, inside uv_run(DEFAULT). */
static void uv_blocking_step(void)
{
    blocking_issue();
    if (blk.stopping && done_count == blk.issued) {
        uv_stop(&uvl);
    }
}
#endif

/*
 * The same pipeline as run_completions, but the owner is the loop of a C
 * service: `while (!done) { issue; actx_poll(true); }` (raw: the same
 * with raw_mb_poll(true)); libuv runs uv_run(UV_RUN_DEFAULT) once and
 * issues from the async callback after each drain.
 */
static double run_completions_blocking(enum variant v, int nprod,
                                       double seconds)
{
    uint64_t t0, t1;

    done_count = 0;
    nodes_reset();
    blk.v = v;
    blk.nprod = nprod;
    blk.issued = 0;
    blk.cap = (unsigned long)nprod * OUTSTANDING_PER_PRODUCER;
    blk.stopping = false;
    producers_start(v, nprod);
    t0 = bench_now_ns();
    blk.deadline = t0 + (uint64_t)(seconds * 1e9);
    if (v == V_UV) {
#ifdef HAVE_LIBUV
        blocking_issue();
        uv_after_drain = uv_blocking_step;
        uv_run(&uvl, UV_RUN_DEFAULT);
        uv_after_drain = NULL;
#endif
    } else {
        for (;;) {
            blocking_issue();
            if (blk.stopping && done_count == blk.issued) {
                break;
            }
            owner_poll(v, true);
        }
    }
    t1 = bench_now_ns();
    for (int p = 0; p < nprod; p++) {
        atomic_store_explicit(&prods[p]->stop, 1, memory_order_release);
        pthread_join(prods[p]->th, NULL);
    }
    return (double)done_count / ((double)(t1 - t0) / 1e3);
}

/* The poll_max_ns the polling figures use (QEMU's default is 32 us). */
#define POLL_NS 50000

/* Completions, owner always blocking: actx and raw vs libuv DEFAULT. */
static void row_completions_blocking(int nprod, const bench_opts *o)
{
    bench_fig *f = bench_fig_new(nprod == 1 ? "completions 1p, poll(true)"
                                            : "completions 2p, poll(true)",
                                 "M/s", BENCH_HIGHER);

    for (int r = 0; r < 3 * o->reps; r++) {
        double secs = o->rep_seconds / 3;

#ifndef BENCH_NO_ACTX
        if (want("actx", "impl")) {
            bench_add(f, "actx", run_completions_blocking(V_ACTX, nprod, secs));
        }
#endif
#ifdef HAVE_LIBUV
        if (want("uv", "impl")) {
            bench_add(f, "libuv RUN_DEFAULT",
                      run_completions_blocking(V_UV, nprod, secs));
        }
#endif
        if (want("raw", "impl")) {
            bench_add(f, "raw, always blocking",
                      run_completions_blocking(V_RAW, nprod, secs));
        }
    }
    bench_peer(f, "libuv RUN_DEFAULT");
    bench_target_ratio(f, "libuv RUN_DEFAULT", 1.0);
    bench_note(f, "the owner calls actx_poll(true) every iteration");
    bench_fig_done(f);
}

#ifndef BENCH_NO_ACTX
/* Completions as in run_completions, actx with polling on vs off. */
static void row_completions_polling(int nprod, const bench_opts *o)
{
    bench_fig *f = bench_fig_new(nprod == 1 ? "completions 1p, polling on"
                                            : "completions 2p, polling on",
                                 "M/s", BENCH_HIGHER);

    for (int r = 0; r < 3 * o->reps; r++) {
        double secs = o->rep_seconds / 3;

        actx_set_poll_max_ns(POLL_NS);
        bench_add(f, "actx", run_completions(V_ACTX, nprod, secs).mps);
        actx_set_poll_max_ns(0);
        bench_add(f, "actx, polling off",
                  run_completions(V_ACTX, nprod, secs).mps);
    }
    /*
     * "Not slower": the two arms run the same code while the owner is
     * busy, so the target allows the noise between two runs of the same
     * code here (their medians differ by up to ~2%), not a real loss.
     */
    bench_target_ratio(f, "actx, polling off", 0.97);
    bench_note(f,
               "actx = poll_max_ns %d on the owner; target: not slower, "
               "within 3%% noise",
               POLL_NS);
    bench_fig_done(f);
}

/*
 * The floor of a polled round trip: two threads spinning on one atomic
 * counter each (no loop, no sleeping at all).
 */
static atomic_ulong spin_a, spin_b;

static void *spin_pong_main(void *arg)
{
    unsigned long seen = 0;

    (void)arg;
    for (;;) {
        unsigned long v;

        while ((v = atomic_load(&spin_b)) == seen) {
            bench_cpu_relax();
        }
        seen = v;
        if (atomic_load(&pp_stop)) {
            break;
        }
        atomic_store(&spin_a, v);
    }
    return NULL;
}

static double pingpong_spin(double seconds)
{
    pthread_t th;
    pp_clock clk;
    unsigned long n = 0;

    atomic_store(&spin_a, 0);
    atomic_store(&spin_b, 0);
    atomic_store(&pp_stop, 0);
    pthread_create(&th, NULL, spin_pong_main, NULL);
    pp_clock_start(&clk, seconds);
    for (;;) {
        atomic_store(&spin_b, n + 1);
        while (atomic_load(&spin_a) != n + 1) {
            bench_cpu_relax();
        }
        if (pp_clock_tick(&clk, ++n)) {
            break;
        }
    }
    atomic_store(&pp_stop, 1);
    atomic_store(&spin_b, n + 1);
    pthread_join(th, NULL);
    return pp_clock_us(&clk);
}

/* Ping-pong with both loops polling, against sleeping raw eventfd+epoll. */
static void row_pingpong_polling(const bench_opts *o)
{
    bench_fig *f = bench_fig_new("ping-pong, polling on", "us/rt", BENCH_LOWER);

    for (int r = 0; r < 10 * o->reps; r++) {
        double secs = o->rep_seconds / 10;

        pp_poll_ns = POLL_NS;
        bench_add(f, "actx", pingpong_actx(secs));
        pp_poll_ns = 0;
        bench_add(f, "raw eventfd+epoll", pingpong_raw(secs));
        bench_add(f, "raw spin (floor)", pingpong_spin(secs));
    }
    /* <= 0.25x the sleeping raw round trip, i.e. >= 4x faster. */
    bench_target_ratio(f, "raw eventfd+epoll", 4.0);
    bench_note(f, "poll_max_ns %d on both loops; also <= 2 us", POLL_NS);
    bench_fig_done(f);
}

static void idle_timer_cb(void *opaque)
{
    *(int *)opaque = 1;
}

static double thread_cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_THREAD, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/*
 * A loop with polling on and nothing to do for 1 s: its window is first
 * grown to the maximum by a polling ping-pong, then it waits for a timer
 * 1 s away.  Figure: % of one CPU used meanwhile (getrusage).
 */
static void row_idle_polling(void)
{
    bench_fig *f =
        bench_fig_new("idle 1 s, polling on", "% of a CPU", BENCH_LOWER);
    actx_timer *t;
    int fired = 0;
    double c0, c1;
    uint64_t w0, w1;

    pp_poll_ns = POLL_NS;
    pingpong_actx(0.05);
    pp_poll_ns = 0;
    actx_set_poll_max_ns(POLL_NS);
    t = actx_timer_new(idle_timer_cb, &fired);
    if (!t) {
        perror("actx_timer_new");
        exit(1);
    }
    c0 = thread_cpu_s();
    w0 = bench_now_ns();
    actx_timer_mod(t, actx_now_ns() + 1000000000ull);
    while (!fired) {
        actx_poll(true);
    }
    w1 = bench_now_ns();
    c1 = thread_cpu_s();
    actx_timer_free(t);
    actx_set_poll_max_ns(0);
    bench_add(f, "actx", 100.0 * (c1 - c0) / ((double)(w1 - w0) / 1e9));
    bench_target_abs(f, 2.0);
    bench_note(f,
               "getrusage of the owner thread; window first grown to "
               "poll_max_ns %d",
               POLL_NS);
    bench_fig_done(f);
}
#endif

int main(int argc, char **argv)
{
    static const bench_option extra[] = {
        {"-only", "LIST",
         "comma-separated subset of the figures c1,c2,pp,b1,b2,p1,p2,ppp,"
         "idle and the "
         "implementations actx,uv,raw (e.g. -only c1,raw)",
         &only, NULL},
        {NULL, NULL, NULL, NULL, NULL},
    };
    static const bench_spec spec = {
        .prog = "bench-xthread",
        .what = "cross-thread completions (1 and 2 producers into one "
                "owner) and round trips\nbetween two threads' blocking "
                "loops: actx, the libuv idiom and the raw protocol.",
        .reps = 5,
        .rep_seconds = 0.3,
        .extra = extra,
        .usage_more = "Completions get 3xREPS repetitions of SECONDS/3, "
                      "ping-pong 10xREPS of SECONDS/10,\nper "
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
    nodes_init((size_t)MAX_PRODUCERS * OUTSTANDING_PER_PRODUCER + RING);
    raw_mb_init(&rawmb);
#ifdef HAVE_LIBUV
    uv_loop_init(&uvl);
    uv_async_init(&uvl, &uv_wake, uvq_drain_cb);
#endif
#ifndef BENCH_NO_ACTX
    if (actx_thread_init() < 0) {
        fprintf(stderr, "actx_thread_init failed\n");
        return 1;
    }
#endif

    printf("bench-xthread: %d interleaved repetitions of %.2f s "
           "(ping-pong: %d of %.3f s); ring %d slots, at most %d "
           "outstanding per producer\n",
           3 * o.reps, o.rep_seconds / 3, 10 * o.reps, o.rep_seconds / 10, RING,
           OUTSTANDING_PER_PRODUCER);
    bench_group("xthread", "cross-thread completions and round trips");

    for (int nprod = 1; nprod <= MAX_PRODUCERS; nprod++) {
        unsigned long sleeps = 0, wakeups = 0, completed = 0;
        bench_fig *f;

        if (!want(nprod == 1 ? "c1" : "c2", "fig")) {
            continue;
        }
        f = bench_fig_new(nprod == 1 ? "completions, 1 producer"
                                     : "completions, 2 producers",
                          "M/s", BENCH_HIGHER);
        /*
         * Three times as many repetitions, a third as long: other jobs on
         * the machine come and go within seconds, and short interleaved
         * repetitions give every implementation a quiet turn.
         */
        for (int r = 0; r < 3 * o.reps; r++) {
            double secs = o.rep_seconds / 3;
            xresult x;

#ifndef BENCH_NO_ACTX
            if (want("actx", "impl")) {
                x = run_completions(V_ACTX, nprod, secs);
                bench_add(f, "actx", x.mps);
                sleeps += x.sleeps;
                wakeups += x.wakeups;
                completed += x.completed;
            }
#endif
#ifdef HAVE_LIBUV
            if (want("uv", "impl")) {
                x = run_completions(V_UV, nprod, secs);
                bench_add(f, "libuv mutex+async", x.mps);
            }
#endif
            if (want("raw", "impl")) {
                x = run_completions(V_RAW, nprod, secs);
                bench_add(f, "raw mpsc+eventfd", x.mps);
            }
        }
        bench_peer(f, "libuv mutex+async");
        bench_target_ratio(f, "libuv mutex+async", 1.0);
        bench_note(f, "also >= 0.9x raw mpsc+eventfd");
        if (completed) {
            bench_note(f,
                       "actx owner: %.3f sleeps, %.3f wake-ups per 1000 "
                       "completions",
                       1000.0 * (double)sleeps / (double)completed,
                       1000.0 * (double)wakeups / (double)completed);
        }
        bench_fig_done(f);
    }

    for (int nprod = 1; nprod <= MAX_PRODUCERS; nprod++) {
        if (want(nprod == 1 ? "b1" : "b2", "fig")) {
            row_completions_blocking(nprod, &o);
        }
    }
#ifndef BENCH_NO_ACTX
    for (int nprod = 1; nprod <= MAX_PRODUCERS; nprod++) {
        if (want(nprod == 1 ? "p1" : "p2", "fig")) {
            row_completions_polling(nprod, &o);
        }
    }
#endif

    if (want("pp", "fig")) {
        bench_fig *f =
            bench_fig_new("ping-pong round trip", "us/rt", BENCH_LOWER);

        /*
         * Round trips are wake-up latencies, the noisiest figure on a
         * shared VM: it switches between a fast and a slow mode (2 vs 15
         * us here) that lasts for seconds.  Ten times as many
         * repetitions, a tenth as long, so that every implementation gets
         * its turns in both modes; each keeps its fastest block of
         * PP_BLOCK round trips (see pp_clock).
         */
        for (int r = 0; r < 10 * o.reps; r++) {
            double secs = o.rep_seconds / 10;

#ifndef BENCH_NO_ACTX
            if (want("actx", "impl")) {
                bench_add(f, "actx", pingpong_actx(secs));
            }
#endif
            if (want("raw", "impl")) {
                bench_add(f, "raw eventfd+epoll", pingpong_raw(secs));
            }
#ifdef HAVE_LIBUV
            if (want("uv", "impl")) {
                bench_add(f, "libuv async", pingpong_uv(secs));
            }
#endif
        }
        bench_target_ratio(f, "raw eventfd+epoll", 1 / 1.1);
        bench_note(f, "each repetition: its fastest block of %d round trips",
                   PP_BLOCK);
        bench_fig_done(f);
    }
#ifndef BENCH_NO_ACTX
    if (want("ppp", "fig")) {
        row_pingpong_polling(&o);
    }
    if (want("idle", "fig")) {
        row_idle_polling();
    }
#endif

#ifdef HAVE_LIBUV
    uv_close((uv_handle_t *)&uv_wake, NULL);
    uv_run(&uvl, UV_RUN_DEFAULT);
    uv_loop_close(&uvl);
#endif
    raw_mb_destroy(&rawmb);
    for (int p = 0; p < MAX_PRODUCERS; p++) {
        free(prods[p]);
    }
    free(node_mem);
    return bench_finish();
}
