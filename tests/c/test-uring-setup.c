/*
 * test-uring-setup.c - when io_uring cannot be had, file AIO goes to the
 * worker pool with the same results (runtime/src/aio-uring.c: the
 * process-wide probe, uring_usable; a loop's own ring, ring_setup).
 * Errors that say "never" (ENOSYS, EPERM, EINVAL, EACCES from the probe;
 * ENOSYS, EPERM, EACCES from a loop's ring; a kernel without an operation
 * the ring path needs) stick for the process; others (EMFILE, ENOMEM, a
 * refused epoll registration) only for the loop that met them: the next
 * loop asks again.  Faults come from tests/support/inject.h.
 */
#include "test.h"

#include "actx-internal.h"
#include "inject.h"

#include <linux/io_uring.h>
#include <sys/epoll.h>
#include <sys/wait.h>

#define BS 4096

/* A fresh loop (ACTX_IO unset) and the backend it chose. */
static int fresh_loop(void)
{
    struct actx_stats st;

    unsetenv("ACTX_IO");
    actx_thread_shutdown();
    ASSERT_EQ(actx_thread_init(), 0);
    actx_stats(&st);
    return st.io_backend;
}

/* A write, an fsync and a read back on this loop, all with the results
 * the contract gives; returns the backend the loop ended on. */
static int round_trip(void)
{
    struct cb_rec w = {0}, s = {0}, r = {0};
    struct actx_stats st;
    char out[BS], in[BS];
    int fd = test_temp_file(BS, 'd');

    memset(out, 'x', sizeof(out));
    ASSERT_NOT_NULL(actx_aio_pwrite(fd, out, BS, 0, rec_done, &w));
    ASSERT_NOT_NULL(actx_aio_fsync(fd, rec_done, &s));
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_NOT_NULL(actx_aio_pread(fd, in, BS, 0, rec_done, &r));
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(w.runs, 1);
    ASSERT_EQ(w.ret, BS);
    ASSERT_EQ(s.runs, 1);
    ASSERT_EQ(s.ret, 0);
    ASSERT_EQ(r.runs, 1);
    ASSERT_EQ(r.ret, BS);
    ASSERT_EQ(memcmp(in, out, BS), 0);
    close(fd);
    actx_stats(&st);
    if (st.io_backend == 0) {
        ASSERT_NULL(actx__tls_loop->uring);
    } else {
        ASSERT_NOT_NULL(actx__tls_loop->uring);
    }
    return st.io_backend;
}

/* The probe fails with err: the pool; for good if sticky, else the next
 * loop uses the ring. */
static void probe_refused(int err, bool sticky)
{
    inject_uring_probe_errno = err;
    inject_fail(&inject_uring_probe, 1);
    ASSERT_EQ(fresh_loop(), 0);
    ASSERT_EQ(round_trip(), 0);
    ASSERT_EQ(fresh_loop(), sticky ? 0 : 1);
    ASSERT_EQ(round_trip(), sticky ? 0 : 1);
}

ACTX_TEST("/uring/setup/probe-enosys-pool-for-good")
{
    probe_refused(ENOSYS, true);
}

ACTX_TEST("/uring/setup/probe-eperm-pool-for-good")
{
    probe_refused(EPERM, true);
}

ACTX_TEST("/uring/setup/probe-einval-pool-for-good")
{
    probe_refused(EINVAL, true);
}

ACTX_TEST("/uring/setup/probe-eacces-pool-for-good")
{
    probe_refused(EACCES, true);
}

ACTX_TEST("/uring/setup/probe-emfile-next-loop-asks-again")
{
    probe_refused(EMFILE, false);
}

/*
 * The process's first loop probes io_uring.  A ring closed by a thread
 * makes the kernel run work on that thread later (task_work), which ends
 * a sleep of it in epoll_wait with EINTR; a probe on the loop's own thread
 * made that thread's first blocking wait return -EINTR tens of
 * milliseconds in, with no signal.  No signal is sent here: the wait must
 * end by its timeout.  A fork child probes on its own thread (see
 * uring_usable), and every test runs in one: the check runs in a fresh
 * process, this program exec'd with -n and FRESH_ENV set.
 */
#define FRESH_ENV "ACTX_TEST_FRESH_PROCESS"
#define FRESH_TEST "/uring/setup/probe-leaves-the-first-sleep-alone"

