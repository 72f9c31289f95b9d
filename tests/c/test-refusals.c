/*
 * test-refusals.c - what actx.h says is refused, and how: actx_submit,
 * actx_aio_* and actx_req_new called by a callback that runs while this
 * thread's runtime shuts down (EPIPE), actx_submit after the process's
 * pool stopped at exit (EPIPE), at the outstanding-request bound (EAGAIN);
 * and work nobody else can run is run by the blocked pool thread itself,
 * a cancelled job among it never.
 */
#include "test.h"

#include "actx-internal.h"
#include "inject.h"

#include <fcntl.h>
#include <sys/wait.h>

#define BS 4096

static long val_work(void *opaque)
{
    return (long)(intptr_t)opaque;
}

static int data_file(void)
{
    const char *dir = getenv("TMPDIR");
    char path[4096], b[BS];
    int fd;

    snprintf(path, sizeof(path), "%s/actx-refuse-XXXXXX",
             dir && *dir ? dir : "/tmp");
    fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    unlink(path);
    memset(b, 'r', sizeof(b));
    ASSERT_EQ(pwrite(fd, b, sizeof(b), 0), BS);
    return fd;
}

/* --- during shutdown ------------------------------------------------------ */

struct late {
    actx_bh *bh;
    int fd;
    char buf[BS];
    int runs;
    int errs[6];
    bool got[6];
};

static void late_done(void *opaque, long ret)
{
    (void)opaque;
    (void)ret;
    actx_test_fail(__FILE__, __LINE__, "a refused request's done ran");
}

/* A BH that runs in shutdown's last round: every new request is refused
 * with EPIPE, and none of their done callbacks ever runs. */
static void late_bh(void *opaque)
{
    struct late *l = opaque;
    actx_req *r[6];

    l->runs++;
    errno = 0;
    r[0] = actx_submit(val_work, late_done, NULL);
    l->errs[0] = errno;
    errno = 0;
    r[1] = actx_req_new(late_done, NULL);
    l->errs[1] = errno;
    errno = 0;
    r[2] = actx_aio_pread(l->fd, l->buf, BS, 0, late_done, NULL);
    l->errs[2] = errno;
    errno = 0;
    r[3] = actx_aio_pwrite(l->fd, l->buf, BS, 0, late_done, NULL);
    l->errs[3] = errno;
    errno = 0;
    r[4] = actx_aio_fsync(l->fd, late_done, NULL);
    l->errs[4] = errno;
    for (int i = 0; i < 5; i++) {
        l->got[i] = r[i] != NULL;
    }
    actx_bh_delete(l->bh);
}

static void refused_in_shutdown(bool ring_made)
{
    struct late l = {.fd = data_file()};

    if (ring_made) {
        /* The loop's ring exists (made by its first AIO). */
        struct cb_rec r = {0};

        ASSERT_NOT_NULL(actx_aio_fsync(l.fd, rec_done, &r));
        ASSERT_EQ(actx_flush(), 0);
        ASSERT_EQ(r.ret, 0);
    }
    l.bh = actx_bh_new(late_bh, &l);
    ASSERT_NOT_NULL(l.bh);
    actx_bh_schedule(l.bh);
    actx_thread_shutdown();
    ASSERT_EQ(l.runs, 1);
    for (int i = 0; i < 5; i++) {
        ASSERT_FALSE(l.got[i]);
        ASSERT_EQ(l.errs[i], EPIPE);
    }
    close(l.fd);
}

ACTX_TEST("/refuse/shutdown/new-work-in-a-last-callback-epipe")
{
    setenv("ACTX_IO", "pool", 1);
    actx_thread_shutdown();
    ASSERT_EQ(actx_thread_init(), 0);
    refused_in_shutdown(false);
    unsetenv("ACTX_IO");
}

ACTX_TEST("/refuse/shutdown/ring-loop-new-work-in-a-last-callback-epipe")
{
    struct actx_stats st;

    unsetenv("ACTX_IO");
    actx_thread_shutdown();
    ASSERT_EQ(actx_thread_init(), 0);
    actx_stats(&st);
    ASSERT_EQ(st.io_backend, 1);
    refused_in_shutdown(true);
}

