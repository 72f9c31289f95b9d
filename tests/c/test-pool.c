/*
 * test-pool.c - the worker pool (actx.h): submitted work runs on a pool
 * thread and its completion comes back exactly once, in the submitting
 * context (or the one it was re-homed to); completions of outer contexts
 * wait out a synchronous wait; cancellation is all-or-nothing; nested
 * submit-and-wait on every worker completes; a thread that exits with work
 * in flight has its completions refused and counted; the pool's size is
 * its concurrency; process exit does not hang on a stuck work function.
 */
#include "test.h"

#include "actx-internal.h" /* actx__pool_spins, the fixed window */

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

static double mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * One unit of work and what became of it: the value its work returns, how
 * often the work ran and where, how often done ran, with which ret, in
 * which context, on which thread, and when (global sequence).
 */
struct job {
    long val;
    pthread_t owner;
    atomic_int work_runs;
    bool work_on_owner;
    int done_runs;
    long ret;
    int ctx_id;
    bool done_on_owner;
    long seq;
};

static void job_init(struct job *j, long val)
{
    memset(j, 0, sizeof(*j));
    j->val = val;
    j->owner = pthread_self();
}

/* Work functions finished (seq_cst: what they wrote is visible after). */
static atomic_int works_finished;

static long job_work(void *opaque)
{
    struct job *j = opaque;
    long val = j->val;

    j->work_on_owner = pthread_equal(pthread_self(), j->owner);
    atomic_fetch_add(&j->work_runs, 1);
    atomic_fetch_add(&works_finished, 1); /* last touch of *j */
    return val;
}

static void job_done(void *opaque, long ret)
{
    struct job *j = opaque;

    j->done_runs++;
    j->ret = ret;
    j->ctx_id = actx_context_id();
    j->done_on_owner = pthread_equal(pthread_self(), j->owner);
    j->seq = test_next_seq();
}

/* --- 10,000 null jobs ---------------------------------------------------- */

ACTX_TEST_TIMEOUT("/pool/submit/10000-null-jobs-each-once", 120)
{
    enum { N = 10000 };
    struct job *j = calloc(N, sizeof(*j));
    struct actx_stats st;

    ASSERT_NOT_NULL(j);
    ASSERT_EQ(actx_push(), 1);
    for (long i = 0; i < N; i++) {
        job_init(&j[i], i * 3 + 1);
        ASSERT_NOT_NULL(actx_submit(job_work, job_done, &j[i]));
    }
    ASSERT_EQ(actx_flush(), 0);
    for (long i = 0; i < N; i++) {
        ASSERT_EQ(atomic_load(&j[i].work_runs), 1);
        ASSERT_EQ(j[i].done_runs, 1);
        ASSERT_EQ(j[i].ret, i * 3 + 1);
        ASSERT_EQ(j[i].ctx_id, 1);
        ASSERT_TRUE(j[i].done_on_owner);
        ASSERT_FALSE(j[i].work_on_owner);
    }
    actx_stats(&st);
    ASSERT_EQ(st.outstanding, 0);
    ASSERT_EQ(actx_pop(), 0);
    /* Nothing more arrives later. */
    ASSERT_EQ(actx_poll(false), 0);
    for (long i = 0; i < N; i++) {
        ASSERT_EQ(j[i].done_runs, 1);
    }
    free(j);
}

ACTX_TEST("/pool/submit/null-done-and-bad-args")
{
    struct job j;

    job_init(&j, 5);
    errno = 0;
    ASSERT_NULL(actx_submit(NULL, job_done, &j));
    ASSERT_EQ(errno, EINVAL);
    ASSERT_NOT_NULL(actx_submit(job_work, NULL, &j));
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(atomic_load(&j.work_runs), 1);
    ASSERT_EQ(j.done_runs, 0);
}

/* --- gates: work that waits until the test lets it go -------------------- */

static atomic_int gate_open;
static atomic_int gate_waiting;

static long gated_work(void *opaque)
{
    atomic_fetch_add(&gate_waiting, 1);
    while (!atomic_load(&gate_open)) {
        usleep(200);
    }
    return job_work(opaque);
}

static void wait_for_waiting(int n)
{
    double end = mono_s() + 20;

    while (atomic_load(&gate_waiting) < n) {
        ASSERT_LT(mono_s(), end);
        usleep(200);
    }
}

