/*
 * test-bh.c - bottom halves (actx.h) and how they move with contexts
 * (3.1 steps 2-3): a parent's BH never runs in a child, a child's scheduled
 * BHs run at its pop, a child's live BHs survive the pop in the parent, and
 * a pop terminates even when a BH reschedules itself forever.
 */
#include "test.h"

/* A BH that records where it ran and reschedules itself while told to. */
struct resched {
    actx_bh *bh;
    int runs;
    int again;     /* reschedule while runs < again (or forever if < 0) */
    int expect_id; /* the context id it must run in */
    int wrong_id;  /* runs in another context */
    int bad_thread;
    pthread_t owner;
};

static void resched_cb(void *opaque)
{
    struct resched *r = opaque;

    r->runs++;
    if (actx_context_id() != r->expect_id) {
        r->wrong_id++;
    }
    if (!pthread_equal(pthread_self(), r->owner)) {
        r->bad_thread++;
    }
    if (r->again < 0 || r->runs < r->again) {
        actx_bh_schedule(r->bh);
    }
}

static void resched_init(struct resched *r, int again, int expect_id)
{
    memset(r, 0, sizeof(*r));
    r->again = again;
    r->expect_id = expect_id;
    r->owner = pthread_self();
    r->bh = actx_bh_new(resched_cb, r);
    ASSERT_NOT_NULL(r->bh);
}

/* Records the order in which BHs ran. */
static int order_log[64];
static int order_len;

struct ordered {
    int tag;
    actx_bh *bh;
};

static void ordered_cb(void *opaque)
{
    struct ordered *o = opaque;

    if (order_len < 64) {
        order_log[order_len++] = o->tag;
    }
}

ACTX_TEST("/bh/new/null-cb")
{
    errno = 0;
    ASSERT_NULL(actx_bh_new(NULL, NULL));
    ASSERT_EQ(errno, EINVAL);
}

ACTX_TEST("/bh/null-args")
{
    actx_bh_schedule(NULL);
    actx_bh_schedule_idle(NULL);
    actx_bh_cancel(NULL);
    actx_bh_delete(NULL);
    ASSERT_EQ(actx_bh_poll(), 0);
}

ACTX_TEST("/bh/poll/nothing")
{
    ASSERT_EQ(actx_bh_poll(), 0);
}

ACTX_TEST("/bh/reschedule/once-per-poll")
{
    struct resched r;

    resched_init(&r, -1, 0);
    actx_bh_schedule(r.bh);
    for (int i = 1; i <= 10; i++) {
        ASSERT_EQ(actx_bh_poll(), 1);
        ASSERT_EQ(r.runs, i);
    }
    for (int i = 11; i <= 20; i++) {
        ASSERT_EQ(actx_poll(false), 1);
        ASSERT_EQ(r.runs, i);
    }
    ASSERT_EQ(r.wrong_id, 0);
    ASSERT_EQ(r.bad_thread, 0);
    actx_bh_delete(r.bh);
    ASSERT_EQ(actx_bh_poll(), 0);
    ASSERT_EQ(r.runs, 20);
}

ACTX_TEST("/bh/schedule/twice-runs-once")
{
    struct cb_rec rec = {0};
    actx_bh *bh = actx_bh_new(rec_fn, &rec);

    ASSERT_NOT_NULL(bh);
    actx_bh_schedule(bh);
    actx_bh_schedule(bh);
    ASSERT_EQ(actx_bh_poll(), 1);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_ON_SELF(rec.thread);
    ASSERT_EQ(rec.ctx_id, 0);
    ASSERT_EQ(actx_bh_poll(), 0);
    ASSERT_EQ(rec.runs, 1);
    actx_bh_delete(bh);
}

