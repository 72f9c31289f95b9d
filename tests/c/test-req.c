/*
 * test-req.c - requests, completions and the mailbox (actx.h; re-homing at
 * pop, docs/concepts.md): done gets ret on the owner thread in the
 * request's context; a completion for an outer context is queued (deferred) while a child is
 * current and runs after the pop; completions run in arrival order; a
 * popped child's requests complete in the parent; -EPIPE after the owner's
 * shutdown.  Also the pool (submit, aio) at the level of the contract.
 */
#include "test.h"

#include <fcntl.h>
#include <sys/stat.h>

/* --- order log ------------------------------------------------------------ */

#define ORDER_MAX 4096

static int order_done[ORDER_MAX];
static int order_n;
static int order_wrong_ctx;
static int order_expect_ctx;
static int order_bad_ret;
static pthread_t order_owner;

static void order_done_cb(void *opaque, long ret)
{
    int idx = (int)(intptr_t)opaque;

    if (ret != idx * 3 + 1) {
        order_bad_ret++;
    }
    if (actx_context_id() != order_expect_ctx) {
        order_wrong_ctx++;
    }
    if (!pthread_equal(pthread_self(), order_owner)) {
        order_wrong_ctx++;
    }
    if (order_n < ORDER_MAX) {
        order_done[order_n] = idx;
    }
    order_n++;
}

static void order_reset(int expect_ctx)
{
    order_n = 0;
    order_wrong_ctx = 0;
    order_bad_ret = 0;
    order_expect_ctx = expect_ctx;
    order_owner = pthread_self();
}

/* A fixed pseudo-random permutation of 0..n-1. */
static void permute(int *p, int n, unsigned seed)
{
    for (int i = 0; i < n; i++) {
        p[i] = i;
    }
    for (int i = n - 1; i > 0; i--) {
        seed = seed * 1103515245u + 12345u;
        int j = (int)((seed >> 8) % (unsigned)(i + 1));
        int t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
}

struct producer {
    actx_req **reqs;
    const int *perm;
    int n;
    int bad_rc;
    unsigned delay_us; /* before starting */
    pid_t sleeper;
};

static void *producer_main(void *p)
{
    struct producer *pr = p;

    wait_until_sleeping(pr->sleeper, pr->delay_us);
    for (int i = 0; i < pr->n; i++) {
        int idx = pr->perm[i];

        if (actx_req_complete(pr->reqs[idx], idx * 3 + 1) != 0) {
            pr->bad_rc++;
        }
    }
    return NULL;
}

/* --- basic completions --------------------------------------------------- */

ACTX_TEST("/req/complete/null")
{
    ASSERT_EQ(actx_req_complete(NULL, 0), -EINVAL);
    ASSERT_LT(actx_req_cancel(NULL), 0);
}

ACTX_TEST("/req/done/ret-value")
{
    static const long vals[] = {0, 42, -5, -ECANCELED, LONG_MAX, LONG_MIN};
    struct cb_rec rec[6];

    memset(rec, 0, sizeof(rec));
    for (int i = 0; i < 6; i++) {
        actx_req *req = actx_req_new(rec_done, &rec[i]);

        ASSERT_NOT_NULL(req);
        if (i % 2) {
            ASSERT_EQ(actx_req_complete(req, vals[i]), 0);
        } else {
            ASSERT_EQ(complete_from_thread(req, vals[i]), 0);
        }
    }
    ASSERT_EQ(ACTX_WAIT_WHILE(rec[5].runs == 0), 0);
    for (int i = 0; i < 6; i++) {
        ASSERT_EQ(rec[i].runs, 1);
        ASSERT_EQ(rec[i].ret, vals[i]);
        ASSERT_EQ(rec[i].ctx_id, 0);
        ASSERT_ON_SELF(rec[i].thread);
    }
}

/* Completing from the owner thread itself works, and is not run inline. */
ACTX_TEST("/req/complete/owner-thread")
{
    struct cb_rec rec = {0};
    struct actx_stats st0, st1;
    actx_req *req;

    ASSERT_EQ(actx_push(), 1);
    req = actx_req_new(rec_done, &rec);
    actx_stats(&st0);
    ASSERT_EQ(actx_req_complete(req, 11), 0);
    ASSERT_EQ(rec.runs, 0); /* travels through the mailbox */
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ret, 11);
    ASSERT_EQ(rec.ctx_id, 1);
    ASSERT_ON_SELF(rec.thread);
    actx_stats(&st1);
    ASSERT_EQ(st1.completions_run, st0.completions_run + 1);
    ASSERT_EQ(actx_pop(), 0);
}