ACTX_TEST("/pool/submit/popped-child-completes-in-parent")
{
    struct job j;

    job_init(&j, 41);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_NOT_NULL(actx_submit(gated_work, job_done, &j));
    wait_for_waiting(1);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(j.done_runs, 0);
    atomic_store(&gate_open, 1);
    ASSERT_EQ(ACTX_WAIT_WHILE(j.done_runs == 0), 0);
    ASSERT_EQ(j.done_runs, 1);
    ASSERT_EQ(j.ctx_id, 0);
    ASSERT_EQ(j.ret, 41);
    ASSERT_TRUE(j.done_on_owner);
}

/* Still queued (not started) when the child is popped: the same. */
ACTX_TEST("/pool/submit/popped-child-queued-work-completes-in-parent")
{
    enum { N = 16 };
    struct job j[N];

    ASSERT_EQ(actx_pool_set_size(1), 0);
    ASSERT_EQ(actx_push(), 1);
    for (int i = 0; i < N; i++) {
        job_init(&j[i], i);
        ASSERT_NOT_NULL(actx_submit(gated_work, job_done, &j[i]));
    }
    wait_for_waiting(1);
    ASSERT_EQ(actx_pop(), 0);
    atomic_store(&gate_open, 1);
    ASSERT_EQ(actx_flush(), 0);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(j[i].done_runs, 1);
        ASSERT_EQ(j[i].ctx_id, 0);
        ASSERT_EQ(j[i].ret, i);
    }
}

/*
 * Parent work completes while a child waits synchronously for its own
 * request: the parent's completions are deferred, not run, and run after
 * the pop in the order they arrived.  One pool thread, so arrival order is
 * submission order (FIFO queue, one worker, and the child's job is behind
 * the parent's).
 */
ACTX_TEST("/pool/submit/parent-completions-wait-out-child-wait")
{
    enum { NP = 8 };
    struct job parent[NP], child;
    struct actx_stats st0, st1;

    ASSERT_EQ(actx_pool_set_size(1), 0);
    for (long i = 0; i < NP; i++) {
        job_init(&parent[i], 100 + i);
        ASSERT_NOT_NULL(actx_submit(gated_work, job_done, &parent[i]));
    }
    actx_stats(&st0);
    ASSERT_EQ(actx_push(), 1);
    job_init(&child, 7);
    ASSERT_NOT_NULL(actx_submit(gated_work, job_done, &child));
    atomic_store(&gate_open, 1);
    ASSERT_EQ(ACTX_WAIT_WHILE(child.done_runs == 0), 0);
    ASSERT_EQ(child.ret, 7);
    ASSERT_EQ(child.ctx_id, 1);
    /* Every parent job finished before the child's started. */
    for (int i = 0; i < NP; i++) {
        ASSERT_EQ(atomic_load(&parent[i].work_runs), 1);
        ASSERT_EQ(parent[i].done_runs, 0);
    }
    actx_stats(&st1);
    ASSERT_GE(st1.completions_deferred, st0.completions_deferred + NP);
    /* More polling in the child still runs none of them. */
    while (actx_poll(false)) {
    }
    for (int i = 0; i < NP; i++) {
        ASSERT_EQ(parent[i].done_runs, 0);
    }
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_flush(), 0);
    for (int i = 0; i < NP; i++) {
        ASSERT_EQ(parent[i].done_runs, 1);
        ASSERT_EQ(parent[i].ctx_id, 0);
        ASSERT_EQ(parent[i].ret, 100 + i);
        ASSERT_GT(parent[i].seq, child.seq);
        if (i > 0) {
            ASSERT_GT(parent[i].seq, parent[i - 1].seq);
        }
    }
}

/* --- cancellation -------------------------------------------------------- */

static long slow_work(void *opaque)
{
    usleep(200);
    return job_work(opaque);
}

