/*
 * embed-libuv.c - actx inside a libuv loop.
 *
 * The glue is integrations/libuv/actx-uv.h, the recipe of
 * docs/embedding.md for any other loop: a uv_poll on actx_backend_fd(),
 * and a uv_prepare that asks actx_backend_timeout_ms() before every sleep
 * and arms a uv_timer with it.  A pool job, a cross-thread call, a timer
 * and a nested synchronous wait (examples/embed-work.h) all run from
 * uv_run, beside a libuv timer of libuv's own.  The program exits non-zero
 * if any check failed.
 *
 *   cc -I<actx>/integrations/libuv embed-libuv.c \
 *      $(pkg-config --cflags --libs actx libuv)
 */
#include "actx-uv.h"

#include "embed-work.h"

static int uv_ticks;

/* libuv's own handles keep working beside actx; this one also ends the
 * loop once all the actx work is done. */
static void tick(uv_timer_t *t)
{
    uv_ticks++;
    if (work_finished()) {
        uv_stop(t->loop);
    }
}

int main(void)
{
    uv_loop_t loop;
    uv_timer_t ticker;
    actx_uv glue;

    if (uv_loop_init(&loop) != 0) {
        return 1;
    }
    CHECK(actx_uv_start(&glue, &loop) == 0);
    uv_timer_init(&loop, &ticker);
    uv_timer_start(&ticker, tick, 5, 5);
    work_start();
    uv_run(&loop, UV_RUN_DEFAULT); /* until tick() calls uv_stop */
    CHECK(uv_ticks > 0);

    actx_uv_close(&glue);
    uv_close((uv_handle_t *)&ticker, NULL);
    uv_run(&loop, UV_RUN_DEFAULT); /* runs the close callbacks */
    CHECK(uv_loop_close(&loop) == 0);
    return work_report("libuv");
}
