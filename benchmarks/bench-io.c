/*
 * bench-io.c - timers and fd wake-ups, actx against its peers in the same
 * run (repetitions interleaved: the machine is shared).
 *
 *   timers arm+fire   10,000 timers made once; per repetition each is armed
 *                     with a random deadline in the past (all due, random
 *                     order), then one actx_poll(false) fires them all.
 *                     ns per timer arm+fire.  Peers: a raw binary min-heap
 *                     of the same shape (deadline beside the pointer, index
 *                     in the timer, callback through a pointer); libuv
 *                     uv_timer_start(0) + uv_run(NOWAIT) (libuv cannot be
 *                     given past deadlines, so its timers fire in insertion
 *                     order: a cheaper heap workload).  Target <= 100 ns.
 *   fd wake-up        a server thread sleeps in its loop with a read
 *                     handler on a pipe; the client writes a byte and
 *                     blocks reading the reply pipe; the handler reads and
 *                     replies.  us per round trip.  Peers: a raw
 *                     epoll_wait loop; libuv uv_poll.  Target: actx within
 *                     1.1x of raw epoll.
 *
 *   timers curve      the timers figure for 10, 100, ... 1e6 timers armed
 *                     at once (target: cost per timer at most O(log n),
 *                     i.e. growing no more than the raw heap's);
 *                     every run checks that each timer fired exactly once.
 *
 * Options: see --help.  Each figure reports the median of its repetitions
 * and their spread.
 */
#define _GNU_SOURCE
#include "actx.h"
#include "harness/harness.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_LIBUV
#include <uv.h>
#endif

#define NTIMERS 10000      /* the timers figure */
#define TIMERS_MAX 1000000 /* the end of the timers scaling curve */
#define NOINLINE BENCH_NOINLINE

static int rtt_iters = 20000;

#define now_ns bench_now_ns

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* ------------------------------------------------------------------------ */
/* Timers.                                                                   */

static uint64_t *deadlines; /* [TIMERS_MAX], random, all in the past */
static unsigned char *hits; /* [TIMERS_MAX]: times timer i fired */
static long fired;

static void count_cb(void *opaque)
{
    hits[(intptr_t)opaque]++;
    fired++;
}

/* Before a run of n timers. */
static void hits_reset(int n)
{
    memset(hits, 0, (size_t)n);
    fired = 0;
}

/* After it: did every one of the n timers fire exactly once? */
static bool hits_once(int n)
{
    if (fired != n) {
        return false;
    }
    for (int i = 0; i < n; i++) {
        if (hits[i] != 1) {
            return false;
        }
    }
    return true;
}

static bool timers_ok = true; /* every run so far fired each timer once */

/* n timers armed with past deadlines, one poll: ns per timer arm+fire. */
static double timers_actx(int n)
{
    static actx_timer **t;
    static int made;
    uint64_t t0, t1;

    if (!t) {
        t = calloc(TIMERS_MAX, sizeof(*t));
    }
    for (; made < n; made++) {
        t[made] = actx_timer_new(count_cb, (void *)(intptr_t)made);
        if (!t[made]) {
            die("actx_timer_new");
        }
    }
    hits_reset(n);
    t0 = now_ns();
    for (int i = 0; i < n; i++) {
        actx_timer_mod(t[i], deadlines[i]);
    }
    actx_poll(false);
    t1 = now_ns();
    timers_ok &= hits_once(n);
    return (double)(t1 - t0) / n;
}

/* The raw peer: what a minimal timer heap costs. */
typedef struct raw_timer {
    uint64_t expire;
    long idx;
    void (*cb)(void *);
    void *opaque;
} raw_timer;

typedef struct {
    uint64_t expire;
    raw_timer *t;
} raw_ent;

static raw_ent *raw_heap; /* [TIMERS_MAX] */
static long raw_n;

static NOINLINE void raw_timer_mod(raw_timer *t, uint64_t expire)
{
    long i = raw_n++;
    raw_ent e = {expire, t};

    t->expire = expire;
    while (i > 0 && raw_heap[(i - 1) / 2].expire > expire) {
        raw_heap[i] = raw_heap[(i - 1) / 2];
        raw_heap[i].t->idx = i;
        i = (i - 1) / 2;
    }
    raw_heap[i] = e;
    t->idx = i;
}