ACTX_TEST_TIMEOUT("/pool/cancel/half-of-1000-slow-jobs", 120)
{
    enum { N = 1000 };
    struct job *j = calloc(N, sizeof(*j));
    actx_req **req = calloc(N, sizeof(*req));
    int *rc = calloc(N, sizeof(*rc));
    int ncancelled = 0, ncompleted = 0;

    ASSERT_NOT_NULL(j);
    ASSERT_NOT_NULL(req);
    ASSERT_NOT_NULL(rc);
    ASSERT_EQ(actx_push(), 1);
    for (int i = 0; i < N; i++) {
        job_init(&j[i], 1000 + i);
        req[i] = actx_submit(slow_work, job_done, &j[i]);
        ASSERT_NOT_NULL(req[i]);
    }
    /* Every other one, from the front: some have started, most not. */
    for (int i = 1; i < N; i += 2) {
        rc[i] = actx_req_cancel(req[i]);
        ASSERT_TRUE(rc[i] == 0 || rc[i] == -EBUSY);
        if (rc[i] == 0) {
            /* Cancelled but not yet delivered: a second cancel is busy. */
            ASSERT_EQ(actx_req_cancel(req[i]), -EBUSY);
            ASSERT_EQ(j[i].done_runs, 0); /* never inline */
        }
    }
    ASSERT_EQ(actx_flush(), 0);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(j[i].done_runs, 1);
        ASSERT_EQ(j[i].ctx_id, 1);
        if (rc[i] == 0 && (i & 1)) {
            ASSERT_EQ(j[i].ret, -ECANCELED);
            ASSERT_EQ(atomic_load(&j[i].work_runs), 0);
            ncancelled++;
        } else {
            ASSERT_EQ(j[i].ret, 1000 + i);
            ASSERT_EQ(atomic_load(&j[i].work_runs), 1);
            ncompleted++;
        }
    }
    ASSERT_EQ(ncancelled + ncompleted, N);
    ASSERT_GT(ncancelled, N / 4); /* most of the cancelled half was queued */
    ASSERT_EQ(actx_pop(), 0);
    free(j);
    free(req);
    free(rc);
}

/* A cancelled request of a popped child gets -ECANCELED in the parent. */
ACTX_TEST("/pool/cancel/rehomed")
{
    struct job blocker, j;
    actx_req *req;

    ASSERT_EQ(actx_pool_set_size(1), 0);
    job_init(&blocker, 1);
    job_init(&j, 2);
    ASSERT_NOT_NULL(actx_submit(gated_work, job_done, &blocker));
    ASSERT_EQ(actx_push(), 1);
    req = actx_submit(job_work, job_done, &j);
    ASSERT_NOT_NULL(req);
    wait_for_waiting(1); /* the only worker is busy: req is queued */
    ASSERT_EQ(actx_req_cancel(req), 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(j.done_runs, 0);
    atomic_store(&gate_open, 1);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(j.done_runs, 1);
    ASSERT_EQ(j.ret, -ECANCELED);
    ASSERT_EQ(j.ctx_id, 0);
    ASSERT_EQ(atomic_load(&j.work_runs), 0);
    ASSERT_EQ(blocker.ret, 1);
}

ACTX_TEST("/pool/cancel/started-or-finished-is-busy")
{
    struct job j;
    actx_req *req;

    job_init(&j, 3);
    req = actx_submit(gated_work, job_done, &j);
    ASSERT_NOT_NULL(req);
    wait_for_waiting(1);
    ASSERT_EQ(actx_req_cancel(req), -EBUSY); /* running */
    atomic_store(&gate_open, 1);
    while (atomic_load(&j.work_runs) == 0) {
        usleep(100);
    }
    usleep(1000);
    ASSERT_EQ(actx_req_cancel(req), -EBUSY); /* finished, not yet run */
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(j.ret, 3);
}

/* --- nested submit-and-wait on every pool thread at once ------------------ */

static atomic_int nested_arrived;
static atomic_int nested_ok;
static int nested_size;

static long nested_leaf(void *opaque)
{
    (void)opaque;
    return 7;
}

/* A synchronous nested wait, itself waiting on more nested work. */
static long nested_mid(void *opaque)
{
    struct job leaf;
    int id;

    (void)opaque;
    job_init(&leaf, 0);
    id = actx_push();
    if (id < 1) {
        return -1;
    }
    if (!actx_submit(nested_leaf, job_done, &leaf)) {
        return -2;
    }
    if (ACTX_WAIT_WHILE(leaf.done_runs == 0) != 0 || leaf.ret != 7 ||
        leaf.ctx_id != id || actx_pop() != 0) {
        return -3;
    }
    return 70;
}

static long nested_top(void *opaque)
{
    struct job mid;
    double end = mono_s() + 20;
    int n;

    (void)opaque;
    /* Wait until every pool thread runs one of these. */
    n = atomic_fetch_add(&nested_arrived, 1) + 1;
    while (n < nested_size && mono_s() < end) {
        usleep(200);
        n = atomic_load(&nested_arrived);
    }
    ASSERT_GE(n, nested_size);
    job_init(&mid, 0);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_NOT_NULL(actx_submit(nested_mid, job_done, &mid));
    ASSERT_EQ(ACTX_WAIT_WHILE(mid.done_runs == 0), 0);
    ASSERT_EQ(mid.ret, 70);
    ASSERT_EQ(mid.ctx_id, 1);
    ASSERT_TRUE(mid.done_on_owner);
    ASSERT_EQ(actx_pop(), 0);
    atomic_fetch_add(&nested_ok, 1);
    return 1;
}

static void nested_every_worker(int size, int n)
{
    struct job *j = calloc((size_t)n, sizeof(*j));

    ASSERT_NOT_NULL(j);
    nested_size = size;
    ASSERT_EQ(actx_pool_set_size(size), 0);
    for (int i = 0; i < n; i++) {
        job_init(&j[i], 0);
        ASSERT_NOT_NULL(actx_submit(nested_top, job_done, &j[i]));
    }
    ASSERT_EQ(actx_flush(), 0);
    for (int i = 0; i < n; i++) {
        ASSERT_EQ(j[i].done_runs, 1);
        ASSERT_EQ(j[i].ret, 1);
    }
    ASSERT_EQ(atomic_load(&nested_ok), n);
    free(j);
}

ACTX_TEST_TIMEOUT("/pool/nested/every-worker-at-once", 60)
{
    nested_every_worker(4, 4);
}

ACTX_TEST_TIMEOUT("/pool/nested/every-worker-many-times-over", 60)
{
    nested_every_worker(2, 32);
}

/* --- idle workers time out and retire ------------------------------------ */

/*
 * The pool's threads (named actx-pool-N): a sanitizer's own threads and
 * io_uring's kernel workers are not counted.
 */
static int count_pool_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    ASSERT_NOT_NULL(d);
    while ((e = readdir(d)) != NULL) {
        char path[300], comm[32] = "";
        FILE *f;

        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        f = fopen(path, "r");
        if (f) {
            if (!fgets(comm, sizeof(comm), f)) {
                comm[0] = 0;
            }
            fclose(f);
        }
        n += strncmp(comm, "actx-pool-", 10) == 0;
    }
    closedir(d);
    return n;
}

