/*
 * test-poll.c - running the loop (actx.h, docs/semantics.md): actx_poll(true) returns at
 * once when nothing can progress and otherwise sleeps until something of
 * the current context runs; ACTX_WAIT_WHILE reports -EDEADLK instead of
 * hanging; actx_flush waits for the current context only; actx_run and
 * actx_stop; wake-ups coalesce and no eventfd write happens for an owner
 * that is not about to sleep; actx_poll_timeout gives up after its
 * timeout or a signal and otherwise runs what actx_poll(true) runs.
 */
#include "test.h"

#include <fcntl.h>
#include <signal.h>

/* --- actx_poll ------------------------------------------------------------ */

ACTX_TEST("/poll/nonblocking/nothing")
{
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(actx_process_queue(), 0);
}

ACTX_TEST("/poll/blocking/nothing-to-wait")
{
    struct actx_stats st0, st1;

    actx_stats(&st0);
    ASSERT_EQ(actx_poll(true), 0); /* returns: the runner's timeout says */
    ASSERT_EQ(actx_poll(true), 0);
    ASSERT_FALSE(actx_can_progress());
    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_poll(true), 0);
    ASSERT_EQ(actx_pop(), 0);
    actx_stats(&st1);
    ASSERT_EQ(st1.sleeps, st0.sleeps); /* "without sleeping" */
}

/* A child with nothing of its own returns at once even though its parent
 * has an outstanding request, a live BH and a handle held on it. */
ACTX_TEST("/poll/blocking/nothing-in-child-parent-busy")
{
    struct cb_rec rrec = {0}, brec = {0};
    actx_req *req = actx_req_new(rec_done, &rrec);
    actx_bh *bh = actx_bh_new(rec_fn, &brec);
    actx_ctx *h = actx_ctx_current();

    ASSERT_NOT_NULL(h);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_FALSE(actx_can_progress());
    ASSERT_EQ(actx_poll(true), 0);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_TRUE(actx_can_progress());
    actx_ctx_unref(h);
    actx_bh_delete(bh);
    ASSERT_EQ(actx_req_complete(req, 0), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(rrec.runs == 0), 0);
    ASSERT_EQ(brec.runs, 0);
}

ACTX_TEST("/poll/blocking/waits-for-request")
{
    struct cb_rec rec = {0};
    struct actx_stats st0, st1;
    atomic_int rc;
    actx_req *req;
    pthread_t t;

    req = actx_req_new(rec_done, &rec);
    actx_stats(&st0);
    t = later_complete(req, 31, 50000, test_gettid(), &rc);
    ASSERT_EQ(actx_poll(true), 1); /* not 0 while a request is out */
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ret, 31);
    ASSERT_ON_SELF(rec.thread);
    thread_join(t);
    ASSERT_EQ(atomic_load(&rc), 0);
    actx_stats(&st1);
    ASSERT_GE(st1.sleeps, st0.sleeps + 1);
    ASSERT_GE(st1.wakeups, st0.wakeups + 1);
    ASSERT_GE(st1.mailbox_msgs, st0.mailbox_msgs + 1);
    /* Nothing left: returns 0 at once. */
    ASSERT_EQ(actx_poll(true), 0);
}

/* Arrivals for another context do not end the sleep of the current one. */
ACTX_TEST("/poll/blocking/ignores-other-context-arrivals")
{
    struct cb_rec outer = {0}, inner = {0};
    actx_req *r_outer = actx_req_new(rec_done, &outer);
    actx_req *r_inner;
    atomic_int rc1, rc2;
    pthread_t t1, t2;
    int ret;

    ASSERT_EQ(actx_push(), 1);
    r_inner = actx_req_new(rec_done, &inner);
    t1 = later_complete(r_outer, 1, 20000, test_gettid(), &rc1);
    t2 = later_complete(r_inner, 2, 100000, 0, &rc2);
    ret = actx_poll(true);
    ASSERT_EQ(ret, 1);
    ASSERT_EQ(inner.runs, 1);
    ASSERT_EQ(inner.ctx_id, 1);
    ASSERT_EQ(outer.runs, 0);
    thread_join(t1);
    thread_join(t2);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(outer.runs, 1);
    ASSERT_EQ(outer.ctx_id, 0);
    ASSERT_LT(inner.seq, outer.seq);
}

