/*
 * raw-mailbox.h - the peers' completion nodes and the raw mailbox: the
 * protocol actx uses for cross-thread completions, without a runtime
 * around it (the floor for such a channel).
 *
 * A node is one cache line from an owner-local free list.  The mailbox is
 * an intrusive MPSC list (CAS push; the consumer takes it all with one
 * exchange and reverses it), an eventfd in an epoll set, and a notify_me
 * flag so that the eventfd is written only when the consumer may sleep.
 */
#ifndef BENCH_RAW_MAILBOX_H
#define BENCH_RAW_MAILBOX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "harness/harness.h"

typedef struct bench_node {
    struct bench_node *next;
    void (*done)(void *opaque, long ret);
    void *opaque;
    long ret;
} __attribute__((aligned(BENCH_CACHELINE))) bench_node;

/* Owner thread.  n nodes in one array, in address order on the free list. */
void bench_nodes_init(size_t n);
void bench_nodes_fini(void);
/*
 * Owner thread.  Put every node back in address order: the order another
 * run left the free list in changes the per-completion cost (hardware
 * prefetch follows ascending addresses), so each run starts the same way.
 */
void bench_nodes_reset(void);

extern bench_node *bench_node_free;

/* Owner thread.  A node from the free list (there must be one). */
static inline bench_node *bench_node_get(void (*done)(void *, long),
                                         void *opaque)
{
    bench_node *n = bench_node_free;

    bench_node_free = n->next;
    n->next = NULL;
    n->done = done;
    n->opaque = opaque;
    return n;
}

/* Owner thread. */
static inline void bench_node_put(bench_node *n)
{
    n->next = bench_node_free;
    bench_node_free = n;
}

typedef struct {
    _Alignas(BENCH_CACHELINE) _Atomic(bench_node *) head;
    _Alignas(BENCH_CACHELINE) atomic_int notify_me; /* consumer may sleep */
    atomic_int notified;                            /* eventfd written */
    int efd;
    int ep;
} raw_mailbox;

/* Owner thread.  Exits the program if the eventfd or epoll set fails. */
void raw_mb_init(raw_mailbox *mb);
void raw_mb_destroy(raw_mailbox *mb);

/* Any thread.  Hand n (its ret set) to the owner. */
void raw_mb_post(raw_mailbox *mb, bench_node *n);

/*
 * Owner thread.  Run the done callback of everything that arrived, in
 * arrival order, and put the nodes back; if nothing had arrived and
 * blocking, sleep until something does.  Returns 1 if anything ran.
 */
int raw_mb_poll(raw_mailbox *mb, bool blocking);

#endif /* BENCH_RAW_MAILBOX_H */