ACTX_TEST("/bh/schedule/order")
{
    static const int sched[] = {3, 1, 4, 0, 2, 6, 5};
    struct ordered o[7];

    order_len = 0;
    for (int i = 0; i < 7; i++) {
        o[i].tag = i;
        o[i].bh = actx_bh_new(ordered_cb, &o[i]);
        ASSERT_NOT_NULL(o[i].bh);
    }
    for (int i = 0; i < 7; i++) {
        actx_bh_schedule(o[sched[i]].bh);
    }
    ASSERT_EQ(actx_bh_poll(), 1);
    ASSERT_EQ(order_len, 7);
    for (int i = 0; i < 7; i++) {
        ASSERT_EQ(order_log[i], sched[i]);
    }
    for (int i = 0; i < 7; i++) {
        actx_bh_delete(o[i].bh);
    }
}

/* A cancelled BH scheduled again was scheduled last: it runs last. */
ACTX_TEST("/bh/schedule/order-after-cancel")
{
    struct ordered o[7];

    for (int i = 0; i < 7; i++) {
        o[i].tag = i;
        o[i].bh = actx_bh_new(ordered_cb, &o[i]);
        ASSERT_NOT_NULL(o[i].bh);
    }
    order_len = 0;
    actx_bh_schedule(o[0].bh);
    actx_bh_schedule(o[6].bh);
    actx_bh_schedule(o[2].bh);
    actx_bh_cancel(o[0].bh);
    actx_bh_schedule(o[0].bh);
    ASSERT_EQ(actx_bh_poll(), 1);
    ASSERT_EQ(order_len, 3);
    ASSERT_EQ(order_log[0], 6);
    ASSERT_EQ(order_log[1], 2);
    ASSERT_EQ(order_log[2], 0);
    for (int i = 0; i < 7; i++) {
        actx_bh_delete(o[i].bh);
    }
}

/* A BH scheduled during actx_bh_poll runs at the next call, not this one. */
struct chain {
    actx_bh *self;
    actx_bh *next;
    int runs;
    int expect_id;
    int wrong_id;
};

static void chain_cb(void *opaque)
{
    struct chain *c = opaque;

    c->runs++;
    if (actx_context_id() != c->expect_id) {
        c->wrong_id++;
    }
    if (c->next) {
        actx_bh_schedule(c->next);
    }
}

ACTX_TEST("/bh/schedule/during-poll-runs-next-call")
{
    struct chain a = {0}, b = {0};

    /* b is created first so that list order cannot make it run early. */
    b.self = actx_bh_new(chain_cb, &b);
    a.self = actx_bh_new(chain_cb, &a);
    a.next = b.self;
    actx_bh_schedule(a.self);
    ASSERT_EQ(actx_bh_poll(), 1);
    ASSERT_EQ(a.runs, 1);
    ASSERT_EQ(b.runs, 0);
    ASSERT_EQ(actx_bh_poll(), 1);
    ASSERT_EQ(b.runs, 1);
    ASSERT_EQ(a.runs, 1);
    ASSERT_EQ(actx_bh_poll(), 0);
    actx_bh_delete(a.self);
    actx_bh_delete(b.self);
}

ACTX_TEST("/bh/cancel/not-run")
{
    struct cb_rec rec = {0};
    actx_bh *bh = actx_bh_new(rec_fn, &rec);

    actx_bh_schedule(bh);
    actx_bh_cancel(bh);
    ASSERT_EQ(actx_bh_poll(), 0);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(rec.runs, 0);
    /* Cancelled is not deleted: it can be scheduled again. */
    actx_bh_schedule(bh);
    ASSERT_EQ(actx_bh_poll(), 1);
    ASSERT_EQ(rec.runs, 1);
    /* Cancelling an idle-scheduled BH works too. */
    actx_bh_schedule_idle(bh);
    actx_bh_cancel(bh);
    ASSERT_EQ(actx_bh_poll(), 0);
    ASSERT_EQ(rec.runs, 1);
    actx_bh_delete(bh);
}

static void *cancel_main(void *p)
{
    actx_bh_cancel(p);
    return NULL;
}

