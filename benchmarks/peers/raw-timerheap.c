/* raw-timerheap.c - a minimal binary timer heap (raw-timerheap.h). */
#include "raw-timerheap.h"

#include <stdio.h>
#include <stdlib.h>

#include "harness/harness.h"

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

static raw_ent *raw_heap;
static long raw_n;

static BENCH_NOINLINE void raw_timer_mod(raw_timer *t, uint64_t expire)
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

static BENCH_NOINLINE void raw_run(uint64_t now)
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

double raw_timers_run(int n, int max, const uint64_t *deadlines,
                      void (*cb)(void *opaque))
{
    static raw_timer *t;
    uint64_t t0, t1;

    if (!t) {
        t = calloc((size_t)max, sizeof(*t));
        raw_heap = calloc((size_t)max, sizeof(*raw_heap));
        if (!t || !raw_heap) {
            perror("calloc");
            exit(1);
        }
        for (int i = 0; i < max; i++) {
            t[i].cb = cb;
            t[i].opaque = (void *)(intptr_t)i;
            t[i].idx = -1;
        }
    }
    t0 = bench_now_ns();
    for (int i = 0; i < n; i++) {
        raw_timer_mod(&t[i], deadlines[i]);
    }
    raw_run(bench_now_ns());
    t1 = bench_now_ns();
    return (double)(t1 - t0) / n;
}