ACTX_TEST("/refuse/shutdown/ring-not-made-yet-epipe")
{
    struct actx_stats st;

    unsetenv("ACTX_IO");
    actx_thread_shutdown();
    ASSERT_EQ(actx_thread_init(), 0);
    actx_stats(&st);
    ASSERT_EQ(st.io_backend, 1);
    refused_in_shutdown(false);
}

/* --- the outstanding-request bound --------------------------------------- */

/*
 * 1,048,576 outstanding requests (actx.h): the next submission is refused
 * with EAGAIN; below it, accepted again.  The count is
 * set white-box: a million real requests would only slow the suite.
 */
ACTX_TEST("/refuse/outstanding-limit/eagain-then-accepted")
{
    struct cb_rec r = {0};
    actx__loop *loop;
    long saved;

    ASSERT_EQ(actx_thread_init(), 0);
    loop = actx__tls_loop;
    saved = loop->st.outstanding;
    loop->st.outstanding = saved + (1L << 20);
    errno = 0;
    ASSERT_NULL(actx_submit(val_work, rec_done, &r));
    ASSERT_EQ(errno, EAGAIN);
    loop->st.outstanding = saved;
    ASSERT_NOT_NULL(actx_submit(val_work, rec_done, &r));
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    ASSERT_EQ(r.runs, 1);
    ASSERT_EQ(loop->st.outstanding, saved);
}

/* --- after the pool stopped at exit -------------------------------------- */

/* Registered before the pool starts, so it runs after the pool's own exit
 * hook: new work is refused with EPIPE, and nothing hangs. */
static void after_pool_stop(void)
{
    errno = 0;
    if (actx_submit(val_work, NULL, NULL) != NULL || errno != EPIPE) {
        fprintf(stderr, "actx_submit after the pool stopped: errno %d\n",
                errno);
        _exit(4);
    }
    actx_thread_shutdown();
}

ACTX_TEST("/refuse/exit/submit-after-the-pool-stopped-epipe")
{
    int status;
    pid_t pid;

    fflush(NULL);
    pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        struct cb_rec r = {0};

        atexit(after_pool_stop);
        if (!actx_submit(val_work, rec_done, (void *)&r) ||
            ACTX_WAIT_WHILE(r.runs == 0) != 0) {
            _exit(3);
        }
        actx_thread_shutdown();
        exit(0);
    }
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
}

/* --- stranded work run inline --------------------------------------------- */

static struct cb_rec inner_b, inner_c;
static atomic_int outer_ok;

/*
 * On the only pool thread, which can have no company (pthread_create
 * fails): submit b and c, cancel b, wait for c.  Nobody else can run c,
 * so this thread runs it inline in its wait; b, cancelled, never runs.
 */
static long stranded_outer(void *opaque)
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
    atomic_store(&outer_ok, 1);
    return 7;
}

ACTX_TEST("/refuse/stranded/run-inline-cancelled-never-runs")
{
    struct cb_rec outer = {0};

    ASSERT_EQ(actx_pool_set_size(1), 0);
    /* The first worker exists before thread creation starts failing. */
    ASSERT_NOT_NULL(actx_submit(val_work, rec_done, &outer));
    ASSERT_EQ(ACTX_WAIT_WHILE(outer.runs == 0), 0);
    memset(&outer, 0, sizeof(outer));
    inject_fail(&inject_pthread_create, INJECT_ALWAYS);
    ASSERT_NOT_NULL(actx_submit(stranded_outer, rec_done, &outer));
    ASSERT_EQ(ACTX_WAIT_WHILE(outer.runs == 0), 0);
    inject_fail(&inject_pthread_create, 0);
    ASSERT_EQ(outer.ret, 7);
    ASSERT_EQ(atomic_load(&outer_ok), 1);
    ASSERT_EQ(inner_c.runs, 1);
    ASSERT_EQ(inner_b.runs, 1);
}