/* A handle held on the current context keeps a blocking poll waiting for a
 * call, which then runs. */
ACTX_TEST("/poll/blocking/handle-held-waits-for-call")
{
    struct cb_rec rec = {0};
    actx_ctx *h = actx_ctx_current();
    atomic_int rc;
    pthread_t t;

    ASSERT_TRUE(actx_can_progress());
    t = later_call(h, rec_fn, &rec, 20000, test_gettid(), &rc);
    ASSERT_EQ(actx_poll(true), 1);
    thread_join(t);
    ASSERT_EQ(atomic_load(&rc), 0);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ctx_id, 0);
    ASSERT_ON_SELF(rec.thread);
    actx_ctx_unref(h);
    ASSERT_FALSE(actx_can_progress());
    ASSERT_EQ(actx_poll(true), 0);
}

/* --- ACTX_WAIT_WHILE ------------------------------------------------------ */

ACTX_TEST("/poll/wait-while/false-at-once")
{
    ASSERT_EQ(ACTX_WAIT_WHILE(false), 0);
}

ACTX_TEST("/poll/wait-while/deadlock-nothing-outstanding")
{
    int flag = 0;

    ASSERT_EQ(ACTX_WAIT_WHILE(flag == 0), -EDEADLK);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(ACTX_WAIT_WHILE(flag == 0), -EDEADLK);
    ASSERT_EQ(actx_pop(), 0);
}

ACTX_TEST("/poll/wait-while/deadlock-parent-request")
{
    struct cb_rec rec = {0};
    actx_req *req = actx_req_new(rec_done, &rec);

    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), -EDEADLK);
    ASSERT_EQ(rec.runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(complete_from_thread(req, 3), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
    ASSERT_EQ(rec.ctx_id, 0);
}

/* Even when the parent's completion arrives during the wait. */
ACTX_TEST("/poll/wait-while/deadlock-parent-completion-arrives")
{
    struct cb_rec rec = {0};
    actx_req *req = actx_req_new(rec_done, &rec);
    atomic_int rc;
    pthread_t t;

    ASSERT_EQ(actx_push(), 1);
    t = later_complete(req, 3, 0, 0, &rc);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), -EDEADLK);
    thread_join(t);
    ASSERT_EQ(atomic_load(&rc), 0);
    for (int i = 0; i < 5; i++) {
        actx_poll(false);
    }
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), -EDEADLK);
    ASSERT_EQ(rec.runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
    ASSERT_EQ(rec.ctx_id, 0);
}

ACTX_TEST("/poll/wait-while/completes")
{
    struct cb_rec rec = {0};
    actx_req *req;
    atomic_int rc;
    pthread_t t;

    ASSERT_EQ(actx_push(), 1);
    req = actx_req_new(rec_done, &rec);
    t = later_complete(req, 17, 30000, 0, &rc);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
    thread_join(t);
    ASSERT_EQ(rec.ret, 17);
    ASSERT_EQ(rec.ctx_id, 1);
    ASSERT_EQ(actx_pop(), 0);
}

/* --- actx_flush ----------------------------------------------------------- */

ACTX_TEST("/poll/flush/child-ignores-parent-requests")
{
    struct cb_rec outer = {0}, inner = {0};
    actx_req *r_outer = actx_req_new(rec_done, &outer);
    actx_req *r_inner;
    atomic_int rc;
    pthread_t t;

    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_flush(), 0); /* nothing of its own */
    r_inner = actx_req_new(rec_done, &inner);
    t = later_complete(r_inner, 5, 30000, 0, &rc);
    ASSERT_EQ(actx_flush(), 0);
    thread_join(t);
    ASSERT_EQ(inner.runs, 1);
    ASSERT_EQ(inner.ctx_id, 1);
    ASSERT_EQ(outer.runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_req_complete(r_outer, 6), 0);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(outer.runs, 1);
    ASSERT_EQ(outer.ctx_id, 0);
}

static void *complete_three_main(void *p)
{
    actx_req **r = p;

    for (int i = 0; i < 3; i++) {
        usleep(10000);
        ASSERT_EQ(actx_req_complete(r[i], i + 100), 0);
    }
    return NULL;
}

