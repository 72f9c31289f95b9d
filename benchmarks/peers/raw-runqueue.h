/*
 * raw-runqueue.h - the raw run queue: the floor any BH implementation is
 * measured against.  An intrusive FIFO of the same shape as a BH list
 * (flag per node, singly-linked list with a tail pointer, pop-all, call
 * through a function pointer), out of line like a library call.
 */
#ifndef BENCH_RAW_RUNQUEUE_H
#define BENCH_RAW_RUNQUEUE_H

typedef struct rq_node {
    struct rq_node *next;
    int scheduled;
    void (*cb)(void *opaque);
    void *opaque;
} rq_node;

typedef struct {
    rq_node *head;
    rq_node **tail;
} rq_queue;

void rq_init(rq_queue *q);
/* Schedule n (nothing if it already is). */
void rq_schedule(rq_queue *q, rq_node *n);
/* Pop everything scheduled so far; what callbacks schedule runs next time. */
int rq_poll(rq_queue *q);

/* ns per BH: `rounds` bursts of BENCH_BH_BURST nodes, one poll each. */
double bh_burst_raw(long rounds);
/* ns per BH: one node rescheduling itself n times, one poll each. */
double bh_chain_raw(long n);

/* BHs per burst, every implementation's. */
#define BENCH_BH_BURST 1024

#endif /* BENCH_RAW_RUNQUEUE_H */
