/*
 * actx_py_flush.h - C shared by both Python bindings (cffi and SWIG
 * include it into their generated extension).
 *
 * actx_py_flush_slice: actx_flush() for the main thread, where Python must
 * get control back to run its signal handlers (Ctrl-C).  It waits on the
 * backend fd with poll(2) instead of inside actx_poll(true), and returns
 * 1 after at most slice_ms of sleeping or when a signal interrupted the
 * sleep; the caller then calls again.  0 once the current context has
 * nothing left to flush, -EDEADLK when it never can.  Callbacks run inside
 * actx_poll(false) as usual.  Owner thread only.
 */
#ifndef ACTX_PY_FLUSH_H
#define ACTX_PY_FLUSH_H

#include "actx.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>

static int actx_py_flush_slice(int slice_ms)
{
    uint64_t end = actx_now_ns() + (uint64_t)slice_ms * 1000000u;
    int fd = actx_backend_fd();

    if (fd < 0) {
        return fd;
    }
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        uint64_t now;
        int t, left;

        if (!actx_flush_pending()) {
            return 0;
        }
        if (actx_poll(false)) {
            continue;
        }
        t = actx_backend_timeout_ms(); /* arms the wake-up */
        if (t == 0) {
            continue;
        }
        if (!actx_can_progress()) {
            actx_poll(false); /* disarm */
            return -EDEADLK;
        }
        now = actx_now_ns();
        if (now >= end) {
            actx_poll(false);
            return 1;
        }
        left = (int)((end - now + 999999u) / 1000000u);
        if (t < 0 || t > left) {
            t = left;
        }
        if (poll(&p, 1, t) < 0 && errno == EINTR) {
            actx_poll(false);
            return 1;
        }
    }
}

#endif
