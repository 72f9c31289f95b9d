/*
 * scale-ring.c - the token-ring curve (see bench-scale.c), with its raw
 * and libuv rings: they share the ring's state with actx's.
 */
#define _GNU_SOURCE
#include "scale.h"

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

void curve_ring(const bench_opts *o)
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