ACTX_TEST(FRESH_TEST)
{
    struct cb_rec rec = {0};
    actx_req *req;
    pid_t pid;
    int status;

    if (!getenv(FRESH_ENV)) {
        if (under_valgrind()) {
            /* Under valgrind (test:valgrind runs the suite again) a
             * child cannot exec a fresh copy of this program: the
             * check is the other runs' (debug, asan, tsan). */
            return;
        }
        pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            setenv(FRESH_ENV, "1", 1);
            execl(test_argv0, test_argv0, "-n", FRESH_TEST, (char *)NULL);
            _exit(127);
        }
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status));
        ASSERT_EQ(WEXITSTATUS(status), 0);
        return;
    }
    fresh_loop(); /* the first loop of this process: it probes */
    req = actx_req_new(rec_done, &rec);
    ASSERT_NOT_NULL(req);
    ASSERT_EQ(actx_poll_timeout(300 * 1000 * 1000), -ETIMEDOUT);
    ASSERT_EQ(actx_req_complete(req, 7), 0);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ret, 7);
}

/* A kernel that has io_uring but lacks what the ring path needs: the pool
 * for good. */
static void old_kernel(int what)
{
    inject_uring_old_kernel = what;
    ASSERT_EQ(fresh_loop(), 0);
    ASSERT_EQ(round_trip(), 0);
    inject_uring_old_kernel = -1;
    ASSERT_EQ(fresh_loop(), 0);
}

ACTX_TEST("/uring/setup/old-kernel/no-probe")
{
    old_kernel(INJECT_NO_PROBE);
}

ACTX_TEST("/uring/setup/old-kernel/no-read")
{
    old_kernel(IORING_OP_READ);
}

ACTX_TEST("/uring/setup/old-kernel/no-write")
{
    old_kernel(IORING_OP_WRITE);
}

ACTX_TEST("/uring/setup/old-kernel/no-fsync")
{
    old_kernel(IORING_OP_FSYNC);
}

ACTX_TEST("/uring/setup/old-kernel/no-async-cancel")
{
    old_kernel(IORING_OP_ASYNC_CANCEL);
}

ACTX_TEST("/uring/setup/old-kernel/no-nop")
{
    old_kernel(IORING_OP_NOP);
}

ACTX_TEST("/uring/setup/old-kernel/no-nodrop")
{
    old_kernel(INJECT_NO_NODROP);
}

/* The probe passed; the loop's own ring (made at its first AIO) fails
 * with err: that loop's AIO goes to the pool; the next loop uses the ring
 * unless err says never. */
static void ring_refused(int err, bool sticky)
{
    ASSERT_EQ(fresh_loop(), 1);
    inject_uring_setup_errno = err;
    inject_fail(&inject_uring_setup, 1);
    ASSERT_EQ(round_trip(), 0);
    ASSERT_EQ(inject_uring_setup_hits, 1);
    ASSERT_EQ(fresh_loop(), sticky ? 0 : 1);
    ASSERT_EQ(round_trip(), sticky ? 0 : 1);
}

ACTX_TEST("/uring/setup/ring-enosys-pool-for-good")
{
    ring_refused(ENOSYS, true);
}

ACTX_TEST("/uring/setup/ring-eperm-pool-for-good")
{
    ring_refused(EPERM, true);
}

ACTX_TEST("/uring/setup/ring-eacces-pool-for-good")
{
    ring_refused(EACCES, true);
}

ACTX_TEST("/uring/setup/ring-enomem-next-loop-asks-again")
{
    ring_refused(ENOMEM, false);
}

/* A kernel before 5.18 refuses IORING_SETUP_SUBMIT_ALL with EINVAL: the
 * ring is made again without it, and used. */
ACTX_TEST("/uring/setup/ring-einval-retried-without-new-flags")
{
    ASSERT_EQ(fresh_loop(), 1);
    inject_uring_setup_errno = EINVAL;
    inject_fail(&inject_uring_setup, 1);
    ASSERT_EQ(round_trip(), 1);
    ASSERT_EQ(inject_uring_setup_hits, 1);
}

