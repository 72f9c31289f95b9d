/* uv-timer.c - libuv timers, all due at once (uv-timer.h). */
#include "uv-timer.h"

#ifdef HAVE_LIBUV
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "harness/harness.h"

static void (*count_cb)(void *opaque);

static void uv_count_cb(uv_timer_t *h)
{
    count_cb(h->data);
}

double uv_timers_run(int n, int max, void (*cb)(void *opaque))
{
    static uv_loop_t loop;
    static uv_timer_t *t;
    static int made;
    uint64_t t0, t1;

    if (!t) {
        uv_loop_init(&loop);
        t = calloc((size_t)max, sizeof(*t));
        if (!t) {
            perror("calloc");
            exit(1);
        }
    }
    count_cb = cb;
    for (; made < n; made++) {
        uv_timer_init(&loop, &t[made]);
        t[made].data = (void *)(intptr_t)made;
    }
    t0 = bench_now_ns();
    for (int i = 0; i < n; i++) {
        uv_timer_start(&t[i], uv_count_cb, 0, 0);
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    t1 = bench_now_ns();
    return (double)(t1 - t0) / n;
}
#endif
