/*
 * test-misuse-caught.c - misuse that used to read freed memory, abort or
 * overflow is reported instead: double actx_bh_delete / actx_timer_free
 * (debug and sanitizer builds keep freed objects in quarantine, marked
 * dead), one actx_ctx_unref too many (an error; an abort with a message in
 * debug, asan and tsan builds, which define ACTX_DEBUG for the runtime and
 * the tests alike; reported and undone in a release build),
 * actx_strerror(INT_MIN).
 */
#include "test.h"

#include <signal.h>
#include <sys/wait.h>

ACTX_TEST("/misuse/bh/delete-twice")
{
    struct cb_rec r = {0};
    actx_bh *bh = actx_bh_new(rec_fn, &r);
    struct actx_stats st;

    ASSERT_NOT_NULL(bh);
    actx_bh_schedule(bh);
    actx_bh_delete(bh);
    actx_bh_delete(bh); /* reported, nothing changes */
    actx_stats(&st);
    ASSERT_EQ(st.live_bhs, 0);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(r.runs, 0);
    ASSERT_FALSE(actx_can_progress());
}

ACTX_TEST("/misuse/bh/delete-twice-after-remote-schedule")
{
    struct cb_rec r = {0};
    actx_bh *bh = actx_bh_new(rec_fn, &r);

    ASSERT_NOT_NULL(bh);
    thread_join(later_schedule(bh, 0, 0)); /* in the mailbox */
    actx_bh_delete(bh);
    actx_bh_delete(bh);
    ASSERT_EQ(actx_poll(false), 0); /* the drain frees it */
    actx_bh_delete(bh);
    ASSERT_EQ(r.runs, 0);
}

ACTX_TEST("/misuse/timer/free-twice")
{
    struct cb_rec r = {0};
    actx_timer *t = actx_timer_new(rec_fn, &r);

    ASSERT_NOT_NULL(t);
    actx_timer_mod(t, 0);
    actx_timer_free(t);
    actx_timer_free(t); /* reported, nothing changes */
    actx_timer_mod(t, 0);
    actx_timer_del(t);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(r.runs, 0);
    ASSERT_FALSE(actx_can_progress());
}

/* Run fn in a child; it must die of SIGABRT. */
/*
 * fn misuses the API in a child: debug builds must stop it with SIGABRT,
 * a release build must report the misuse and go on (the child exits 0).
 */
static void expect_misuse_stops_debug(void (*fn)(void))
{
    int status;
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        fn();
        _exit(0);
    }
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
#ifdef ACTX_DEBUG
    ASSERT_TRUE(WIFSIGNALED(status));
    ASSERT_EQ(WTERMSIG(status), SIGABRT);
#else
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
#endif
}

static void over_unref_live(void)
{
    actx_ctx *h = actx_ctx_current();

    actx_ctx_unref(h);
    actx_ctx_unref(h);
}

ACTX_TEST("/misuse/ctx/unref-too-often")
{
    expect_misuse_stops_debug(over_unref_live);
    /* This process was untouched: its own handles still work. */
    actx_ctx *h = actx_ctx_current();

    ASSERT_NOT_NULL(h);
    actx_ctx_unref(h);
}

static actx_ctx *exited_handle;

static void *take_handle_and_exit(void *arg)
{
    (void)arg;
    ASSERT_EQ(actx_push(), 1);
    exited_handle = actx_ctx_current();
    return NULL;
}

static void over_unref_exited(void)
{
    thread_join(thread_start(take_handle_and_exit, NULL));
    ASSERT_EQ(actx_ctx_call(exited_handle, rec_fn, NULL), -EPIPE);
    actx_ctx_unref(exited_handle); /* the last one: freed */
    actx_ctx_unref(exited_handle);
}

ACTX_TEST("/misuse/ctx/unref-too-often-after-owner-exit")
{
    expect_misuse_stops_debug(over_unref_exited);
}

ACTX_TEST("/misuse/strerror/int-min")
{
    ASSERT_NOT_NULL(actx_strerror(INT_MIN));
    ASSERT_NOT_NULL(actx_strerror(-INT_MAX));
    ASSERT_TRUE(strcmp(actx_strerror(-EPIPE), strerror(EPIPE)) == 0);
}
