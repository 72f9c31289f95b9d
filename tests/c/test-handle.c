/*
 * test-handle.c - cross-thread context handles (actx.h) and thread
 * shutdown (3.7): actx_ctx_call runs on the owner thread in the target
 * context, never inline, waits for a pushed child to be popped, is re-homed
 * with a popped context, -EPIPE after the owner shut down, and everything
 * accepted before runs; shutdown pops what is pushed, frees BHs and leaves
 * room for a new loop.  Also actx_stats as documented.
 */
#include "test.h"

/* --- actx_ctx_call ----------------------------------------------------- */

ACTX_TEST("/handle/null-args")
{
    ASSERT_EQ(actx_ctx_call(NULL, rec_fn, NULL), -EINVAL);
    ASSERT_EQ(actx_stop(NULL), -EINVAL);
    actx_ctx_unref(NULL);
    (void)actx_ctx_ref(NULL);
}

ACTX_TEST("/handle/ref-returns-argument")
{
    actx_ctx *h = actx_ctx_current();

    ASSERT_NOT_NULL(h);
    ASSERT_PTR_EQ(actx_ctx_ref(h), h);
    ASSERT_EQ(actx_ctx_id(h), 0);
    actx_ctx_unref(h);
    actx_ctx_unref(h);
}

ACTX_TEST("/handle/id")
{
    actx_ctx *h[4];

    h[0] = actx_ctx_current();
    for (int i = 1; i < 4; i++) {
        ASSERT_EQ(actx_push(), i);
        h[i] = actx_ctx_current();
    }
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(actx_ctx_id(h[i]), i);
    }
    for (int i = 3; i >= 1; i--) {
        ASSERT_EQ(actx_pop(), 0);
    }
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(actx_ctx_id(h[i]), i); /* the id it had on the stack */
        actx_ctx_unref(h[i]);
    }
}

ACTX_TEST("/handle/call/runs-on-owner-in-context")
{
    struct cb_rec rec = {0};
    struct actx_stats st0, st1;
    actx_ctx *h;
    atomic_int rc;
    pthread_t t;

    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_push(), 2);
    h = actx_ctx_current();
    actx_stats(&st0);
    t = later_call(h, rec_fn, &rec, 10000, 0, &rc);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
    thread_join(t);
    ASSERT_EQ(atomic_load(&rc), 0);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ctx_id, 2);
    ASSERT_ON_SELF(rec.thread);
    actx_stats(&st1);
    ASSERT_EQ(st1.calls_run, st0.calls_run + 1);
    actx_ctx_unref(h);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_pop(), 0);
}

ACTX_TEST("/handle/call/never-inline")
{
    struct cb_rec a = {0}, b = {0};
    actx_ctx *h = actx_ctx_current();

    ASSERT_EQ(actx_ctx_call(h, rec_fn, &a), 0);
    ASSERT_EQ(a.runs, 0);
    ASSERT_EQ(actx_process_queue(), 1);
    ASSERT_EQ(a.runs, 1);
    ASSERT_EQ(actx_ctx_call(h, rec_fn, &b), 0);
    ASSERT_EQ(b.runs, 0);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(b.runs, 1);
    ASSERT_EQ(a.ctx_id, 0);
    ASSERT_EQ(b.ctx_id, 0);
    ASSERT_ON_SELF(b.thread);
    actx_ctx_unref(h);
}

/* Called from inside a callback on the owner: still not inline. */
struct call_self {
    actx_ctx *h;
    struct cb_rec inner;
    int inner_runs_at_return;
};

static void call_self_cb(void *opaque)
{
    struct call_self *c = opaque;

    ASSERT_EQ(actx_ctx_call(c->h, rec_fn, &c->inner), 0);
    c->inner_runs_at_return = c->inner.runs;
}

ACTX_TEST("/handle/call/never-inline-from-callback")
{
    struct call_self c;

    memset(&c, 0, sizeof(c));
    c.h = actx_ctx_current();
    c.inner_runs_at_return = -1;
    ASSERT_EQ(actx_ctx_call(c.h, call_self_cb, &c), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(c.inner.runs == 0), 0);
    ASSERT_EQ(c.inner_runs_at_return, 0);
    ASSERT_EQ(c.inner.runs, 1);
    actx_ctx_unref(c.h);
}