ACTX_TEST("/req/complete/other-thread-runs-on-owner")
{
    struct cb_rec rec = {0};
    atomic_int rc;
    actx_req *req;
    pthread_t t;

    ASSERT_EQ(actx_push(), 1);
    req = actx_req_new(rec_done, &rec);
    t = later_complete(req, 77, 10000, 0, &rc);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
    thread_join(t);
    ASSERT_EQ(atomic_load(&rc), 0);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ret, 77);
    ASSERT_EQ(rec.ctx_id, 1);
    ASSERT_ON_SELF(rec.thread);
    ASSERT_EQ(actx_pop(), 0);
}

ACTX_TEST("/req/stats/outstanding")
{
    struct cb_rec rec = {0};
    struct actx_stats st0, st1;
    actx_req *req;

    actx_stats(&st0);
    req = actx_req_new(rec_done, &rec);
    actx_stats(&st1);
    ASSERT_EQ(st1.outstanding, st0.outstanding + 1);
    ASSERT_EQ(actx_req_complete(req, 0), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
    actx_stats(&st1);
    ASSERT_EQ(st1.outstanding, st0.outstanding);
    ASSERT_EQ(st1.completions_run, st0.completions_run + 1);
}

/* --- deferral across contexts -------------------------------------------- */

ACTX_TEST("/req/deferred/parent-completion-in-child")
{
    struct cb_rec rec = {0};
    struct actx_stats st0, st1;
    actx_req *req;

    req = actx_req_new(rec_done, &rec);
    ASSERT_EQ(actx_push(), 1);
    actx_stats(&st0);
    ASSERT_EQ(complete_from_thread(req, 21), 0);
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(actx_poll(false), 0);
        ASSERT_EQ(actx_process_queue(), 0);
    }
    ASSERT_EQ(actx_poll(true), 0);
    ASSERT_EQ(rec.runs, 0);
    actx_stats(&st1);
    ASSERT_GE(st1.mailbox_msgs, st0.mailbox_msgs + 1);
    ASSERT_EQ(st1.completions_deferred, st0.completions_deferred + 1);
    ASSERT_EQ(st1.completions_run, st0.completions_run);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(rec.runs, 0); /* runs at the parent's next poll */
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ctx_id, 0);
    ASSERT_EQ(rec.ret, 21);
    ASSERT_ON_SELF(rec.thread);
}

/* The same, with actx_process_queue as the parent's next call. */
ACTX_TEST("/req/deferred/process-queue-after-pop")
{
    struct cb_rec rec = {0};
    actx_req *req;

    req = actx_req_new(rec_done, &rec);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_req_complete(req, 4), 0);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(rec.runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_process_queue(), 1);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ctx_id, 0);
    ASSERT_EQ(rec.ret, 4);
}

/* A parent completion arriving while the owner sleeps in the child. */
ACTX_TEST("/req/deferred/arrives-while-child-sleeps")
{
    struct cb_rec outer = {0}, inner = {0};
    actx_req *r_outer, *r_inner;
    atomic_int rc1, rc2;
    pthread_t t1, t2;

    r_outer = actx_req_new(rec_done, &outer);
    ASSERT_EQ(actx_push(), 1);
    r_inner = actx_req_new(rec_done, &inner);
    t1 = later_complete(r_outer, 1, 20000, test_gettid(), &rc1);
    t2 = later_complete(r_inner, 2, 80000, 0, &rc2);
    ASSERT_EQ(ACTX_WAIT_WHILE(inner.runs == 0), 0);
    thread_join(t1);
    thread_join(t2);
    ASSERT_EQ(atomic_load(&rc1), 0);
    ASSERT_EQ(atomic_load(&rc2), 0);
    ASSERT_EQ(inner.runs, 1);
    ASSERT_EQ(inner.ctx_id, 1);
    ASSERT_EQ(outer.runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(outer.runs == 0), 0);
    ASSERT_EQ(outer.ctx_id, 0);
    ASSERT_EQ(outer.ret, 1);
}

