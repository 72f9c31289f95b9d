/*
 * bench-bh.c - bottom halves and the context stack, single thread.
 *
 *   bh burst     1024 BHs created once; each round schedules all 1024 and
 *                runs them with one actx_bh_poll().  ns per BH.
 *                Peers: a raw intrusive FIFO run queue of the same shape
 *                (flag per node, singly-linked list with a tail pointer,
 *                pop-all and call through a function pointer), libuv
 *                (1024 uv_idle handles started, one uv_run(UV_RUN_NOWAIT),
 *                each callback stops its own handle) and libevent (1024
 *                event_active() + one event_base_loop(EVLOOP_NONBLOCK)).
 *   bh chain     one BH whose callback schedules itself again, driven by
 *                actx_poll(false) with no fd handler registered: the whole
 *                per-iteration cost of the loop.  ns per BH.
 *                Peers: raw run queue + its poll, libuv (an idle handle
 *                left running, uv_run(UV_RUN_NOWAIT) per iteration),
 *                libevent (an event that event_active()s itself from its
 *                callback, event_base_loop(EVLOOP_ONCE|EVLOOP_NONBLOCK)).
 *   push+pop     actx_push() + actx_pop().  ns per pair.  Peer: GLib's
 *                g_main_context_push/pop_thread_default() of one context.
 *   mallocs      malloc/calloc/realloc/memalign calls per operation in the
 *                steady state, counted by wrappers defined here that
 *                forward to glibc's __libc_* allocator.
 *
 * Options: see --help.  Each figure reports the median of its repetitions
 * and their spread.
 *
 * ./bench-bh --syscall-check does 1e6 push+pop pairs (and 1e6 BH bursts of
 * one BH) between two getppid() markers and nothing else, so that
 *     strace -f ./bench-bh --syscall-check 2>&1 |
 *         sed -n '/getppid/,/getppid/p'
 * shows every syscall made by the steady state (expected: only the two
 * markers).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "harness/harness.h"

#ifndef BENCH_NO_ACTX
#include "actx.h"
#endif
#ifdef HAVE_LIBUV
#include <uv.h>
#endif
#ifdef HAVE_LIBEVENT
#include <event2/event.h>
#endif
#ifdef HAVE_GLIB
#include <glib.h>
#endif

#define BURST 1024

/* ---------------------------------------------------------------------- */
/* Allocation counting.                                                     */

/*
 * Defining malloc and friends in the executable interposes them for every
 * shared object in the process (libactx included).  They forward to glibc's
 * own allocator, so memory from either side may be freed by the other.
 * Sanitizer builds keep their own allocator: counting is off there.
 */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define BENCH_COUNT_MALLOC 1

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static __thread unsigned long n_allocs
    __attribute__((tls_model("initial-exec")));

void *malloc(size_t n)
{
    n_allocs++;
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    n_allocs++;
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    n_allocs++;
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}