/* The ring cannot join the loop's epoll set: that loop uses the pool. */
ACTX_TEST("/uring/setup/ring-not-in-epoll-set-pool-for-this-loop")
{
    ASSERT_EQ(fresh_loop(), 1);
    inject_epoll_ctl_op = EPOLL_CTL_ADD;
    inject_fail(&inject_epoll_ctl, 1);
    ASSERT_EQ(round_trip(), 0);
    ASSERT_EQ(inject_epoll_ctl_hits, 1);
    ASSERT_EQ(fresh_loop(), 1);
    ASSERT_EQ(round_trip(), 1);
}

/* The per-fd "is it seekable" cache grows for an fd number past its
 * first size: a read there is right, and stays on the ring. */
ACTX_TEST("/uring/setup/seek-cache-grows-for-a-large-fd")
{
    int fd = test_temp_file(BS, 'd');
    struct cb_rec r = {0};
    char in[BS] = {0};

    ASSERT_EQ(fresh_loop(), 1);
    ASSERT_EQ(dup2(fd, 300), 300);
    ASSERT_NOT_NULL(actx_aio_pread(300, in, BS, 0, rec_done, &r));
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r.runs, 1);
    ASSERT_EQ(r.ret, BS);
    ASSERT_EQ(in[0], 'd');
    ASSERT_NOT_NULL(actx__tls_loop->uring);
    close(300);
    close(fd);
}

static atomic_int bad_env_logs;

static void count_bad_env(int level, const char *msg, void *opaque)
{
    (void)opaque;
    if (level == ACTX_LOG_ERROR && strstr(msg, "ACTX_IO")) {
        atomic_fetch_add(&bad_env_logs, 1);
    }
}

/* ACTX_IO: "uring", "io_uring" or empty mean the default (the ring);
 * anything but those and "pool" is reported and ignored. */
ACTX_TEST("/uring/setup/actx-io-values")
{
    const char *ring[] = {"uring", "io_uring", "", "bogus"};
    struct actx_stats st;

    actx_set_log_handler(count_bad_env, NULL);
    for (unsigned i = 0; i < sizeof(ring) / sizeof(ring[0]); i++) {
        setenv("ACTX_IO", ring[i], 1);
        actx_thread_shutdown();
        ASSERT_EQ(actx_thread_init(), 0);
        actx_stats(&st);
        ASSERT_EQ(st.io_backend, 1);
        ASSERT_EQ(round_trip(), 1);
        ASSERT_EQ(atomic_load(&bad_env_logs), i == 3 ? 1 : 0);
    }
    setenv("ACTX_IO", "pool", 1);
    actx_thread_shutdown();
    ASSERT_EQ(actx_thread_init(), 0);
    actx_stats(&st);
    ASSERT_EQ(st.io_backend, 0);
    ASSERT_EQ(round_trip(), 0);
    ASSERT_EQ(atomic_load(&bad_env_logs), 1);
    unsetenv("ACTX_IO");
}

/*
 * One allocation fails, at each step of a fresh loop's first AIO (the
 * ring's setup, its registration in the loop's epoll sets, the request):
 * the write is refused up front with ENOMEM, or it completes with its
 * result, on the ring or on the pool.  (A fresh loop's first pwrite
 * makes four allocations of the runtime's own.)
 */
ACTX_TEST("/uring/setup/no-memory-at-each-step")
{
    for (int skip = 0; skip < 4; skip++) {
        struct cb_rec w = {0};
        char out[BS], in[BS];
        int fd = test_temp_file(BS, 'd');
        actx_req *req;

        ASSERT_EQ(fresh_loop(), 1);
        memset(out, 'a' + skip, sizeof(out));
        inject_skip_alloc(skip);
        inject_fail(&inject_alloc, 1);
        errno = 0;
        req = actx_aio_pwrite(fd, out, BS, 0, rec_done, &w);
        if (!req) {
            ASSERT_EQ(errno, ENOMEM);
            req = actx_aio_pwrite(fd, out, BS, 0, rec_done, &w);
        }
        inject_fail(&inject_alloc, 0);
        inject_skip_alloc(0);
        ASSERT_NOT_NULL(req);
        ASSERT_EQ(actx_flush(), 0);
        ASSERT_EQ(w.runs, 1);
        ASSERT_EQ(w.ret, BS);
        ASSERT_EQ(pread(fd, in, BS, 0), BS);
        ASSERT_EQ(memcmp(in, out, BS), 0);
        close(fd);
    }
}