static void *schedule_idle_main(void *p)
{
    wait_until_sleeping(*(pid_t *)((void **)p)[1], 20000);
    actx_bh_schedule_idle(((void **)p)[0]);
    return NULL;
}

ACTX_TEST("/bh/cancel/from-other-thread")
{
    struct cb_rec rec = {0};
    actx_bh *bh = actx_bh_new(rec_fn, &rec);

    actx_bh_schedule(bh);
    thread_join(thread_start(cancel_main, bh)); /* "any thread" */
    ASSERT_EQ(actx_bh_poll(), 0);
    ASSERT_EQ(rec.runs, 0);
    thread_join(later_schedule(bh, 0, 0));
    ASSERT_EQ(actx_bh_poll(), 1);
    ASSERT_EQ(rec.runs, 1);
    actx_bh_delete(bh);
}

/* actx_bh_scheduled: what the next poll of its context would do with it. */
struct sched_probe {
    actx_bh *bh;
    int before, after;
};

static void sched_again_cb(void *opaque)
{
    struct sched_probe *p = opaque;

    p->before = actx_bh_scheduled(p->bh); /* running: taken off */
    actx_bh_schedule(p->bh);
    p->after = actx_bh_scheduled(p->bh);
}

ACTX_TEST("/bh/scheduled")
{
    struct cb_rec rec = {0};
    struct sched_probe p = {0};
    actx_bh *bh = actx_bh_new(rec_fn, &rec);

    ASSERT_EQ(actx_bh_scheduled(NULL), false);
    ASSERT_EQ(actx_bh_scheduled(bh), false);
    actx_bh_schedule(bh);
    ASSERT_EQ(actx_bh_scheduled(bh), true);
    ASSERT_EQ(actx_bh_poll(), 1);
    ASSERT_EQ(actx_bh_scheduled(bh), false);
    actx_bh_schedule_idle(bh);
    ASSERT_EQ(actx_bh_scheduled(bh), true);
    actx_bh_cancel(bh);
    ASSERT_EQ(actx_bh_scheduled(bh), false);
    thread_join(later_schedule(bh, 0, 0)); /* from another thread */
    ASSERT_EQ(actx_bh_scheduled(bh), true);
    thread_join(thread_start(cancel_main, bh));
    ASSERT_EQ(actx_bh_scheduled(bh), false);
    ASSERT_EQ(rec.runs, 1);
    actx_bh_delete(bh);

    p.bh = actx_bh_new(sched_again_cb, &p);
    actx_bh_schedule(p.bh);
    ASSERT_EQ(actx_bh_poll(), 1);
    ASSERT_EQ(p.before, 0);
    ASSERT_EQ(p.after, 1);
    ASSERT_EQ(actx_bh_scheduled(p.bh), true);
    actx_bh_delete(p.bh);
}

ACTX_TEST("/bh/delete/not-run")
{
    struct cb_rec rec = {0};
    struct actx_stats st0, st1;
    actx_bh *bh;

    actx_stats(&st0);
    bh = actx_bh_new(rec_fn, &rec);
    actx_stats(&st1);
    ASSERT_EQ(st1.live_bhs, st0.live_bhs + 1);
    actx_bh_schedule(bh);
    actx_bh_delete(bh);
    ASSERT_EQ(actx_bh_poll(), 0);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(rec.runs, 0);
    actx_stats(&st1);
    ASSERT_EQ(st1.live_bhs, st0.live_bhs);
    /* Nothing is left that could make progress. */
    ASSERT_EQ(actx_poll(true), 0);
}

/* Deleting itself from its own callback, after scheduling itself. */
struct selfdel {
    actx_bh *bh;
    int runs;
};

static void selfdel_cb(void *opaque)
{
    struct selfdel *s = opaque;

    s->runs++;
    actx_bh_schedule(s->bh);
    actx_bh_delete(s->bh);
}