static NOINLINE void raw_run(uint64_t now)
{
    while (raw_n > 0 && raw_heap[0].expire <= now) {
        raw_timer *t = raw_heap[0].t;
        raw_ent e = raw_heap[--raw_n];
        long i = 0, n = raw_n;

        for (;;) {
            long l = 2 * i + 1, m;

            if (l >= n) {
                break;
            }
            m = (l + 1 < n && raw_heap[l + 1].expire < raw_heap[l].expire)
                    ? l + 1
                    : l;
            if (e.expire <= raw_heap[m].expire) {
                break;
            }
            raw_heap[i] = raw_heap[m];
            raw_heap[i].t->idx = i;
            i = m;
        }
        if (n > 0) {
            raw_heap[i] = e;
            e.t->idx = i;
        }
        t->idx = -1;
        t->cb(t->opaque);
    }
}

static double timers_raw(int n)
{
    static raw_timer *t;
    uint64_t t0, t1;

    if (!t) {
        t = calloc(TIMERS_MAX, sizeof(*t));
        raw_heap = calloc(TIMERS_MAX, sizeof(*raw_heap));
        if (!t || !raw_heap) {
            die("calloc");
        }
        for (int i = 0; i < TIMERS_MAX; i++) {
            t[i].cb = count_cb;
            t[i].opaque = (void *)(intptr_t)i;
            t[i].idx = -1;
        }
    }
    hits_reset(n);
    t0 = now_ns();
    for (int i = 0; i < n; i++) {
        raw_timer_mod(&t[i], deadlines[i]);
    }
    raw_run(now_ns());
    t1 = now_ns();
    timers_ok &= hits_once(n);
    return (double)(t1 - t0) / n;
}

#ifdef HAVE_LIBUV
static void uv_count_cb(uv_timer_t *h)
{
    count_cb(h->data);
}

static double timers_uv(int n)
{
    static uv_loop_t loop;
    static uv_timer_t *t;
    static int made;
    uint64_t t0, t1;

    if (!t) {
        uv_loop_init(&loop);
        t = calloc(TIMERS_MAX, sizeof(*t));
        if (!t) {
            die("calloc");
        }
    }
    for (; made < n; made++) {
        uv_timer_init(&loop, &t[made]);
        t[made].data = (void *)(intptr_t)made;
    }
    hits_reset(n);
    t0 = now_ns();
    for (int i = 0; i < n; i++) {
        uv_timer_start(&t[i], uv_count_cb, 0, 0);
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    t1 = now_ns();
    timers_ok &= hits_once(n);
    return (double)(t1 - t0) / n;
}
#endif

/* ------------------------------------------------------------------------ */
/* fd wake-up round trip.                                                    */

struct rtt {
    int req[2], rep[2]; /* client -> server, server -> client */
    int left;           /* server side: requests still to serve */
    void *impl;
};

static void make_pipes(struct rtt *r)
{
    /* The server's end is non-blocking; the client blocks on its reply. */
    if (pipe2(r->req, O_CLOEXEC) < 0 || pipe2(r->rep, O_CLOEXEC) < 0) {
        die("pipe2");
    }
    fcntl(r->req[0], F_SETFL, O_NONBLOCK);
}

static void close_pipes(struct rtt *r)
{
    close(r->req[0]);
    close(r->req[1]);
    close(r->rep[0]);
    close(r->rep[1]);
}

/* One request: read it, reply; 1 when that was the last. */
static int serve_one(struct rtt *r)
{
    char b;

    if (read(r->req[0], &b, 1) != 1) {
        return 0; /* spurious */
    }
    if (write(r->rep[1], &b, 1) != 1) {
        die("write reply");
    }
    return --r->left == 0;
}

static double client(struct rtt *r, int n)
{
    uint64_t t0 = 0, t1;
    char b = 'x';

    /* A few warm-up round trips, then the timed ones. */
    for (int i = 0; i < n; i++) {
        if (i == 100) {
            t0 = now_ns();
        }
        if (write(r->req[1], &b, 1) != 1 || read(r->rep[0], &b, 1) != 1) {
            die("client");
        }
    }
    t1 = now_ns();
    return (double)(t1 - t0) / (n - 100) / 1000.0;
}

static void actx_on_req(void *opaque)
{
    struct rtt *r = opaque;

    if (serve_one(r)) {
        actx_set_fd_handler(r->req[0], NULL, NULL, NULL);
    }
}

static void *server_actx(void *arg)
{
    struct rtt *r = arg;

    if (actx_set_fd_handler(r->req[0], actx_on_req, NULL, r) < 0) {
        die("actx_set_fd_handler");
    }
    actx_run(); /* returns once the handler removed itself */
    actx_thread_shutdown();
    return NULL;
}

static void *server_raw(void *arg)
{
    struct rtt *r = arg;
    struct epoll_event ev = {.events = EPOLLIN}, out[8];
    int ep = epoll_create1(EPOLL_CLOEXEC);

    ev.data.ptr = r;
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, r->req[0], &ev) < 0) {
        die("epoll");
    }
    for (;;) {
        int n = epoll_wait(ep, out, 8, -1);
        bool done = false;

        for (int i = 0; i < n; i++) {
            done |= serve_one(out[i].data.ptr);
        }
        if (done) {
            break;
        }
    }
    close(ep);
    return NULL;
}

