/*
 * test-own-fds.c - file AIO never treats the runtime's own fds as the
 * caller's (runtime/src/ownfd.c), on the ring and on the pool path: the
 * loop's eventfd, epoll sets and io_uring are refused with EBADF, also
 * when a number the caller closed is taken by the runtime during the very
 * call (the thread's first, which makes its loop); an fd that seeks but
 * has no positional I/O (an eventfd of the caller's) is -ESPIPE, never a
 * read that waits for its next write; and on the ring actx_req_cancel's
 * answer says what done gets, also when the kernel was running the
 * operation.
 */
#include "test.h"

#include "actx-internal.h"

#include <fcntl.h>
#include <sys/eventfd.h>

#define BS 4096

/* A fresh loop on this thread on the path io ("pool" or NULL: the ring),
 * its ring made (an fsync) on the ring path. */
static void fresh_loop(const char *io)
{
    struct actx_stats st;
    struct cb_rec s = {0};
    int fd = test_temp_file(BS, 'o');

    if (io) {
        setenv("ACTX_IO", io, 1);
    } else {
        unsetenv("ACTX_IO");
    }
    actx_thread_shutdown();
    ASSERT_EQ(actx_thread_init(), 0);
    unsetenv("ACTX_IO");
    actx_stats(&st);
    ASSERT_EQ(st.io_backend, io ? 0 : 1);
    ASSERT_NOT_NULL(actx_aio_fsync(fd, rec_done, &s));
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(s.ret, 0);
    close(fd);
}

static void assert_refused(int fd)
{
    char buf[8] = {0};
    struct cb_rec r = {0};

    ASSERT_GE(fd, 0);
    errno = 0;
    ASSERT_NULL(actx_aio_pread(fd, buf, sizeof(buf), 0, rec_done, &r));
    ASSERT_EQ(errno, EBADF);
    errno = 0;
    ASSERT_NULL(actx_aio_pwrite(fd, buf, sizeof(buf), 0, rec_done, &r));
    ASSERT_EQ(errno, EBADF);
    errno = 0;
    ASSERT_NULL(actx_aio_fsync(fd, rec_done, &r));
    ASSERT_EQ(errno, EBADF);
    ASSERT_EQ(r.runs, 0);
}

static void own_fds_refused(const char *io)
{
    fresh_loop(io);
    assert_refused(actx_backend_fd());
    assert_refused(atomic_load(&actx__tls_loop->mb->efd));
    if (!io) {
        assert_refused(actx__io_ring_fd(actx__tls_loop));
    }
}

ACTX_TEST("/aio/own-fds/refused-on-the-pool-path")
{
    own_fds_refused("pool");
}

ACTX_TEST("/aio/own-fds/refused-on-the-ring")
{
    own_fds_refused(NULL);
}

/*
 * On a thread with no loop yet: a number the caller closed, then the
 * first AIO call, which makes the loop (and its eventfd takes the lowest
 * free number).  The write must not land in the runtime's eventfd.
 */
static void *closed_then_first_call(void *arg)
{
    const char *io = arg;
    char buf[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct cb_rec w = {0};
    actx_req *req;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    ASSERT_GE(fd, 0);
    close(fd);
    ASSERT_NULL(actx__tls_loop);
    req = actx_aio_pwrite(fd, buf, sizeof(buf), 0, rec_done, &w);
    if (req) {
        ASSERT_EQ(ACTX_WAIT_WHILE(w.runs == 0), 0);
        ASSERT_EQ(w.ret, -EBADF);
    } else {
        ASSERT_EQ(errno, EBADF);
    }
    (void)io;
    actx_thread_shutdown();
    return NULL;
}

static void closed_number(const char *io)
{
    pthread_t t;

    if (io) {
        setenv("ACTX_IO", io, 1);
    } else {
        unsetenv("ACTX_IO");
    }
    ASSERT_EQ(pthread_create(&t, NULL, closed_then_first_call, (void *)io), 0);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    unsetenv("ACTX_IO");
}

ACTX_TEST("/aio/own-fds/closed-number-taken-by-the-first-call-pool")
{
    closed_number("pool");
}

ACTX_TEST("/aio/own-fds/closed-number-taken-by-the-first-call-ring")
{
    closed_number(NULL);
}

/* The caller's eventfd seeks but has no offsets: -ESPIPE, as pread(2). */
static void eventfd_espipe(const char *io)
{
    char buf[8] = {0};
    struct cb_rec r = {0}, w = {0};
    uint64_t v;
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    ASSERT_GE(efd, 0);
    fresh_loop(io);
    ASSERT_NOT_NULL(actx_aio_pread(efd, buf, sizeof(buf), 0, rec_done, &r));
    v = 5;
    ASSERT_NOT_NULL(actx_aio_pwrite(efd, &v, sizeof(v), 0, rec_done, &w));
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r.ret, -ESPIPE);
    ASSERT_EQ(w.ret, -ESPIPE);
    /* Nothing was written to it. */
    ASSERT_EQ(read(efd, &v, sizeof(v)), -1);
    ASSERT_EQ(errno, EAGAIN);
    close(efd);
}