ACTX_TEST("/poll/flush/waits-own-requests")
{
    struct cb_rec rec[3];
    actx_req *r[3];
    pthread_t t;

    memset(rec, 0, sizeof(rec));
    ASSERT_EQ(actx_push(), 1);
    for (int i = 0; i < 3; i++) {
        r[i] = actx_req_new(rec_done, &rec[i]);
    }
    t = thread_start(complete_three_main, r);
    ASSERT_EQ(actx_flush(), 0);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(rec[i].runs, 1);
        ASSERT_EQ(rec[i].ret, i + 100);
        ASSERT_EQ(rec[i].ctx_id, 1);
    }
    thread_join(t);
    ASSERT_EQ(actx_pop(), 0);
}

struct countdown {
    actx_bh *bh;
    int left;
    int runs;
};

static void countdown_cb(void *opaque)
{
    struct countdown *c = opaque;

    c->runs++;
    if (--c->left > 0) {
        actx_bh_schedule(c->bh);
    }
}

static void idle_forever_cb(void *opaque)
{
    struct countdown *c = opaque;

    c->runs++;
    actx_bh_schedule_idle(c->bh);
}

ACTX_TEST("/poll/flush/runs-scheduled-bhs-not-idle")
{
    struct countdown c = {NULL, 5, 0}, idle = {NULL, 0, 0};

    c.bh = actx_bh_new(countdown_cb, &c);
    idle.bh = actx_bh_new(idle_forever_cb, &idle);
    actx_bh_schedule(c.bh);
    actx_bh_schedule_idle(idle.bh);
    /* Waits for the non-idle chain; does not wait for the idle BH that
     * reschedules itself forever. */
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(c.runs, 5);
    actx_bh_delete(c.bh);
    actx_bh_delete(idle.bh);
}

/* --- actx_process_queue --------------------------------------------------- */

ACTX_TEST("/poll/process-queue/completion-and-call")
{
    struct cb_rec rrec = {0}, crec = {0};
    actx_req *req = actx_req_new(rec_done, &rrec);
    actx_ctx *h = actx_ctx_current();

    ASSERT_EQ(complete_from_thread(req, 2), 0);
    ASSERT_EQ(call_from_thread(h, rec_fn, &crec), 0);
    ASSERT_EQ(actx_process_queue(), 1);
    ASSERT_EQ(rrec.runs, 1);
    ASSERT_EQ(crec.runs, 1);
    ASSERT_EQ(crec.ctx_id, 0);
    ASSERT_EQ(actx_process_queue(), 0);
    actx_ctx_unref(h);
}

/* --- actx_run / actx_stop ------------------------------------------------- */

ACTX_TEST("/poll/run/returns-when-nothing")
{
    ASSERT_EQ(actx_run(), 0);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_run(), 0);
    ASSERT_EQ(actx_pop(), 0);
}

ACTX_TEST("/poll/run/returns-after-last-request")
{
    struct cb_rec rec[2];
    atomic_int rc0, rc1;
    actx_req *r0, *r1;
    pthread_t t0, t1;

    memset(rec, 0, sizeof(rec));
    r0 = actx_req_new(rec_done, &rec[0]);
    r1 = actx_req_new(rec_done, &rec[1]);
    t0 = later_complete(r0, 0, 20000, 0, &rc0);
    t1 = later_complete(r1, 1, 60000, 0, &rc1);
    ASSERT_EQ(actx_run(), 0);
    ASSERT_EQ(rec[0].runs, 1);
    ASSERT_EQ(rec[1].runs, 1);
    thread_join(t0);
    thread_join(t1);
}

ACTX_TEST("/poll/run/stop-from-thread")
{
    actx_ctx *h = actx_ctx_current();
    atomic_int rc;
    pthread_t t;

    /* The held handle keeps actx_run going until the stop arrives. */
    t = later_stop(h, 30000, test_gettid(), &rc);
    ASSERT_EQ(actx_run(), 0);
    thread_join(t);
    ASSERT_EQ(atomic_load(&rc), 0);
    actx_ctx_unref(h);
}

static void resched_forever_cb(void *opaque)
{
    struct countdown *c = opaque;

    c->runs++;
    actx_bh_schedule(c->bh);
}

