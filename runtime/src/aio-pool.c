/*
 * aio-pool.c - file I/O on the worker pool: pread, pwrite, fsync.
 *
 * Each call is one pool job whose work is one system call (retried on
 * EINTR, nothing else) - except a pread the page cache can satisfy at once
 * (see pread_cached): a short transfer is returned as the kernel gave it
 * (at end of file, a pread is short, not an error), a failure as -errno.
 * Arguments the kernel would only fault on are rejected up front, on the
 * submitting thread, with NULL and errno: a negative fd (EBADF), a NULL
 * buffer with a non-zero length (EINVAL, never EFAULT from the kernel), a
 * negative offset (EINVAL).  An fd that is closed by the time the work runs
 * completes with -EBADF.
 *
 * The arguments live in the job (ACTX__JOB_ARGS), not in a separate
 * allocation.
 *
 * Where the loop uses io_uring (stats.io_backend, see aio-uring.c), the
 * same calls go to the loop's ring instead, with the same argument checks
 * and the same results; the pool still takes what the ring cannot do.
 */
#define _GNU_SOURCE
#include "actx-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

enum {
    AIO_PREAD = ACTX__AIO_PREAD,
    AIO_PWRITE = ACTX__AIO_PWRITE,
    AIO_FSYNC = ACTX__AIO_FSYNC
};

struct aio_args {
    void *buf;
    size_t n;
    off_t off;
    int fd;
    int op;
};

_Static_assert(sizeof(struct aio_args) <= ACTX__JOB_ARGS,
               "aio arguments must fit in a job");

/* Fd numbers whose kind is remembered (per loop); beyond: asked each time. */
#define FD_KIND_MAX (1 << 20)

/*
 * The kind of fd (ACTX__FD_*), asked of the kernel the first time a loop
 * sees the number (lseek, a zero-length pread, then F_GETFL) and
 * remembered; actx__fd_kind (actx-internal.h) looks it up.  Seekable means
 * positional I/O works: lseek does and pread is not ESPIPE.  A completion
 * with -EBADF forgets it, and so does an fd handler set on the number
 * (actx__fd_kind_set).  An fd that is not open is CLOSED, not remembered:
 * the pool's call answers EBADF.  Limitation: a number closed and reopened
 * as another kind of file with neither in between keeps the old kind (a
 * pipe read as a stream by the ring, an O_DIRECT file tried inline); the
 * runtime's own fds are refused whatever a loop remembers (ownfd.c).
 */
unsigned actx__fd_kind_slow(actx__loop *loop, int fd)
{
    unsigned char k;

    if (lseek(fd, 0, SEEK_CUR) < 0) {
        if (errno == EBADF) {
            return ACTX__FD_CLOSED;
        }
        if (errno != ESPIPE) {
            return ACTX__FD_SEEKABLE;
        }
        k = ACTX__FD_STREAM;
    } else if (pread(fd, NULL, 0, 0) < 0 && errno == ESPIPE) {
        /* Seeks but has no positional read (an eventfd, a timerfd): the
         * ring would read it as a stream, and wait. */
        k = ACTX__FD_STREAM;
    } else {
        int fl = fcntl(fd, F_GETFL);

        k = fl >= 0 && (fl & O_DIRECT) ? ACTX__FD_DIRECT : ACTX__FD_SEEKABLE;
    }
    if ((size_t)fd >= loop->nfd_kind && fd < FD_KIND_MAX) {
        size_t n = loop->nfd_kind ? loop->nfd_kind : 64;
        unsigned char *kind;

        while (n <= (size_t)fd) {
            n *= 2;
        }
        kind = realloc(loop->fd_kind, n);
        if (kind) {
            memset(kind + loop->nfd_kind, ACTX__FD_UNKNOWN, n - loop->nfd_kind);
            loop->fd_kind = kind;
            loop->nfd_kind = n;
        }
    }
    actx__fd_kind_set(loop, fd, k);
    return k;
}

void actx__fd_kind_set(actx__loop *loop, int fd, unsigned kind)
{
    if (fd >= 0 && (size_t)fd < loop->nfd_kind) {
        loop->fd_kind[fd] = (unsigned char)kind;
    }
}

void actx__aio_loop_shutdown(actx__loop *loop)
{
    free(loop->fd_kind);
    loop->fd_kind = NULL;
    loop->nfd_kind = 0;
}

