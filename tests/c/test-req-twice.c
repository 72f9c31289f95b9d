/*
 * test-req-twice.c - a request completed twice, or a pool request
 * completed by hand: the extra completion is refused (-EALREADY, -EINVAL)
 * in every build, done runs once, and shutdown ends.
 */
#include "test.h"

static void count_done(void *opaque, long ret)
{
    struct cb_rec *r = opaque;

    rec_done(r, ret);
}

ACTX_TEST("/req/complete-twice/owner-thread")
{
    struct cb_rec r = {0};
    actx_req *req = actx_req_new(count_done, &r);

    ASSERT_NOT_NULL(req);
    ASSERT_EQ(actx_req_complete(req, 1), 0);
    ASSERT_EQ(actx_req_complete(req, 2), -EALREADY);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r.runs, 1);
    ASSERT_EQ(r.ret, 1);
}

ACTX_TEST("/req/complete-twice/after-done-ran")
{
    struct cb_rec r = {0};
    struct actx_stats st;
    actx_req *req = actx_req_new(count_done, &r);

    ASSERT_NOT_NULL(req);
    ASSERT_EQ(actx_req_complete(req, 1), 0);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(actx_req_complete(req, 2), -EALREADY);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r.runs, 1);
    actx_stats(&st);
    ASSERT_EQ(st.outstanding, 0);
}

ACTX_TEST("/req/complete-twice/other-thread")
{
    struct cb_rec r = {0};
    actx_req *req = actx_req_new(count_done, &r);

    ASSERT_NOT_NULL(req);
    ASSERT_EQ(complete_from_thread(req, 1), 0);
    ASSERT_EQ(complete_from_thread(req, 2), -EALREADY);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r.runs, 1);
    ASSERT_EQ(r.ret, 1);
}

/* Shutdown with a doubly completed request ends (it used to loop). */
ACTX_TEST("/req/complete-twice/shutdown-ends")
{
    struct cb_rec r = {0};
    actx_req *req = actx_req_new(count_done, &r);

    ASSERT_NOT_NULL(req);
    ASSERT_EQ(actx_req_complete(req, 1), 0);
    ASSERT_EQ(actx_req_complete(req, 2), -EALREADY);
    actx_thread_shutdown();
    ASSERT_EQ(r.runs, 1);
}

static atomic_bool gate;

static long gated(void *opaque)
{
    (void)opaque;
    while (!atomic_load(&gate)) {
        usleep(200);
    }
    return 5;
}

ACTX_TEST("/req/complete-twice/pool-request-by-hand-while-running")
{
    struct cb_rec r = {0};
    actx_req *req = actx_submit(gated, count_done, &r);

    ASSERT_NOT_NULL(req);
    ASSERT_EQ(actx_req_complete(req, 1), -EINVAL);
    ASSERT_EQ(complete_from_thread(req, 1), -EINVAL);
    atomic_store(&gate, true);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r.runs, 1);
    ASSERT_EQ(r.ret, 5);
}

ACTX_TEST("/req/complete-twice/pool-request-by-hand-after")
{
    struct cb_rec r = {0};
    actx_req *req;

    atomic_store(&gate, true);
    req = actx_submit(gated, count_done, &r);
    ASSERT_NOT_NULL(req);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_NE(actx_req_complete(req, 1), 0);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r.runs, 1);
    ASSERT_EQ(r.ret, 5);
}

ACTX_TEST("/req/complete-twice/cancelled-then-by-hand")
{
    struct cb_rec r[2] = {{0}};
    actx_req *busy, *req;

    ASSERT_EQ(actx_pool_set_size(1), 0);
    busy = actx_submit(gated, count_done, &r[0]);
    req = actx_submit(gated, count_done, &r[1]);
    ASSERT_NOT_NULL(busy);
    ASSERT_NOT_NULL(req);
    ASSERT_EQ(actx_req_cancel(req), 0);
    ASSERT_EQ(actx_req_complete(req, 1), -EALREADY);
    atomic_store(&gate, true);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r[1].runs, 1);
    ASSERT_EQ(r[1].ret, -ECANCELED);
}
