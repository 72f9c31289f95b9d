/*
 * bench-io.c - timers and fd wake-ups, actx against its peers in the same
 * run (repetitions interleaved, best of N kept: the machine is shared).
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
 * Usage: bench-io [-n REPS] [-q]   (repetitions are 2 x REPS per figure)
 */
#define _GNU_SOURCE
#include "actx.h"
#include "bench-util.h"

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

#define NTIMERS 10000
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

static uint64_t deadlines[NTIMERS];
static long fired;

static void count_cb(void *opaque)
{
    (void)opaque;
    fired++;
}

static double timers_actx(void)
{
    static actx_timer *t[NTIMERS];
    uint64_t t0, t1;

    if (!t[0]) {
        for (int i = 0; i < NTIMERS; i++) {
            t[i] = actx_timer_new(count_cb, NULL);
            if (!t[i]) {
                die("actx_timer_new");
            }
        }
    }
    fired = 0;
    t0 = now_ns();
    for (int i = 0; i < NTIMERS; i++) {
        actx_timer_mod(t[i], deadlines[i]);
    }
    actx_poll(false);
    t1 = now_ns();
    if (fired != NTIMERS) {
        fprintf(stderr, "actx: fired %ld of %d\n", fired, NTIMERS);
        exit(1);
    }
    return (double)(t1 - t0) / NTIMERS;
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

static raw_ent raw_heap[NTIMERS];
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

static double timers_raw(void)
{
    static raw_timer *t;
    uint64_t t0, t1;

    if (!t) {
        t = calloc(NTIMERS, sizeof(*t));
        for (int i = 0; i < NTIMERS; i++) {
            t[i].cb = count_cb;
            t[i].idx = -1;
        }
    }
    fired = 0;
    t0 = now_ns();
    for (int i = 0; i < NTIMERS; i++) {
        raw_timer_mod(&t[i], deadlines[i]);
    }
    raw_run(now_ns());
    t1 = now_ns();
    if (fired != NTIMERS) {
        fprintf(stderr, "raw: fired %ld\n", fired);
        exit(1);
    }
    return (double)(t1 - t0) / NTIMERS;
}

#ifdef HAVE_LIBUV
static void uv_count_cb(uv_timer_t *h)
{
    (void)h;
    fired++;
}

static double timers_uv(void)
{
    static uv_loop_t loop;
    static uv_timer_t *t;
    uint64_t t0, t1;

    if (!t) {
        uv_loop_init(&loop);
        t = calloc(NTIMERS, sizeof(*t));
        for (int i = 0; i < NTIMERS; i++) {
            uv_timer_init(&loop, &t[i]);
        }
    }
    fired = 0;
    t0 = now_ns();
    for (int i = 0; i < NTIMERS; i++) {
        uv_timer_start(&t[i], uv_count_cb, 0, 0);
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    t1 = now_ns();
    if (fired != NTIMERS) {
        fprintf(stderr, "uv: fired %ld\n", fired);
        exit(1);
    }
    return (double)(t1 - t0) / NTIMERS;
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

int main(int argc, char **argv)
{
    bench_best ta, tr, tu, ra, rr, ru, la, lr;
    bench_opts o;
    bench_row r;
    uint64_t base;

    bench_parse(&o, argc, argv, 7, 0);
    rtt_iters = (int)(rtt_iters * o.scale);
    if (rtt_iters < 1000) {
        rtt_iters = 1000;
    }
    bench_best_init(&ta, false);
    bench_best_init(&tr, false);
    bench_best_init(&tu, false);
    bench_best_init(&ra, false);
    bench_best_init(&rr, false);
    bench_best_init(&ru, false);
    bench_best_init(&la, false);
    bench_best_init(&lr, false);
    for (int rep = 0; rep < 20; rep++) {
        bench_best_add(&la, timer_lateness());
        bench_best_add(&lr, raw_lateness());
    }
    base = now_ns();
    for (int i = 0; i < NTIMERS; i++) {
        deadlines[i] = 1 + rng() % (base - 1); /* all in the past */
    }

    /* Interleaved (actx, peers, peers reversed, actx): same noise for all. */
    for (int rep = 0; rep < o.reps; rep++) {
        bench_best_add(&ta, timers_actx());
        bench_best_add(&tr, timers_raw());
#ifdef HAVE_LIBUV
        bench_best_add(&tu, timers_uv());
#endif
        bench_best_add(&tr, timers_raw());
        bench_best_add(&ta, timers_actx());
    }
    for (int rep = 0; rep < o.reps; rep++) {
        bench_best_add(&ra, rtt_run(server_actx));
        bench_best_add(&rr, rtt_run(server_raw));
#ifdef HAVE_LIBUV
        bench_best_add(&ru, rtt_run(server_uv));
#endif
        bench_best_add(&rr, rtt_run(server_raw));
        bench_best_add(&ra, rtt_run(server_actx));
    }

    bench_table_header("timers and fd wake-ups");
    memset(&r, 0, sizeof(r));
    r.name = "timers arm+fire x10k";
    r.unit = "ns/timer";
    r.actx = ta.best;
    bench_row_peer(&r, "raw binary heap", tr.best);
    bench_row_peer(&r, "libuv uv_timer", tu.best);
    r.target = BENCH_TARGET_ABS_MAX;
    r.target_value = 100;
    r.note = "libuv: all timeouts 0, fired in insertion order";
    bench_table_row(&r);

    memset(&r, 0, sizeof(r));
    r.name = "fd wake-up round trip";
    r.unit = "us/rtt";
    r.actx = ra.best;
    bench_row_peer(&r, "raw epoll loop", rr.best);
    bench_row_peer(&r, "libuv uv_poll", ru.best);
    r.target = BENCH_TARGET_RATIO_MAX;
    r.target_value = 1.1;
    r.target_peer = 0;
    bench_table_row(&r);

    memset(&r, 0, sizeof(r));
    r.name = "timer lateness, idle loop";
    r.unit = "us";
    r.actx = la.best;
    bench_row_peer(&r, "raw epoll_wait (ms)", lr.best);
    r.target = BENCH_TARGET_ABS_MAX;
    r.target_value = 1000;
    r.note = "one 2 ms timer, best of 20: fired after its deadline by";
    bench_table_row(&r);
    return 0;
}
