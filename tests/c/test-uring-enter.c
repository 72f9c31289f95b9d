/*
 * test-uring-enter.c - a refused io_uring_enter never strands what was
 * queued (runtime/src/aio-uring.c, enter_or_unqueue): transient refusals
 * (EAGAIN, EBUSY, EINTR) are retried; a hard error (ENOMEM, EBADF) or a
 * refusal that goes on sends the queued operations to the pool, whose
 * results complete the requests as the ring would have; waits return.
 * The enters are failed through inject.h (io_uring_submit and
 * io_uring_submit_and_wait, the only calls the runtime enters with).
 */
#include "test.h"

#include "actx-internal.h"
#include "inject.h"

#include <fcntl.h>

#define BS 4096

static int data_file(int nblocks)
{
    const char *dir = getenv("TMPDIR");
    char path[4096], b[BS];
    int fd;

    snprintf(path, sizeof(path), "%s/actx-enter-XXXXXX",
             dir && *dir ? dir : "/tmp");
    fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    unlink(path);
    for (int i = 0; i < nblocks; i++) {
        memset(b, (char)(i * 5 + 3), sizeof(b));
        ASSERT_EQ(pwrite(fd, b, sizeof(b), (off_t)i * BS), BS);
    }
    return fd;
}

static bool block_ok(const char *b, int i)
{
    for (int k = 0; k < BS; k++) {
        if (b[k] != (char)(i * 5 + 3)) {
            return false;
        }
    }
    return true;
}

static void ring_loop(void)
{
    struct actx_stats st;

    unsetenv("ACTX_IO");
    actx_thread_shutdown();
    ASSERT_EQ(actx_thread_init(), 0);
    actx_stats(&st);
    ASSERT_EQ(st.io_backend, 1);
    /* Enter failures are the subject: every read goes on the ring. */
    actx__tls_loop->io_ring_only = true;
}

struct io {
    int runs;
    long ret;
    int ctx_id; /* the context done ran in */
};

static void io_done(void *opaque, long ret)
{
    struct io *io = opaque;

    io->runs++;
    io->ret = ret;
    io->ctx_id = actx_context_id();
}

static atomic_int warnings;

static void count_log(int level, const char *msg, void *opaque)
{
    (void)opaque;
    if (level == ACTX_LOG_WARNING && strstr(msg, "io_uring_enter")) {
        atomic_fetch_add(&warnings, 1);
    }
}

enum { N = 16 };

/* N reads queued on the ring, entered with the knob set, all waited for:
 * every one completes once with its data. */
static void reads_survive(int err, int fails)
{
    static char bufs[N][BS];
    struct io io[N];
    int fd = data_file(N);

    ring_loop();
    actx_set_log_handler(count_log, NULL);
    memset(io, 0, sizeof(io));
    memset(bufs, 0, sizeof(bufs));
    for (int i = 0; i < N; i++) {
        ASSERT_NOT_NULL(
            actx_aio_pread(fd, bufs[i], BS, (off_t)i * BS, io_done, &io[i]));
    }
    atomic_store(&inject_uring_enter_errno, err);
    inject_fail(&inject_uring_enter, fails);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(ACTX_WAIT_WHILE(io[i].runs == 0), 0);
    }
    inject_fail(&inject_uring_enter, 0);
    ASSERT_EQ(actx_flush(), 0);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(io[i].runs, 1);
        ASSERT_EQ(io[i].ret, BS);
        ASSERT_TRUE(block_ok(bufs[i], i));
    }
    ASSERT_GT(atomic_load(&inject_uring_enter_hits), 0);
    close(fd);
}

/* A ring that works again is used again. */
static void ring_works_again(void)
{
    char b[BS];
    struct io r = {0};
    int fd = data_file(2);
    struct actx_stats st;

    ASSERT_NOT_NULL(actx_aio_pread(fd, b, BS, BS, io_done, &r));
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    ASSERT_EQ(r.ret, BS);
    ASSERT_TRUE(block_ok(b, 1));
    actx_stats(&st);
    ASSERT_EQ(st.io_backend, 1);
    close(fd);
}