/* A stop posted before actx_run makes it return after one iteration. */
ACTX_TEST("/poll/run/stop-before-run")
{
    struct countdown c = {NULL, 0, 0};
    actx_ctx *h = actx_ctx_current();

    c.bh = actx_bh_new(resched_forever_cb, &c);
    actx_bh_schedule(c.bh);
    ASSERT_EQ(actx_stop(h), 0);
    ASSERT_EQ(actx_run(), 0); /* without the stop it would never return */
    ASSERT_EQ(c.runs, 1);
    /* The stop was consumed: a stop from another thread works the same. */
    ASSERT_EQ(stop_from_thread(h), 0);
    ASSERT_EQ(actx_run(), 0);
    ASSERT_EQ(c.runs, 2);
    actx_bh_delete(c.bh);
    actx_ctx_unref(h);
}

struct two_stops {
    actx_ctx *root, *child;
    pid_t owner;
    atomic_int child_stop_posting;
    int rc_root, rc_child;
};

static void *two_stops_main(void *p)
{
    struct two_stops *s = p;

    wait_until_sleeping(s->owner, 10000);
    s->rc_root = actx_stop(s->root);
    usleep(100000);
    atomic_store(&s->child_stop_posting, 1);
    s->rc_child = actx_stop(s->child);
    return NULL;
}

/* A stop for the root does not stop actx_run in a child; it stays pending
 * for the root's next actx_run. */
ACTX_TEST("/poll/run/stop-other-context")
{
    struct countdown c = {NULL, 0, 0};
    struct two_stops s;
    pthread_t t;

    memset(&s, 0, sizeof(s));
    s.root = actx_ctx_current();
    ASSERT_EQ(actx_push(), 1);
    s.child = actx_ctx_current();
    s.owner = test_gettid();
    t = thread_start(two_stops_main, &s);
    ASSERT_EQ(actx_run(), 0);
    /* Only the child's stop ends it. */
    ASSERT_EQ(atomic_load(&s.child_stop_posting), 1);
    thread_join(t);
    ASSERT_EQ(s.rc_root, 0);
    ASSERT_EQ(s.rc_child, 0);
    actx_ctx_unref(s.child);
    ASSERT_EQ(actx_pop(), 0);
    c.bh = actx_bh_new(resched_forever_cb, &c);
    actx_bh_schedule(c.bh);
    ASSERT_EQ(actx_run(), 0); /* the pending root stop */
    ASSERT_EQ(c.runs, 1);
    actx_bh_delete(c.bh);
    actx_ctx_unref(s.root);
}

/* A stop through the handle of a popped child stops the parent's run. */
ACTX_TEST("/poll/run/stop-popped-handle-stops-parent")
{
    actx_ctx *child;
    atomic_int rc;
    pthread_t t;

    ASSERT_EQ(actx_push(), 1);
    child = actx_ctx_current();
    ASSERT_EQ(actx_pop(), 0);
    /* The handle counts for the root now: run waits for the stop. */
    t = later_stop(child, 20000, test_gettid(), &rc);
    ASSERT_EQ(actx_run(), 0);
    thread_join(t);
    ASSERT_EQ(atomic_load(&rc), 0);
    ASSERT_EQ(actx_ctx_id(child), 1);
    actx_ctx_unref(child);
}

/* --- wake-ups ------------------------------------------------------------- */

static void count_call(void *opaque)
{
    atomic_fetch_add((atomic_int *)opaque, 1);
}

static void *post_calls_main(void *p)
{
    void **a = p;
    actx_ctx *h = a[0];
    atomic_int *count = a[1];
    int n = *(int *)a[2];

    for (int i = 0; i < n; i++) {
        ASSERT_EQ(actx_ctx_call(h, count_call, count), 0);
    }
    return NULL;
}

/* Posts to an owner that is not about to sleep write no eventfd. */
ACTX_TEST("/poll/wakeup/no-write-when-awake")
{
    struct actx_stats st0, st1;
    atomic_int count = 0;
    int n = 1000;
    actx_ctx *h;
    void *a[3];

    ASSERT_EQ(actx_thread_init(), 0);
    h = actx_ctx_current();
    ASSERT_EQ(actx_poll(false), 0);
    actx_stats(&st0);
    a[0] = h;
    a[1] = &count;
    a[2] = &n;
    thread_join(thread_start(post_calls_main, a));
    while (atomic_load(&count) < n) {
        actx_poll(false);
    }
    actx_stats(&st1);
    ASSERT_EQ(atomic_load(&count), n);
    ASSERT_EQ(st1.calls_run, st0.calls_run + n);
    ASSERT_EQ(st1.sleeps, st0.sleeps);
    ASSERT_EQ(st1.wakeups, st0.wakeups);
    ASSERT_GE(st1.mailbox_msgs, st0.mailbox_msgs + n);
    actx_ctx_unref(h);
}

