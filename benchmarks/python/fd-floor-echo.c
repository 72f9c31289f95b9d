/*
 * fd-floor-echo.c - the floor of run.py's fd reader round trip: no event
 * loop, just the three system calls a readiness loop's reader cannot do
 * without (see whether the ping is there, read it, answer), spinning on a
 * zero-timeout epoll_wait.  run.py starts it as
 *
 *     fd-floor-echo PING_FD ANSWER_FD TRIPS READY_FD
 *
 * It writes "r" on READY_FD once its epoll set is ready, then answers
 * TRIPS pings.  Exit 0, 1 if a read or write failed, 2 on bad usage.
 */
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct epoll_event ev = {.events = EPOLLIN};
    int r, w, n, ep;
    char c;

    if (argc != 5) {
        return 2;
    }
    r = atoi(argv[1]);
    w = atoi(argv[2]);
    n = atoi(argv[3]);
    ep = epoll_create1(0);
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, r, &ev) < 0 ||
        write(atoi(argv[4]), "r", 1) != 1) {
        return 2;
    }
    for (int i = 0; i < n; i++) {
        int k;

        while ((k = epoll_wait(ep, &ev, 1, 0)) == 0) {
        }
        if (k < 0 || read(r, &c, 1) != 1 || write(w, "q", 1) != 1) {
            return 1;
        }
    }
    return 0;
}