static long aio_work(void *p)
{
    struct aio_args *a = p;
    ssize_t r;

    if (actx__own_fd(a->fd)) {
        return -EBADF; /* closed by the caller, and taken by the runtime */
    }
    do {
        switch (a->op) {
        case AIO_PREAD:
            r = pread(a->fd, a->buf, a->n, a->off);
            break;
        case AIO_PWRITE:
            r = pwrite(a->fd, a->buf, a->n, a->off);
            break;
        default:
            r = fsync(a->fd);
            break;
        }
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : (long)r;
}

static actx_req *aio_submit(int op, int fd, void *buf, size_t n, off_t off,
                            actx_done_fn *done, void *opaque)
{
    struct aio_args a = {buf, n, off, fd, op};
    actx__loop *loop;
    actx_req *req;

    if (fd < 0) {
        errno = EBADF;
        return NULL;
    }
    if ((!buf && n > 0) || off < 0) {
        errno = EINVAL;
        return NULL;
    }
    loop = actx__loop_get();
    /* After the loop is made: its eventfd may take a number just closed. */
    if (actx__own_fd(fd)) {
        errno = EBADF; /* the runtime's own fds are never the caller's */
        return NULL;
    }
    if (loop && loop->st.io_backend == 1 &&
        actx__io_submit(loop, op, fd, buf, n, off, done, opaque, &req)) {
        return req;
    }
    return actx__pool_submit(aio_work, &a, sizeof(a), done, opaque);
}

/* The ring's fallback (aio-uring.c): the same operation on the pool. */
actx_req *actx__aio_pool(int op, int fd, void *buf, size_t n, off_t off,
                         actx_done_fn *done, void *opaque)
{
    struct aio_args a = {buf, n, off, fd, op};

    return actx__pool_submit(aio_work, &a, sizeof(a), done, opaque);
}

/*
 * A read the page cache can satisfy right now is done at submission, on the
 * owner thread (preadv2 with RWF_NOWAIT never blocks): its completion is
 * queued like any other and done runs at the next poll, in its context.
 * Anything else - not cached, partly cached (the partial data is dropped:
 * a positional read consumes nothing), an error, a kernel or file system
 * without RWF_NOWAIT, a non-seekable fd, an O_DIRECT one (RWF_NOWAIT would
 * not keep it from waiting for the device) - goes to the pool.  Such
 * a request has finished when actx_aio_pread returns (actx_req_cancel:
 * -EBUSY).  A read is a system call either way, and this one spares the
 * pool's two thread wake-ups.  On the io_uring path the ring decides per
 * batch between the same inline read and one enter for the whole batch
 * (aio-uring.c, "Buffered reads: inline or on the ring?").
 */
static actx_req *pread_cached(actx__loop *loop, int fd, void *buf, size_t n,
                              off_t off, actx_done_fn *done, void *opaque)
{
    struct iovec iov = {buf, n};
    ssize_t r = preadv2(fd, &iov, 1, off, RWF_NOWAIT);
    actx_req *req;

    /* r < 0 first: for n == SIZE_MAX, (ssize_t)n is -1, as a failure is. */
    if (r < 0 || ((size_t)r != n && r != 0)) {
        if (r < 0 && errno == EOPNOTSUPP) {
            actx__fd_kind_set(loop, fd, ACTX__FD_NOWAIT_NO);
        }
        return NULL; /* 0 is end of file: as final as a full read */
    }
    /* (Not tried when the loop is closed: the pool path says EPIPE.) */
    req = actx__req_alloc(loop, done, opaque);
    if (req) {
        actx__req_post(req, r);
    }
    return req;
}

actx_req *actx_aio_pread(int fd, void *buf, size_t n, off_t off,
                         actx_done_fn *done, void *opaque)
{
    if (fd >= 0 && buf && n > 0 && off >= 0) {
        actx__loop *loop = actx__loop_get();

        if (loop && loop->st.io_backend != 1 && !loop->closed &&
            actx__fd_kind(loop, fd) == ACTX__FD_SEEKABLE && !actx__own_fd(fd)) {
            actx_req *req = pread_cached(loop, fd, buf, n, off, done, opaque);

            if (req) {
                return req;
            }
        }
    }
    return aio_submit(AIO_PREAD, fd, buf, n, off, done, opaque);
}

actx_req *actx_aio_pwrite(int fd, const void *buf, size_t n, off_t off,
                          actx_done_fn *done, void *opaque)
{
    return aio_submit(AIO_PWRITE, fd, (void *)buf, n, off, done, opaque);
}

actx_req *actx_aio_fsync(int fd, actx_done_fn *done, void *opaque)
{
    return aio_submit(AIO_FSYNC, fd, NULL, 0, 0, done, opaque);
}
