/*
 * test-deadline.c - deadlines and cancellation of nested waits (actx.h,
 * "Since 1.2": actx_push_deadline, actx_deadline, actx_cancel_context).
 *
 * Written from the contract: a context's effective deadline is the earlier
 * of its own and its parent's, the root has none and a plain push
 * inherits; after it, blocking polls do not sleep (they run what is
 * runnable and return), ACTX_WAIT_WHILE / actx_flush / actx_run give up
 * with -ETIMEDOUT, and nothing is cancelled, lost or moved by the deadline
 * itself.  actx_cancel_context cancels what has not started and waits for
 * the rest, so every done of the context has run when it returns.
 * No timing assertion: a wait that must give up is checked by its result
 * (and by the runner's timeout, should it hang).
 */
#include "test.h"

#include <fcntl.h>

#define MS (1000 * 1000ULL)
#define HOUR (3600ULL * 1000 * MS)

/* A deadline a little in the future: waits reach it soon. */
static uint64_t soon(void)
{
    return actx_now_ns() + 20 * MS;
}

static void set_flag(void *opaque)
{
    *(int *)opaque += 1;
}

/* Work that runs until the gate opens; `started` counts entries. */
static atomic_int gate_open, started;

static long gated_work(void *opaque)
{
    atomic_fetch_add(&started, 1);
    while (!atomic_load(&gate_open)) {
        usleep(1000);
    }
    return (long)(intptr_t)opaque;
}

static atomic_int work_runs;

static long counted_work(void *opaque)
{
    atomic_fetch_add(&work_runs, 1);
    return (long)(intptr_t)opaque;
}

/* A thread that opens the gate after a while. */
static void *open_gate_later(void *arg)
{
    usleep((unsigned)(uintptr_t)arg);
    atomic_store(&gate_open, 1);
    return NULL;
}

/* rec_done, counted where another thread can see it. */
static atomic_int dones;

static void counted_done(void *opaque, long ret)
{
    rec_done(opaque, ret);
    atomic_fetch_add(&dones, 1);
}

/* A thread that opens the gate once that many counted dones ran. */
static void *open_gate_after_dones(void *arg)
{
    while (atomic_load(&dones) < (int)(uintptr_t)arg) {
        usleep(1000);
    }
    atomic_store(&gate_open, 1);
    return NULL;
}

/* A thread that completes a request once the owner's wait gave up. */
struct complete_after {
    actx_req *req;
    atomic_int gave_up;
    int rc;
};

static void *complete_after_give_up(void *arg)
{
    struct complete_after *ca = arg;

    while (!atomic_load(&ca->gave_up)) {
        usleep(1000);
    }
    ca->rc = actx_req_complete(ca->req, 7);
    return NULL;
}

static void wait_started(int n)
{
    while (atomic_load(&started) < n) {
        usleep(1000);
    }
}

/* --- Values and inheritance ---------------------------------------------- */

ACTX_TEST("/deadline/value/root-has-none")
{
    /* Before the loop exists and after. */
    ASSERT_TRUE(actx_deadline() == UINT64_MAX);
    ASSERT_EQ(actx_thread_init(), 0);
    ASSERT_TRUE(actx_deadline() == UINT64_MAX);
}

ACTX_TEST("/deadline/value/earlier-of-own-and-parent")
{
    uint64_t t = actx_now_ns() + HOUR;

    ASSERT_EQ(actx_push_deadline(t), 1);
    ASSERT_TRUE(actx_deadline() == t);
    /* Own later than the parent's: the parent's. */
    ASSERT_EQ(actx_push_deadline(t + 1000), 2);
    ASSERT_TRUE(actx_deadline() == t);
    /* Own earlier: its own. */
    ASSERT_EQ(actx_push_deadline(t - 1000), 3);
    ASSERT_TRUE(actx_deadline() == t - 1000);
    /* None of its own: inherited. */
    ASSERT_EQ(actx_push_deadline(UINT64_MAX), 4);
    ASSERT_TRUE(actx_deadline() == t - 1000);
    /* A plain push inherits. */
    ASSERT_EQ(actx_push(), 5);
    ASSERT_TRUE(actx_deadline() == t - 1000);
    ASSERT_EQ(actx_context_id(), 5);
    /* Each pop gives back the parent's value. */
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_TRUE(actx_deadline() == t - 1000);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_TRUE(actx_deadline() == t - 1000);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_TRUE(actx_deadline() == t);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_TRUE(actx_deadline() == t);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_TRUE(actx_deadline() == UINT64_MAX);
    ASSERT_EQ(actx_context_id(), 0);
}