/* --- order ---------------------------------------------------------------- */

ACTX_TEST("/req/order/arrival")
{
    enum { N = 2000 };
    static actx_req *reqs[N];
    static int perm[N];
    struct producer pr = {reqs, perm, N, 0, 0, 0};
    pthread_t t;

    order_reset(0);
    for (int i = 0; i < N; i++) {
        reqs[i] = actx_req_new(order_done_cb, (void *)(intptr_t)i);
        ASSERT_NOT_NULL(reqs[i]);
    }
    permute(perm, N, 12345);
    t = thread_start(producer_main, &pr);
    ASSERT_EQ(ACTX_WAIT_WHILE(order_n < N), 0);
    thread_join(t);
    ASSERT_EQ(pr.bad_rc, 0);
    ASSERT_EQ(order_n, N);
    ASSERT_EQ(order_bad_ret, 0);
    ASSERT_EQ(order_wrong_ctx, 0);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(order_done[i], perm[i]);
    }
}

ACTX_TEST("/req/order/arrival-owner-thread")
{
    enum { N = 500 };
    static actx_req *reqs[N];
    static int perm[N];

    ASSERT_EQ(actx_push(), 1);
    order_reset(1);
    for (int i = 0; i < N; i++) {
        reqs[i] = actx_req_new(order_done_cb, (void *)(intptr_t)i);
    }
    permute(perm, N, 777);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(actx_req_complete(reqs[perm[i]], perm[i] * 3 + 1), 0);
    }
    ASSERT_EQ(ACTX_WAIT_WHILE(order_n < N), 0);
    ASSERT_EQ(order_wrong_ctx, 0);
    ASSERT_EQ(order_bad_ret, 0);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(order_done[i], perm[i]);
    }
    ASSERT_EQ(actx_pop(), 0);
}

/* Deferred completions keep their arrival order through the pop. */
ACTX_TEST("/req/order/deferred-then-fresh")
{
    enum { N = 1000 };
    static actx_req *reqs[N];
    static int perm[N];
    struct producer pr = {reqs, perm, N / 2, 0, 0, 0};

    order_reset(0);
    for (int i = 0; i < N; i++) {
        reqs[i] = actx_req_new(order_done_cb, (void *)(intptr_t)i);
    }
    permute(perm, N, 4242);
    ASSERT_EQ(actx_push(), 1);
    /* First half arrives while the child is current and is taken there. */
    thread_join(thread_start(producer_main, &pr));
    for (int i = 0; i < 5; i++) {
        actx_poll(false);
    }
    ASSERT_EQ(order_n, 0);
    ASSERT_EQ(actx_pop(), 0);
    /* Second half arrives after the pop, before the parent polls. */
    pr.perm = perm + N / 2;
    thread_join(thread_start(producer_main, &pr));
    ASSERT_EQ(pr.bad_rc, 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(order_n < N), 0);
    ASSERT_EQ(order_wrong_ctx, 0);
    ASSERT_EQ(order_bad_ret, 0);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(order_done[i], perm[i]);
    }
}

/* --- re-homing ----------------------------------------------------------- */

ACTX_TEST("/req/rehome/in-flight-completes-in-parent")
{
    struct cb_rec rec = {0};
    atomic_int rc;
    actx_req *req;
    pthread_t t;

    ASSERT_EQ(actx_push(), 1);
    req = actx_req_new(rec_done, &rec);
    ASSERT_EQ(actx_pop(), 0); /* the flush does not wait for requests */
    ASSERT_EQ(rec.runs, 0);
    t = later_complete(req, 8, 20000, test_gettid(), &rc);
    /* The re-homed request keeps the root waiting (no -EDEADLK). */
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
    thread_join(t);
    ASSERT_EQ(atomic_load(&rc), 0);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ctx_id, 0);
    ASSERT_EQ(rec.ret, 8);
    ASSERT_ON_SELF(rec.thread);
}