/* The first call wakes the sleeping owner; while it runs, the poster adds
 * 999 more: the owner is busy, not about to sleep, so no more writes. */
struct busy {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool first_running, burst_done;
    int runs;
};

static void busy_first_cb(void *opaque)
{
    struct busy *b = opaque;

    pthread_mutex_lock(&b->mu);
    b->runs++;
    b->first_running = true;
    pthread_cond_broadcast(&b->cv);
    while (!b->burst_done) {
        pthread_cond_wait(&b->cv, &b->mu);
    }
    pthread_mutex_unlock(&b->mu);
}

static void busy_rest_cb(void *opaque)
{
    ((struct busy *)opaque)->runs++;
}

struct busy_poster {
    actx_ctx *h;
    struct busy *b;
    pid_t owner;
};

static void *busy_poster_main(void *p)
{
    struct busy_poster *bp = p;
    struct busy *b = bp->b;

    wait_until_sleeping(bp->owner, 20000);
    ASSERT_EQ(actx_ctx_call(bp->h, busy_first_cb, b), 0);
    pthread_mutex_lock(&b->mu);
    while (!b->first_running) {
        pthread_cond_wait(&b->cv, &b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < 999; i++) {
        ASSERT_EQ(actx_ctx_call(bp->h, busy_rest_cb, b), 0);
    }
    pthread_mutex_lock(&b->mu);
    b->burst_done = true;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

ACTX_TEST("/poll/wakeup/coalesced-while-busy")
{
    struct busy b;
    struct busy_poster bp;
    struct actx_stats st0, st1;
    pthread_t t;

    memset(&b, 0, sizeof(b));
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    bp.h = actx_ctx_current();
    bp.b = &b;
    bp.owner = test_gettid();
    actx_stats(&st0);
    t = thread_start(busy_poster_main, &bp);
    ASSERT_EQ(actx_poll(true), 1); /* woken by the first call */
    thread_join(t);
    while (b.runs < 1000) {
        ASSERT_EQ(actx_poll(false), 1); /* the burst is already there */
    }
    actx_stats(&st1);
    ASSERT_EQ(b.runs, 1000);
    ASSERT_GE(st1.wakeups, st0.wakeups + 1);
    ASSERT_LE(st1.wakeups, st0.wakeups + 1); /* one wake-up, 1000 posts */
    actx_ctx_unref(bp.h);
    pthread_mutex_destroy(&b.mu);
    pthread_cond_destroy(&b.cv);
}

static void noop_done(void *opaque, long ret)
{
    (void)opaque;
    (void)ret;
}

ACTX_TEST("/poll/flush/pending-says-what-flush-waits-for")
{
    struct countdown c = {NULL, 2, 0}, idle = {NULL, 0, 0};
    actx_req *req;

    ASSERT_EQ(actx_flush_pending(), false);
    idle.bh = actx_bh_new(idle_forever_cb, &idle);
    actx_bh_schedule_idle(idle.bh);
    ASSERT_EQ(actx_flush_pending(), false); /* idle BHs do not count */
    c.bh = actx_bh_new(countdown_cb, &c);
    actx_bh_schedule(c.bh);
    ASSERT_EQ(actx_flush_pending(), true);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(actx_flush_pending(), false);
    req = actx_req_new(noop_done, NULL);
    ASSERT_TRUE(req != NULL);
    ASSERT_EQ(actx_flush_pending(), true); /* outstanding */
    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_flush_pending(), false); /* another context's */
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_req_complete(req, 0), 0);
    ASSERT_EQ(actx_flush_pending(), true); /* queued completion */
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(actx_flush_pending(), false);
    actx_bh_delete(c.bh);
    actx_bh_delete(idle.bh);
}