/* actx_dump shows the effective deadline of the contexts that have one. */
ACTX_TEST("/deadline/value/dump-shows-it")
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    ASSERT_NOT_NULL(f);
    ASSERT_EQ(actx_push_deadline(actx_now_ns() + HOUR), 1);
    ASSERT_EQ(actx_push_deadline(1), 2);
    actx_dump(f);
    fclose(f);
    ASSERT_NOT_NULL(strstr(text, "effective deadline in "));
    ASSERT_NOT_NULL(strstr(text, "effective deadline passed "));
    free(text);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_pop(), 0);
}

ACTX_TEST("/deadline/value/none-pushed-inside-none")
{
    ASSERT_EQ(actx_push(), 1);
    ASSERT_TRUE(actx_deadline() == UINT64_MAX);
    ASSERT_EQ(actx_push_deadline(UINT64_MAX), 2);
    ASSERT_TRUE(actx_deadline() == UINT64_MAX);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_pop(), 0);
}

ACTX_TEST("/deadline/value/recycled-context-does-not-keep-it")
{
    /* A popped context's deadline does not leak into a later push. */
    ASSERT_EQ(actx_push_deadline(5), 1);
    ASSERT_TRUE(actx_deadline() == 5);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_TRUE(actx_deadline() == UINT64_MAX);
    ASSERT_EQ(actx_pop(), 0);
}

/* --- Waits that give up ---------------------------------------------------- */

/* Never completed while pushed: -ETIMEDOUT, and the completion that comes
 * after the pop runs in the parent, nothing lost. */
ACTX_TEST("/deadline/wait/never-completed-times-out-then-runs-in-parent")
{
    struct cb_rec rec = {0};
    actx_req *req;

    ASSERT_EQ(actx_push_deadline(soon()), 1);
    req = actx_req_new(rec_done, &rec);
    ASSERT_NOT_NULL(req);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), -ETIMEDOUT);
    ASSERT_TRUE(actx_now_ns() >= actx_deadline());
    ASSERT_EQ(rec.runs, 0);
    /* Waiting again after the deadline gives up at once. */
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), -ETIMEDOUT);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(complete_from_thread(req, 42), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ret, 42);
    ASSERT_EQ(rec.ctx_id, 0);
    ASSERT_ON_SELF(rec.thread);
}

/* Completed much later, while the context is still pushed: it runs in that
 * context at its next poll after the timeout. */
ACTX_TEST("/deadline/wait/completed-much-later-runs-in-its-context")
{
    struct cb_rec rec = {0};
    struct complete_after ca = {.rc = 1};
    pthread_t t;

    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_push_deadline(soon()), 2);
    ca.req = actx_req_new(rec_done, &rec);
    ASSERT_NOT_NULL(ca.req);
    t = thread_start(complete_after_give_up, &ca);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), -ETIMEDOUT);
    ASSERT_EQ(rec.runs, 0);
    atomic_store(&ca.gave_up, 1);
    thread_join(t);
    ASSERT_EQ(ca.rc, 0);
    /* Arrived: what is runnable still runs after the deadline. */
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ret, 7);
    ASSERT_EQ(rec.ctx_id, 2);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_pop(), 0);
}

/* Completed from another thread before the deadline: no timeout. */
ACTX_TEST("/deadline/wait/completed-in-time-is-0")
{
    struct cb_rec rec = {0};
    atomic_int rc = 1;
    actx_req *req;
    pthread_t t;

    ASSERT_EQ(actx_push_deadline(actx_now_ns() + HOUR), 1);
    req = actx_req_new(rec_done, &rec);
    ASSERT_NOT_NULL(req);
    t = later_complete(req, 5, 1000, test_gettid(), &rc);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
    thread_join(t);
    ASSERT_EQ(rec.ret, 5);
    ASSERT_EQ(rec.ctx_id, 1);
    ASSERT_EQ(actx_pop(), 0);
}