ACTX_TEST("/bh/delete/from-own-callback")
{
    struct selfdel s = {0};
    struct actx_stats st0, st1;

    actx_stats(&st0);
    s.bh = actx_bh_new(selfdel_cb, &s);
    actx_bh_schedule(s.bh);
    ASSERT_EQ(actx_bh_poll(), 1);
    ASSERT_EQ(s.runs, 1);
    for (int i = 0; i < 5; i++) {
        actx_bh_poll();
        actx_poll(false);
    }
    ASSERT_EQ(s.runs, 1);
    actx_stats(&st1);
    ASSERT_EQ(st1.live_bhs, st0.live_bhs);
    ASSERT_EQ(actx_poll(true), 0);
}

/* A BH deleting another BH scheduled after it in the same poll. */
struct deleter {
    actx_bh *victim;
    int runs;
};

static void deleter_cb(void *opaque)
{
    struct deleter *d = opaque;

    d->runs++;
    actx_bh_delete(d->victim);
}

ACTX_TEST("/bh/delete/other-from-callback")
{
    struct deleter d = {0};
    struct cb_rec rec = {0};
    actx_bh *killer, *victim;

    victim = actx_bh_new(rec_fn, &rec);
    killer = actx_bh_new(deleter_cb, &d);
    d.victim = victim;
    actx_bh_schedule(killer);
    actx_bh_schedule(victim);
    ASSERT_EQ(actx_bh_poll(), 1);
    ASSERT_EQ(d.runs, 1);
    ASSERT_EQ(rec.runs, 0);
    ASSERT_EQ(actx_bh_poll(), 0);
    ASSERT_EQ(rec.runs, 0);
    actx_bh_delete(killer);
}

ACTX_TEST("/bh/idle/runs-returns-zero")
{
    struct cb_rec rec = {0};
    actx_bh *bh = actx_bh_new(rec_fn, &rec);

    actx_bh_schedule_idle(bh);
    ASSERT_EQ(actx_bh_poll(), 0);
    ASSERT_EQ(rec.runs, 1);
    actx_bh_schedule_idle(bh);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(rec.runs, 2);
    actx_bh_delete(bh);
}

ACTX_TEST("/bh/idle/stays-idle-on-schedule")
{
    struct cb_rec rec = {0};
    actx_bh *bh = actx_bh_new(rec_fn, &rec);

    actx_bh_schedule_idle(bh);
    actx_bh_schedule(bh); /* no-op: already scheduled, stays idle */
    ASSERT_EQ(actx_bh_poll(), 0);
    ASSERT_EQ(rec.runs, 1);
    /* Once run, a plain schedule is a plain schedule again. */
    actx_bh_schedule(bh);
    actx_bh_schedule_idle(bh); /* no-op: already scheduled (non-idle) */
    ASSERT_EQ(actx_bh_poll(), 1);
    ASSERT_EQ(rec.runs, 2);
    actx_bh_delete(bh);
}

ACTX_TEST("/bh/idle/blocking-poll-runs-it")
{
    struct cb_rec rec = {0};
    actx_bh *bh = actx_bh_new(rec_fn, &rec);

    actx_bh_schedule_idle(bh);
    /* Sleeps at most ~10 ms, runs it, returns 0 (only an idle BH ran). */
    ASSERT_EQ(actx_poll(true), 0);
    ASSERT_EQ(rec.runs, 1);
    actx_bh_delete(bh);
}

ACTX_TEST("/bh/idle/from-other-thread-runs")
{
    struct cb_rec rec = {0};
    actx_bh *bh = actx_bh_new(rec_fn, &rec);
    pid_t tid = test_gettid();
    void *arg[2] = {bh, &tid};
    pthread_t t;

    /* The owner sleeps (a live BH, no bound); an idle schedule from another
     * thread must still reach it: the header says such an owner is woken. */
    t = thread_start(schedule_idle_main, arg);
    while (rec.runs == 0) {
        ASSERT_EQ(actx_poll(true), 0);
    }
    thread_join(t);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ctx_id, 0);
    ASSERT_ON_SELF(rec.thread);
    actx_bh_delete(bh);
}