void *memalign(size_t align, size_t n)
{
    n_allocs++;
    return __libc_memalign(align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    n_allocs++;
    return __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    void *p;

    if (align < sizeof(void *) || (align & (align - 1)) != 0) {
        return EINVAL;
    }
    n_allocs++;
    p = __libc_memalign(align, n);
    if (!p) {
        return ENOMEM;
    }
    *out = p;
    return 0;
}

void *valloc(size_t n)
{
    n_allocs++;
    return __libc_memalign((size_t)sysconf(_SC_PAGESIZE), n);
}

static unsigned long allocs_now(void)
{
    return n_allocs;
}
#else
static unsigned long allocs_now(void)
{
    return 0;
}
#endif

/* ---------------------------------------------------------------------- */
/* The raw run queue: the floor any BH implementation is measured against.  */

typedef struct rq_node {
    struct rq_node *next;
    int scheduled;
    void (*cb)(void *opaque);
    void *opaque;
} rq_node;

typedef struct {
    rq_node *head;
    rq_node **tail;
} rq_queue;

static void rq_init(rq_queue *q)
{
    q->head = NULL;
    q->tail = &q->head;
}

/* Out of line, like a library call. */
static BENCH_NOINLINE void rq_schedule(rq_queue *q, rq_node *n)
{
    if (n->scheduled) {
        return;
    }
    n->scheduled = 1;
    n->next = NULL;
    *q->tail = n;
    q->tail = &n->next;
}

/* Pop everything scheduled so far; what callbacks schedule runs next time. */
static BENCH_NOINLINE int rq_poll(rq_queue *q)
{
    rq_node *n = q->head;
    int ran = 0;

    rq_init(q);
    while (n) {
        rq_node *next = n->next;

        n->scheduled = 0;
        n->cb(n->opaque);
        ran = 1;
        n = next;
    }
    return ran;
}

/* ---------------------------------------------------------------------- */
/* Shared callback state.                                                   */

static unsigned long counter;
static long chain_left;

static void count_cb(void *opaque)
{
    (void)opaque;
    counter++;
}

/* ---------------------------------------------------------------------- */
/* BH burst.                                                                */

static double burst_raw(long rounds)
{
    static rq_node nodes[BURST];
    rq_queue q;
    uint64_t t0;

    rq_init(&q);
    for (int i = 0; i < BURST; i++) {
        nodes[i] = (rq_node){NULL, 0, count_cb, NULL};
    }
    counter = 0;
    t0 = bench_now_ns();
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < BURST; i++) {
            rq_schedule(&q, &nodes[i]);
        }
        rq_poll(&q);
    }
    t0 = bench_now_ns() - t0;
    if (counter != (unsigned long)rounds * BURST) {
        fprintf(stderr, "burst_raw: ran %lu of %ld\n", counter, rounds * BURST);
    }
    return (double)t0 / ((double)rounds * BURST);
}

#ifndef BENCH_NO_ACTX
static actx_bh *burst_bhs[BURST];
static unsigned long burst_allocs;

static void burst_actx_setup(void)
{
    for (int i = 0; i < BURST; i++) {
        burst_bhs[i] = actx_bh_new(count_cb, NULL);
        if (!burst_bhs[i]) {
            perror("actx_bh_new");
            exit(1);
        }
    }
}

static void burst_actx_teardown(void)
{
    for (int i = 0; i < BURST; i++) {
        actx_bh_delete(burst_bhs[i]);
    }
}

static double burst_actx(long rounds)
{
    uint64_t t0;
    unsigned long a0;

    counter = 0;
    a0 = allocs_now();
    t0 = bench_now_ns();
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < BURST; i++) {
            actx_bh_schedule(burst_bhs[i]);
        }
        actx_bh_poll();
    }
    t0 = bench_now_ns() - t0;
    burst_allocs += allocs_now() - a0;
    if (counter != (unsigned long)rounds * BURST) {
        fprintf(stderr, "burst_actx: ran %lu of %ld\n", counter,
                rounds * BURST);
    }
    return (double)t0 / ((double)rounds * BURST);
}
#endif

#ifdef HAVE_LIBUV
static uv_loop_t uvl;
static uv_idle_t uv_idles[BURST];

static void uv_burst_cb(uv_idle_t *h)
{
    counter++;
    uv_idle_stop(h);
}

static double burst_uv(long rounds)
{
    uint64_t t0;

    counter = 0;
    t0 = bench_now_ns();
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < BURST; i++) {
            uv_idle_start(&uv_idles[i], uv_burst_cb);
        }
        uv_run(&uvl, UV_RUN_NOWAIT);
    }
    t0 = bench_now_ns() - t0;
    if (counter != (unsigned long)rounds * BURST) {
        fprintf(stderr, "burst_uv: ran %lu of %ld\n", counter, rounds * BURST);
    }
    return (double)t0 / ((double)rounds * BURST);
}
#endif

#ifdef HAVE_LIBEVENT
static struct event_base *evb;
static struct event *ev_burst[BURST];

static void ev_count_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    counter++;
}

static double burst_ev(long rounds)
{
    uint64_t t0;

    counter = 0;
    t0 = bench_now_ns();
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < BURST; i++) {
            event_active(ev_burst[i], EV_READ, 0);
        }
        event_base_loop(evb, EVLOOP_NONBLOCK);
    }
    t0 = bench_now_ns() - t0;
    if (counter != (unsigned long)rounds * BURST) {
        fprintf(stderr, "burst_ev: ran %lu of %ld\n", counter, rounds * BURST);
    }
    return (double)t0 / ((double)rounds * BURST);
}
#endif

