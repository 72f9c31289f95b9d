/*
 * test-ctx.c - the context stack (docs/concepts.md): push returns the depth, ids
 * follow the depth, pop at the root changes nothing, and a context's
 * identity is not its depth (a sibling pushed after a pop adopts nothing of
 * the popped one).
 */
#include "test.h"

static void stats_same(const struct actx_stats *a, const struct actx_stats *b)
{
    ASSERT_EQ(a->depth, b->depth);
    ASSERT_EQ(a->live_bhs, b->live_bhs);
    ASSERT_EQ(a->bh_runs, b->bh_runs);
    ASSERT_EQ(a->completions_run, b->completions_run);
    ASSERT_EQ(a->completions_deferred, b->completions_deferred);
    ASSERT_EQ(a->calls_run, b->calls_run);
    ASSERT_EQ(a->mailbox_msgs, b->mailbox_msgs);
    ASSERT_EQ(a->posts_refused, b->posts_refused);
    ASSERT_EQ(a->outstanding, b->outstanding);
}

ACTX_TEST("/ctx/id/root-is-zero")
{
    struct actx_stats st;

    ASSERT_EQ(actx_context_id(), 0);
    actx_stats(&st);
    ASSERT_EQ(st.depth, 0);
}

ACTX_TEST("/ctx/push/returns-depth")
{
    struct actx_stats st;

    for (int i = 1; i <= 16; i++) {
        ASSERT_EQ(actx_push(), i);
        ASSERT_EQ(actx_context_id(), i);
        actx_stats(&st);
        ASSERT_EQ(st.depth, i);
    }
    for (int i = 16; i >= 1; i--) {
        ASSERT_EQ(actx_context_id(), i);
        ASSERT_EQ(actx_pop(), 0);
        ASSERT_EQ(actx_context_id(), i - 1);
        actx_stats(&st);
        ASSERT_EQ(st.depth, i - 1);
    }
    ASSERT_EQ(actx_pop(), -EINVAL);
    ASSERT_EQ(actx_context_id(), 0);
}

ACTX_TEST("/ctx/push/deep")
{
    for (int i = 1; i <= 2000; i++) {
        ASSERT_EQ(actx_push(), i);
    }
    ASSERT_EQ(actx_context_id(), 2000);
    for (int i = 2000; i >= 1; i--) {
        ASSERT_EQ(actx_pop(), 0);
    }
    ASSERT_EQ(actx_context_id(), 0);
}

ACTX_TEST("/ctx/push/ids-repeat-after-pop")
{
    for (int round = 0; round < 100; round++) {
        ASSERT_EQ(actx_push(), 1);
        ASSERT_EQ(actx_push(), 2);
        ASSERT_EQ(actx_pop(), 0);
        ASSERT_EQ(actx_push(), 2);
        ASSERT_EQ(actx_context_id(), 2);
        ASSERT_EQ(actx_pop(), 0);
        ASSERT_EQ(actx_pop(), 0);
        ASSERT_EQ(actx_context_id(), 0);
    }
}

ACTX_TEST("/ctx/pop/at-root")
{
    struct cb_rec bhrec = {0}, reqrec = {0};
    struct actx_stats before, after;
    actx_bh *bh;
    actx_req *req;

    /* Root state that a wrong "flush" or "switch" would disturb. */
    bh = actx_bh_new(rec_fn, &bhrec);
    ASSERT_NOT_NULL(bh);
    actx_bh_schedule(bh);
    req = actx_req_new(rec_done, &reqrec);
    ASSERT_NOT_NULL(req);
    ASSERT_EQ(actx_req_complete(req, 7), 0);

    actx_stats(&before);
    ASSERT_EQ(actx_pop(), -EINVAL);
    ASSERT_EQ(actx_pop(), -EINVAL);
    actx_stats(&after);
    ASSERT_EQ(actx_context_id(), 0);
    stats_same(&before, &after);
    ASSERT_EQ(bhrec.runs, 0);
    ASSERT_EQ(reqrec.runs, 0);

    /* The loop still works afterwards. */
    POLL_UNTIL(bhrec.runs && reqrec.runs, 100);
    ASSERT_EQ(bhrec.runs, 1);
    ASSERT_EQ(bhrec.ctx_id, 0);
    ASSERT_EQ(reqrec.runs, 1);
    ASSERT_EQ(reqrec.ret, 7);
    ASSERT_EQ(reqrec.ctx_id, 0);
    actx_bh_delete(bh);
}