ACTX_TEST("/uring/enter/enomem-once/queued-ops-go-to-the-pool")
{
    reads_survive(ENOMEM, 1);
    ASSERT_EQ(atomic_load(&warnings), 1);
    ring_works_again();
}

ACTX_TEST("/uring/enter/ebadf-always/every-op-completes")
{
    reads_survive(EBADF, INJECT_ALWAYS);
    ASSERT_GE(atomic_load(&warnings), 1);
}

ACTX_TEST("/uring/enter/eagain-forever/falls-back")
{
    reads_survive(EAGAIN, INJECT_ALWAYS);
    ASSERT_GE(atomic_load(&warnings), 1);
}

/* An enter that returns without consuming anything, for ever: after the
 * retries, the queued operations go to the pool. */
ACTX_TEST("/uring/enter/consumes-nothing-forever/falls-back")
{
    reads_survive(0, INJECT_ALWAYS);
    ASSERT_GE(atomic_load(&warnings), 1);
}

/* A wait that times out in the kernel (ETIME) is no failure: the queued
 * operations are entered again, no fallback, no warning. */
ACTX_TEST("/uring/enter/etime-retried")
{
    reads_survive(ETIME, 2);
    ASSERT_EQ(atomic_load(&inject_uring_enter_hits), 2);
    ASSERT_EQ(atomic_load(&warnings), 0);
    ring_works_again();
}

/* A few EAGAIN/EBUSY/EINTR are retried: no fallback, no warning. */
ACTX_TEST("/uring/enter/transient-refusals-retried")
{
    int errs[] = {EAGAIN, EBUSY, EINTR};

    for (int i = 0; i < 3; i++) {
        atomic_store(&warnings, 0);
        atomic_store(&inject_uring_enter_hits, 0);
        reads_survive(errs[i], 3);
        ASSERT_EQ(atomic_load(&inject_uring_enter_hits), 3);
        ASSERT_EQ(atomic_load(&warnings), 0);
    }
    ring_works_again();
}

/* A request cancelled before it was entered completes with -ECANCELED,
 * also when its (NOP) SQE is taken back from a broken ring. */
ACTX_TEST("/uring/enter/cancelled-then-enter-fails")
{
    char a[BS], b[BS];
    struct io ra = {0}, rb = {0};
    int fd = data_file(2);
    actx_req *req;

    ring_loop();
    actx_set_log_handler(count_log, NULL);
    req = actx_aio_pread(fd, a, BS, 0, io_done, &ra);
    ASSERT_NOT_NULL(req);
    ASSERT_NOT_NULL(actx_aio_pread(fd, b, BS, BS, io_done, &rb));
    ASSERT_EQ(actx_req_cancel(req), 0);
    atomic_store(&inject_uring_enter_errno, ENOMEM);
    inject_fail(&inject_uring_enter, INJECT_ALWAYS);
    ASSERT_EQ(ACTX_WAIT_WHILE(ra.runs == 0 || rb.runs == 0), 0);
    inject_fail(&inject_uring_enter, 0);
    ASSERT_EQ(ra.ret, -ECANCELED);
    ASSERT_EQ(rb.ret, BS);
    ASSERT_TRUE(block_ok(b, 1));
    close(fd);
}