/* ---------------------------------------------------------------------- */
/* BH chain.                                                                */

static rq_queue chain_q;
static rq_node chain_node;

static void raw_chain_cb(void *opaque)
{
    (void)opaque;
    if (--chain_left > 0) {
        rq_schedule(&chain_q, &chain_node);
    }
}

static double chain_raw(long n)
{
    uint64_t t0;

    rq_init(&chain_q);
    chain_node = (rq_node){NULL, 0, raw_chain_cb, NULL};
    chain_left = n;
    t0 = bench_now_ns();
    rq_schedule(&chain_q, &chain_node);
    while (chain_left > 0) {
        rq_poll(&chain_q);
    }
    t0 = bench_now_ns() - t0;
    return (double)t0 / (double)n;
}

#ifndef BENCH_NO_ACTX
static actx_bh *chain_bh;
static unsigned long chain_allocs;

static void actx_chain_cb(void *opaque)
{
    (void)opaque;
    if (--chain_left > 0) {
        actx_bh_schedule(chain_bh);
    }
}

static double chain_actx(long n)
{
    uint64_t t0;
    unsigned long a0;

    chain_left = n;
    a0 = allocs_now();
    t0 = bench_now_ns();
    actx_bh_schedule(chain_bh);
    while (chain_left > 0) {
        actx_poll(false);
    }
    t0 = bench_now_ns() - t0;
    chain_allocs += allocs_now() - a0;
    return (double)t0 / (double)n;
}
#endif

#ifdef HAVE_LIBUV
static uv_idle_t uv_chain_idle;

static void uv_chain_cb(uv_idle_t *h)
{
    if (--chain_left <= 0) {
        uv_idle_stop(h);
    }
}

static double chain_uv(long n)
{
    uint64_t t0;

    chain_left = n;
    t0 = bench_now_ns();
    uv_idle_start(&uv_chain_idle, uv_chain_cb);
    while (chain_left > 0) {
        uv_run(&uvl, UV_RUN_NOWAIT);
    }
    t0 = bench_now_ns() - t0;
    return (double)t0 / (double)n;
}
#endif

#ifdef HAVE_LIBEVENT
static struct event *ev_chain;
static unsigned long ev_chain_loops;

static void ev_chain_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (--chain_left > 0) {
        event_active(ev_chain, EV_READ, 0);
    }
}

static double chain_ev(long n)
{
    uint64_t t0;

    chain_left = n;
    t0 = bench_now_ns();
    event_active(ev_chain, EV_READ, 0);
    while (chain_left > 0) {
        event_base_loop(evb, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        ev_chain_loops++;
    }
    t0 = bench_now_ns() - t0;
    return (double)t0 / (double)n;
}
#endif

/* ---------------------------------------------------------------------- */
/* push + pop.                                                              */

#ifndef BENCH_NO_ACTX
static unsigned long pushpop_allocs;
static unsigned long pushpop_pairs;

static double pushpop_actx(long n)
{
    uint64_t t0;
    unsigned long a0;

    a0 = allocs_now();
    t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        actx_push();
        actx_pop();
    }
    t0 = bench_now_ns() - t0;
    pushpop_allocs += allocs_now() - a0;
    pushpop_pairs += (unsigned long)n;
    return (double)t0 / (double)n;
}
#endif

#ifdef HAVE_GLIB
static GMainContext *gctx;
static unsigned long glib_allocs;
static unsigned long glib_pairs;

static double pushpop_glib(long n)
{
    uint64_t t0;
    unsigned long a0;

    a0 = allocs_now();
    t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        g_main_context_push_thread_default(gctx);
        g_main_context_pop_thread_default(gctx);
    }
    t0 = bench_now_ns() - t0;
    glib_allocs += allocs_now() - a0;
    glib_pairs += (unsigned long)n;
    return (double)t0 / (double)n;
}
#endif

/* ---------------------------------------------------------------------- */