ACTX_TEST("/ctx/pop/at-root-after-push-pop")
{
    struct actx_stats before, after;

    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_push(), 2);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_pop(), 0);
    actx_stats(&before);
    ASSERT_EQ(actx_pop(), -EINVAL);
    actx_stats(&after);
    stats_same(&before, &after);
    ASSERT_EQ(actx_context_id(), 0);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_pop(), 0);
}

/*
 * A sibling pushed at the same depth after a pop is a different context:
 * the popped child's outstanding request now belongs to the parent.
 */
ACTX_TEST("/ctx/sibling/no-leftover-request")
{
    struct cb_rec rec = {0};
    actx_req *req;

    ASSERT_EQ(actx_push(), 1);
    req = actx_req_new(rec_done, &rec);
    ASSERT_NOT_NULL(req);
    ASSERT_EQ(actx_pop(), 0);

    ASSERT_EQ(actx_push(), 1);     /* the sibling */
    ASSERT_EQ(actx_poll(true), 0); /* nothing of its own: returns at once */
    ASSERT_FALSE(actx_can_progress());
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), -EDEADLK);

    /* Its completion arrives while the sibling is current: not run here. */
    ASSERT_EQ(complete_from_thread(req, 5), 0);
    for (int i = 0; i < 10; i++) {
        actx_poll(false);
        actx_process_queue();
    }
    ASSERT_EQ(actx_poll(true), 0);
    ASSERT_EQ(rec.runs, 0);
    ASSERT_EQ(actx_pop(), 0);

    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ctx_id, 0);
    ASSERT_EQ(rec.ret, 5);
    ASSERT_ON_SELF(rec.thread);
}

/* The same, with the completion already arrived before the pop. */
ACTX_TEST("/ctx/sibling/no-leftover-arrived-completion")
{
    struct cb_rec rec = {0};
    actx_req *req;

    ASSERT_EQ(actx_push(), 1);
    req = actx_req_new(rec_done, &rec);
    ASSERT_NOT_NULL(req);
    ASSERT_EQ(complete_from_thread(req, 9), 0);
    ASSERT_EQ(actx_pop(), 0); /* the flush runs BHs, not completions */

    ASSERT_EQ(actx_push(), 1);
    for (int i = 0; i < 10; i++) {
        actx_poll(false);
        actx_process_queue();
    }
    ASSERT_EQ(actx_poll(true), 0);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(rec.runs, 0);
    ASSERT_EQ(actx_pop(), 0);

    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ctx_id, 0);
    ASSERT_EQ(rec.ret, 9);
}

/* The popped child's BH (re-homed to the parent) is not the sibling's. */
ACTX_TEST("/ctx/sibling/no-leftover-bh")
{
    struct cb_rec rec = {0};
    actx_bh *bh;

    ASSERT_EQ(actx_push(), 1);
    bh = actx_bh_new(rec_fn, &rec);
    ASSERT_NOT_NULL(bh);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(rec.runs, 0);

    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_poll(true), 0); /* no live BH of its own */
    actx_bh_schedule(bh);
    ASSERT_EQ(actx_bh_poll(), 0);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(actx_poll(true), 0);
    ASSERT_EQ(rec.runs, 0);
    ASSERT_EQ(actx_pop(), 0); /* the sibling's flush does not run it */
    ASSERT_EQ(rec.runs, 0);

    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ctx_id, 0);
    actx_bh_delete(bh);
}

