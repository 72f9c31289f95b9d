/*
 * embed-work.h - the actx work that examples/embed-glib.c and
 * examples/embed-libuv.c run inside their host loops, and its checks.
 *
 * work_start() sets up, on the calling (owner) thread:
 *   - a pool job (actx_submit) whose completion runs in the root context;
 *   - a cross-thread call: another thread posts with actx_ctx_call();
 *   - a timer, 20 ms out, which must not fire early;
 *   - in the timer's callback, a synchronous wait in a private context:
 *     actx_push(), a pool job, ACTX_WAIT_WHILE(), actx_pop().  A BH of the
 *     root context scheduled just before the push must not run during the
 *     wait, and must run after the pop.
 * The host loop runs until work_finished(); work_report() prints what
 * happened and returns the exit status (0 if every check held).
 */
#ifndef EMBED_WORK_H
#define EMBED_WORK_H

#include <actx.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

#define WORK_MS 1000000ULL

static struct {
    pthread_t owner, caller;
    actx_ctx *root;
    actx_timer *timer;
    actx_bh *outer_bh;
    uint64_t timer_deadline;
    long job_result, nested_result;
    bool job_done, call_done, timer_done, nested_done, outer_bh_done;
    int failures;
} w;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            w.failures++;                                                      \
        }                                                                      \
    } while (0)

/* Callbacks run on the owner thread, in the context they belong to. */
static void on_owner_in(int ctx)
{
    CHECK(pthread_equal(pthread_self(), w.owner));
    CHECK(actx_context_id() == ctx);
}

static long sum_to(void *opaque)
{
    long n = (long)(intptr_t)opaque, s = 0;

    for (long i = 1; i <= n; i++) {
        s += i;
    }
    return s; /* on a pool thread */
}

static void job_done(void *opaque, long ret)
{
    (void)opaque;
    on_owner_in(0);
    w.job_result = ret;
    w.job_done = true;
}

static void call_fn(void *opaque)
{
    (void)opaque;
    on_owner_in(0);
    w.call_done = true;
}

static void *caller_main(void *arg)
{
    (void)arg;
    CHECK(actx_ctx_call(w.root, call_fn, NULL) == 0);
    return NULL;
}

static void outer_bh_fn(void *opaque)
{
    (void)opaque;
    on_owner_in(0);
    CHECK(w.nested_done); /* held back until after the pop */
    w.outer_bh_done = true;
}

static void nested_done(void *opaque, long ret)
{
    (void)opaque;
    on_owner_in(1);
    w.nested_result = ret;
}

static void timer_fn(void *opaque)
{
    (void)opaque;
    on_owner_in(0);
    CHECK(actx_now_ns() >= w.timer_deadline);
    w.timer_done = true;

    /* A synchronous wait inside a callback, in a private context. */
    actx_bh_schedule(w.outer_bh); /* belongs to the root context */
    CHECK(actx_push() == 1);
    CHECK(actx_submit(sum_to, nested_done, (void *)(intptr_t)1000) != NULL);
    CHECK(ACTX_WAIT_WHILE(w.nested_result == 0) == 0);
    CHECK(!w.outer_bh_done); /* the root's BH did not run in the wait */
    w.nested_done = true;
    CHECK(actx_pop() == 0);
}

static void work_start(void)
{
    w.owner = pthread_self();
    w.root = actx_ctx_current();
    w.outer_bh = actx_bh_new(outer_bh_fn, NULL);
    CHECK(actx_submit(sum_to, job_done, (void *)(intptr_t)100000) != NULL);
    CHECK(pthread_create(&w.caller, NULL, caller_main, NULL) == 0);
    w.timer = actx_timer_new(timer_fn, NULL);
    w.timer_deadline = actx_now_ns() + 20 * WORK_MS;
    actx_timer_mod(w.timer, w.timer_deadline);
}

static bool work_finished(void)
{
    return w.job_done && w.call_done && w.timer_done && w.outer_bh_done;
}

static int work_report(const char *host)
{
    struct actx_stats st;

    pthread_join(w.caller, NULL);
    actx_stats(&st);
    CHECK(w.job_result == 100000L * 100001L / 2);
    CHECK(w.nested_result == 1000L * 1001L / 2);
    printf("%s: pool job %ld, cross-thread call, timer and a nested "
           "wait (%ld) ran from the %s loop; %lu completions, %lu wake-ups, "
           "%d failed checks\n",
           host, w.job_result, w.nested_result, host, st.completions_run,
           st.wakeups, w.failures);
    actx_timer_free(w.timer);
    actx_bh_delete(w.outer_bh);
    actx_ctx_unref(w.root);
    actx_thread_shutdown();
    return w.failures == 0 && work_finished() ? 0 : 1;
}

#endif /* EMBED_WORK_H */
