/*
 * test-noloop.c - a thread whose loop cannot be created (every allocation
 * fails, inject.h): calls that need the loop report the documented error,
 * and calls that cannot fail by contract still give their answer.
 * Found by tests/fault (actx-fault --persist).
 */
#include "test.h"

#include "inject.h"

struct noloop {
    int id_before, push, id_after;
};

static void *noloop_main(void *arg)
{
    struct noloop *r = arg;

    inject_fail(&inject_alloc, INJECT_ALWAYS);
    r->id_before = actx_context_id();
    r->push = actx_push();
    r->id_after = actx_context_id();
    inject_fail(&inject_alloc, 0);
    return NULL;
}

/* It used to return -ENOMEM: the depth of a thread without a loop is 0. */
ACTX_TEST("/thread/no-loop/context-id-is-root")
{
    struct noloop r;

    thread_join(thread_start(noloop_main, &r));
    ASSERT_EQ(r.id_before, 0);
    ASSERT_LT(r.push, 0);
    ASSERT_EQ(r.id_after, 0);
    ASSERT_EQ(actx_context_id(), 0);
}