ACTX_TEST("/bh/schedule/cross-thread-wakes-blocking-poll")
{
    struct cb_rec rec = {0};
    struct actx_stats st0, st1;
    actx_bh *bh = actx_bh_new(rec_fn, &rec);
    pthread_t t;

    actx_stats(&st0);
    t = later_schedule(bh, 20000, test_gettid());
    /* A live BH keeps the loop waiting; the schedule must wake it. */
    ASSERT_EQ(actx_poll(true), 1);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_ON_SELF(rec.thread);
    thread_join(t);
    actx_stats(&st1);
    ASSERT_GE(st1.sleeps, st0.sleeps + 1);
    ASSERT_GE(st1.wakeups, st0.wakeups + 1);
    ASSERT_GE(st1.bh_runs, st0.bh_runs + 1);
    actx_bh_delete(bh);
}

/* Many handshakes: schedule from a thread, owner in poll(true). */
static atomic_int handshake_runs;

static void handshake_cb(void *opaque)
{
    (void)opaque;
    atomic_fetch_add(&handshake_runs, 1);
}

static void *handshake_thread(void *arg)
{
    actx_bh *bh = arg;

    for (int i = 0; i < 2000; i++) {
        actx_bh_schedule(bh);
        while (atomic_load(&handshake_runs) <= i) {
            sched_yield();
        }
    }
    return NULL;
}

ACTX_TEST("/bh/schedule/cross-thread-handshakes")
{
    actx_bh *bh = actx_bh_new(handshake_cb, NULL);
    pthread_t t;

    atomic_store(&handshake_runs, 0);
    t = thread_start(handshake_thread, bh);
    while (atomic_load(&handshake_runs) < 2000) {
        actx_poll(true);
    }
    thread_join(t);
    ASSERT_EQ(atomic_load(&handshake_runs), 2000);
    actx_bh_delete(bh);
}

/* --- BHs and contexts ---------------------------------------------------- */

ACTX_TEST("/bh/parent/not-in-child")
{
    struct cb_rec before = {0}, inside = {0};
    actx_bh *bh_before = actx_bh_new(rec_fn, &before);
    actx_bh *bh_inside = actx_bh_new(rec_fn, &inside);

    actx_bh_schedule(bh_before); /* scheduled before the push */
    ASSERT_EQ(actx_push(), 1);
    actx_bh_schedule(bh_inside); /* scheduled while the child is current */
    ASSERT_EQ(actx_bh_poll(), 0);
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(actx_poll(false), 0);
    }
    ASSERT_EQ(actx_process_queue(), 0);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(actx_poll(true), 0); /* nothing of the child: at once */
    ASSERT_EQ(before.runs, 0);
    ASSERT_EQ(inside.runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    /* The pop flushes the child's BHs, not the parent's. */
    ASSERT_EQ(before.runs, 0);
    ASSERT_EQ(inside.runs, 0);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(before.runs, 1);
    ASSERT_EQ(inside.runs, 1);
    ASSERT_EQ(before.ctx_id, 0);
    ASSERT_EQ(inside.ctx_id, 0);
    ASSERT_TRUE(before.seq < inside.seq); /* scheduling order */
    actx_bh_delete(bh_before);
    actx_bh_delete(bh_inside);
}