/* A context that always has something runnable still gives up. */
static void resched(void *opaque)
{
    actx_bh_schedule(*(actx_bh **)opaque);
}

ACTX_TEST("/deadline/wait/busy-context-still-gives-up")
{
    struct cb_rec rec = {0};
    actx_bh *bh;
    actx_req *req;

    ASSERT_EQ(actx_push_deadline(soon()), 1);
    bh = actx_bh_new(resched, &bh);
    ASSERT_NOT_NULL(bh);
    actx_bh_schedule(bh);
    req = actx_req_new(rec_done, &rec);
    ASSERT_NOT_NULL(req);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), -ETIMEDOUT);
    ASSERT_EQ(actx_flush(), -ETIMEDOUT);
    actx_bh_delete(bh);
    ASSERT_EQ(complete_from_thread(req, 2), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
    ASSERT_EQ(rec.ctx_id, 1);
    ASSERT_EQ(actx_pop(), 0);
}

/* -EDEADLK keeps its meaning with a deadline far out. */
ACTX_TEST("/deadline/wait/nothing-can-progress-is-still-edeadlk")
{
    int never = 0;

    ASSERT_EQ(actx_push_deadline(actx_now_ns() + HOUR), 1);
    ASSERT_EQ(ACTX_WAIT_WHILE(never == 0), -EDEADLK);
    ASSERT_EQ(actx_pop(), 0);
}

/* A callee that pushes its own context inherits the deadline: its wait
 * gives up too, and so does the caller's. */
static int callee_wait(struct cb_rec *rec, actx_req **out)
{
    int r;

    ASSERT_EQ(actx_push(), 2);
    ASSERT_TRUE(actx_deadline() != UINT64_MAX);
    *out = actx_req_new(rec_done, rec);
    ASSERT_NOT_NULL(*out);
    r = ACTX_WAIT_WHILE(rec->runs == 0);
    ASSERT_EQ(actx_pop(), 0);
    return r;
}

ACTX_TEST("/deadline/wait/callee-push-inherits-and-gives-up")
{
    struct cb_rec rec = {0};
    actx_req *req = NULL;

    ASSERT_EQ(actx_push_deadline(soon()), 1);
    ASSERT_EQ(callee_wait(&rec, &req), -ETIMEDOUT);
    /* The callee's request was re-homed here; the caller gives up too. */
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), -ETIMEDOUT);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(complete_from_thread(req, 3), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
    ASSERT_EQ(rec.ctx_id, 0);
    ASSERT_EQ(rec.ret, 3);
}

/* A deadline already past at the push: what is runnable runs (a scheduled
 * BH, an arrived completion, a ready fd), then the waits give up. */