ACTX_TEST("/handle/call/parent-waits-until-pop")
{
    struct cb_rec mine = {0}, theirs = {0};
    actx_ctx *root = actx_ctx_current();

    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_ctx_call(root, rec_fn, &mine), 0);
    ASSERT_EQ(call_from_thread(root, rec_fn, &theirs), 0);
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(actx_poll(false), 0);
        ASSERT_EQ(actx_process_queue(), 0);
    }
    ASSERT_EQ(actx_poll(true), 0); /* nothing of the child */
    ASSERT_EQ(mine.runs, 0);
    ASSERT_EQ(theirs.runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(mine.runs, 1);
    ASSERT_EQ(theirs.runs, 1);
    ASSERT_EQ(mine.ctx_id, 0);
    ASSERT_EQ(theirs.ctx_id, 0);
    ASSERT_LT(mine.seq, theirs.seq); /* arrival order */
    actx_ctx_unref(root);
}

ACTX_TEST("/handle/popped/call-runs-in-parent")
{
    struct cb_rec rec = {0}, rec2 = {0};
    actx_ctx *child;
    atomic_int rc;
    pthread_t t;

    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_push(), 2);
    child = actx_ctx_current();
    ASSERT_EQ(actx_pop(), 0);
    /* Re-homed to context 1, whose handle this now counts for. */
    t = later_call(child, rec_fn, &rec, 20000, test_gettid(), &rc);
    ASSERT_EQ(actx_poll(true), 1);
    thread_join(t);
    ASSERT_EQ(atomic_load(&rc), 0);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ctx_id, 1);
    ASSERT_ON_SELF(rec.thread);
    /* Queued for context 1 (not yet run) then 1 is popped: runs in 0. */
    ASSERT_EQ(call_from_thread(child, rec_fn, &rec2), 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec2.runs == 0), 0);
    ASSERT_EQ(rec2.ctx_id, 0);
    actx_ctx_unref(child);
}

/* A call to a child posted before the pop, not yet polled: runs in the
 * parent after the pop (never lost). */
ACTX_TEST("/handle/popped/pending-call-rehomed")
{
    struct cb_rec rec = {0};
    actx_ctx *child;

    ASSERT_EQ(actx_push(), 1);
    child = actx_ctx_current();
    ASSERT_EQ(call_from_thread(child, rec_fn, &rec), 0);
    actx_ctx_unref(child);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ctx_id, 0); /* the pop's flush runs BHs, not calls */
}

/* --- handles outliving their owner ------------------------------------- */

struct owner_thread {
    actx_ctx *h;
    pthread_t self;
    int n_expected;
    atomic_int *count;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stage;
    int calls_ran_before_shutdown_returned;
    int wrong_thread;
    int refs;
};

static void owner_wait_stage(struct owner_thread *o, int stage)
{
    pthread_mutex_lock(&o->mu);
    while (o->stage < stage) {
        pthread_cond_wait(&o->cv, &o->mu);
    }
    pthread_mutex_unlock(&o->mu);
}

static void owner_set_stage(struct owner_thread *o, int stage)
{
    pthread_mutex_lock(&o->mu);
    o->stage = stage;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

static void owner_init(struct owner_thread *o)
{
    memset(o, 0, sizeof(*o));
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
}

static void owner_destroy(struct owner_thread *o)
{
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
}

static void *handle_then_exit_main(void *p)
{
    struct owner_thread *o = p;

    o->h = actx_ctx_current();
    for (int i = 0; i < o->refs; i++) {
        ASSERT_PTR_EQ(actx_ctx_ref(o->h), o->h);
    }
    return NULL; /* thread exit: automatic shutdown */
}

ACTX_TEST("/handle/call/epipe-after-owner-exit")
{
    struct owner_thread o;
    struct cb_rec rec = {0};

    owner_init(&o);
    thread_join(thread_start(handle_then_exit_main, &o));
    ASSERT_NOT_NULL(o.h);
    ASSERT_EQ(actx_ctx_call(o.h, rec_fn, &rec), -EPIPE);
    ASSERT_EQ(call_from_thread(o.h, rec_fn, &rec), -EPIPE);
    ASSERT_EQ(actx_stop(o.h), -EPIPE);
    ASSERT_EQ(actx_ctx_id(o.h), 0); /* still a valid handle */
    ASSERT_EQ(rec.runs, 0);
    actx_ctx_unref(o.h); /* last ref: freed (LSan checks) */
    owner_destroy(&o);
}

ACTX_TEST("/handle/unref/last-after-owner-exit")
{
    struct owner_thread o;

    owner_init(&o);
    o.refs = 2;
    thread_join(thread_start(handle_then_exit_main, &o));
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(actx_ctx_id(o.h), 0);
        actx_ctx_unref(o.h);
    }
    owner_destroy(&o);
}

/* Handles of a child context unreffed by another thread after the owner
 * popped it and exited. */