#ifdef HAVE_LIBUV
static void uv_on_req(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    if (serve_one(h->data)) {
        uv_poll_stop(h);
    }
}

static void *server_uv(void *arg)
{
    struct rtt *r = arg;
    uv_loop_t loop;
    uv_poll_t h;

    uv_loop_init(&loop);
    uv_poll_init(&loop, &h, r->req[0]);
    h.data = r;
    uv_poll_start(&h, UV_READABLE, uv_on_req);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&h, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return NULL;
}
#endif

static double rtt_run(void *(*server)(void *))
{
    struct rtt r;
    pthread_t t;
    double us;

    make_pipes(&r);
    r.left = rtt_iters;
    if (pthread_create(&t, NULL, server, &r) != 0) {
        die("pthread_create");
    }
    us = client(&r, rtt_iters);
    pthread_join(t, NULL);
    close_pipes(&r);
    return us;
}

/* ------------------------------------------------------------------------ */

/* Lateness of one 2 ms timer on an otherwise idle loop, in us. */
static void late_cb(void *opaque)
{
    *(uint64_t *)opaque = now_ns();
}

static double timer_lateness(void)
{
    uint64_t fired = 0, deadline = now_ns() + 2000000;
    actx_timer *t = actx_timer_new(late_cb, &fired);

    actx_timer_mod(t, deadline);
    if (ACTX_WAIT_WHILE(fired == 0) != 0) {
        die("timer_lateness");
    }
    actx_timer_free(t);
    return (double)(fired - deadline) / 1000.0;
}

/* The same with a raw epoll_wait timeout (ms resolution, rounded up). */
static double raw_lateness(void)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    uint64_t deadline = now_ns() + 2000000, now;
    struct epoll_event ev;

    while ((now = now_ns()) < deadline) {
        epoll_wait(ep, &ev, 1, (int)((deadline - now + 999999) / 1000000));
    }
    close(ep);
    return (double)(now - deadline) / 1000.0;
}

/*
 * One sample of n timers for implementation fn: runs of n timers repeated
 * until at least 1e5 timers were armed (so that small n are not one
 * clock read), ns per timer.
 */
static double timers_sample(double (*fn)(int), int n)
{
    int runs = n >= 100000 ? 1 : 100000 / n;
    double sum = 0;

    for (int i = 0; i < runs; i++) {
        sum += fn(n);
    }
    return sum / runs;
}

/* One figure of n timers: actx, raw heap, libuv, interleaved. */
static bench_fig *timers_fig(const char *name, int n, int reps)
{
    bench_fig *f = bench_fig_new(name, "ns/timer", BENCH_LOWER);

    /* Interleaved (actx, peers, peers reversed, actx): same noise for all. */
    for (int rep = 0; rep < reps; rep++) {
        bench_add(f, "actx", timers_sample(timers_actx, n));
        bench_add(f, "raw binary heap", timers_sample(timers_raw, n));
#ifdef HAVE_LIBUV
        bench_add(f, "libuv uv_timer", timers_sample(timers_uv, n));
#endif
        bench_add(f, "raw binary heap", timers_sample(timers_raw, n));
        bench_add(f, "actx", timers_sample(timers_actx, n));
    }
    bench_peer(f, "libuv uv_timer");
    bench_fig_check(f, timers_ok, "every timer fired exactly once");
    return f;
}