/* --- the spin before a worker sleeps (pool.c) -------------------------- */

/* n round trips with one job in flight; the spins they started. */
static unsigned long round_trip_spins(int n)
{
    unsigned long before = atomic_load(&actx__pool_spins);

    for (int i = 0; i < n; i++) {
        struct job j;

        job_init(&j, i);
        ASSERT_NOT_NULL(actx_submit(job_work, job_done, &j));
        while (j.done_runs == 0) {
            actx_poll(true);
        }
    }
    return atomic_load(&actx__pool_spins) - before;
}

/*
 * A worker that finished a job with the queue empty spins for the next
 * one only while a CPU is left for it: one for each other worker running
 * a job, one for a submitting loop.  Alone (and with two CPUs or more) it
 * is what makes a round trip with one job in flight cheap; beside running
 * jobs that take the other CPUs it would only take a CPU from them and
 * from the submitters; on one CPU it never spins.  The window is fixed at
 * 1 ms here so that nothing depends on how fast jobs come.
 */
ACTX_TEST_TIMEOUT("/pool/spin/only-while-a-cpu-is-left-for-it", 60)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int hold = cpus > 1 ? (int)cpus - 1 : 1; /* leaves the spinner no CPU */
    struct job *held = calloc((size_t)hold, sizeof(*held));

    ASSERT_NOT_NULL(held);
    /* The default size, max(4, 2 x CPUs), runs hold + 1 jobs at once. */
    atomic_store(&actx__pool_spin_fixed_ns, 1000000);
    if (cpus >= 2) {
        ASSERT_GT(round_trip_spins(100), 0);
    } else {
        ASSERT_EQ(round_trip_spins(100), 0);
    }

    for (int i = 0; i < hold; i++) {
        job_init(&held[i], i);
        ASSERT_NOT_NULL(actx_submit(gated_work, job_done, &held[i]));
    }
    wait_for_waiting(hold);
    ASSERT_EQ(round_trip_spins(100), 0);

    atomic_store(&gate_open, 1);
    ASSERT_EQ(actx_flush(), 0);
    atomic_store(&actx__pool_spin_fixed_ns, 0);
    free(held);
}