static void *child_handle_main(void *p)
{
    struct owner_thread *o = p;

    ASSERT_EQ(actx_push(), 1);
    o->h = actx_ctx_current();
    ASSERT_EQ(actx_pop(), 0);
    return NULL;
}

ACTX_TEST("/handle/unref/popped-child-after-owner-exit")
{
    struct owner_thread o;

    owner_init(&o);
    thread_join(thread_start(child_handle_main, &o));
    ASSERT_EQ(actx_ctx_call(o.h, rec_fn, NULL), -EPIPE);
    actx_ctx_unref(o.h);
    owner_destroy(&o);
}

static void counted_call(void *opaque)
{
    struct owner_thread *o = opaque;

    if (!pthread_equal(pthread_self(), o->self)) {
        o->wrong_thread++;
    }
    atomic_fetch_add(o->count, 1);
}

static void *shutdown_unpolled_main(void *p)
{
    struct owner_thread *o = p;

    o->self = pthread_self();
    o->h = actx_ctx_current();
    owner_set_stage(o, 1);
    owner_wait_stage(o, 2); /* the other thread posted its calls */
    actx_thread_shutdown(); /* never polled: shutdown runs them */
    o->calls_ran_before_shutdown_returned = atomic_load(o->count);
    owner_set_stage(o, 3);
    owner_wait_stage(o, 4);
    return NULL;
}

ACTX_TEST("/handle/call/all-accepted-run-at-shutdown")
{
    enum { N = 1000 };
    struct owner_thread o;
    atomic_int count = 0;
    pthread_t t;

    owner_init(&o);
    o.count = &count;
    t = thread_start(shutdown_unpolled_main, &o);
    owner_wait_stage(&o, 1);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(actx_ctx_call(o.h, counted_call, &o), 0);
    }
    owner_set_stage(&o, 2);
    owner_wait_stage(&o, 3);
    ASSERT_EQ(o.calls_ran_before_shutdown_returned, N);
    ASSERT_EQ(o.wrong_thread, 0);
    ASSERT_EQ(actx_ctx_call(o.h, counted_call, &o), -EPIPE);
    owner_set_stage(&o, 4);
    thread_join(t);
    ASSERT_EQ(atomic_load(&count), N);
    actx_ctx_unref(o.h);
    owner_destroy(&o);
}

/* Posting while the owner shuts down: every call that returned 0 ran
 * exactly once, every other got -EPIPE and never ran. */
struct racer {
    struct owner_thread *o;
    int accepted;
    int refused;
    int other;
};

static void *racer_main(void *p)
{
    struct racer *r = p;

    /*
     * Bounded: two unbounded posters outrun one consumer (always under
     * TSan), each poll's batch grows without end and the owner never
     * reaches its shutdown.  The race is in the posts around the shutdown.
     */
    for (int i = 0; i < 20000; i++) {
        int rc = actx_ctx_call(r->o->h, counted_call, r->o);

        if (rc == 0) {
            r->accepted++;
        } else if (rc == -EPIPE) {
            if (++r->refused > 100) {
                break;
            }
        } else {
            r->other++;
            break;
        }
    }
    return NULL;
}

static void *shutdown_racing_main(void *p)
{
    struct owner_thread *o = p;

    o->self = pthread_self();
    o->h = actx_ctx_current();
    owner_set_stage(o, 1);
    for (int i = 0; i < 20; i++) {
        actx_poll(false);
    }
    ASSERT_EQ(actx_push(), 1); /* shutdown must pop it too */
    actx_thread_shutdown();
    o->calls_ran_before_shutdown_returned = atomic_load(o->count);
    return NULL;
}

ACTX_TEST("/handle/call/accepted-or-epipe-racing-shutdown")
{
    struct owner_thread o;
    struct racer r[2];
    atomic_int count = 0;
    pthread_t t, rt[2];

    for (int round = 0; round < 20; round++) {
        owner_init(&o);
        atomic_store(&count, 0);
        o.count = &count;
        t = thread_start(shutdown_racing_main, &o);
        owner_wait_stage(&o, 1);
        for (int i = 0; i < 2; i++) {
            memset(&r[i], 0, sizeof(r[i]));
            r[i].o = &o;
            rt[i] = thread_start(racer_main, &r[i]);
        }
        thread_join(t);
        for (int i = 0; i < 2; i++) {
            thread_join(rt[i]);
            ASSERT_EQ(r[i].other, 0);
        }
        ASSERT_EQ(o.wrong_thread, 0);
        ASSERT_EQ(atomic_load(&count), r[0].accepted + r[1].accepted);
        ASSERT_EQ(o.calls_ran_before_shutdown_returned,
                  r[0].accepted + r[1].accepted);
        actx_ctx_unref(o.h);
        owner_destroy(&o);
    }
}

