/*
 * test-bh-remote.c - BHs scheduled and cancelled from another thread
 * (actx.h: actx_bh_schedule, actx_bh_schedule_idle and actx_bh_cancel
 * from any thread): whatever the sequence, the BH runs once for the last
 * schedule that was not cancelled, never for a cancelled one, on its
 * owner thread in its own context.
 */
#include "test.h"

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
