/*
 * actx_py_flush.h - C shared by both Python bindings (cffi and SWIG
 * include it into their generated extension).
 *
 * actx_py_flush_slice: actx_flush() for the main thread, where Python must
 * get control back to run its signal handlers (Ctrl-C).  It waits inside
 * actx_poll_timeout() (adaptive polling included) and returns 1 after at
 * most slice_ms or when a signal interrupted the sleep; the caller then
 * calls again.  0 once the current context has nothing left to flush,
 * -EDEADLK when it never can.  Owner thread only.
 */
#ifndef ACTX_PY_FLUSH_H
#define ACTX_PY_FLUSH_H

#include "actx.h"

#include <errno.h>
#include <stdint.h>

static int actx_py_flush_slice(int slice_ms)
{
    uint64_t end = actx_now_ns() + (uint64_t)slice_ms * 1000000u;

    for (;;) {
        uint64_t now;
        int r;

        if (!actx_flush_pending()) {
            return 0;
        }
        now = actx_now_ns();
        if (now >= end) {
            return 1;
        }
        r = actx_poll_timeout((int64_t)(end - now));
        if (r == -ETIMEDOUT || r == -EINTR) {
            return 1;
        }
        if (r < 0) {
            return r;
        }
        if (r == 0 && actx_flush_pending() && !actx_can_progress()) {
            return -EDEADLK;
        }
    }
}

#endif
