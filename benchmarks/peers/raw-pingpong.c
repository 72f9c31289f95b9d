/* raw-pingpong.c - the ping-pong clock and the raw peers (pingpong.h). */
#define _GNU_SOURCE
#include "pingpong.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "harness/harness.h"

static atomic_int pp_stop;

/* Enough for any repetition of a few seconds; a full clock ends it. */
#define PP_MAX_RT (1ul << 21)

void pp_clock_start(pp_clock *c, double seconds)
{
    c->n = 0;
    c->cap = PP_MAX_RT;
    c->rt = bench_xrealloc(NULL, c->cap * sizeof(double));
    c->last = bench_now_ns();
    c->deadline = c->last + (uint64_t)(seconds * 1e9);
}

bool pp_clock_tick(pp_clock *c)
{
    uint64_t now = bench_now_ns();

    c->rt[c->n++] = (double)(now - c->last);
    c->last = now;
    return now >= c->deadline || c->n == c->cap;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

pp_result pp_clock_result(pp_clock *c)
{
    pp_result r = {NAN, NAN};
    double sum = 0, best = INFINITY;

    for (unsigned long i = 0; i < c->n; i++) {
        sum += c->rt[i];
        if (i >= PP_BLOCK) {
            sum -= c->rt[i - PP_BLOCK];
        }
        if (i + 1 >= PP_BLOCK && sum < best) {
            best = sum;
        }
    }
    if (c->n >= PP_BLOCK) {
        r.fastest_us = best / PP_BLOCK / 1e3;
    }
    if (c->n) {
        qsort(c->rt, c->n, sizeof(double), cmp_double);
        r.median_us = (c->n % 2 ? c->rt[c->n / 2]
                                : (c->rt[c->n / 2 - 1] + c->rt[c->n / 2]) / 2) /
                      1e3;
    }
    free(c->rt);
    c->rt = NULL;
    return r;
}

static void raw_ep_pair(int *efd, int *ep)
{
    struct epoll_event ev = {.events = EPOLLIN};

    *efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    *ep = epoll_create1(EPOLL_CLOEXEC);
    if (*efd < 0 || *ep < 0 || epoll_ctl(*ep, EPOLL_CTL_ADD, *efd, &ev) < 0) {
        perror("eventfd/epoll");
        exit(1);
    }
}

static void raw_wait(int ep, int efd)
{
    struct epoll_event ev;
    uint64_t v;

    while (epoll_wait(ep, &ev, 1, -1) < 0 && errno == EINTR) {
    }
    if (read(efd, &v, sizeof(v)) < 0) {
        BENCH_USE(errno);
    }
}

static void raw_signal(int efd)
{
    uint64_t one = 1;

    if (write(efd, &one, sizeof(one)) < 0) {
        BENCH_USE(errno);
    }
}

static int raw_efd_a, raw_ep_a, raw_efd_b, raw_ep_b;

static void *raw_pong_main(void *arg)
{
    (void)arg;
    for (;;) {
        raw_wait(raw_ep_b, raw_efd_b);
        if (atomic_load(&pp_stop)) {
            break;
        }
        raw_signal(raw_efd_a);
    }
    return NULL;
}

pp_result pingpong_raw(double seconds)
{
    pthread_t th;
    pp_clock clk;

    raw_ep_pair(&raw_efd_a, &raw_ep_a);
    raw_ep_pair(&raw_efd_b, &raw_ep_b);
    atomic_store(&pp_stop, 0);
    pthread_create(&th, NULL, raw_pong_main, NULL);
    pp_clock_start(&clk, seconds);
    for (;;) {
        raw_signal(raw_efd_b);
        raw_wait(raw_ep_a, raw_efd_a);
        if (pp_clock_tick(&clk)) {
            break;
        }
    }
    atomic_store(&pp_stop, 1);
    raw_signal(raw_efd_b);
    pthread_join(th, NULL);
    close(raw_efd_a);
    close(raw_ep_a);
    close(raw_efd_b);
    close(raw_ep_b);
    return pp_clock_result(&clk);
}

/*
 * The floor of a polled round trip: two threads spinning on one atomic
 * counter each (no loop, no sleeping at all).
 */
static atomic_ulong spin_a, spin_b;

static void *spin_pong_main(void *arg)
{
    unsigned long seen = 0;

    (void)arg;
    for (;;) {
        unsigned long v;

        while ((v = atomic_load(&spin_b)) == seen) {
            bench_cpu_relax();
        }
        seen = v;
        if (atomic_load(&pp_stop)) {
            break;
        }
        atomic_store(&spin_a, v);
    }
    return NULL;
}

pp_result pingpong_spin(double seconds)
{
    pthread_t th;
    pp_clock clk;
    unsigned long n = 0;

    atomic_store(&spin_a, 0);
    atomic_store(&spin_b, 0);
    atomic_store(&pp_stop, 0);
    pthread_create(&th, NULL, spin_pong_main, NULL);
    pp_clock_start(&clk, seconds);
    for (;;) {
        atomic_store(&spin_b, n + 1);
        while (atomic_load(&spin_a) != n + 1) {
            bench_cpu_relax();
        }
        n++;
        if (pp_clock_tick(&clk)) {
            break;
        }
    }
    atomic_store(&pp_stop, 1);
    atomic_store(&spin_b, n + 1);
    pthread_join(th, NULL);
    return pp_clock_result(&clk);
}