int main(int argc, char **argv)
{
    static bool no_curve;
    static const bench_option extra[] = {
        {"--no-curve", NULL, "skip the timers scaling curve (10 to 1e6)", NULL,
         &no_curve},
        {NULL, NULL, NULL, NULL, NULL},
    };
    static const bench_spec spec = {
        .prog = "bench-io",
        .what = "timers (arm+fire, and a curve as armed timers grow 10 -> "
                "1e6), fd wake-up round\ntrips between threads and timer "
                "lateness: actx, a raw heap / epoll loop and libuv.",
        .reps = 7,
        .extra = extra,
        .usage_more = "Timers and round trips run 2xREPS repetitions "
                      "(interleaved actx, peers, peers, actx);\nthe curve "
                      "REPS per point, lateness 20.",
    };
    bench_opts o;
    bench_fig *f;
    uint64_t base;
    int curve_max = TIMERS_MAX;

    bench_init(&o, &spec, argc, argv);
    rtt_iters = (int)(rtt_iters * o.scale);
    if (rtt_iters < 1000) {
        rtt_iters = 1000;
    }
    if (o.quick) {
        curve_max = TIMERS_MAX / 10;
    }
    deadlines = malloc(TIMERS_MAX * sizeof(*deadlines));
    hits = malloc(TIMERS_MAX);
    if (!deadlines || !hits) {
        die("malloc");
    }
    base = now_ns();
    for (int i = 0; i < TIMERS_MAX; i++) {
        deadlines[i] = 1 + rng() % (base - 1); /* all in the past */
    }
    bench_group("io", "timers and fd wake-ups");

    f = timers_fig("timers arm+fire x10k", NTIMERS, o.reps);
    bench_target_abs(f, 100);
    bench_note(f, "libuv: all timeouts 0, fired in insertion order");
    bench_fig_done(f);

    f = bench_fig_new("fd wake-up round trip", "us/rtt", BENCH_LOWER);
    for (int rep = 0; rep < o.reps; rep++) {
        bench_add(f, "actx", rtt_run(server_actx));
        bench_add(f, "raw epoll loop", rtt_run(server_raw));
#ifdef HAVE_LIBUV
        bench_add(f, "libuv uv_poll", rtt_run(server_uv));
#endif
        bench_add(f, "raw epoll loop", rtt_run(server_raw));
        bench_add(f, "actx", rtt_run(server_actx));
    }
    bench_peer(f, "libuv uv_poll");
    bench_target_ratio(f, "raw epoll loop", 1 / 1.1);
    bench_fig_done(f);

    f = bench_fig_new("timer lateness, idle loop", "us", BENCH_LOWER);
    for (int rep = 0; rep < 20; rep++) {
        bench_add(f, "actx", timer_lateness());
        bench_add(f, "raw epoll_wait (ms)", raw_lateness());
    }
    bench_target_abs(f, 1000);
    bench_note(f, "one 2 ms timer, 20 times: fired after its deadline by");
    bench_fig_done(f);

    if (!no_curve) {
        bench_group("timers-curve", "timers: cost per timer as armed "
                                    "timers grow");
        for (int n = 10; n <= curve_max; n *= 10) {
            char name[64];

            snprintf(name, sizeof(name), "timers arm+fire, %d armed", n);
            /* Fewer repetitions where one run is long (1e6: ~1 s). */
            f = timers_fig(name, n,
                           n >= 1000000  ? 1
                           : n >= 100000 ? 2
                                         : (o.reps + 1) / 2);
            bench_fig_x(f, "timers armed", "timers armed at once", n);
            /* Per-timer cost measured in time also grows with cache
             * misses; the raw binary heap, O(log n) by construction and
             * run on the same deadlines, is the yardstick. */
            bench_curve_target(f, "log raw binary heap");
            bench_fig_done(f);
        }
    }
    return bench_finish();
}