/* Writes and fsync too, nested in a context: results as the ring gives. */
ACTX_TEST("/uring/enter/writes-and-fsync-fall-back-in-their-context")
{
    char w[BS], r[BS];
    struct io rw = {0}, rs = {0}, rr = {0};
    int fd = data_file(1), id;

    ring_loop();
    actx_set_log_handler(count_log, NULL);
    memset(w, 'z', sizeof(w));
    id = actx_push();
    ASSERT_GT(id, 0);
    ASSERT_NOT_NULL(actx_aio_pwrite(fd, w, BS, BS, io_done, &rw));
    ASSERT_NOT_NULL(actx_aio_fsync(fd, io_done, &rs));
    inject_fail(&inject_uring_enter, INJECT_ALWAYS);
    ASSERT_EQ(ACTX_WAIT_WHILE(rw.runs == 0 || rs.runs == 0), 0);
    inject_fail(&inject_uring_enter, 0);
    ASSERT_EQ(rw.ret, BS);
    ASSERT_EQ(rs.ret, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_NOT_NULL(actx_aio_pread(fd, r, BS, BS, io_done, &rr));
    ASSERT_EQ(ACTX_WAIT_WHILE(rr.runs == 0), 0);
    ASSERT_EQ(rr.ret, BS);
    ASSERT_EQ(memcmp(r, w, BS), 0);
    close(fd);
}

/* Shutdown with operations queued and the ring refusing: each done still
 * runs once, with the error (the loop is going away: no pool detour). */
ACTX_TEST("/uring/enter/fails-at-shutdown/done-gets-the-error")
{
    static char bufs[N][BS];
    struct io io[N];
    int fd = data_file(N);

    ring_loop();
    actx_set_log_handler(count_log, NULL);
    memset(io, 0, sizeof(io));
    for (int i = 0; i < N; i++) {
        ASSERT_NOT_NULL(
            actx_aio_pread(fd, bufs[i], BS, (off_t)i * BS, io_done, &io[i]));
    }
    atomic_store(&inject_uring_enter_errno, ENOMEM);
    inject_fail(&inject_uring_enter, INJECT_ALWAYS);
    actx_thread_shutdown();
    inject_fail(&inject_uring_enter, 0);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(io[i].runs, 1);
        ASSERT_EQ(io[i].ret, -ENOMEM);
    }
    close(fd);
}

static atomic_int block_started, block_release;

static long block_work(void *opaque)
{
    (void)opaque;
    atomic_store(&block_started, 1);
    while (!atomic_load(&block_release)) {
        usleep(1000);
    }
    return 7;
}

static struct io refused_io;
static atomic_int refused_seen, refused_foreign;
static atomic_long refused_ret;

static void on_refused(actx_done_fn *done, void *opaque, long ret)
{
    if (done == io_done && opaque == &refused_io) {
        atomic_store(&refused_ret, ret);
        atomic_fetch_add(&refused_seen, 1);
    } else if (done != io_done || opaque != NULL) {
        atomic_fetch_add(&refused_foreign, 1);
    }
}

/* The loop shuts down while the pool still owes a fallen-back read: the
 * refused hook hears of the caller's request (its done and opaque, the
 * read's result), never of the runtime's own pool request. */
ACTX_TEST("/uring/enter/fallback-refused-after-shutdown/hook-sees-caller")
{
    char b[BS];
    int fd = data_file(2);

    ring_loop();
    actx_set_log_handler(count_log, NULL);
    actx_set_refused_hook(on_refused);
    ASSERT_EQ(actx_pool_set_size(1), 0);
    ASSERT_NOT_NULL(actx_submit(block_work, io_done, NULL));
    while (!atomic_load(&block_started)) {
        usleep(1000);
    }
    ASSERT_NOT_NULL(actx_aio_pread(fd, b, BS, BS, io_done, &refused_io));
    inject_fail(&inject_uring_enter, INJECT_ALWAYS);
    actx_poll(false); /* the enter fails: the read goes to the pool */
    inject_fail(&inject_uring_enter, 0);
    ASSERT_EQ(atomic_load(&warnings), 1);
    actx_thread_shutdown();
    atomic_store(&block_release, 1);
    while (atomic_load(&refused_seen) == 0) {
        usleep(1000);
    }
    ASSERT_EQ(atomic_load(&refused_seen), 1);
    ASSERT_EQ(atomic_load(&refused_ret), BS);
    ASSERT_EQ(atomic_load(&refused_foreign), 0);
    ASSERT_EQ(refused_io.runs, 0);
    ASSERT_TRUE(block_ok(b, 1));
    actx_set_refused_hook(NULL);
    close(fd);
}

