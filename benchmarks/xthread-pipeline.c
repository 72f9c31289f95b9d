/*
 * xthread-pipeline.c - the cross-thread completion pipeline bench-xthread's
 * scenarios share (xthread.h).
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xthread.h"

producer *prods[MAX_PRODUCERS];
bool producer_idle_sleeps;
raw_mailbox rawmb;
unsigned long done_count;

static inline void complete_one(enum variant v, void *p, long ret)
{
    switch (v) {
    case V_ACTX:
        actx_req_complete((actx_req *)p, ret);
        break;
    case V_UV:
#ifdef HAVE_LIBUV
        ((bench_node *)p)->ret = ret;
        uvq_post((bench_node *)p);
#endif
        break;
    case V_RAW:
        ((bench_node *)p)->ret = ret;
        raw_mb_post(&rawmb, (bench_node *)p);
        break;
    }
}

void xthread_complete(enum variant v, void *p, long ret)
{
    complete_one(v, p, ret);
}

static void *producer_main(void *arg)
{
    producer *pr = arg;
    size_t mask = pr->ring.size - 1;
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
            if (pr->idle_sleeps) {
                nanosleep(&(struct timespec){0, 0}, NULL);
            } else if (++idle < 256) {
                bench_cpu_relax();
            } else {
                sched_yield();
            }
            continue;
        }
        idle = 0;
        while (t != h) {
            complete_one(pr->v, pr->ring.slot[t & mask], ++i);
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

void producers_start(enum variant v, int nprod, size_t ring_size)
{
    for (int p = 0; p < nprod; p++) {
        producer *pr = prods[p];

        atomic_store(&pr->ring.head, 0);
        atomic_store(&pr->ring.tail, 0);
        atomic_store(&pr->stop, 0);
        pr->ring.size = ring_size;
        pr->v = v;
        pr->idle_sleeps = producer_idle_sleeps;
        if (pthread_create(&pr->th, NULL, producer_main, pr)) {
            perror("pthread_create");
            exit(1);
        }
    }
}

void producers_stop(int nprod)
{
    for (int p = 0; p < nprod; p++) {
        atomic_store_explicit(&prods[p]->stop, 1, memory_order_release);
        pthread_join(prods[p]->th, NULL);
    }
}

void xthread_done_cb(void *opaque, long ret)
{
    (void)opaque;
    (void)ret;
    done_count++;
}

void *new_request(enum variant v, void (*done)(void *, long), void *opaque)
{
    if (v == V_ACTX) {
        actx_req *r = actx_req_new(done, opaque);

        if (!r) {
            perror("actx_req_new");
            exit(1);
        }
        return r;
    }
    return bench_node_get(done, opaque);
}

int owner_poll(enum variant v, bool blocking)
{
    switch (v) {
    case V_ACTX:
        return actx_poll(blocking);
    case V_UV:
#ifdef HAVE_LIBUV
    {
        unsigned long before = done_count;

        uv_run(&uvq_loop, blocking ? UV_RUN_ONCE : UV_RUN_NOWAIT);
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

xresult run_completions(enum variant v, int nprod, double seconds)
{
    unsigned long issued = 0;
    unsigned long cap = (unsigned long)nprod * OUTSTANDING_PER_PRODUCER;
    uint64_t t0, deadline, t1;
    xresult res = {0};
    struct actx_stats st0, st1;

    done_count = 0;
    bench_nodes_reset();
    producers_start(v, nprod, RING);
    actx_stats(&st0);
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
                    r->slot[(h + k) & (RING - 1)] =
                        new_request(v, xthread_done_cb, NULL);
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
    actx_stats(&st1);
    if (v == V_ACTX) {
        res.sleeps = st1.sleeps - st0.sleeps;
        res.wakeups = st1.wakeups - st0.wakeups;
    }
    producers_stop(nprod);
    res.completed = done_count;
    res.mps = (double)done_count / ((double)(t1 - t0) / 1e3);
    return res;
}

void xthread_note_owner(bench_fig *f, const xthread_arg *a)
{
    if (a->completed) {
        bench_note(f,
                   "actx owner: %.3f sleeps, %.3f wake-ups per 1000 "
                   "completions",
                   1000.0 * (double)a->sleeps / (double)a->completed,
                   1000.0 * (double)a->wakeups / (double)a->completed);
    }
}

void xthread_measure_1p2p(const char *const keys[2], const char *const names[2],
                          const bench_impl_def *impls, const char *peer,
                          double ratio, void (*finish)(bench_fig *, void *))
{
    for (int nprod = 1; nprod <= MAX_PRODUCERS; nprod++) {
        xthread_arg a = {.nprod = nprod};

        bench_measure(&(bench_figure){
            .key = keys[nprod - 1],
            .name = names[nprod - 1],
            .unit = "M/s",
            .dir = BENCH_HIGHER,
            .impls = impls,
            .arg = &a,
            .split = 3,
            .target_peer = peer,
            .target_ratio = ratio,
            .finish = finish,
        });
    }
}

void xthread_init(void)
{
    for (int p = 0; p < MAX_PRODUCERS; p++) {
        if (posix_memalign((void **)&prods[p], BENCH_CACHELINE,
                           sizeof(producer))) {
            perror("posix_memalign");
            exit(1);
        }
        memset(prods[p], 0, sizeof(producer));
    }
    /* Enough for every scenario's outstanding bound, plus one in hand. */
    bench_nodes_init((size_t)MAX_PRODUCERS * RING_MAX + RING + 1);
    raw_mb_init(&rawmb);
#ifdef HAVE_LIBUV
    uvq_init();
#endif
    if (actx_thread_init() < 0) {
        fprintf(stderr, "actx_thread_init failed\n");
        exit(1);
    }
}

void xthread_fini(void)
{
#ifdef HAVE_LIBUV
    uvq_fini();
#endif
    raw_mb_destroy(&rawmb);
    for (int p = 0; p < MAX_PRODUCERS; p++) {
        free(prods[p]);
    }
    bench_nodes_fini();
}
