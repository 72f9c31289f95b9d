/*
 * backend-epoll.c - the OS backend: epoll sets, nothing else.  fd.c owns
 * which sets exist and what is in them (one per context with fd handlers,
 * see its header comment); this file only makes, changes and waits on
 * them, so that nothing else in the runtime calls epoll.
 */
#define _GNU_SOURCE
#include "actx-internal.h"

#include <errno.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

/* A new, empty epoll set: its fd (one of the runtime's own, ownfd.c, which
 * actx__own_close closes), or -errno. */
int actx__backend_new(void)
{
    int epfd = epoll_create1(EPOLL_CLOEXEC);

    if (epfd < 0) {
        return -errno;
    }
    actx__own_fd_add(epfd);
    return epfd;
}

/* EPOLL_CTL_ADD/MOD/DEL on set epfd; 0 or -errno. */
int actx__backend_ctl(int epfd, int op, int fd, uint32_t events, uint64_t key)
{
    struct epoll_event ev = {.events = events, .data.u64 = key};

    return epoll_ctl(epfd, op, fd, &ev) < 0 ? -errno : 0;
}

/*
 * Wait on set epfd up to timeout_ns (-1: forever, 0: poll) for at most max
 * events.  Returns how many, or -errno (-EINTR for a signal).
 * epoll_pwait2 takes nanoseconds; a kernel without it (before 5.11) gets
 * milliseconds, rounded up so that a timer is never run early and clamped
 * to INT_MAX (a sleep that long ends early and is simply taken again).
 * The tests force that path by making epoll_pwait2 fail with ENOSYS
 * (tests/support/inject.h, inject_no_epoll_pwait2).
 */
int actx__backend_wait(int epfd, struct epoll_event *evs, int max,
                       int64_t timeout_ns)
{
    static _Atomic int no_pwait2;
    int n = -1;

    /* Relaxed: a hint; every thread finds ENOSYS itself at worst once. */
    if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        struct timespec ts, *tsp = NULL;

        if (timeout_ns >= 0) {
            ts.tv_sec = timeout_ns / 1000000000;
            ts.tv_nsec = timeout_ns % 1000000000;
            tsp = &ts;
        }
        n = epoll_pwait2(epfd, evs, max, tsp, NULL);
        if (n < 0 && errno == ENOSYS) {
            atomic_store_explicit(&no_pwait2, 1, memory_order_relaxed);
        }
    }
    if (n < 0 && atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        int ms = timeout_ns < 0 ? -1 : actx__ns_to_ms_ceil(timeout_ns);

        n = epoll_wait(epfd, evs, max, ms);
    }
    return n < 0 ? -errno : n;
}
