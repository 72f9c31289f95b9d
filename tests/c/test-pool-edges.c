/*
 * test-pool-edges.c - the worker pool's edges (actx.h, actx_submit,
 * actx_pool_set_size): a malformed ACTX_POOL_THREADS is reported and
 * ignored; when no thread can be created at all, work is refused
 * (EAGAIN), never accepted to strand; work nobody else can run is run
 * inline by the blocked pool thread waiting for it (a cancelled job among
 * it never runs; one that leaves a context pushed has it popped, with a
 * diagnostic); what a work function leaves on its pool thread's loop (a
 * scheduled BH, a completed request) runs there between jobs, and a work function that shuts
 * that loop down leaves a pool thread that still serves nested waits;
 * exit() called by a work function ends the process (the pool's exit
 * hook does not wait for its own thread).
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

/* --- what a work function leaves behind ---------------------------------- */

static actx_bh *left_bh;
static struct cb_rec left_bh_rec, left_done_rec;
static pthread_t left_work_thread;

static void left_bh_fn(void *opaque)
{
    actx_bh_delete(left_bh);
    rec_fn(opaque);
}

/* Leaves a scheduled BH and a completed request on this pool thread's
 * loop, and returns without polling. */
static long leave_things(void *opaque)
{
    actx_req *req;

    (void)opaque;
    left_work_thread = pthread_self();
    left_bh = actx_bh_new(left_bh_fn, &left_bh_rec);
    ASSERT_NOT_NULL(left_bh);
    actx_bh_schedule(left_bh);
    req = actx_req_new(rec_done, &left_done_rec);
    ASSERT_NOT_NULL(req);
    ASSERT_EQ(actx_req_complete(req, 8), 0);
    return 1;
}

ACTX_TEST("/pool/worker/what-work-leaves-runs-on-its-thread")
{
    struct cb_rec r = {0}, r2 = {0};

    ASSERT_EQ(actx_pool_set_size(1), 0);
    ASSERT_NOT_NULL(actx_submit(leave_things, rec_done, &r));
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    /* The next job on the same (only) thread comes after the tidy-up. */
    ASSERT_NOT_NULL(actx_submit(val_work, rec_done, &r2));
    ASSERT_EQ(ACTX_WAIT_WHILE(r2.runs == 0), 0);
    ASSERT_EQ(left_bh_rec.runs, 1);
    ASSERT_THREAD_EQ(left_bh_rec.thread, left_work_thread);
    ASSERT_EQ(left_done_rec.runs, 1);
    ASSERT_EQ(left_done_rec.ret, 8);
    ASSERT_THREAD_EQ(left_done_rec.thread, left_work_thread);
}

static pthread_t shut_thread;
static struct cb_rec nested_rec;

static bool make_new_loop;

/* Shuts its pool thread's loop down; with make_new_loop, makes another. */
static long shut_own_loop(void *opaque)
{
    (void)opaque;
    shut_thread = pthread_self();
    actx_thread_shutdown();
    if (make_new_loop) {
        ASSERT_EQ(actx_thread_init(), 0);
    }
    return 2;
}

/* A nested wait on the same pool thread, after its loop was shut down. */
static long nested_after_shutdown(void *opaque)
{
    (void)opaque;
    ASSERT_THREAD_EQ(pthread_self(), shut_thread);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_NOT_NULL(actx_submit(val_work, rec_done, &nested_rec));
    ASSERT_EQ(ACTX_WAIT_WHILE(nested_rec.runs == 0), 0);
    ASSERT_EQ(actx_pop(), 0);
    return 3;
}

/* The pool thread serves a nested wait after the work before it shut its
 * loop down (and, with new_loop, made another). */
static void shut_then_nested_wait(bool new_loop)
{
    struct cb_rec r = {0};

    make_new_loop = new_loop;
    ASSERT_EQ(actx_pool_set_size(1), 0);
    ASSERT_NOT_NULL(actx_submit(shut_own_loop, rec_done, &r));
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    ASSERT_EQ(r.ret, 2);
    memset(&r, 0, sizeof(r));
    ASSERT_NOT_NULL(actx_submit(nested_after_shutdown, rec_done, &r));
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    ASSERT_EQ(r.ret, 3);
    ASSERT_EQ(nested_rec.runs, 1);
}

ACTX_TEST("/pool/worker/work-that-shuts-its-loop-down")
{
    shut_then_nested_wait(false);
}

ACTX_TEST("/pool/worker/work-that-replaces-its-loop")
{
    shut_then_nested_wait(true);
}

/* Shuts its pool thread's loop down, then waits for nested work on the
 * loop its next call makes: that loop must count the wait as blocked. */
static long shut_then_wait_in_new_loop(void *opaque)
{
    struct cb_rec r = {0};

    (void)opaque;
    actx_thread_shutdown();
    ASSERT_EQ(actx_push(), 1);
    ASSERT_NOT_NULL(actx_submit(val_work, rec_done, &r));
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    ASSERT_EQ(r.ret, (long)(intptr_t)&r);
    ASSERT_EQ(actx_pop(), 0);
    return 9;
}

/* With the only pool thread waiting, the nested job needs another thread
 * (or to run inline): a hang here is the pool not knowing of the wait. */
ACTX_TEST("/pool/worker/work-that-replaces-its-loop-and-waits-nested")
{
    struct cb_rec r = {0};

    ASSERT_EQ(actx_pool_set_size(1), 0);
    ASSERT_NOT_NULL(actx_submit(shut_then_wait_in_new_loop, rec_done, &r));
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    ASSERT_EQ(r.ret, 9);
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
