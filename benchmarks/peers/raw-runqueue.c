/* raw-runqueue.c - the raw run queue and its BH figures (raw-runqueue.h). */
#include "raw-runqueue.h"

#include <stddef.h>
#include <stdio.h>

#include "harness/harness.h"

void rq_init(rq_queue *q)
{
    q->head = NULL;
    q->tail = &q->head;
}

BENCH_NOINLINE void rq_schedule(rq_queue *q, rq_node *n)
{
    if (n->scheduled) {
        return;
    }
    n->scheduled = 1;
    n->next = NULL;
    *q->tail = n;
    q->tail = &n->next;
}

BENCH_NOINLINE int rq_poll(rq_queue *q)
{
    rq_node *n = q->head;
    int ran = 0;

    rq_init(q);
    while (n) {
        rq_node *next = n->next;

        n->scheduled = 0;
        n->cb(n->opaque);
        ran = 1;
        n = next;
    }
    return ran;
}

static unsigned long counter;
static long chain_left;

static void count_cb(void *opaque)
{
    (void)opaque;
    counter++;
}

double bh_burst_raw(long rounds)
{
    static rq_node nodes[BENCH_BH_BURST];
    rq_queue q;
    uint64_t t0;

    rq_init(&q);
    for (int i = 0; i < BENCH_BH_BURST; i++) {
        nodes[i] = (rq_node){NULL, 0, count_cb, NULL};
    }
    counter = 0;
    t0 = bench_now_ns();
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < BENCH_BH_BURST; i++) {
            rq_schedule(&q, &nodes[i]);
        }
        rq_poll(&q);
    }
    t0 = bench_now_ns() - t0;
    if (counter != (unsigned long)rounds * BENCH_BH_BURST) {
        fprintf(stderr, "burst_raw: ran %lu of %ld\n", counter,
                rounds * BENCH_BH_BURST);
    }
    return (double)t0 / ((double)rounds * BENCH_BH_BURST);
}

static rq_queue chain_q;
static rq_node chain_node;

static void raw_chain_cb(void *opaque)
{
    (void)opaque;
    if (--chain_left > 0) {
        rq_schedule(&chain_q, &chain_node);
    }
}

double bh_chain_raw(long n)
{
    uint64_t t0;

    rq_init(&chain_q);
    chain_node = (rq_node){NULL, 0, raw_chain_cb, NULL};
    chain_left = n;
    t0 = bench_now_ns();
    rq_schedule(&chain_q, &chain_node);
    while (chain_left > 0) {
        rq_poll(&chain_q);
    }
    t0 = bench_now_ns() - t0;
    return (double)t0 / (double)n;
}
