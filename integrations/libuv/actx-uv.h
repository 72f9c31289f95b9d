/*
 * actx-uv.h - run a thread's actx loop inside a libuv loop: the recipe of
 * docs/embedding.md for libuv, header-only (`scons install` puts it beside
 * actx.h; build with pkg-config's actx and libuv flags).
 *
 *     actx_uv glue;
 *     actx_uv_start(&glue, loop);   on the thread that runs the uv loop
 *     uv_run(loop, UV_RUN_DEFAULT);
 *     actx_uv_close(&glue);         then let uv_run close the handles
 *
 * Three handles:
 *   - a uv_poll on actx_backend_fd(): readable when posts arrived or an fd
 *     of the current context is ready;
 *   - a uv_prepare, run before every sleep: asks actx_backend_timeout_ms()
 *     (which also declares that the loop is about to sleep) and arms
 *   - a uv_timer for that timeout: 0 = actx can run now (the loop polls
 *     without sleeping), -1 = only the fd can wake actx (timer stopped).
 * The poll and timer callbacks call actx_poll(false).  uv_update_time()
 * before arming the timer: libuv's cached "now" is older than actx's
 * clock, and a timer armed from it would fire before actx's deadline and
 * wake the loop for nothing.
 */
#ifndef ACTX_UV_H
#define ACTX_UV_H

#include <actx.h>
#include <uv.h>

typedef struct actx_uv {
    uv_poll_t poll;
    uv_prepare_t prepare;
    uv_timer_t timer;
} actx_uv;

static inline void actx_uv_on_poll(uv_poll_t *h, int status, int events)
{
    (void)h;
    (void)status;
    (void)events;
    actx_poll(false);
}

static inline void actx_uv_on_timer(uv_timer_t *t)
{
    (void)t;
    actx_poll(false);
}

static inline void actx_uv_on_prepare(uv_prepare_t *p)
{
    actx_uv *a = (actx_uv *)p->data;
    int ms = actx_backend_timeout_ms();

    if (ms < 0) {
        uv_timer_stop(&a->timer);
        return;
    }
    uv_update_time(p->loop);
    uv_timer_start(&a->timer, actx_uv_on_timer, (uint64_t)ms, 0);
}

/**
 * Owner thread only.  Start driving the calling thread's actx loop from
 * loop (which this thread must run), with the three handles in *a.  0 or
 * a negative errno (actx's or libuv's).
 */
static inline int actx_uv_start(actx_uv *a, uv_loop_t *loop)
{
    int fd = actx_backend_fd();
    int err;

    if (fd < 0) {
        return fd;
    }
    err = uv_poll_init(loop, &a->poll, fd);
    if (err < 0) {
        return err;
    }
    uv_prepare_init(loop, &a->prepare);
    uv_timer_init(loop, &a->timer);
    a->poll.data = a->prepare.data = a->timer.data = a;
    uv_prepare_start(&a->prepare, actx_uv_on_prepare);
    return uv_poll_start(&a->poll, UV_READABLE, actx_uv_on_poll);
}

/**
 * Owner thread only.  Stop driving actx; the handles are closed at the
 * loop's next turn (run it, e.g. uv_run(loop, UV_RUN_DEFAULT), before
 * freeing *a).
 */
static inline void actx_uv_close(actx_uv *a)
{
    uv_close((uv_handle_t *)&a->poll, NULL);
    uv_close((uv_handle_t *)&a->prepare, NULL);
    uv_close((uv_handle_t *)&a->timer, NULL);
}

#endif /* ACTX_UV_H */