/* A completion already queued for a child (taken from the mailbox while a
 * grandchild was current) is re-homed when the child is popped unpolled. */
ACTX_TEST("/req/rehome/queued-completion")
{
    struct cb_rec rec = {0};
    actx_req *req;

    ASSERT_EQ(actx_push(), 1);
    req = actx_req_new(rec_done, &rec);
    ASSERT_EQ(actx_push(), 2);
    ASSERT_EQ(complete_from_thread(req, 6), 0);
    for (int i = 0; i < 5; i++) {
        actx_poll(false);
    }
    ASSERT_EQ(rec.runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_pop(), 0); /* context 1 popped before it polled */
    ASSERT_EQ(actx_context_id(), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ctx_id, 0);
    ASSERT_EQ(rec.ret, 6);
}

ACTX_TEST("/req/rehome/all-levels-to-root")
{
    struct cb_rec rec[4];
    actx_req *req[4];

    memset(rec, 0, sizeof(rec));
    for (int i = 0; i < 4; i++) {
        if (i) {
            ASSERT_EQ(actx_push(), i);
        }
        req[i] = actx_req_new(rec_done, &rec[i]);
    }
    for (int i = 3; i >= 1; i--) {
        ASSERT_EQ(actx_pop(), 0);
    }
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(complete_from_thread(req[i], i), 0);
    }
    ASSERT_EQ(ACTX_WAIT_WHILE(
                  rec[0].runs + rec[1].runs + rec[2].runs + rec[3].runs < 4),
              0);
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(rec[i].runs, 1);
        ASSERT_EQ(rec[i].ctx_id, 0);
        ASSERT_EQ(rec[i].ret, i);
        ASSERT_TRUE(i == 0 || rec[i].seq > rec[i - 1].seq); /* arrival */
    }
}

/* Completed while the child is still current but not yet polled: the pop
 * does not lose it, it runs in the parent. */
ACTX_TEST("/req/rehome/arrived-before-pop")
{
    struct cb_rec rec = {0};
    actx_req *req;

    ASSERT_EQ(actx_push(), 1);
    req = actx_req_new(rec_done, &rec);
    ASSERT_EQ(complete_from_thread(req, 12), 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ret, 12);
    ASSERT_EQ(rec.ctx_id, 0);
}

/* --- cancel ------------------------------------------------------------- */