#ifndef BENCH_NO_ACTX
static int syscall_check(void)
{
    actx_bh *bh;
    unsigned long a0;

    if (actx_thread_init() < 0) {
        fprintf(stderr, "actx_thread_init failed\n");
        return 1;
    }
    bh = actx_bh_new(count_cb, NULL);
    for (int i = 0; i < 1000; i++) { /* warm-up: fill the free lists */
        actx_push();
        actx_pop();
        actx_bh_schedule(bh);
        actx_bh_poll();
    }
    a0 = allocs_now();
    syscall(SYS_getppid); /* marker: steady state begins */
    for (int i = 0; i < 1000000; i++) {
        actx_push();
        actx_pop();
    }
    for (int i = 0; i < 1000000; i++) {
        actx_bh_schedule(bh);
        actx_bh_poll();
    }
    syscall(SYS_getppid); /* marker: steady state ends */
    a0 = allocs_now() - a0;
    printf("syscall-check: 1e6 push+pop pairs and 1e6 BH schedule+poll "
           "between the two markers; mallocs: %lu\n",
           a0);
    actx_bh_delete(bh);
    return 0;
}
#endif

int main(int argc, char **argv)
{
    static bool syscall_check_flag;
    static const bench_option extra[] = {
        {"--syscall-check", NULL,
         "only do 1e6 push+pop and 1e6 BH schedule+poll between two "
         "getppid() markers (run it under strace -f)",
         NULL, &syscall_check_flag},
        {NULL, NULL, NULL, NULL, NULL},
    };
    static const bench_spec spec = {
        .prog = "bench-bh",
        .what = "bottom halves and the context stack on one thread: BH "
                "bursts, a BH chain polled\nper BH, push+pop, mallocs per "
                "operation; beside a raw run queue, libuv,\nlibevent and "
                "GLib.",
        .reps = 5,
        .extra = extra,
    };
    bench_opts o;
    long burst_rounds, chain_n, pushpop_n;
    bench_fig *f;

    bench_init(&o, &spec, argc, argv);
#ifndef BENCH_NO_ACTX
    if (syscall_check_flag) {
        return syscall_check();
    }
#endif
    burst_rounds = (long)(2000 * o.scale);
    chain_n = (long)(4000000 * o.scale);
    pushpop_n = (long)(4000000 * o.scale);

#ifndef BENCH_NO_ACTX
    if (actx_thread_init() < 0) {
        fprintf(stderr, "actx_thread_init failed\n");
        return 1;
    }
    burst_actx_setup();
    chain_bh = actx_bh_new(actx_chain_cb, NULL);
#endif
#ifdef HAVE_LIBUV
    uv_loop_init(&uvl);
    for (int i = 0; i < BURST; i++) {
        uv_idle_init(&uvl, &uv_idles[i]);
    }
    uv_idle_init(&uvl, &uv_chain_idle);
#endif
#ifdef HAVE_LIBEVENT
    evb = event_base_new();
    for (int i = 0; i < BURST; i++) {
        ev_burst[i] = event_new(evb, -1, 0, ev_count_cb, NULL);
    }
    ev_chain = event_new(evb, -1, 0, ev_chain_cb, NULL);
#endif
#ifdef HAVE_GLIB
    gctx = g_main_context_new();
#endif

    printf("bench-bh: %d runs each, interleaved, after one warm-up run; %d "
           "BHs per burst x %ld rounds, chain of %ld, %ld push+pop pairs\n",
           o.reps, BURST, burst_rounds, chain_n, pushpop_n);
    bench_group("bh", "bottom halves and contexts (single thread)");

    /* ---- burst ---- */
    f = bench_fig_new("bh burst x1024", "ns/BH", BENCH_LOWER);
    for (int r = 0; r < o.reps + 1; r++) {
        /* Run 0 warms caches and free lists and is not counted. */
        double v;

#ifndef BENCH_NO_ACTX
        if (r == 1) {
            burst_allocs = 0;
        }
        v = burst_actx(burst_rounds);
        if (r) {
            bench_add(f, "actx", v);
        }
#endif
        v = burst_raw(burst_rounds);
        if (r) {
            bench_add(f, "raw run queue", v);
        }
#ifdef HAVE_LIBUV
        v = burst_uv(burst_rounds);
        if (r) {
            bench_add(f, "libuv idle", v);
        }
#endif
#ifdef HAVE_LIBEVENT
        v = burst_ev(burst_rounds);
        if (r) {
            bench_add(f, "libevent active", v);
        }
#endif
        (void)v;
    }
    bench_target_abs(f, 8);
    bench_fig_done(f);

    /* ---- chain ---- */
    f = bench_fig_new("bh chain (poll per BH)", "ns/BH", BENCH_LOWER);
    for (int r = 0; r < o.reps + 1; r++) {
        double v;

#ifndef BENCH_NO_ACTX
        if (r == 1) {
            chain_allocs = 0;
        }
        v = chain_actx(chain_n);
        if (r) {
            bench_add(f, "actx", v);
        }
#endif
        v = chain_raw(chain_n);
        if (r) {
            bench_add(f, "raw run queue", v);
        }
#ifdef HAVE_LIBUV
        /* ~1 us per iteration (an epoll_wait each): a 16th is plenty. */
        v = chain_uv(chain_n / 16);
        if (r) {
            bench_add(f, "libuv idle NOWAIT", v);
        }
#endif
#ifdef HAVE_LIBEVENT
        ev_chain_loops = 0;
        v = chain_ev(chain_n);
        if (r) {
            bench_add(f, "libevent active chain", v);
        }
#endif
        (void)v;
    }
    bench_target_abs(f, 15);
#ifdef HAVE_LIBEVENT
    bench_note(f, "libevent ran the chain in %lu loop calls for %ld BHs",
               ev_chain_loops, chain_n);
#endif
    bench_fig_done(f);

    /* ---- push + pop ---- */
    f = bench_fig_new("push+pop", "ns/pair", BENCH_LOWER);
    for (int r = 0; r < o.reps + 1; r++) {
        double v;

#ifndef BENCH_NO_ACTX
        if (r == 1) {
            pushpop_allocs = 0;
            pushpop_pairs = 0;
        }
        v = pushpop_actx(pushpop_n);
        if (r) {
            bench_add(f, "actx", v);
        }
#endif
#ifdef HAVE_GLIB
        if (r == 1) {
            glib_allocs = 0;
            glib_pairs = 0;
        }
        v = pushpop_glib(pushpop_n);
        if (r) {
            bench_add(f, "glib push/pop default", v);
        }
#endif
        (void)v;
    }
    bench_target_abs(f, 20);
    bench_fig_done(f);

#ifdef BENCH_COUNT_MALLOC
    /* Counts, not timings: one "sample" over all the measured runs. */
    f = bench_fig_new("mallocs per push+pop", "calls", BENCH_LOWER);
#ifndef BENCH_NO_ACTX
    bench_add(f, "actx",
              pushpop_pairs ? (double)pushpop_allocs / pushpop_pairs : NAN);
#endif
#ifdef HAVE_GLIB
    bench_add(f, "glib push/pop default",
              glib_pairs ? (double)glib_allocs / glib_pairs : NAN);
#endif
    bench_target_abs(f, 0);
    bench_fig_done(f);

    f = bench_fig_new("mallocs per BH (burst+chain)", "calls", BENCH_LOWER);
#ifndef BENCH_NO_ACTX
    bench_add(f, "actx",
              (double)(burst_allocs + chain_allocs) /
                  ((double)o.reps * (burst_rounds * BURST + chain_n)));
#endif
    bench_target_abs(f, 0);
    bench_fig_done(f);
#endif
    printf("\nSyscalls in the steady state: strace -f ./bench-bh "
           "--syscall-check 2>&1 | sed -n '/getppid/,/getppid/p'\n"
           "(expected: the two getppid() markers and nothing between "
           "them)\n");

#ifndef BENCH_NO_ACTX
    burst_actx_teardown();
    actx_bh_delete(chain_bh);
#endif
#ifdef HAVE_LIBUV
    for (int i = 0; i < BURST; i++) {
        uv_close((uv_handle_t *)&uv_idles[i], NULL);
    }
    uv_close((uv_handle_t *)&uv_chain_idle, NULL);
    uv_run(&uvl, UV_RUN_DEFAULT);
    uv_loop_close(&uvl);
#endif
#ifdef HAVE_LIBEVENT
    for (int i = 0; i < BURST; i++) {
        event_free(ev_burst[i]);
    }
    event_free(ev_chain);
    event_base_free(evb);
#endif
#ifdef HAVE_GLIB
    g_main_context_unref(gctx);
#endif
    return bench_finish();
}
