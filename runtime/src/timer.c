/*
 * timer.c - timers (placeholder until the fd/timer work lands).
 */
#include "actx-internal.h"

#include <errno.h>
#include <time.h>

uint64_t actx_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

actx_timer *actx_timer_new(actx_fn *cb, void *opaque)
{
    (void)cb;
    (void)opaque;
    errno = ENOSYS;
    return NULL;
}

void actx_timer_mod(actx_timer *t, uint64_t expire_ns)
{
    (void)t;
    (void)expire_ns;
}

void actx_timer_del(actx_timer *t)
{
    (void)t;
}

void actx_timer_free(actx_timer *t)
{
    (void)t;
}

int actx__timers_run(actx__loop *loop, actx_ctx *c)
{
    (void)loop;
    (void)c;
    return 0;
}

int64_t actx__timers_next_ns(actx__loop *loop, actx_ctx *c)
{
    (void)loop;
    (void)c;
    return -1;
}

void actx__timers_pop(actx__loop *loop, actx_ctx *child, actx_ctx *parent)
{
    (void)loop;
    (void)child;
    (void)parent;
}

void actx__timers_loop_shutdown(actx__loop *loop)
{
    (void)loop;
}
