/*
 * test-pool-edges.c - the worker pool's edges (actx.h, actx_submit,
 * actx_pool_set_size): a malformed ACTX_POOL_THREADS is reported and
 * ignored; when no thread can be created at all, work is refused
 * (EAGAIN), never accepted to strand; work nobody else can run is run
 * inline by the blocked pool thread waiting for it (a cancelled job among
 * it never runs; one that leaves a context pushed has it popped, with a
 * diagnostic); exit() called by a work function ends the process (the
 * pool's exit hook does not wait for its own thread).
 */
#include "test.h"

#include "inject.h"

static long val_work(void *opaque)
{
    return (long)(intptr_t)opaque;
}

/* --- ACTX_POOL_THREADS ----------------------------------------------------- */

static atomic_int warnings;

static void count_warnings(int level, const char *msg, void *opaque)
{
    (void)opaque;
    if (level == ACTX_LOG_WARNING && strstr(msg, "ACTX_POOL_THREADS")) {
        atomic_fetch_add(&warnings, 1);
    }
}

struct env_case {
    const char *value;
    int size;     /* the size the pool must start with */
    int warnings; /* how many times the value is reported */
};

/* In a child: the size is fixed at the pool's first use. */
static void env_case_body(void *arg)
{
    struct env_case *c = arg;
    struct actx_pool_stats ps;
    struct cb_rec r = {0};

    setenv("ACTX_POOL_THREADS", c->value, 1);
    actx_set_log_handler(count_warnings, NULL);
    ASSERT_NOT_NULL(actx_submit(val_work, rec_done, &r));
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    actx_pool_stats(&ps);
    ASSERT_EQ(ps.size, c->size);
    ASSERT_EQ(atomic_load(&warnings), c->warnings);
    actx_thread_shutdown();
}

ACTX_TEST("/pool/size/environment-malformed-is-ignored")
{
    const char *bad[] = {"abc", "3x",   "0",
                         "-2",  "4097", "99999999999999999999999"};
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int dflt = cpus * 2 < 4 ? 4 : (int)(cpus * 2);
    struct env_case c;

    /* Empty is unset: the default, no complaint. */
    c = (struct env_case){"", dflt, 0};
    test_in_child(env_case_body, &c);
    c = (struct env_case){"3", 3, 0};
    test_in_child(env_case_body, &c);
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c = (struct env_case){bad[i], dflt, 1};
        test_in_child(env_case_body, &c);
    }
}

/* --- no thread at all ------------------------------------------------------ */

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
    ASSERT_NOT_NULL(actx_submit(val_work, rec_done, &r));
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    ASSERT_EQ(r.runs, 1);
}

/* --- stranded work run inline ---------------------------------------------- */

/*
 * outer runs on the only pool thread, which can get no company
 * (pthread_create fails from then on); what it submits and waits for
 * nobody else can run.  Returns outer's result.
 */
static long run_stranded(actx_work_fn *outer)
{
    struct cb_rec r = {0};

    ASSERT_EQ(actx_pool_set_size(1), 0);
    /* The first worker exists before thread creation starts failing. */
    ASSERT_NOT_NULL(actx_submit(val_work, rec_done, &r));
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    memset(&r, 0, sizeof(r));
    inject_fail(&inject_pthread_create, INJECT_ALWAYS);
    ASSERT_NOT_NULL(actx_submit(outer, rec_done, &r));
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    inject_fail(&inject_pthread_create, 0);
    ASSERT_EQ(r.runs, 1);
    return r.ret;
}

static struct cb_rec inner_b, inner_c;

/* Submit b and c, cancel b, wait for both: c runs inline on this thread,
 * b, cancelled, never runs (its done gets -ECANCELED). */
static long cancel_then_wait(void *opaque)
{
    actx_req *b;

    (void)opaque;
    ASSERT_EQ(actx_push(), 1);
    b = actx_submit(val_work, rec_done, &inner_b);
    ASSERT_NOT_NULL(b);
    ASSERT_NOT_NULL(actx_submit(val_work, rec_done, &inner_c));
    ASSERT_EQ(actx_req_cancel(b), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(inner_c.runs == 0 || inner_b.runs == 0), 0);
    ASSERT_EQ(inner_b.ret, -ECANCELED);
    ASSERT_THREAD_EQ(inner_c.thread, pthread_self());
    ASSERT_EQ(actx_pop(), 0);
    return 7;
}

ACTX_TEST("/pool/stranded/run-inline-cancelled-never-runs")
{
    ASSERT_EQ(run_stranded(cancel_then_wait), 7);
    ASSERT_EQ(inner_c.runs, 1);
    ASSERT_EQ(inner_b.runs, 1);
}

static struct cb_rec leaky_rec;
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

/* Wait for leaky_work, run inline here: the context it left is popped,
 * this one is current again. */
static long wait_for_leaky(void *opaque)
{
    (void)opaque;
    ASSERT_EQ(actx_push(), 1);
    ASSERT_NOT_NULL(actx_submit(leaky_work, rec_done, &leaky_rec));
    ASSERT_EQ(ACTX_WAIT_WHILE(leaky_rec.runs == 0), 0);
    ASSERT_THREAD_EQ(leaky_rec.thread, pthread_self());
    ASSERT_EQ(actx_context_id(), 1);
    ASSERT_EQ(actx_pop(), 0);
    return 6;
}

ACTX_TEST("/pool/stranded/inline-work-leaving-a-context-is-popped")
{
    actx_set_log_handler(count_misuse, NULL);
    ASSERT_EQ(run_stranded(wait_for_leaky), 6);
    ASSERT_EQ(leaky_rec.ret, 5);
    ASSERT_GE(atomic_load(&misuse_logs), 1);
}

/* --- exit() from a work function ------------------------------------------- */

static long exit_work(void *opaque)
{
    (void)opaque;
    exit(0);
}

static void submit_exit_work(void *arg)
{
    struct cb_rec r = {0};

    (void)arg;
    ASSERT_NOT_NULL(actx_submit(exit_work, rec_done, &r));
    ACTX_WAIT_WHILE(r.runs == 0);
    _exit(4); /* exit_work's exit() ends the process first */
}

ACTX_TEST("/pool/exit/exit-called-by-a-work-function")
{
    test_in_child(submit_exit_work, NULL);
}