ACTX_TEST("/bh/pop/flushes-child-scheduled")
{
    struct ordered o[3];
    struct actx_stats st0, st1;
    int ids[3];

    order_len = 0;
    ASSERT_EQ(actx_push(), 1);
    for (int i = 0; i < 3; i++) {
        o[i].tag = i;
        o[i].bh = actx_bh_new(ordered_cb, &o[i]);
    }
    actx_bh_schedule(o[2].bh);
    actx_bh_schedule(o[0].bh);
    actx_bh_schedule(o[1].bh);
    actx_stats(&st0);
    ASSERT_EQ(actx_pop(), 0);
    actx_stats(&st1);
    ASSERT_EQ(order_len, 3);
    ASSERT_EQ(order_log[0], 2);
    ASSERT_EQ(order_log[1], 0);
    ASSERT_EQ(order_log[2], 1);
    ASSERT_EQ(st1.bh_runs, st0.bh_runs + 3);
    ASSERT_EQ(st1.live_bhs, st0.live_bhs); /* re-homed, not freed */
    (void)ids;
    ASSERT_EQ(actx_bh_poll(), 0); /* ran once only */
    for (int i = 0; i < 3; i++) {
        actx_bh_delete(o[i].bh);
    }
}

/* The flush runs in the child and repeats while BHs make progress. */
ACTX_TEST("/bh/pop/flush-runs-chain-in-child")
{
    struct chain c[4] = {{0}};

    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_push(), 2);
    for (int i = 0; i < 4; i++) {
        c[i].self = actx_bh_new(chain_cb, &c[i]);
        c[i].expect_id = 2;
    }
    for (int i = 0; i < 3; i++) {
        c[i].next = c[i + 1].self;
    }
    actx_bh_schedule(c[0].self);
    ASSERT_EQ(actx_pop(), 0);
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(c[i].runs, 1);
        ASSERT_EQ(c[i].wrong_id, 0);
    }
    ASSERT_EQ(actx_context_id(), 1);
    ASSERT_EQ(actx_bh_poll(), 0);
    ASSERT_EQ(actx_pop(), 0);
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(c[i].runs, 1);
        actx_bh_delete(c[i].self);
    }
}

ACTX_TEST("/bh/pop/unscheduled-survives-in-parent")
{
    struct cb_rec rec = {0};
    struct actx_stats st0, st1;
    actx_bh *bh;

    actx_stats(&st0);
    ASSERT_EQ(actx_push(), 1);
    bh = actx_bh_new(rec_fn, &rec);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(rec.runs, 0);
    actx_stats(&st1);
    ASSERT_EQ(st1.live_bhs, st0.live_bhs + 1);
    /* Now a BH of the root: scheduling it from the root runs it there. */
    actx_bh_schedule(bh);
    ASSERT_EQ(actx_bh_poll(), 1);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ctx_id, 0);
    /* And it is not a BH of a new child. */
    ASSERT_EQ(actx_push(), 1);
    actx_bh_schedule(bh);
    ASSERT_EQ(actx_bh_poll(), 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(rec.runs, 2);
    ASSERT_EQ(rec.ctx_id, 0);
    actx_bh_delete(bh);
}

ACTX_TEST("/bh/pop/cancelled-survives-in-parent")
{
    struct cb_rec rec = {0};
    actx_bh *bh;

    ASSERT_EQ(actx_push(), 1);
    bh = actx_bh_new(rec_fn, &rec);
    actx_bh_schedule(bh);
    actx_bh_cancel(bh);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(rec.runs, 0);
    actx_bh_schedule(bh);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ctx_id, 0);
    actx_bh_delete(bh);
}

/* Scheduled from another thread into a popped child: runs in the parent. */
ACTX_TEST("/bh/pop/rehomed-scheduled-from-thread")
{
    struct cb_rec rec = {0};
    actx_bh *bh;
    pthread_t t;

    ASSERT_EQ(actx_push(), 1);
    bh = actx_bh_new(rec_fn, &rec);
    ASSERT_EQ(actx_pop(), 0);
    t = later_schedule(bh, 20000, test_gettid());
    ASSERT_EQ(actx_poll(true), 1); /* the re-homed live BH counts here */
    thread_join(t);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ctx_id, 0);
    ASSERT_ON_SELF(rec.thread);
    actx_bh_delete(bh);
}

