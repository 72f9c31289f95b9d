/* raw-epoll.c - the fd round trip and the raw epoll peers (raw-epoll.h). */
#define _GNU_SOURCE
#include "raw-epoll.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "harness/harness.h"

static void die(const char *what)
{
    perror(what);
    exit(1);
}

int rtt_serve_one(struct rtt *r)
{
    char b;

    if (read(r->req[0], &b, 1) != 1) {
        return 0; /* spurious */
    }
    if (write(r->rep[1], &b, 1) != 1) {
        die("write reply");
    }
    return --r->left == 0;
}

static double client(struct rtt *r, int n)
{
    uint64_t t0 = 0, t1;
    char b = 'x';

    for (int i = 0; i < n; i++) {
        if (i == 100) {
            t0 = bench_now_ns();
        }
        if (write(r->req[1], &b, 1) != 1 || read(r->rep[0], &b, 1) != 1) {
            die("client");
        }
    }
    t1 = bench_now_ns();
    return (double)(t1 - t0) / (n - 100) / 1000.0;
}

double rtt_run(void *(*server)(void *r), int n)
{
    struct rtt r;
    pthread_t t;
    double us;

    /* The server's end is non-blocking; the client blocks on its reply. */
    if (pipe2(r.req, O_CLOEXEC) < 0 || pipe2(r.rep, O_CLOEXEC) < 0) {
        die("pipe2");
    }
    fcntl(r.req[0], F_SETFL, O_NONBLOCK);
    r.left = n;
    if (pthread_create(&t, NULL, server, &r) != 0) {
        die("pthread_create");
    }
    us = client(&r, n);
    pthread_join(t, NULL);
    close(r.req[0]);
    close(r.req[1]);
    close(r.rep[0]);
    close(r.rep[1]);
    return us;
}

void *rtt_server_raw(void *arg)
{
    struct rtt *r = arg;
    struct epoll_event ev = {.events = EPOLLIN}, out[8];
    int ep = epoll_create1(EPOLL_CLOEXEC);

    ev.data.ptr = r;
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, r->req[0], &ev) < 0) {
        die("epoll");
    }
    for (;;) {
        int n = epoll_wait(ep, out, 8, -1);
        bool done = false;

        for (int i = 0; i < n; i++) {
            done |= rtt_serve_one(out[i].data.ptr);
        }
        if (done) {
            break;
        }
    }
    close(ep);
    return NULL;
}

double raw_lateness(void)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    uint64_t deadline = bench_now_ns() + 2000000, now;
    struct epoll_event ev;

    while ((now = bench_now_ns()) < deadline) {
        epoll_wait(ep, &ev, 1, (int)((deadline - now + 999999) / 1000000));
    }
    close(ep);
    return (double)(now - deadline) / 1000.0;
}