/* --- thread shutdown --------------------------------------------------- */

ACTX_TEST("/thread/init")
{
    ASSERT_EQ(actx_thread_init(), 0);
    ASSERT_EQ(actx_context_id(), 0);
}

ACTX_TEST("/thread/shutdown/pops-and-frees")
{
    struct cb_rec sched[3], unsched[3];
    struct actx_stats st;
    actx_bh *bh;

    memset(sched, 0, sizeof(sched));
    memset(unsched, 0, sizeof(unsched));
    for (int i = 0; i < 3; i++) {
        if (i) {
            ASSERT_EQ(actx_push(), i);
        }
        bh = actx_bh_new(rec_fn, &sched[i]);
        if (i) {
            actx_bh_schedule(bh); /* a child's: flushed by the pop */
        }
        ASSERT_NOT_NULL(actx_bh_new(rec_fn, &unsched[i])); /* leaked */
    }
    actx_stats(&st);
    ASSERT_EQ(st.live_bhs, 6);
    ASSERT_EQ(st.depth, 2);
    actx_thread_shutdown();
    ASSERT_EQ(sched[2].runs, 1);
    ASSERT_EQ(sched[2].ctx_id, 2);
    ASSERT_EQ(sched[1].runs, 1);
    ASSERT_EQ(sched[1].ctx_id, 1);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(unsched[i].runs, 0);
    }
    /* A new loop: at the root, no BHs. */
    ASSERT_EQ(actx_context_id(), 0);
    actx_stats(&st);
    ASSERT_EQ(st.depth, 0);
    ASSERT_EQ(st.live_bhs, 0);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_poll(true), 0);
}

ACTX_TEST("/thread/shutdown/twice-and-new-loop")
{
    actx_thread_shutdown();
    actx_thread_shutdown();
    ASSERT_EQ(actx_context_id(), 0);
    ASSERT_EQ(actx_push(), 1);
    actx_thread_shutdown();
    ASSERT_EQ(actx_context_id(), 0);
}

/* A handle of the old loop refuses after the shutdown even though the same
 * thread has a new loop. */
ACTX_TEST("/thread/shutdown/old-handle-epipe")
{
    struct cb_rec rec = {0};
    actx_ctx *old = actx_ctx_current();

    actx_thread_shutdown();
    ASSERT_EQ(actx_context_id(), 0);
    ASSERT_EQ(actx_ctx_call(old, rec_fn, &rec), -EPIPE);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(rec.runs, 0);
    actx_ctx_unref(old);
}

/* Arrived completions run at shutdown, on the owner, after the pop. */
struct arrived {
    struct owner_thread o;
    actx_req *root_req, *child_req;
    struct cb_rec root_rec, child_rec;
};

static void *arrived_main(void *p)
{
    struct arrived *a = p;

    a->o.self = pthread_self();
    a->root_req = actx_req_new(rec_done, &a->root_rec);
    ASSERT_EQ(actx_push(), 1);
    a->child_req = actx_req_new(rec_done, &a->child_rec);
    owner_set_stage(&a->o, 1);
    owner_wait_stage(&a->o, 2);
    actx_thread_shutdown();
    owner_set_stage(&a->o, 3);
    return NULL;
}

ACTX_TEST("/thread/shutdown/runs-arrived-completions")
{
    struct arrived a;
    pthread_t t;

    memset(&a, 0, sizeof(a));
    owner_init(&a.o);
    t = thread_start(arrived_main, &a);
    owner_wait_stage(&a.o, 1);
    ASSERT_EQ(actx_req_complete(a.root_req, 1), 0);
    ASSERT_EQ(actx_req_complete(a.child_req, 2), 0);
    owner_set_stage(&a.o, 2);
    thread_join(t);
    ASSERT_EQ(a.root_rec.runs, 1);
    ASSERT_EQ(a.root_rec.ret, 1);
    ASSERT_EQ(a.root_rec.ctx_id, 0);
    ASSERT_THREAD_EQ(a.root_rec.thread, a.o.self);
    ASSERT_EQ(a.child_rec.runs, 1);
    ASSERT_EQ(a.child_rec.ret, 2);
    ASSERT_EQ(a.child_rec.ctx_id, 0); /* re-homed by the pop */
    ASSERT_THREAD_EQ(a.child_rec.thread, a.o.self);
    owner_destroy(&a.o);
}

/* A thread that exits with contexts pushed, BHs alive, requests out:
 * automatic shutdown, nothing leaks (LSan), later posts get -EPIPE. */
static struct cb_rec messy_rec[8];

