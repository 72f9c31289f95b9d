/*
 * backend-epoll.c - the OS backend: one epoll set per loop, holding the
 * mailbox's eventfd (data.ptr == NULL) and the fds of fd handlers
 * (data.ptr == their actx__fd).  Nothing else in the runtime calls epoll.
 */
#define _GNU_SOURCE
#include "actx-internal.h"

#include <errno.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 64

int actx__backend_init(actx__loop *loop)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        return -errno;
    }
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->mb->efd, &ev) < 0) {
        int err = -errno;

        close(loop->epfd);
        return err;
    }
    return 0;
}

void actx__backend_close(actx__loop *loop)
{
    /* The eventfd stays open with its (recycled) mailbox. */
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, loop->mb->efd, NULL);
    close(loop->epfd);
    loop->epfd = -1;
}

/*
 * Wait up to timeout_ns (-1: forever, 0: poll) and hand ready fds to fd.c.
 * epoll_pwait2 takes nanoseconds; a kernel without it gets milliseconds,
 * rounded up so that a timer is never run early.
 */
int actx__backend_wait(actx__loop *loop, int64_t timeout_ns)
{
    static int have_pwait2 = 1;
    struct epoll_event evs[MAX_EVENTS];
    int n, i;

    if (have_pwait2) {
        struct timespec ts, *tsp = NULL;

        if (timeout_ns >= 0) {
            ts.tv_sec = timeout_ns / 1000000000;
            ts.tv_nsec = timeout_ns % 1000000000;
            tsp = &ts;
        }
        n = epoll_pwait2(loop->epfd, evs, MAX_EVENTS, tsp, NULL);
        if (n < 0 && errno == ENOSYS) {
            have_pwait2 = 0;
        }
    }
    if (!have_pwait2) {
        int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);

        n = epoll_wait(loop->epfd, evs, MAX_EVENTS, ms);
    }
    if (n < 0) {
        return errno == EINTR ? 0 : -errno;
    }
    for (i = 0; i < n; i++) {
        if (evs[i].data.ptr == NULL) {
            actx__mb_ack(loop);
        } else {
            actx__fd_event(loop, evs[i].data.ptr, evs[i].events);
        }
    }
    return n;
}
