/*
 * test-refusals.c - what actx.h says is refused, and how: actx_submit,
 * actx_aio_* and actx_req_new called by a callback that runs while this
 * thread's runtime shuts down (EPIPE, none of their done callbacks ever
 * runs), actx_submit after the process's pool stopped at exit (EPIPE), at
 * the outstanding-request bound (EAGAIN).
 */
#include "test.h"

#include "actx-internal.h"

#define BS 4096

static long val_work(void *opaque)
{
    return (long)(intptr_t)opaque;
}

/* --- during shutdown ------------------------------------------------------ */

struct late {
    actx_bh *bh;
    int fd;
    char buf[BS];
    int runs;
    int errs[5];
    bool got[5];
};

static void late_done(void *opaque, long ret)
{
    (void)opaque;
    (void)ret;
    actx_test_fail(__FILE__, __LINE__, "a refused request's done ran");
}

/* A BH that runs in shutdown's last round: every new request is refused
 * with EPIPE. */
static void late_bh(void *opaque)
{
    struct late *l = opaque;
    actx_req *r[5];

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

/*
 * A fresh loop on the file I/O path io (ACTX_IO), with its ring already
 * made by an fsync when ring_made; then the late BH and the shutdown.
 */
static void refused_in_shutdown(const char *io, int backend, bool ring_made)
{
    struct late l = {.fd = test_temp_file(BS, 'r')};
    struct actx_stats st;

    setenv("ACTX_IO", io, 1);
    actx_thread_shutdown();
    ASSERT_EQ(actx_thread_init(), 0);
    unsetenv("ACTX_IO");
    actx_stats(&st);
    ASSERT_EQ(st.io_backend, backend);
    if (ring_made) {
        struct cb_rec r = {0};

        ASSERT_NOT_NULL(actx_aio_fsync(l.fd, rec_done, &r));
        ASSERT_EQ(actx_flush(), 0);
        ASSERT_EQ(r.ret, 0);
        ASSERT_NOT_NULL(actx__tls_loop->uring);
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

/* The cached pread of the pool path included (it used to be accepted and
 * its done never run). */
ACTX_TEST("/refuse/shutdown/new-work-in-a-last-callback-epipe")
{
    refused_in_shutdown("pool", 0, false);
}

ACTX_TEST("/refuse/shutdown/ring-loop-new-work-in-a-last-callback-epipe")
{
    refused_in_shutdown("io_uring", 1, true);
}

ACTX_TEST("/refuse/shutdown/ring-not-made-yet-epipe")
{
    refused_in_shutdown("io_uring", 1, false);
}

/* --- the outstanding-request bound --------------------------------------- */

/*
 * 1,048,576 outstanding requests (actx.h): the next submission is refused
 * with EAGAIN; below it, accepted again.  The count is set white-box: a
 * million real requests would only slow the suite.
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

static void use_pool_then_exit(void *arg)
{
    struct cb_rec r = {0};

    (void)arg;
    ASSERT_EQ(atexit(after_pool_stop), 0);
    ASSERT_NOT_NULL(actx_submit(val_work, rec_done, &r));
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    actx_thread_shutdown();
}

ACTX_TEST("/refuse/exit/submit-after-the-pool-stopped-epipe")
{
    test_in_child(use_pool_then_exit, NULL);
}