/* Identity, deeper: the request of a popped grandchild is the child's. */
ACTX_TEST("/ctx/sibling/grandchild-leftover-goes-to-child")
{
    struct cb_rec rec = {0};
    actx_req *req;

    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_push(), 2);
    req = actx_req_new(rec_done, &rec);
    ASSERT_NOT_NULL(req);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_push(), 2); /* sibling of the grandchild */
    ASSERT_EQ(complete_from_thread(req, 3), 0);
    ASSERT_EQ(actx_poll(true), 0);
    ASSERT_EQ(rec.runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(rec.runs == 0), 0);
    ASSERT_EQ(rec.ctx_id, 1);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(rec.runs, 1);
}

/*
 * The reason contexts exist (docs/concepts.md): a completion callback does a
 * synchronous wait in a pushed context.  During the wait only the inner
 * request's completion runs; the outer context's other completion, BH and
 * call wait until the callback has returned.
 */
struct nested {
    bool in_a;
    int a_runs, b_runs, bh_runs, call_runs, c_runs;
    bool b_inside_a, bh_inside_a, call_inside_a;
    int c_ctx;
    int wait_ret;
    long c_ret;
};

static struct nested nest;

static void nested_c_done(void *opaque, long ret)
{
    (void)opaque;
    nest.c_runs++;
    nest.c_ret = ret;
    nest.c_ctx = actx_context_id();
}

static void nested_a_done(void *opaque, long ret)
{
    actx_req *c;
    atomic_int rc;
    pthread_t t;

    (void)opaque;
    (void)ret;
    nest.a_runs++;
    nest.in_a = true;
    ASSERT_EQ(actx_push(), 1);
    c = actx_req_new(nested_c_done, NULL);
    ASSERT_NOT_NULL(c);
    t = later_complete(c, 99, 20000, 0, &rc);
    nest.wait_ret = ACTX_WAIT_WHILE(nest.c_runs == 0);
    thread_join(t);
    ASSERT_EQ(atomic_load(&rc), 0);
    ASSERT_EQ(actx_pop(), 0);
    nest.in_a = false;
}

static void nested_b_done(void *opaque, long ret)
{
    (void)opaque;
    (void)ret;
    nest.b_runs++;
    nest.b_inside_a |= nest.in_a;
}

static void nested_bh(void *opaque)
{
    (void)opaque;
    nest.bh_runs++;
    nest.bh_inside_a |= nest.in_a;
}

static void nested_call(void *opaque)
{
    (void)opaque;
    nest.call_runs++;
    nest.call_inside_a |= nest.in_a;
}

ACTX_TEST("/ctx/nested-wait/in-completion-callback")
{
    actx_req *a = actx_req_new(nested_a_done, NULL);
    actx_req *b = actx_req_new(nested_b_done, NULL);
    actx_bh *bh = actx_bh_new(nested_bh, NULL);
    actx_ctx *h = actx_ctx_current();

    memset(&nest, 0, sizeof(nest));
    ASSERT_EQ(complete_from_thread(a, 1), 0);
    ASSERT_EQ(complete_from_thread(b, 2), 0);
    ASSERT_EQ(actx_ctx_call(h, nested_call, NULL), 0);
    actx_bh_schedule(bh);
    ASSERT_EQ(ACTX_WAIT_WHILE(nest.a_runs == 0 || nest.b_runs == 0 ||
                              nest.bh_runs == 0 || nest.call_runs == 0),
              0);
    ASSERT_EQ(nest.wait_ret, 0);
    ASSERT_EQ(nest.c_runs, 1);
    ASSERT_EQ(nest.c_ret, 99);
    ASSERT_EQ(nest.c_ctx, 1);
    ASSERT_EQ(nest.a_runs, 1);
    ASSERT_EQ(nest.b_runs, 1);
    ASSERT_EQ(nest.bh_runs, 1);
    ASSERT_EQ(nest.call_runs, 1);
    ASSERT_FALSE(nest.b_inside_a);
    ASSERT_FALSE(nest.bh_inside_a);
    ASSERT_FALSE(nest.call_inside_a);
    actx_bh_delete(bh);
    actx_ctx_unref(h);
}