ACTX_TEST("/deadline/push/already-passed-runs-what-is-runnable")
{
    struct cb_rec rec = {0}, never = {0};
    int bh_ran = 0, fd_ran = 0;
    actx_req *req, *pending;
    actx_bh *bh;
    int p[2];

    ASSERT_EQ(pipe(p), 0);
    ASSERT_EQ(write(p[1], "x", 1), 1);
    ASSERT_EQ(actx_push_deadline(1), 1);
    ASSERT_TRUE(actx_deadline() == 1);
    bh = actx_bh_new(set_flag, &bh_ran);
    ASSERT_NOT_NULL(bh);
    actx_bh_schedule(bh);
    ASSERT_EQ(ACTX_WAIT_WHILE(bh_ran == 0), 0);
    ASSERT_EQ(bh_ran, 1);

    req = actx_req_new(rec_done, &rec);
    ASSERT_NOT_NULL(req);
    ASSERT_EQ(complete_from_thread(req, 9), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
    ASSERT_EQ(rec.ret, 9);
    ASSERT_EQ(rec.ctx_id, 1);

    ASSERT_EQ(actx_set_fd_handler(p[0], set_flag, NULL, &fd_ran), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(fd_ran == 0), 0);
    ASSERT_GE(fd_ran, 1);
    ASSERT_EQ(actx_set_fd_handler(p[0], NULL, NULL, NULL), 0);

    pending = actx_req_new(rec_done, &never);
    ASSERT_NOT_NULL(pending);
    ASSERT_EQ(ACTX_WAIT_WHILE(never.runs == 0), -ETIMEDOUT);
    ASSERT_EQ(actx_poll(true), 0);
    ASSERT_EQ(actx_flush(), -ETIMEDOUT);
    ASSERT_EQ(actx_run(), -ETIMEDOUT);
    ASSERT_EQ(actx_poll_timeout(-1), -ETIMEDOUT);
    actx_bh_delete(bh);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(complete_from_thread(pending, 1), 0);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(never.runs, 1);
    ASSERT_EQ(never.ctx_id, 0);
    close(p[0]);
    close(p[1]);
}

/* --- Blocking polls do not sleep past it ---------------------------------- */

ACTX_TEST("/deadline/poll/not-past-it-with-a-timer-far-out")
{
    int fired = 0;
    actx_timer *t;
    uint64_t d;

    ASSERT_EQ(actx_push_deadline(soon()), 1);
    d = actx_deadline();
    t = actx_timer_new(set_flag, &fired);
    ASSERT_NOT_NULL(t);
    actx_timer_mod(t, actx_now_ns() + HOUR);
    /* Without the deadline this would sleep for an hour. */
    while (actx_now_ns() < d) {
        ASSERT_EQ(actx_poll(true), 0);
    }
    ASSERT_EQ(actx_poll(true), 0);
    ASSERT_EQ(fired, 0);
    actx_timer_free(t);
    ASSERT_EQ(actx_pop(), 0);
}

ACTX_TEST("/deadline/poll/not-past-it-with-an-idle-bh")
{
    int ran = 0;
    actx_bh *bh, *live;
    uint64_t d;

    ASSERT_EQ(actx_push_deadline(soon()), 1);
    d = actx_deadline();
    /* A live, unscheduled BH: something could still make progress. */
    live = actx_bh_new(set_flag, &ran);
    ASSERT_NOT_NULL(live);
    while (actx_now_ns() < d) {
        ASSERT_EQ(actx_poll(true), 0);
    }
    ASSERT_EQ(actx_poll(true), 0);
    /* An idle-scheduled BH still runs when the poll gets to it. */
    bh = actx_bh_new(set_flag, &ran);
    ASSERT_NOT_NULL(bh);
    actx_bh_schedule_idle(bh);
    ASSERT_EQ(actx_bh_poll(), 0);
    ASSERT_EQ(ran, 1);
    actx_bh_delete(bh);
    actx_bh_delete(live);
    ASSERT_EQ(actx_pop(), 0);
}

ACTX_TEST("/deadline/poll-timeout/context-deadline-first")
{
    actx_req *req;
    struct cb_rec rec = {0};
    uint64_t d;

    ASSERT_EQ(actx_push_deadline(soon()), 1);
    d = actx_deadline();
    req = actx_req_new(rec_done, &rec);
    ASSERT_NOT_NULL(req);
    for (;;) {
        int r = actx_poll_timeout((int64_t)HOUR);

        if (r == -ETIMEDOUT) {
            break;
        }
        ASSERT_EQ(r, -EINTR); /* nothing else can end it */
    }
    ASSERT_TRUE(actx_now_ns() >= d);
    ASSERT_EQ(rec.runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(complete_from_thread(req, 0), 0);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(rec.runs, 1);
}

ACTX_TEST("/deadline/poll-timeout/timeout-first")
{
    actx_req *req;
    struct cb_rec rec = {0};
    int r;

    ASSERT_EQ(actx_push_deadline(actx_now_ns() + HOUR), 1);
    req = actx_req_new(rec_done, &rec);
    ASSERT_NOT_NULL(req);
    do {
        r = actx_poll_timeout(10 * MS);
    } while (r == -EINTR);
    ASSERT_EQ(r, -ETIMEDOUT);
    ASSERT_EQ(rec.runs, 0);
    /* The context's own deadline did not pass: a completion ends a wait. */
    ASSERT_EQ(complete_from_thread(req, 4), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
    ASSERT_EQ(rec.ret, 4);
    ASSERT_EQ(actx_pop(), 0);
}

/* --- Outer work is untouched ---------------------------------------------- */

ACTX_TEST("/deadline/outer/parent-work-waits-then-runs-after-pop")
{
    struct cb_rec outer_req = {0}, outer_bh = {0}, outer_timer = {0};
    struct cb_rec inner = {0};
    actx_req *oreq, *ireq;
    actx_bh *bh;
    actx_timer *t;

    oreq = actx_req_new(rec_done, &outer_req);
    ASSERT_NOT_NULL(oreq);
    bh = actx_bh_new(rec_fn, &outer_bh);
    ASSERT_NOT_NULL(bh);
    t = actx_timer_new(rec_fn, &outer_timer);
    ASSERT_NOT_NULL(t);

    ASSERT_EQ(actx_push_deadline(soon()), 1);
    actx_bh_schedule(bh);
    actx_timer_mod(t, actx_now_ns());
    ASSERT_EQ(complete_from_thread(oreq, 11), 0);
    ireq = actx_req_new(rec_done, &inner);
    ASSERT_NOT_NULL(ireq);
    ASSERT_EQ(ACTX_WAIT_WHILE(inner.runs == 0), -ETIMEDOUT);
    ASSERT_EQ(actx_flush(), -ETIMEDOUT);
    /* Nothing of the parent ran during the nested wait. */
    ASSERT_EQ(outer_req.runs, 0);
    ASSERT_EQ(outer_bh.runs, 0);
    ASSERT_EQ(outer_timer.runs, 0);
    ASSERT_EQ(actx_pop(), 0);

    /* All of it runs in the parent afterwards. */
    ASSERT_EQ(ACTX_WAIT_WHILE(outer_req.runs == 0 || outer_bh.runs == 0 ||
                              outer_timer.runs == 0),
              0);
    ASSERT_EQ(outer_req.ret, 11);
    ASSERT_EQ(outer_req.ctx_id, 0);
    ASSERT_EQ(outer_bh.ctx_id, 0);
    ASSERT_EQ(outer_timer.ctx_id, 0);
    ASSERT_EQ(inner.runs, 0);
    ASSERT_EQ(complete_from_thread(ireq, 1), 0);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(inner.runs, 1);
    ASSERT_EQ(inner.ctx_id, 0);
    actx_bh_delete(bh);
    actx_timer_free(t);
}

/* --- actx_cancel_context -------------------------------------------------- */

ACTX_TEST("/cancel/nothing-outstanding-is-0")
{
    ASSERT_EQ(actx_cancel_context(), 0);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_cancel_context(), 0);
    ASSERT_EQ(actx_pop(), 0);
}

/* Queued pool work behind a blocked pool: every one cancelled, done runs
 * with -ECANCELED in the context before the call returns; the parent's
 * running request is not touched. */
ACTX_TEST("/cancel/pool/queued-behind-blocked-pool")
{
    enum { N = 8 };
    struct cb_rec blocker = {0}, rec[N];

    memset(rec, 0, sizeof(rec));
    ASSERT_EQ(actx_pool_set_size(1), 0);
    ASSERT_NOT_NULL(actx_submit(gated_work, rec_done, &blocker));
    wait_started(1);
    ASSERT_EQ(actx_push(), 1);
    for (int i = 0; i < N; i++) {
        ASSERT_NOT_NULL(actx_submit(counted_work, rec_done, &rec[i]));
    }
    ASSERT_EQ(actx_cancel_context(), N);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(rec[i].runs, 1);
        ASSERT_EQ(rec[i].ret, -ECANCELED);
        ASSERT_EQ(rec[i].ctx_id, 1);
        ASSERT_ON_SELF(rec[i].thread);
    }
    ASSERT_EQ(atomic_load(&work_runs), 0);
    ASSERT_EQ(blocker.runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    atomic_store(&gate_open, 1);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(blocker.runs, 1);
    ASSERT_EQ(blocker.ctx_id, 0);
    ASSERT_EQ(atomic_load(&work_runs), 0);
}

/* Parent's queued work is not cancelled by a child's cancel. */
ACTX_TEST("/cancel/pool/parent-queued-work-untouched")
{
    struct cb_rec blocker = {0}, outer = {0}, inner = {0};

    ASSERT_EQ(actx_pool_set_size(1), 0);
    ASSERT_NOT_NULL(actx_submit(gated_work, rec_done, &blocker));
    wait_started(1);
    ASSERT_NOT_NULL(actx_submit(counted_work, rec_done, &outer));
    ASSERT_EQ(actx_push(), 1);
    ASSERT_NOT_NULL(actx_submit(counted_work, rec_done, &inner));
    ASSERT_EQ(actx_cancel_context(), 1);
    ASSERT_EQ(inner.ret, -ECANCELED);
    ASSERT_EQ(outer.runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    atomic_store(&gate_open, 1);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(outer.runs, 1);
    ASSERT_EQ(outer.ret, (long)(intptr_t)&outer);
    ASSERT_EQ(outer.ctx_id, 0);
    ASSERT_EQ(atomic_load(&work_runs), 1);
}

/* Work already running is waited for, never abandoned: done has its
 * real result when actx_cancel_context returns. */
ACTX_TEST("/cancel/pool/running-work-waited-for")
{
    struct cb_rec rec = {0};
    pthread_t t;

    ASSERT_EQ(actx_push(), 1);
    ASSERT_NOT_NULL(
        actx_submit(gated_work, rec_done, &rec)); /* opaque is its value */
    wait_started(1);
    t = thread_start(open_gate_later, (void *)(uintptr_t)(50 * 1000));
    ASSERT_EQ(actx_cancel_context(), 0);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ret, (long)(intptr_t)&rec);
    ASSERT_EQ(rec.ctx_id, 1);
    thread_join(t);
    ASSERT_EQ(actx_pop(), 0);
}

/* A request from actx_req_new cannot be cancelled: it is waited for until
 * another thread completes it. */
ACTX_TEST("/cancel/req-new/completed-later-is-waited-for")
{
    struct cb_rec rec = {0};
    atomic_int rc = 1;
    actx_req *req;
    pthread_t t;

    ASSERT_EQ(actx_push_deadline(1), 1); /* the wait ignores the deadline */
    req = actx_req_new(rec_done, &rec);
    ASSERT_NOT_NULL(req);
    t = later_complete(req, 8, 20 * 1000, test_gettid(), &rc);
    ASSERT_EQ(actx_cancel_context(), 0);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ret, 8);
    ASSERT_EQ(rec.ctx_id, 1);
    thread_join(t);
    ASSERT_EQ(atomic_load(&rc), 0);
    ASSERT_EQ(actx_pop(), 0);
}

/* The pattern: a wait that timed out, then cancel, then pop; everything
 * the context had is done when the cancel returns. */
ACTX_TEST("/cancel/after-timeout-cancel-then-pop")
{
    enum { N = 4 };
    struct cb_rec running = {0}, rec[N];
    int cancelled;
    pthread_t t;

    memset(rec, 0, sizeof(rec));
    ASSERT_EQ(actx_pool_set_size(1), 0);
    ASSERT_EQ(actx_push_deadline(soon()), 1);
    ASSERT_NOT_NULL(actx_submit(gated_work, rec_done, &running));
    for (int i = 0; i < N; i++) {
        ASSERT_NOT_NULL(actx_submit(counted_work, counted_done, &rec[i]));
    }
    ASSERT_EQ(ACTX_WAIT_WHILE(running.runs == 0), -ETIMEDOUT);
    wait_started(1);
    /* The running one finishes only after the cancelled ones were done. */
    t = thread_start(open_gate_after_dones, (void *)(uintptr_t)N);
    cancelled = actx_cancel_context();
    ASSERT_EQ(cancelled, N);
    ASSERT_EQ(running.runs, 1);
    ASSERT_EQ(running.ctx_id, 1);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(rec[i].runs, 1);
        ASSERT_EQ(rec[i].ret, -ECANCELED);
        ASSERT_EQ(rec[i].ctx_id, 1);
    }
    ASSERT_EQ(actx_pop(), 0);
    thread_join(t);
    ASSERT_EQ(atomic_load(&work_runs), 0);
}

