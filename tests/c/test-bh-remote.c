/*
 * test-bh-remote.c - BHs scheduled and cancelled from another thread
 * (actx.h: actx_bh_schedule, actx_bh_schedule_idle and actx_bh_cancel
 * from any thread): whatever the sequence, the BH runs once for the last
 * schedule that was not cancelled, never for a cancelled one, on its
 * owner thread in its own context.
 */
#include "test.h"

#include <sched.h>

enum op { OP_SCHED, OP_IDLE, OP_CANCEL, OP_END };

struct ops {
    actx_bh *bh;
    enum op op[8];
};

static void *ops_main(void *arg)
{
    struct ops *o = arg;

    for (int i = 0; o->op[i] != OP_END; i++) {
        switch (o->op[i]) {
        case OP_SCHED:
            actx_bh_schedule(o->bh);
            break;
        case OP_IDLE:
            actx_bh_schedule_idle(o->bh);
            break;
        default:
            actx_bh_cancel(o->bh);
            break;
        }
    }
    return NULL;
}

/* The ops from another thread, then the owner polls: how often it ran. */
static int runs_after(bool owner_schedules_first, struct ops o)
{
    struct cb_rec rec = {0};

    o.bh = actx_bh_new(rec_fn, &rec);
    ASSERT_NOT_NULL(o.bh);
    if (owner_schedules_first) {
        actx_bh_schedule(o.bh);
    }
    thread_join(thread_start(ops_main, &o));
    for (int i = 0; i < 4; i++) {
        actx_poll(false); /* idle BHs run in a poll with nothing else */
    }
    if (rec.runs) {
        ASSERT_ON_SELF(rec.thread);
        ASSERT_EQ(rec.ctx_id, 0);
    }
    actx_bh_delete(o.bh);
    return rec.runs;
}

ACTX_TEST("/bh/remote/schedule-cancel-schedule-runs-once")
{
    ASSERT_EQ(
        runs_after(false,
                   (struct ops){NULL, {OP_SCHED, OP_CANCEL, OP_SCHED, OP_END}}),
        1);
}

ACTX_TEST("/bh/remote/idle-schedule-cancel-idle-schedule-runs-once")
{
    ASSERT_EQ(
        runs_after(false,
                   (struct ops){NULL, {OP_IDLE, OP_CANCEL, OP_IDLE, OP_END}}),
        1);
}

ACTX_TEST("/bh/remote/idle-schedule-cancel-schedule-runs-once")
{
    ASSERT_EQ(
        runs_after(false,
                   (struct ops){NULL, {OP_IDLE, OP_CANCEL, OP_SCHED, OP_END}}),
        1);
}

ACTX_TEST("/bh/remote/schedule-then-cancel-never-runs")
{
    ASSERT_EQ(
        runs_after(false, (struct ops){NULL, {OP_SCHED, OP_CANCEL, OP_END}}),
        0);
    ASSERT_EQ(
        runs_after(false, (struct ops){NULL, {OP_IDLE, OP_CANCEL, OP_END}}), 0);
}

ACTX_TEST("/bh/remote/schedule-of-an-owner-scheduled-bh-runs-once")
{
    ASSERT_EQ(runs_after(true, (struct ops){NULL, {OP_SCHED, OP_END}}), 1);
    ASSERT_EQ(runs_after(true, (struct ops){NULL, {OP_IDLE, OP_END}}), 1);
}

/*
 * A schedule from another thread that finds the BH already scheduled by
 * the owner changes nothing, but the run that covers it must still come
 * after it: the callback sees what the scheduler wrote before it
 * scheduled.  Each round the owner schedules the BH, lets the other
 * thread write a plain int and schedule (finding the owner's schedule),
 * learns that it did through a relaxed flag (no ordering of its own), and
 * polls.  ThreadSanitizer reports the read if the schedule did not order
 * the write before the run.
 */
struct covered {
    actx_bh *bh;
    int data; /* plain: only the schedule orders it */
    int got;
    atomic_int go, done;
};

enum { COVERED_ROUNDS = 200 };

static void covered_cb(void *opaque)
{
    struct covered *c = opaque;

    c->got = c->data;
}

static void *covered_main(void *arg)
{
    struct covered *c = arg;

    for (int i = 1; i <= COVERED_ROUNDS; i++) {
        while (atomic_load_explicit(&c->go, memory_order_acquire) != i) {
            sched_yield();
        }
        c->data = i;
        actx_bh_schedule(c->bh);
        atomic_store_explicit(&c->done, i, memory_order_relaxed);
    }
    return NULL;
}

ACTX_TEST("/bh/remote/schedule-of-a-scheduled-bh-orders-its-writes")
{
    struct covered c = {0};
    pthread_t t;

    c.bh = actx_bh_new(covered_cb, &c);
    ASSERT_NOT_NULL(c.bh);
    t = thread_start(covered_main, &c);
    for (int i = 1; i <= COVERED_ROUNDS; i++) {
        actx_bh_schedule(c.bh);
        atomic_store_explicit(&c.go, i, memory_order_release);
        while (atomic_load_explicit(&c.done, memory_order_relaxed) != i) {
            sched_yield();
        }
        while (actx_poll(false)) {
        }
        ASSERT_EQ(c.got, i);
    }
    ASSERT_NULL(thread_join(t));
    actx_bh_delete(c.bh);
}