static void *messy_exit_main(void *p)
{
    actx_req **out = p;
    actx_bh *bh = actx_bh_new(rec_fn, &messy_rec[0]);

    ASSERT_NOT_NULL(bh);
    actx_bh_schedule(bh);
    for (int i = 1; i <= 3; i++) {
        ASSERT_EQ(actx_push(), i);
        ASSERT_NOT_NULL(actx_bh_new(rec_fn, &messy_rec[i]));
        out[i - 1] = actx_req_new(rec_done, &messy_rec[i + 3]);
        ASSERT_NOT_NULL(out[i - 1]);
    }
    return NULL;
}

ACTX_TEST("/thread/exit/automatic-shutdown")
{
    actx_req *out[3];
    struct actx_stats st0, st1;

    actx_stats(&st0);
    thread_join(thread_start(messy_exit_main, out));
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(actx_req_complete(out[i], 0), -EPIPE);
    }
    actx_stats(&st1);
    ASSERT_EQ(st1.posts_refused_all, st0.posts_refused_all + 3);
    for (int i = 1; i < 7; i++) {
        ASSERT_EQ(messy_rec[i].runs, 0);
    }
}

/* --- stats --------------------------------------------------------------- */

ACTX_TEST("/stats/fields-move")
{
    struct cb_rec b = {0}, r = {0}, c = {0};
    struct actx_stats st0, st1;
    actx_bh *bh;
    actx_req *req;
    actx_ctx *h;

    actx_stats(&st0);
    ASSERT_EQ(st0.depth, 0);
    ASSERT_EQ(st0.live_bhs, 0);
    ASSERT_EQ(st0.bh_runs, 0);
    ASSERT_EQ(st0.completions_run, 0);
    ASSERT_EQ(st0.calls_run, 0);
    ASSERT_EQ(st0.outstanding, 0);

    ASSERT_EQ(actx_push(), 1);
    bh = actx_bh_new(rec_fn, &b);
    req = actx_req_new(rec_done, &r);
    h = actx_ctx_current();
    actx_stats(&st1);
    ASSERT_EQ(st1.depth, 1);
    ASSERT_EQ(st1.live_bhs, 1);
    ASSERT_EQ(st1.outstanding, 1);

    actx_bh_schedule(bh);
    ASSERT_EQ(complete_from_thread(req, 0), 0);
    ASSERT_EQ(call_from_thread(h, rec_fn, &c), 0);
    POLL_UNTIL(b.runs && r.runs && c.runs, 100);
    actx_stats(&st1);
    ASSERT_EQ(st1.bh_runs, 1);
    ASSERT_EQ(st1.completions_run, 1);
    ASSERT_EQ(st1.calls_run, 1);
    ASSERT_EQ(st1.completions_deferred, 0);
    ASSERT_GE(st1.mailbox_msgs, 2);
    ASSERT_EQ(st1.outstanding, 0);

    actx_bh_delete(bh);
    actx_ctx_unref(h);
    ASSERT_EQ(actx_pop(), 0);
    actx_stats(&st1);
    ASSERT_EQ(st1.depth, 0);
    ASSERT_EQ(st1.live_bhs, 0);
    ASSERT_EQ(st1.posts_refused, 0);
}

static void *other_stats_main(void *p)
{
    actx_stats(p);
    return NULL;
}

ACTX_TEST("/stats/per-thread")
{
    struct actx_stats st, other;
    struct cb_rec rec = {0};
    actx_bh *bh = actx_bh_new(rec_fn, &rec);

    ASSERT_EQ(actx_push(), 1);
    memset(&other, 0x55, sizeof(other));
    thread_join(thread_start(other_stats_main, &other));
    ASSERT_EQ(other.depth, 0);
    ASSERT_EQ(other.live_bhs, 0);
    actx_stats(&st);
    ASSERT_EQ(st.depth, 1);
    ASSERT_EQ(st.live_bhs, 1);
    ASSERT_EQ(actx_pop(), 0);
    actx_bh_delete(bh);
}

ACTX_TEST("/stats/strerror")
{
    ASSERT_NOT_NULL(actx_strerror(-EPIPE));
    ASSERT_NOT_NULL(actx_strerror(-EDEADLK));
    ASSERT_NOT_NULL(actx_strerror(0));
    ASSERT_NOT_NULL(actx_strerror(-123456));
}

ACTX_TEST("/stats/dump")
{
    FILE *f = tmpfile();

    ASSERT_NOT_NULL(f);
    ASSERT_EQ(actx_push(), 1);
    actx_dump(f);
    ASSERT_GT(ftell(f), 0);
    fclose(f);
    ASSERT_EQ(actx_pop(), 0);
}