/* Requests of a popped child were re-homed here: they count as ours. */
ACTX_TEST("/cancel/rehomed-child-requests-count")
{
    struct cb_rec blocker = {0}, rec[3];

    memset(rec, 0, sizeof(rec));
    ASSERT_EQ(actx_pool_set_size(1), 0);
    ASSERT_NOT_NULL(actx_submit(gated_work, rec_done, &blocker));
    wait_started(1);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_NOT_NULL(actx_submit(counted_work, rec_done, &rec[0]));
    ASSERT_EQ(actx_push(), 2);
    ASSERT_NOT_NULL(actx_submit(counted_work, rec_done, &rec[1]));
    ASSERT_NOT_NULL(actx_submit(counted_work, rec_done, &rec[2]));
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_cancel_context(), 3);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(rec[i].runs, 1);
        ASSERT_EQ(rec[i].ret, -ECANCELED);
        ASSERT_EQ(rec[i].ctx_id, 1);
    }
    ASSERT_EQ(actx_pop(), 0);
    atomic_store(&gate_open, 1);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(blocker.runs, 1);
    ASSERT_EQ(atomic_load(&work_runs), 0);
}

/* Many requests over several slabs: every one cancelled exactly once. */
ACTX_TEST_TIMEOUT("/cancel/pool/many-queued", 60)
{
    enum { N = 5000 };
    struct cb_rec blocker = {0}, *rec = calloc(N, sizeof(*rec));

    ASSERT_NOT_NULL(rec);
    ASSERT_EQ(actx_pool_set_size(1), 0);
    ASSERT_NOT_NULL(actx_submit(gated_work, rec_done, &blocker));
    wait_started(1);
    ASSERT_EQ(actx_push(), 1);
    for (int i = 0; i < N; i++) {
        ASSERT_NOT_NULL(actx_submit(counted_work, rec_done, &rec[i]));
    }
    ASSERT_EQ(actx_cancel_context(), N);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(rec[i].runs, 1);
        ASSERT_EQ(rec[i].ret, -ECANCELED);
    }
    ASSERT_EQ(actx_cancel_context(), 0);
    ASSERT_EQ(actx_pop(), 0);
    atomic_store(&gate_open, 1);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(atomic_load(&work_runs), 0);
    free(rec);
}