ACTX_TEST("/aio/own-fds/callers-eventfd-espipe-pool")
{
    eventfd_espipe("pool");
}

ACTX_TEST("/aio/own-fds/callers-eventfd-espipe-ring")
{
    eventfd_espipe(NULL);
}

/*
 * actx_req_cancel on the ring, some writes already in the kernel: 0 means
 * done gets -ECANCELED, -EBUSY a real result.  The kernel answers
 * -EALREADY for an operation its worker has taken, which may still end
 * cancelled; the answer must wait for that.  Rounds of 32 writes with
 * polls between them (a fixed pseudo-random pattern) hit that window now
 * and then; each round checks every answer against its done.
 */
#define CANCEL_N 32

static struct cb_rec cancel_io[CANCEL_N];

ACTX_TEST_TIMEOUT("/aio/own-fds/ring-cancel-answer-says-what-done-gets", 120)
{
    static char buf[CANCEL_N][512];
    unsigned seed = 12345;
    int fd = test_temp_file(BS, 'c');

    fresh_loop(NULL);
    for (int round = 0; round < 3000; round++) {
        actx_req *req[CANCEL_N];
        int answer[CANCEL_N];
        int runs = 0;

        memset(cancel_io, 0, sizeof(cancel_io));
        ASSERT_GE(actx_push(), 0);
        for (int i = 0; i < CANCEL_N; i++) {
            req[i] = actx_aio_pwrite(fd, buf[i], sizeof(buf[i]), (off_t)i * 512,
                                     rec_done, &cancel_io[i]);
            ASSERT_NOT_NULL(req[i]);
            seed = seed * 1103515245u + 12345u;
            if ((seed >> 16) % 5 == 0) {
                actx_poll(false);
            }
        }
        for (int i = 0; i < CANCEL_N; i++) {
            answer[i] = cancel_io[i].runs ? 1 : actx_req_cancel(req[i]);
        }
        ASSERT_EQ(actx_flush(), 0);
        for (int i = 0; i < CANCEL_N; i++) {
            runs += cancel_io[i].runs;
            if (answer[i] == 0) {
                ASSERT_EQ(cancel_io[i].ret, -ECANCELED);
            } else if (answer[i] == -EBUSY) {
                ASSERT_NE(cancel_io[i].ret, -ECANCELED);
            } else {
                ASSERT_EQ(answer[i], 1);
            }
        }
        ASSERT_EQ(runs, CANCEL_N);
        ASSERT_GE(actx_pop(), 0);
    }
    close(fd);
}

/*
 * A number a loop read a file on, closed and reopened as an eventfd: once
 * the loop has an fd handler for it, file AIO asks its kind again (-ESPIPE
 * on the ring too, not a read that waits for the eventfd).
 */
static void ignore_event(void *opaque)
{
    (void)opaque;
}

ACTX_TEST("/aio/own-fds/fd-handler-refreshes-a-reused-number")
{
    char buf[16];
    struct cb_rec r = {0}, e = {0};
    int fd, efd;

    fresh_loop(NULL);
    fd = test_temp_file(BS, 'k');
    ASSERT_NOT_NULL(actx_aio_pread(fd, buf, sizeof(buf), 0, rec_done, &r));
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r.ret, (long)sizeof(buf));
    close(fd);
    efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ASSERT_EQ(efd, fd); /* the lowest free number */
    ASSERT_EQ(actx_set_fd_handler(efd, ignore_event, NULL, NULL), 0);
    ASSERT_NOT_NULL(actx_aio_pread(efd, buf, 8, 0, rec_done, &e));
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(e.ret, -ESPIPE);
    ASSERT_EQ(actx_set_fd_handler(efd, NULL, NULL, NULL), 0);
    close(efd);
}
