/*
 * fd.c - fd handlers (placeholder until the fd/timer work lands: no fd can
 * be registered, so the loop never calls into here).
 */
#include "actx-internal.h"

#include <errno.h>

int actx_set_fd_handler(int fd, actx_fn *on_read, actx_fn *on_write,
                        void *opaque)
{
    (void)on_read;
    (void)on_write;
    (void)opaque;
    return fd < 0 ? -EBADF : -ENOSYS;
}

int actx__fd_poll(actx__loop *loop, actx_ctx *c)
{
    (void)loop;
    (void)c;
    return 0;
}

void actx__fd_event(actx__loop *loop, void *ptr, uint32_t events)
{
    (void)loop;
    (void)ptr;
    (void)events;
}

void actx__fd_pop(actx__loop *loop, actx_ctx *child, actx_ctx *parent)
{
    (void)loop;
    (void)child;
    (void)parent;
}

void actx__fd_loop_shutdown(actx__loop *loop)
{
    (void)loop;
}