ACTX_TEST("/bh/pop/self-rescheduling-terminates")
{
    struct resched r;
    int n;

    ASSERT_EQ(actx_push(), 1);
    resched_init(&r, -1, 1);
    actx_bh_schedule(r.bh);
    ASSERT_EQ(actx_pop(), 0); /* must return: bounded flush */
    ASSERT_EQ(actx_context_id(), 0);
    ASSERT_GE(r.runs, 1);
    ASSERT_LE(r.runs, 10001); /* "after 10,000 rounds stop" */
    ASSERT_EQ(r.wrong_id, 0);
    n = r.runs;
    /* It moved to the parent still scheduled. */
    r.expect_id = 0;
    ASSERT_EQ(actx_bh_poll(), 1);
    ASSERT_EQ(r.runs, n + 1);
    ASSERT_EQ(r.wrong_id, 0);
    ASSERT_EQ(r.bad_thread, 0);
    actx_bh_delete(r.bh);
    ASSERT_EQ(actx_bh_poll(), 0);
    ASSERT_EQ(r.runs, n + 1);
}

/* Same, nested: the grandchild's endless BH stays endless one level up. */
ACTX_TEST("/bh/pop/self-rescheduling-nested")
{
    struct resched r;
    int n;

    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_push(), 2);
    resched_init(&r, -1, 2);
    actx_bh_schedule(r.bh);
    ASSERT_EQ(actx_pop(), 0);
    n = r.runs;
    r.expect_id = 1;
    ASSERT_EQ(actx_pop(), 0); /* bounded again, now in context 1 */
    ASSERT_GT(r.runs, n);
    ASSERT_EQ(r.wrong_id, 0);
    n = r.runs;
    r.expect_id = 0;
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(r.runs, n + 1);
    ASSERT_EQ(r.wrong_id, 0);
    actx_bh_delete(r.bh);
}

/* --- Misuse from a wrong thread ------------------------------------------ */

struct wrong_thread_arg {
    actx_bh *bh;
    int bh_poll_ret;
    int ctx_id;
};

static void *wrong_delete_main(void *p)
{
    struct wrong_thread_arg *a = p;

    actx_bh_delete(a->bh); /* not the owner: refused, nothing happens */
    return NULL;
}

ACTX_TEST("/bh/wrong-thread/delete-refused")
{
    struct cb_rec rec = {0};
    struct wrong_thread_arg a = {0};

    a.bh = actx_bh_new(rec_fn, &rec);
    thread_join(thread_start(wrong_delete_main, &a));
    actx_bh_schedule(a.bh);
    ASSERT_EQ(actx_bh_poll(), 1);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_ON_SELF(rec.thread);
    actx_bh_delete(a.bh);
}

static void *own_loop_main(void *p)
{
    struct wrong_thread_arg *a = p;

    /* actx_bh_poll/actx_poll operate on the caller's own (new) loop. */
    a->bh_poll_ret = actx_bh_poll();
    a->bh_poll_ret += actx_poll(false);
    a->bh_poll_ret += actx_poll(true); /* nothing there: returns at once */
    a->ctx_id = actx_context_id();
    return NULL;
}

ACTX_TEST("/bh/wrong-thread/poll-own-loop")
{
    struct cb_rec rec = {0};
    struct wrong_thread_arg a = {0};

    ASSERT_EQ(actx_push(), 1);
    a.bh = actx_bh_new(rec_fn, &rec);
    actx_bh_schedule(a.bh);
    a.ctx_id = -1;
    thread_join(thread_start(own_loop_main, &a));
    ASSERT_EQ(a.bh_poll_ret, 0);
    ASSERT_EQ(a.ctx_id, 0);
    ASSERT_EQ(rec.runs, 0);
    ASSERT_EQ(actx_context_id(), 1);
    ASSERT_EQ(actx_bh_poll(), 1);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_ON_SELF(rec.thread);
    actx_bh_delete(a.bh);
    ASSERT_EQ(actx_pop(), 0);
}