ACTX_TEST("/req/cancel/no-work-ebusy")
{
    struct cb_rec rec = {0};
    actx_req *req = actx_req_new(rec_done, &rec);

    ASSERT_EQ(actx_req_cancel(req), -EBUSY);
    POLL_UNTIL(0, 3);
    ASSERT_EQ(rec.runs, 0);
    ASSERT_EQ(actx_req_complete(req, 3), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
    ASSERT_EQ(rec.ret, 3);
}

struct cancel_arg {
    actx_req *req;
    int rc;
};

static void *cancel_main(void *p)
{
    struct cancel_arg *a = p;

    a->rc = actx_req_cancel(a->req);
    return NULL;
}

ACTX_TEST("/req/cancel/wrong-thread")
{
    struct cb_rec rec = {0};
    struct cancel_arg a;

    a.req = actx_req_new(rec_done, &rec);
    a.rc = 12345;
    thread_join(thread_start(cancel_main, &a));
    ASSERT_TRUE(a.rc == -EPERM || a.rc == -EBUSY);
    ASSERT_EQ(actx_req_complete(a.req, 5), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ret, 5);
}

/* --- -EPIPE after the owner shut down ------------------------------------ */

struct dying_owner {
    actx_req *req;
    struct cb_rec rec;
    bool explicit_shutdown;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stage;
};

static void *dying_owner_main(void *p)
{
    struct dying_owner *d = p;

    d->req = actx_req_new(rec_done, &d->rec);
    if (d->explicit_shutdown) {
        actx_thread_shutdown();
    }
    pthread_mutex_lock(&d->mu);
    d->stage = 1;
    pthread_cond_broadcast(&d->cv);
    if (d->explicit_shutdown) {
        /* Stay alive while the other thread posts. */
        while (d->stage < 2) {
            pthread_cond_wait(&d->cv, &d->mu);
        }
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static void epipe_case(bool explicit_shutdown)
{
    struct dying_owner d;
    struct actx_stats st0, st1;
    pthread_t t;

    memset(&d, 0, sizeof(d));
    d.explicit_shutdown = explicit_shutdown;
    pthread_mutex_init(&d.mu, NULL);
    pthread_cond_init(&d.cv, NULL);
    t = thread_start(dying_owner_main, &d);
    if (!explicit_shutdown) {
        thread_join(t);
    } else {
        pthread_mutex_lock(&d.mu);
        while (d.stage < 1) {
            pthread_cond_wait(&d.cv, &d.mu);
        }
        pthread_mutex_unlock(&d.mu);
    }
    ASSERT_NOT_NULL(d.req);
    actx_stats(&st0);
    ASSERT_EQ(actx_req_complete(d.req, 1), -EPIPE);
    actx_stats(&st1);
    ASSERT_EQ(st1.posts_refused_all, st0.posts_refused_all + 1);
    if (explicit_shutdown) {
        pthread_mutex_lock(&d.mu);
        d.stage = 2;
        pthread_cond_broadcast(&d.cv);
        pthread_mutex_unlock(&d.mu);
        thread_join(t);
    }
    ASSERT_EQ(d.rec.runs, 0);
    pthread_mutex_destroy(&d.mu);
    pthread_cond_destroy(&d.cv);
}

ACTX_TEST("/req/epipe/after-owner-exit")
{
    epipe_case(false);
}

ACTX_TEST("/req/epipe/after-owner-shutdown")
{
    epipe_case(true);
}

/* The refused hook sees each refused completion once, with its done,
 * opaque and ret, so the creator can free what opaque holds (ASan checks
 * the malloc'd opaques are freed); done never runs. */
static atomic_int hook_calls;
static void hook_done(void *opaque, long ret)
{
    (void)opaque;
    (void)ret;
    actx_test_fail(__FILE__, __LINE__, "done ran for a refused request");
}

static void refused_hook(actx_done_fn *done, void *opaque, long ret)
{
    if (done == hook_done && *(long *)opaque == ret) {
        atomic_fetch_add(&hook_calls, 1);
    }
    free(opaque);
}

static void *hook_owner_main(void *p)
{
    actx_req **reqs = p;

    for (long i = 0; i < 100; i++) {
        long *o = malloc(sizeof(*o));

        *o = i;
        reqs[i] = actx_req_new(hook_done, o);
    }
    return NULL; /* exits with 100 requests outstanding */
}

ACTX_TEST("/req/epipe/refused-hook-releases-opaque")
{
    actx_req *reqs[100];
    actx_refused_fn *prev;
    pthread_t t;

    atomic_store(&hook_calls, 0);
    prev = actx_set_refused_hook(refused_hook);
    ASSERT_PTR_EQ(prev, NULL);
    t = thread_start(hook_owner_main, reqs);
    thread_join(t);
    for (long i = 0; i < 100; i++) {
        ASSERT_EQ(actx_req_complete(reqs[i], i), -EPIPE);
    }
    ASSERT_EQ(atomic_load(&hook_calls), 100);
    ASSERT_PTR_EQ(actx_set_refused_hook(NULL), refused_hook);
}

/* --- pool: submit and aio ------------------------------------------------ */

static atomic_int work_ran;

struct work_arg {
    pthread_t owner;
    bool on_owner;
    long val;
};

static long work_fn(void *opaque)
{
    struct work_arg *w = opaque;

    w->on_owner = pthread_equal(pthread_self(), w->owner);
    atomic_fetch_add(&work_ran, 1);
    return w->val;
}

struct sub {
    struct work_arg w;
    struct cb_rec rec;
};

static long sub_work(void *opaque)
{
    return work_fn(&((struct sub *)opaque)->w);
}

static void sub_done(void *opaque, long ret)
{
    rec_done(&((struct sub *)opaque)->rec, ret);
}

ACTX_TEST("/req/submit/ret-and-context")
{
    struct sub s = {{pthread_self(), true, 1234}, {0}};

    ASSERT_EQ(actx_push(), 1);
    ASSERT_NOT_NULL(actx_submit(sub_work, sub_done, &s));
    ASSERT_EQ(ACTX_WAIT_WHILE(s.rec.runs == 0), 0);
    ASSERT_EQ(s.rec.ret, 1234);
    ASSERT_EQ(s.rec.ctx_id, 1);
    ASSERT_ON_SELF(s.rec.thread);
    ASSERT_FALSE(s.w.on_owner);
    ASSERT_EQ(actx_pop(), 0);
}

static long slow_work(void *opaque)
{
    (void)opaque;
    usleep(100000);
    return 0;
}

/* Cancel: 0 (then done gets -ECANCELED) or -EBUSY (done gets the result). */
ACTX_TEST("/req/submit/cancel")
{
    struct sub s[8];
    actx_req *req[8];
    int rc[8];

    memset(s, 0, sizeof(s));
    /* Fill the pool with slow work first so that the last ones are likely
     * still queued; either outcome is legal, both are checked. */
    for (int i = 0; i < 8; i++) {
        s[i].w.owner = pthread_self();
        s[i].w.val = 5;
        req[i] = actx_submit(i < 4 ? slow_work : sub_work, sub_done, &s[i]);
        ASSERT_NOT_NULL(req[i]);
    }
    for (int i = 7; i >= 4; i--) {
        rc[i] = actx_req_cancel(req[i]);
        ASSERT_TRUE(rc[i] == 0 || rc[i] == -EBUSY);
    }
    ASSERT_EQ(actx_flush(), 0);
    for (int i = 4; i < 8; i++) {
        ASSERT_EQ(s[i].rec.runs, 1);
        ASSERT_EQ(s[i].rec.ret, rc[i] == 0 ? -ECANCELED : 5);
    }
}

static int pool_nested_depth_ok;

static long nested_inner(void *opaque)
{
    (void)opaque;
    return 7;
}

static long nested_outer(void *opaque)
{
    struct cb_rec rec = {0};
    int ret;

    (void)opaque;
    /* On a pool thread, with its own loop: a synchronous nested wait. */
    ASSERT_EQ(actx_push(), 1);
    ASSERT_NOT_NULL(actx_submit(nested_inner, rec_done, &rec));
    ret = ACTX_WAIT_WHILE(rec.runs == 0);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(rec.ret, 7);
    ASSERT_EQ(rec.ctx_id, 1);
    ASSERT_EQ(actx_pop(), 0);
    __atomic_add_fetch(&pool_nested_depth_ok, 1, __ATOMIC_SEQ_CST);
    return 1;
}

ACTX_TEST_TIMEOUT("/req/submit/nested-wait-on-every-worker", 60)
{
    enum { N = 16 };
    struct cb_rec rec[N];
    int total = 0;

    ASSERT_EQ(actx_pool_set_size(2), 0);
    memset(rec, 0, sizeof(rec));
    for (int i = 0; i < N; i++) {
        ASSERT_NOT_NULL(actx_submit(nested_outer, rec_done, &rec[i]));
    }
    ASSERT_EQ(actx_flush(), 0);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(rec[i].runs, 1);
        ASSERT_EQ(rec[i].ret, 1);
        total += rec[i].runs;
    }
    ASSERT_EQ(total, N);
    ASSERT_EQ(__atomic_load_n(&pool_nested_depth_ok, __ATOMIC_SEQ_CST), N);
}

ACTX_TEST("/req/pool/set-size-args")
{
    struct cb_rec rec = {0};

    ASSERT_EQ(actx_pool_set_size(0), -EINVAL);
    ASSERT_EQ(actx_pool_set_size(3), 0);
    ASSERT_NOT_NULL(actx_submit(nested_inner, rec_done, &rec));
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(rec.ret, 7);
    ASSERT_EQ(actx_pool_set_size(5), -EBUSY);
}

static int make_tmpfile(void)
{
    char path[] = "/tmp/actx-test-XXXXXX";
    int fd = mkstemp(path);

    ASSERT_GE(fd, 0);
    unlink(path);
    return fd;
}

ACTX_TEST("/req/aio/pwrite-pread-fsync")
{
    char out[8192], in[8192];
    struct cb_rec w = {0}, r = {0}, f = {0}, eof = {0};
    int fd = make_tmpfile();

    for (size_t i = 0; i < sizeof(out); i++) {
        out[i] = (char)(i * 7 + 3);
    }
    memset(in, 0, sizeof(in));
    ASSERT_EQ(actx_push(), 1);
    ASSERT_NOT_NULL(actx_aio_pwrite(fd, out, sizeof(out), 0, rec_done, &w));
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(w.ret, (long)sizeof(out));
    ASSERT_EQ(w.ctx_id, 1);
    ASSERT_NOT_NULL(actx_aio_fsync(fd, rec_done, &f));
    ASSERT_NOT_NULL(actx_aio_pread(fd, in, sizeof(in), 0, rec_done, &r));
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(f.ret, 0);
    ASSERT_EQ(r.ret, (long)sizeof(in));
    ASSERT_EQ(memcmp(in, out, sizeof(in)), 0);
    /* A read across the end of file is short, not an error. */
    ASSERT_NOT_NULL(actx_aio_pread(fd, in, 4096, 6000, rec_done, &eof));
    ASSERT_EQ(ACTX_WAIT_WHILE(eof.runs == 0), 0);
    ASSERT_EQ(eof.ret, 8192 - 6000);
    ASSERT_EQ(actx_pop(), 0);
    close(fd);
}

ACTX_TEST("/req/aio/bad-args")
{
    struct cb_rec rec = {0};
    char buf[16];
    int fd = make_tmpfile();

    errno = 0;
    ASSERT_NULL(actx_aio_pread(-1, buf, sizeof(buf), 0, rec_done, &rec));
    ASSERT_EQ(errno, EBADF);
    errno = 0;
    ASSERT_NULL(actx_aio_pread(fd, NULL, 16, 0, rec_done, &rec));
    ASSERT_EQ(errno, EINVAL);
    close(fd);
    /* An fd that is not open: refused up front (EBADF) or ret -EBADF. */
    fd = 4000;
    ASSERT_EQ(fcntl(fd, F_GETFD), -1);
    errno = 0;
    actx_req *req = actx_aio_pread(fd, buf, sizeof(buf), 0, rec_done, &rec);
    if (req) {
        ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
        ASSERT_EQ(rec.ret, -EBADF);
    } else {
        ASSERT_EQ(errno, EBADF);
    }
}

/* Work accepted before the owner shut down still runs; its completion is
 * then refused and counted. */
static atomic_int late_work_ran;
static struct cb_rec late_rec;

static long late_work(void *opaque)
{
    (void)opaque;
    usleep(100000);
    atomic_store(&late_work_ran, 1);
    return 0;
}

static void *submit_and_exit_main(void *p)
{
    (void)p;
    ASSERT_NOT_NULL(actx_submit(late_work, rec_done, &late_rec));
    return NULL; /* thread exit shuts the runtime down */
}

ACTX_TEST("/req/submit/accepted-before-owner-exit-runs")
{
    struct actx_stats st0, st;

    actx_stats(&st0);
    thread_join(thread_start(submit_and_exit_main, NULL));
    while (!atomic_load(&late_work_ran)) {
        usleep(1000);
    }
    do {
        usleep(1000);
        actx_stats(&st);
    } while (st.posts_refused_all < st0.posts_refused_all + 1);
    ASSERT_EQ(st.posts_refused_all, st0.posts_refused_all + 1);
    ASSERT_EQ(late_rec.runs, 0);
}
