/* raw-mailbox.c - the peers' nodes and the raw mailbox (raw-mailbox.h). */
#define _GNU_SOURCE
#include "raw-mailbox.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

bench_node *bench_node_free;
static bench_node *node_mem;
static size_t node_count;

void bench_nodes_init(size_t n)
{
    if (posix_memalign((void **)&node_mem, BENCH_CACHELINE,
                       n * sizeof(bench_node))) {
        perror("posix_memalign");
        exit(1);
    }
    node_count = n;
    bench_nodes_reset();
}

void bench_nodes_fini(void)
{
    free(node_mem);
    node_mem = NULL;
    node_count = 0;
    bench_node_free = NULL;
}

void bench_nodes_reset(void)
{
    bench_node_free = NULL;
    for (size_t i = node_count; i-- > 0;) {
        node_mem[i].next = bench_node_free;
        bench_node_free = &node_mem[i];
    }
}

void raw_mb_init(raw_mailbox *mb)
{
    struct epoll_event ev = {.events = EPOLLIN};

    atomic_init(&mb->head, NULL);
    atomic_init(&mb->notify_me, 0);
    atomic_init(&mb->notified, 0);
    mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    mb->ep = epoll_create1(EPOLL_CLOEXEC);
    if (mb->efd < 0 || mb->ep < 0 ||
        epoll_ctl(mb->ep, EPOLL_CTL_ADD, mb->efd, &ev) < 0) {
        perror("raw mailbox");
        exit(1);
    }
}

void raw_mb_destroy(raw_mailbox *mb)
{
    close(mb->efd);
    close(mb->ep);
}

/*
 * Push (seq_cst CAS), then read notify_me (seq_cst).  Pairs with
 * raw_mb_poll's store of notify_me followed by its re-check of head: in
 * the single total order either the consumer's re-check sees this node or
 * this load sees notify_me == 1, so a sleeping consumer is always woken.
 * notified coalesces the eventfd writes of one sleep.
 */
void raw_mb_post(raw_mailbox *mb, bench_node *n)
{
    bench_node *old = atomic_load_explicit(&mb->head, memory_order_relaxed);
    uint64_t one = 1;

    do {
        n->next = old;
    } while (!atomic_compare_exchange_weak(&mb->head, &old, n));
    if (atomic_load(&mb->notify_me) && !atomic_exchange(&mb->notified, 1)) {
        if (write(mb->efd, &one, sizeof(one)) < 0) {
            BENCH_USE(errno);
        }
    }
}

int raw_mb_poll(raw_mailbox *mb, bool blocking)
{
    bench_node *l = atomic_exchange(&mb->head, NULL);
    bench_node *rev = NULL;

    if (!l && blocking) {
        /* Clear notified before publishing notify_me (see raw_mb_post). */
        atomic_store(&mb->notified, 0);
        atomic_store(&mb->notify_me, 1);
        l = atomic_exchange(&mb->head, NULL);
        if (!l) {
            struct epoll_event ev;
            uint64_t v;

            while (epoll_wait(mb->ep, &ev, 1, -1) < 0 && errno == EINTR) {
            }
            if (read(mb->efd, &v, sizeof(v)) < 0) {
                BENCH_USE(errno);
            }
        }
        atomic_store(&mb->notify_me, 0);
        if (!l) {
            l = atomic_exchange(&mb->head, NULL);
        }
    }
    if (!l) {
        return 0;
    }
    while (l) { /* LIFO to FIFO */
        bench_node *next = l->next;

        l->next = rev;
        rev = l;
        l = next;
    }
    while (rev) {
        bench_node *next = rev->next;

        rev->done(rev->opaque, rev->ret);
        bench_node_put(rev);
        rev = next;
    }
    return 1;
}
