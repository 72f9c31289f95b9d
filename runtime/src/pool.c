/*
 * pool.c - the worker pool (placeholder until the pool work lands).
 */
#include "actx-internal.h"

#include <errno.h>

actx_req *actx_submit(actx_work_fn *work, actx_done_fn *done, void *opaque)
{
    (void)work;
    (void)done;
    (void)opaque;
    errno = ENOSYS;
    return NULL;
}

actx_req *actx_aio_pread(int fd, void *buf, size_t n, off_t off,
                         actx_done_fn *done, void *opaque)
{
    (void)fd, (void)buf, (void)n, (void)off, (void)done, (void)opaque;
    errno = ENOSYS;
    return NULL;
}

actx_req *actx_aio_pwrite(int fd, const void *buf, size_t n, off_t off,
                          actx_done_fn *done, void *opaque)
{
    (void)fd, (void)buf, (void)n, (void)off, (void)done, (void)opaque;
    errno = ENOSYS;
    return NULL;
}

actx_req *actx_aio_fsync(int fd, actx_done_fn *done, void *opaque)
{
    (void)fd, (void)done, (void)opaque;
    errno = ENOSYS;
    return NULL;
}

int actx_req_cancel(actx_req *req)
{
    actx__loop *loop = actx__tls_loop;

    if (!req) {
        return -EINVAL;
    }
    if (!loop || loop->mb != req->mb) {
        actx__misuse(__func__, "not called on the owner thread");
        return -EPERM;
    }
    return req->job ? actx__job_cancel(req->job) : -EBUSY;
}

int actx_pool_set_size(int n)
{
    return n < 1 ? -EINVAL : 0;
}

int actx__job_cancel(actx__job *job)
{
    (void)job;
    return -EBUSY;
}

void actx__job_free(actx__job *job)
{
    (void)job;
}