/* File AIO: on the io_uring path a read not yet entered into the kernel
 * is cancelled; on the pool it is cancelled if it had not started.  Either
 * way done has run when the call returns. */
ACTX_TEST("/cancel/aio/pread")
{
    char path[] = "/tmp/actx-test-cancel-XXXXXX";
    char buf[64];
    struct cb_rec rec = {0};
    struct actx_stats st;
    int fd, n;

    fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    unlink(path);
    ASSERT_EQ(write(fd, "hello", 5), 5);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_NOT_NULL(actx_aio_pread(fd, buf, sizeof(buf), 0, rec_done, &rec));
    n = actx_cancel_context();
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ctx_id, 1);
    actx_stats(&st);
    if (st.io_backend == 1) {
        ASSERT_EQ(n, 1); /* its SQE was still ours */
    }
    if (n == 1) {
        ASSERT_EQ(rec.ret, -ECANCELED);
    } else {
        ASSERT_EQ(n, 0);
        ASSERT_EQ(rec.ret, 5);
    }
    ASSERT_EQ(actx_pop(), 0);
    close(fd);
}

/* Done callbacks of the cancelled requests run in their context, not in a
 * BH or timer of the parent, and the parent's BH waits for the pop. */
ACTX_TEST("/cancel/parent-bh-not-run-during-cancel")
{
    struct cb_rec blocker = {0}, rec = {0}, outer = {0};
    actx_bh *bh;

    ASSERT_EQ(actx_pool_set_size(1), 0);
    ASSERT_NOT_NULL(actx_submit(gated_work, rec_done, &blocker));
    wait_started(1);
    bh = actx_bh_new(rec_fn, &outer);
    ASSERT_NOT_NULL(bh);
    ASSERT_EQ(actx_push(), 1);
    actx_bh_schedule(bh);
    ASSERT_NOT_NULL(actx_submit(counted_work, rec_done, &rec));
    ASSERT_EQ(actx_cancel_context(), 1);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(outer.runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(outer.runs, 1);
    ASSERT_EQ(outer.ctx_id, 0);
    atomic_store(&gate_open, 1);
    ASSERT_EQ(actx_flush(), 0);
    actx_bh_delete(bh);
}

/* A read already entered into the kernel (io_uring path): the kernel is
 * asked to cancel it (IORING_OP_ASYNC_CANCEL).  A page-cached read has
 * usually finished by then (nothing cancelled, done gets its bytes); either
 * way done has run, with what the count says, when the call returns. */
ACTX_TEST("/cancel/aio/entered-read-is-waited-for")
{
    char path[] = "/tmp/actx-test-cancel-XXXXXX";
    char buf[64];
    struct cb_rec rec = {0};
    int fd, n;

    fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    unlink(path);
    ASSERT_EQ(write(fd, "hello", 5), 5);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_NOT_NULL(actx_aio_pread(fd, buf, sizeof(buf), 0, rec_done, &rec));
    actx_poll(false); /* enters it (the end of every iteration) */
    n = actx_cancel_context();
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ctx_id, 1);
    if (n == 0) {
        ASSERT_EQ(rec.ret, 5);
        ASSERT_EQ(memcmp(buf, "hello", 5), 0);
    } else {
        ASSERT_EQ(n, 1);
        ASSERT_EQ(rec.ret, -ECANCELED);
    }
    ASSERT_EQ(actx_pop(), 0);
    close(fd);
}

