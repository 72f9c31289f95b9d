/*
 * backend-epoll.c - the OS backend: one epoll set per loop, holding the
 * mailbox's eventfd (data.u64 == 0) and the fds of fd handlers (data.u64 ==
 * fd.c's key for the registration, never 0).  Nothing else in the runtime
 * calls epoll.
 *
 * The epoll fd number is what embedders wait on (actx_backend_fd), so it
 * never changes for the life of the loop; actx__backend_rebuild replaces
 * the set behind the same number (dup3) when a registration can no longer
 * be removed (its fd was closed while a dup kept the file open).
 */
#define _GNU_SOURCE
#include "actx-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 64

static int new_set(actx__loop *loop)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
    int epfd = epoll_create1(EPOLL_CLOEXEC);

    if (epfd < 0) {
        return -errno;
    }
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, loop->mb->efd, &ev) < 0) {
        int err = -errno;

        close(epfd);
        return err;
    }
    if (actx__io_ring_fd(loop) >= 0) {
        ev.data.u64 = ACTX__IO_KEY; /* aio-uring.c's ring */
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, actx__io_ring_fd(loop), &ev) < 0) {
            int err = -errno;

            close(epfd);
            return err;
        }
    }
    return epfd;
}

int actx__backend_init(actx__loop *loop)
{
    int epfd = new_set(loop);

    if (epfd < 0) {
        return epfd;
    }
    loop->epfd = epfd;
    return 0;
}

void actx__backend_close(actx__loop *loop)
{
    /* The eventfd stays open with its (recycled) mailbox. */
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, loop->mb->efd, NULL);
    close(loop->epfd);
    loop->epfd = -1;
}

/* EPOLL_CTL_ADD/MOD/DEL for fd.c; 0 or -errno. */
int actx__backend_ctl(actx__loop *loop, int op, int fd, uint32_t events,
                      uint64_t key)
{
    struct epoll_event ev = {.events = events, .data.u64 = key};

    return epoll_ctl(loop->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

/*
 * An empty set (eventfd only) replaces the current one under the same fd
 * number; the caller re-adds the registrations it still wants.
 */
int actx__backend_rebuild(actx__loop *loop)
{
    int epfd = new_set(loop), err = 0;

    if (epfd < 0) {
        return epfd;
    }
    if (dup3(epfd, loop->epfd, O_CLOEXEC) < 0) {
        err = -errno;
    }
    close(epfd);
    return err;
}

/*
 * Wait up to timeout_ns (-1: forever, 0: poll) and hand ready fds to fd.c.
 * Returns how many events there were, or -errno (-EINTR for a signal).
 * epoll_pwait2 takes nanoseconds; a kernel without it gets milliseconds,
 * rounded up so that a timer is never run early.
 */
int actx__backend_wait(actx__loop *loop, int64_t timeout_ns)
{
    static _Atomic int no_pwait2;
    struct epoll_event evs[MAX_EVENTS];
    int n = -1, i;

    if (loop->nfds != 0) {
        actx__fd_wait_begin(loop); /* this wait's events replace the last */
    }
    /* Relaxed: a hint; every thread finds ENOSYS itself at worst once. */
    if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        struct timespec ts, *tsp = NULL;

        if (timeout_ns >= 0) {
            ts.tv_sec = timeout_ns / 1000000000;
            ts.tv_nsec = timeout_ns % 1000000000;
            tsp = &ts;
        }
        n = epoll_pwait2(loop->epfd, evs, MAX_EVENTS, tsp, NULL);
        if (n < 0 && errno == ENOSYS) {
            atomic_store_explicit(&no_pwait2, 1, memory_order_relaxed);
        }
    }
    if (n < 0 && atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);

        n = epoll_wait(loop->epfd, evs, MAX_EVENTS, ms);
    }
    if (n < 0) {
        return -errno; /* -EINTR: a signal (poll.c may return on it) */
    }
    for (i = 0; i < n; i++) {
        if (evs[i].data.u64 == 0) {
            actx__mb_ack(loop);
        } else if (evs[i].data.u64 == ACTX__IO_KEY) {
            /* CQEs: the caller's actx__drain_if_any reaps them. */
        } else {
            actx__fd_event(loop, evs[i].data.u64, evs[i].events);
        }
    }
    if (loop->nfds != 0) {
        actx__fd_waited(loop);
    }
    return n;
}
