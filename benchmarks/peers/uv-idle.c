/* uv-idle.c - libuv idle handles as BHs (uv-idle.h). */
#include "uv-idle.h"

#ifdef HAVE_LIBUV
#include <stdio.h>
#include <uv.h>

#include "harness/harness.h"
#include "raw-runqueue.h" /* BENCH_BH_BURST */

static uv_loop_t uvl;
static uv_idle_t uv_idles[BENCH_BH_BURST];
static uv_idle_t uv_chain_idle;
static unsigned long counter;
static long chain_left;

void uv_idle_peer_init(void)
{
    uv_loop_init(&uvl);
    for (int i = 0; i < BENCH_BH_BURST; i++) {
        uv_idle_init(&uvl, &uv_idles[i]);
    }
    uv_idle_init(&uvl, &uv_chain_idle);
}

void uv_idle_peer_fini(void)
{
    for (int i = 0; i < BENCH_BH_BURST; i++) {
        uv_close((uv_handle_t *)&uv_idles[i], NULL);
    }
    uv_close((uv_handle_t *)&uv_chain_idle, NULL);
    uv_run(&uvl, UV_RUN_DEFAULT);
    uv_loop_close(&uvl);
}

static void uv_burst_cb(uv_idle_t *h)
{
    counter++;
    uv_idle_stop(h);
}

double bh_burst_uv(long rounds)
{
    uint64_t t0;

    counter = 0;
    t0 = bench_now_ns();
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < BENCH_BH_BURST; i++) {
            uv_idle_start(&uv_idles[i], uv_burst_cb);
        }
        uv_run(&uvl, UV_RUN_NOWAIT);
    }
    t0 = bench_now_ns() - t0;
    if (counter != (unsigned long)rounds * BENCH_BH_BURST) {
        fprintf(stderr, "burst_uv: ran %lu of %ld\n", counter,
                rounds * BENCH_BH_BURST);
    }
    return (double)t0 / ((double)rounds * BENCH_BH_BURST);
}

static void uv_chain_cb(uv_idle_t *h)
{
    if (--chain_left <= 0) {
        uv_idle_stop(h);
    }
}

double bh_chain_uv(long n)
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