/*
 * An embedding host loop asks how long it may wait: never past the
 * current context's deadline (a timer or idle BH far out, or none at all,
 * would otherwise let the host sleep through it).
 */
static void noop_cb(void *opaque)
{
    (void)opaque;
}

ACTX_TEST("/deadline/embed/backend-timeout-ends-by-deadline")
{
    actx_timer *t = actx_timer_new(noop_cb, NULL);
    int ms;

    ASSERT_NOT_NULL(t);
    actx_timer_mod(t, actx_now_ns() + 3600ULL * 1000000000ULL);
    ASSERT_GT(actx_backend_timeout_ms(), 3599 * 1000);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(actx_push_deadline(actx_now_ns() + 2000000000ULL), 1);
    /* The hour-long timer is the root's: the child has nothing but its
     * deadline, so the host would otherwise wait for ever (-1). */
    ms = actx_backend_timeout_ms();
    ASSERT_GT(ms, 0);
    ASSERT_LE(ms, 2000);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_push_deadline(actx_now_ns() - 1), 1);
    ASSERT_EQ(actx_backend_timeout_ms(), 0); /* passed already */
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(actx_pop(), 0);
    actx_timer_free(t);
}

/* A deadline of 0 is long past: a wait gives up at once, as for 1. */
ACTX_TEST("/deadline/push/zero-is-already-passed")
{
    struct cb_rec rec = {0};
    actx_req *req;

    ASSERT_EQ(actx_push_deadline(0), 1);
    ASSERT_TRUE(actx_deadline() == 0);
    req = actx_req_new(rec_done, &rec);
    ASSERT_NOT_NULL(req);
    ASSERT_EQ(actx_poll_timeout((int64_t)HOUR), -ETIMEDOUT);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), -ETIMEDOUT);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(complete_from_thread(req, 4), 0);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ret, 4);
}

/* A deadline further out than a wait can count (past INT64_MAX ns from
 * now) neither ends a sleep early nor makes it endless: a timer due in
 * 1 ms still ends it. */
ACTX_TEST("/deadline/push/beyond-int64-sleeps-until-the-timer")
{
    int fired = 0;
    actx_timer *t;

    ASSERT_EQ(actx_push_deadline(UINT64_MAX - 1), 1);
    ASSERT_TRUE(actx_deadline() == UINT64_MAX - 1);
    t = actx_timer_new(set_flag, &fired);
    ASSERT_NOT_NULL(t);
    actx_timer_mod(t, actx_now_ns() + 1000 * 1000);
    while (!fired) {
        ASSERT_EQ(actx_poll(true), 1);
    }
    ASSERT_EQ(fired, 1);
    actx_timer_free(t);
    ASSERT_EQ(actx_pop(), 0);
}