/*
 * Nested waits grow the pool beyond its size; once idle, the workers time
 * out of their idle wait and retire (those beyond the size after 200 ms)
 * until the size are left - those stay until 5 s idle, though all went
 * idle while the pool was beyond its size - and the pool still runs work
 * after (a worker woken from its idle wait, or a new one).
 */
ACTX_TEST_TIMEOUT("/pool/idle/workers-time-out-and-retire", 60)
{
    double idle, end;
    struct job j[16];

    nested_every_worker(2, 2);
    idle = mono_s(); /* every worker is idle from about now */
    ASSERT_GT(count_pool_threads(), 2); /* grown for the nested waits */
    end = idle + 20;
    while (count_pool_threads() > 2 && mono_s() < end) {
        usleep(10000);
    }
    ASSERT_LE(count_pool_threads(), 2);
    usleep(300000); /* past the 200 ms of any worker */
    /* Well before the 5 s (a machine this slow could not tell). */
    if (mono_s() - idle < 4.0) {
        ASSERT_EQ(count_pool_threads(), 2);
    }
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 16; i++) {
            job_init(&j[i], i + round);
            ASSERT_NOT_NULL(actx_submit(job_work, job_done, &j[i]));
        }
        ASSERT_EQ(actx_flush(), 0);
        for (int i = 0; i < 16; i++) {
            ASSERT_EQ(atomic_load(&j[i].work_runs), 1);
            ASSERT_EQ(j[i].done_runs, 1);
            ASSERT_EQ(j[i].ret, i + round);
        }
        usleep(20000); /* the workers go back to their idle wait */
    }
}

/* --- a thread exits with work in flight ---------------------------------- */

static struct job *exiting_jobs;

static void *submit_then_exit(void *arg)
{
    int n = (int)(intptr_t)arg;

    for (int i = 0; i < n; i++) {
        job_init(&exiting_jobs[i], i);
        ASSERT_NOT_NULL(actx_submit(gated_work, job_done, &exiting_jobs[i]));
    }
    /* Thread exit shuts its runtime down with n requests in flight. */
    return NULL;
}

ACTX_TEST_TIMEOUT("/pool/shutdown/thread-exits-with-1000-in-flight", 120)
{
    enum { N = 1000 };
    struct actx_stats st0, st;
    double end;

    exiting_jobs = calloc(N, sizeof(*exiting_jobs));
    ASSERT_NOT_NULL(exiting_jobs);
    actx_stats(&st0);
    thread_join(thread_start(submit_then_exit, (void *)(intptr_t)N));
    atomic_store(&gate_open, 1);
    end = mono_s() + 60;
    while (atomic_load(&works_finished) < N) {
        usleep(1000);
        ASSERT_LT(mono_s(), end);
    }
    do {
        usleep(1000);
        actx_stats(&st);
        ASSERT_LT(mono_s(), end);
    } while (st.posts_refused_all < st0.posts_refused_all + N);
    ASSERT_EQ(st.posts_refused_all, st0.posts_refused_all + N);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(atomic_load(&exiting_jobs[i].work_runs), 1);
        ASSERT_EQ(exiting_jobs[i].done_runs, 0);
    }
    free(exiting_jobs);
}

/* The same, with a thread that shuts down explicitly and sees its count. */
static void *submit_shutdown_count(void *arg)
{
    struct actx_stats st;
    double end = mono_s() + 60;
    int n = (int)(intptr_t)arg;

    for (int i = 0; i < n; i++) {
        job_init(&exiting_jobs[i], i);
        ASSERT_NOT_NULL(actx_submit(gated_work, job_done, &exiting_jobs[i]));
    }
    actx_thread_shutdown();
    atomic_store(&gate_open, 1);
    do {
        usleep(1000);
        actx_stats(&st);
        ASSERT_LT(mono_s(), end);
    } while (st.posts_refused < (unsigned long)n);
    ASSERT_EQ(st.posts_refused, n);
    return NULL;
}