/* A cancel that needs the kernel (the read was entered) while the ring
 * refuses to enter: the cancel cannot say the read stopped (-EBUSY), and
 * the read still completes once, with its data. */
ACTX_TEST("/uring/enter/cancel-of-entered-op-refused")
{
    static char b[BS];
    struct io r = {0};
    int fd = data_file(4);
    actx_req *req;

    ring_loop();
    actx_set_log_handler(count_log, NULL);
    ASSERT_EQ(fdatasync(fd), 0);
    ASSERT_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    req = actx_aio_pread(fd, b, BS, 2 * BS, io_done, &r);
    ASSERT_NOT_NULL(req);
    actx_poll(false); /* entered */
    atomic_store(&inject_uring_enter_errno, ENOMEM);
    inject_fail(&inject_uring_enter, INJECT_ALWAYS);
    ASSERT_EQ(actx_req_cancel(req), -EBUSY);
    inject_fail(&inject_uring_enter, 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r.runs, 1);
    ASSERT_EQ(r.ret, BS);
    ASSERT_TRUE(block_ok(b, 2));
    close(fd);
}

/* Hold the pool's one worker in block_work, so that what the pool gets
 * next stays queued (not started) until block_release. */
static struct io held;

static void hold_the_pool(void)
{
    ASSERT_EQ(actx_pool_set_size(1), 0);
    ASSERT_NOT_NULL(actx_submit(block_work, io_done, &held));
    while (!atomic_load(&block_started)) {
        usleep(1000);
    }
}

static void release_the_pool(void)
{
    atomic_store(&block_release, 1);
    ASSERT_EQ(ACTX_WAIT_WHILE(held.runs == 0), 0);
}

/* A read the ring gave to the pool (the enter failed) and the pool has
 * not started is cancellable, as actx_req_cancel says of work that has not
 * started: 0, and done gets -ECANCELED once; the cancel does not wait for
 * a CQE that will never come. */
ACTX_TEST("/uring/enter/cancel-after-fallback-to-the-pool")
{
    static char b[BS];
    struct io r = {0};
    int fd = data_file(2);
    actx_req *req;

    ring_loop();
    actx_set_log_handler(count_log, NULL);
    hold_the_pool();
    req = actx_aio_pread(fd, b, BS, BS, io_done, &r);
    ASSERT_NOT_NULL(req);
    inject_fail(&inject_uring_enter, 1);
    actx_poll(false); /* the enter fails: the read goes to the pool */
    ASSERT_EQ(atomic_load(&warnings), 1);
    ASSERT_EQ(actx_req_cancel(req), 0);
    ASSERT_EQ(actx_req_cancel(req), -EBUSY);
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    release_the_pool();
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r.runs, 1);
    ASSERT_EQ(r.ret, -ECANCELED);
    close(fd);
}

/* The root's read is queued, then a nested context's iteration enters it
 * and the enter fails: the read goes to the pool, still the root's.
 * actx_cancel_context in the nested context cancels nothing of the root's
 * (and does not wait for it); the read completes in the root with its
 * data. */
ACTX_TEST("/uring/enter/fallback-stays-in-its-context")
{
    static char b[BS];
    struct io r = {0};
    int fd = data_file(2);

    ring_loop();
    actx_set_log_handler(count_log, NULL);
    hold_the_pool();
    ASSERT_NOT_NULL(actx_aio_pread(fd, b, BS, BS, io_done, &r));
    ASSERT_EQ(actx_push(), 1);
    inject_fail(&inject_uring_enter, 1);
    actx_poll(false); /* the enter fails: the read goes to the pool */
    ASSERT_EQ(atomic_load(&warnings), 1);
    ASSERT_EQ(actx_cancel_context(), 0);
    ASSERT_EQ(actx_pop(), 0);
    release_the_pool();
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r.runs, 1);
    ASSERT_EQ(r.ctx_id, 0);
    ASSERT_EQ(r.ret, BS);
    ASSERT_TRUE(block_ok(b, 1));
    close(fd);
}
