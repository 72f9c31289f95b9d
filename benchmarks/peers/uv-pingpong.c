/* uv-pingpong.c - uv_async ping-pong between two libuv loops (pingpong.h). */
#include "pingpong.h"

#ifdef HAVE_LIBUV
#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

static atomic_int pp_stop;
static uv_loop_t uv_la, uv_lb;
static uv_async_t uv_aa, uv_ab;
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
    if (pp_clock_tick(&uv_pp_clk)) {
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

pp_result pingpong_uv(double seconds)
{
    pthread_t th;

    uv_loop_init(&uv_la);
    uv_loop_init(&uv_lb);
    uv_async_init(&uv_la, &uv_aa, uv_a_cb);
    uv_async_init(&uv_lb, &uv_ab, uv_b_cb);
    atomic_store(&pp_stop, 0);
    pthread_create(&th, NULL, uv_pong_main, NULL);
    pp_clock_start(&uv_pp_clk, seconds);
    uv_async_send(&uv_ab);
    uv_run(&uv_la, UV_RUN_DEFAULT);
    atomic_store(&pp_stop, 1);
    uv_async_send(&uv_ab);
    pthread_join(th, NULL);
    uv_loop_close(&uv_la);
    uv_loop_close(&uv_lb);
    return pp_clock_result(&uv_pp_clk);
}
#endif