ACTX_TEST_TIMEOUT("/pool/shutdown/refusals-counted-for-the-thread", 120)
{
    enum { N = 200 };

    exiting_jobs = calloc(N, sizeof(*exiting_jobs));
    ASSERT_NOT_NULL(exiting_jobs);
    thread_join(thread_start(submit_shutdown_count, (void *)(intptr_t)N));
    free(exiting_jobs);
}

/* --- size ---------------------------------------------------------------- */

static atomic_int conc_now, conc_max, conc_gate;
static double conc_deadline;

/*
 * Each job holds its worker until `conc_gate` jobs have run at once (or a
 * generous deadline passes), so the measured concurrency does not depend
 * on how fast the machine starts threads (valgrind, loaded CI machines).
 */
static long conc_work(void *opaque)
{
    int n = atomic_fetch_add(&conc_now, 1) + 1;
    int m = atomic_load(&conc_max);

    while (n > m && !atomic_compare_exchange_weak(&conc_max, &m, n)) {
    }
    while (atomic_load(&conc_max) < atomic_load(&conc_gate) &&
           mono_s() < conc_deadline) {
        usleep(1000);
    }
    usleep(5000);
    atomic_fetch_sub(&conc_now, 1);
    return job_work(opaque);
}

static int max_concurrency(int njobs, int gate)
{
    struct job *j = calloc((size_t)njobs, sizeof(*j));

    ASSERT_NOT_NULL(j);
    atomic_store(&conc_gate, gate);
    conc_deadline = mono_s() + 20;
    for (int i = 0; i < njobs; i++) {
        job_init(&j[i], i);
        ASSERT_NOT_NULL(actx_submit(conc_work, job_done, &j[i]));
    }
    ASSERT_EQ(actx_flush(), 0);
    for (int i = 0; i < njobs; i++) {
        ASSERT_EQ(j[i].ret, i);
    }
    free(j);
    return atomic_load(&conc_max);
}

ACTX_TEST("/pool/size/set-size-is-the-concurrency")
{
    ASSERT_EQ(actx_pool_set_size(0), -EINVAL);
    ASSERT_EQ(actx_pool_set_size(-3), -EINVAL);
    ASSERT_EQ(actx_pool_set_size(3), 0);
    ASSERT_EQ(max_concurrency(60, 3), 3);
    ASSERT_EQ(actx_pool_set_size(5), -EBUSY);
}

ACTX_TEST("/pool/size/environment")
{
    setenv("ACTX_POOL_THREADS", "2", 1);
    ASSERT_EQ(max_concurrency(40, 2), 2);
}

ACTX_TEST("/pool/size/default-is-at-least-4")
{
    unsetenv("ACTX_POOL_THREADS");
    ASSERT_GE(max_concurrency(80, 4), 4);
}

/* --- process exit -------------------------------------------------------- */

static long stuck_work(void *opaque)
{
    (void)opaque;
    atomic_fetch_add(&gate_waiting, 1);
    for (;;) {
        pause();
    }
    return 0;
}

/*
 * exit() with a work function stuck forever and more work queued: the
 * pool's exit hook cancels the queue, waits a bounded time, detaches the
 * stuck worker, and the process ends.
 */
ACTX_TEST("/pool/exit/stuck-work-does-not-hang-exit")
{
    double t0 = mono_s();
    int status;
    pid_t pid;

    fflush(NULL);
    pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        struct job j[8];

        ASSERT_EQ(actx_pool_set_size(1), 0);
        for (int i = 0; i < 8; i++) {
            job_init(&j[i], i);
            if (!actx_submit(i == 0 ? stuck_work : job_work, job_done, &j[i])) {
                _exit(3);
            }
        }
        wait_for_waiting(1);
        exit(0);
    }
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    ASSERT_LT(mono_s() - t0, 15);
}

/* Ordinary exit with idle workers joins them promptly. */
ACTX_TEST("/pool/exit/idle-workers-joined")
{
    double t0 = mono_s();
    int status;
    pid_t pid;

    fflush(NULL);
    pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        struct job j;

        job_init(&j, 9);
        if (!actx_submit(job_work, job_done, &j) || actx_flush() != 0 ||
            j.ret != 9) {
            _exit(3);
        }
        exit(0);
    }
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    /* Well under the 2 s a running job gets (valgrind: scale 20). */
    ASSERT_LT(mono_s() - t0,
              1.5 * test_env_double("ACTX_TEST_TIMEOUT_SCALE", 1.0));
}