/* --- actx_poll_timeout ----------------------------------------------------- */

/*
 * actx_poll_timeout, called again after -EINTR: the kernel may interrupt a
 * sleep without a signal (io_uring task work sets TIF_NOTIFY_SIGNAL, e.g.
 * while a probed ring is torn down), as the API allows.
 */
static int poll_timeout(int64_t ns)
{
    int r;

    while ((r = actx_poll_timeout(ns)) == -EINTR) {
    }
    return r;
}

ACTX_TEST("/poll/timeout/nothing-to-wait")
{
    ASSERT_EQ(poll_timeout(1000000000), 0);
    ASSERT_EQ(poll_timeout(-1), 0);
}

ACTX_TEST("/poll/timeout/times-out-then-runs")
{
    struct cb_rec rec = {0};
    actx_req *req = actx_req_new(rec_done, &rec);
    atomic_int rc;
    pthread_t t;

    ASSERT_EQ(poll_timeout(0), -ETIMEDOUT);
    ASSERT_EQ(poll_timeout(2000000), -ETIMEDOUT);
    ASSERT_EQ(rec.runs, 0);
    t = later_complete(req, 3, 0, test_gettid(), &rc);
    ASSERT_EQ(poll_timeout(-1), 1);
    thread_join(t);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ret, 3);
    ASSERT_EQ(poll_timeout(-1), 0);
}

/* Only an idle BH: it runs after its 10 ms as in actx_poll(true) (0), not
 * when a shorter timeout ends the wait. */
ACTX_TEST("/poll/timeout/idle-bh")
{
    struct cb_rec rec = {0};
    actx_bh *bh = actx_bh_new(rec_fn, &rec);

    actx_bh_schedule_idle(bh);
    ASSERT_EQ(poll_timeout(1000000), -ETIMEDOUT);
    ASSERT_EQ(rec.runs, 0);
    ASSERT_EQ(poll_timeout(1000000000), 0);
    ASSERT_EQ(rec.runs, 1);
    actx_bh_delete(bh);
}

/* A signal ends the sleep: -EINTR, nothing run; the request still runs
 * later. */
ACTX_TEST("/poll/timeout/signal-interrupts")
{
    struct cb_rec rec = {0};
    actx_req *req = actx_req_new(rec_done, &rec);

    poll_until_signalled();
    ASSERT_EQ(rec.runs, 0);
    ASSERT_EQ(complete_from_thread(req, 4), 0);
    ASSERT_EQ(poll_timeout(-1), 1);
    ASSERT_EQ(rec.runs, 1);
}

static void read_byte(void *opaque)
{
    int *fd = opaque;
    char b;

    ASSERT_EQ(read(fd[0], &b, 1), 1);
    fd[2]++;
}

static void *write_byte_later(void *arg)
{
    int *fd = arg;

    wait_until_sleeping(fd[3], 1000);
    ASSERT_EQ(write(fd[1], "x", 1), 1);
    return NULL;
}

/* Fd handlers and timers run as in actx_poll(true). */
ACTX_TEST("/poll/timeout/fd-and-timer")
{
    struct cb_rec rec = {0};
    int fd[4]; /* read end, write end, reads, tid */
    actx_timer *tm = actx_timer_new(rec_fn, &rec);
    pthread_t t;

    ASSERT_EQ(pipe2(fd, O_NONBLOCK | O_CLOEXEC), 0);
    fd[2] = 0;
    fd[3] = test_gettid();
    ASSERT_EQ(actx_set_fd_handler(fd[0], read_byte, NULL, fd), 0);
    t = thread_start(write_byte_later, fd);
    ASSERT_EQ(poll_timeout(-1), 1);
    thread_join(t);
    ASSERT_EQ(fd[2], 1);
    ASSERT_EQ(actx_set_fd_handler(fd[0], NULL, NULL, NULL), 0);
    actx_timer_mod(tm, actx_now_ns() + 200000000);
    ASSERT_EQ(poll_timeout(1000000), -ETIMEDOUT);
    ASSERT_EQ(rec.runs, 0);
    ASSERT_EQ(poll_timeout(1000000000), 1);
    ASSERT_EQ(rec.runs, 1);
    actx_timer_free(tm);
    close(fd[0]);
    close(fd[1]);
}
