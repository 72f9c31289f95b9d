/*
 * test-pool-edges.c - the worker pool's edges (actx.h, actx_submit): a
 * malformed ACTX_POOL_THREADS is reported and ignored; when no thread can
 * be created at all, work is refused (EAGAIN), never accepted to strand;
 * a job run inline by a blocked pool thread that leaves a context pushed
 * has it popped, with a diagnostic; exit() called by a work function ends
 * the process (the pool's exit hook does not wait for its own thread).
 */
#include "test.h"

#include "inject.h"

#include <sys/wait.h>

static long val_work(void *opaque)
{
    return (long)(intptr_t)opaque;
}

static atomic_int warnings;

static void count_warnings(int level, const char *msg, void *opaque)
{
    (void)opaque;
    if (level == ACTX_LOG_WARNING && strstr(msg, "ACTX_POOL_THREADS")) {
        atomic_fetch_add(&warnings, 1);
    }
}

/* In a child process (the pool's size is fixed at its first use): the
 * pool started with ACTX_POOL_THREADS=value; its size and the warnings. */
static void size_with_env(const char *value, int *size, int *errs)
{
    int status, p[2];
    pid_t pid;

    ASSERT_EQ(pipe(p), 0);
    fflush(NULL);
    pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        struct actx_pool_stats ps;
        struct cb_rec r = {0};
        int out[2];

        close(p[0]);
        setenv("ACTX_POOL_THREADS", value, 1);
        actx_set_log_handler(count_warnings, NULL);
        if (!actx_submit(val_work, rec_done, &r) ||
            ACTX_WAIT_WHILE(r.runs == 0) != 0) {
            _exit(3);
        }
        actx_pool_stats(&ps);
        out[0] = ps.size;
        out[1] = atomic_load(&warnings);
        if (write(p[1], out, sizeof(out)) != sizeof(out)) {
            _exit(4);
        }
        actx_thread_shutdown();
        exit(0);
    }
    close(p[1]);
    {
        int in[2];

        ASSERT_EQ(read(p[0], in, sizeof(in)), sizeof(in));
        *size = in[0];
        *errs = in[1];
    }
    close(p[0]);
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
}

ACTX_TEST("/pool/size/environment-malformed-is-ignored")
{
    const char *bad[] = {"abc", "3x",   "0",
                         "-2",  "4097", "99999999999999999999999"};
    int dflt, size, errs;

    /* Empty is unset: the default size, no complaint. */
    size_with_env("", &dflt, &errs);
    ASSERT_GE(dflt, 4);
    ASSERT_EQ(errs, 0);
    size_with_env("3", &size, &errs);
    ASSERT_EQ(size, 3);
    ASSERT_EQ(errs, 0);
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_with_env(bad[i], &size, &errs);
        ASSERT_EQ(size, dflt);
        ASSERT_EQ(errs, 1);
    }
}

/* No pool thread exists and none can be created: refused, nothing
 * accepted that would never run; once threads can start, accepted. */
ACTX_TEST("/pool/submit/no-thread-can-start-eagain")
{
    struct cb_rec r = {0};

    inject_fail(&inject_pthread_create, INJECT_ALWAYS);
    errno = 0;
    ASSERT_NULL(actx_submit(val_work, rec_done, &r));
    ASSERT_EQ(errno, EAGAIN);
    ASSERT_GE(inject_pthread_create_hits, 1);
    inject_fail(&inject_pthread_create, 0);
    ASSERT_NOT_NULL(actx_submit(val_work, rec_done, (void *)&r));
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    ASSERT_EQ(r.runs, 1);
}

/* --- inline work that leaves a context pushed ---------------------------- */

static struct cb_rec leaky_rec;
static atomic_int outer_depth_after;
static atomic_int misuse_logs;

static void count_misuse(int level, const char *msg, void *opaque)
{
    (void)opaque;
    if (level == ACTX_LOG_ERROR && strstr(msg, "context still pushed")) {
        atomic_fetch_add(&misuse_logs, 1);
    }
}

static long leaky_work(void *opaque)
{
    (void)opaque;
    ASSERT_GT(actx_push(), 0); /* and never popped */
    return 5;
}

/* The only pool thread, which can get no company, waits for leaky_work:
 * it runs it inline; the context leaky_work left is popped. */
static long blocked_outer(void *opaque)
{
    int depth;

    (void)opaque;
    depth = actx_push();
    ASSERT_EQ(depth, 1);
    ASSERT_NOT_NULL(actx_submit(leaky_work, rec_done, &leaky_rec));
    ASSERT_EQ(ACTX_WAIT_WHILE(leaky_rec.runs == 0), 0);
    ASSERT_THREAD_EQ(leaky_rec.thread, pthread_self());
    atomic_store(&outer_depth_after, actx_context_id());
    ASSERT_EQ(actx_pop(), 0);
    return 6;
}

ACTX_TEST("/pool/stranded/inline-work-leaving-a-context-is-popped")
{
    struct cb_rec outer = {0};

    actx_set_log_handler(count_misuse, NULL);
    ASSERT_EQ(actx_pool_set_size(1), 0);
    ASSERT_NOT_NULL(actx_submit(val_work, rec_done, &outer));
    ASSERT_EQ(ACTX_WAIT_WHILE(outer.runs == 0), 0);
    memset(&outer, 0, sizeof(outer));
    inject_fail(&inject_pthread_create, INJECT_ALWAYS);
    ASSERT_NOT_NULL(actx_submit(blocked_outer, rec_done, &outer));
    ASSERT_EQ(ACTX_WAIT_WHILE(outer.runs == 0), 0);
    inject_fail(&inject_pthread_create, 0);
    ASSERT_EQ(outer.ret, 6);
    ASSERT_EQ(leaky_rec.ret, 5);
    ASSERT_EQ(atomic_load(&outer_depth_after), 1);
    ASSERT_GE(atomic_load(&misuse_logs), 1);
}

/* --- exit() from a work function ----------------------------------------- */

static long exit_work(void *opaque)
{
    (void)opaque;
    exit(0);
}

ACTX_TEST("/pool/exit/exit-called-by-a-work-function")
{
    int status;
    pid_t pid;

    fflush(NULL);
    pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        struct cb_rec r = {0};

        if (!actx_submit(exit_work, rec_done, &r)) {
            _exit(3);
        }
        ACTX_WAIT_WHILE(r.runs == 0);
        _exit(4); /* exit_work's exit() ends the process first */
    }
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
}
