/*
 * Sleep timeouts in milliseconds (actx_backend_timeout_ms, and the
 * epoll_wait path of kernels without epoll_pwait2, backend-epoll.c):
 * rounded up, at most INT_MAX, never negative for an armed timer, however
 * far out it is.  The old-kernel path is forced through inject.h.
 */
#include "test.h"

#include "actx-internal.h"
#include "inject.h"

#define MS 1000000ULL
#define DAY (86400ULL * 1000 * MS)

static void nop(void *opaque)
{
    (void)opaque;
}

static void fired(void *opaque)
{
    (*(int *)opaque)++;
}

/* Deadlines relative to now (0: UINT64_MAX) and the timeout they give. */
static const struct {
    uint64_t in_ns;
    long min_ms, max_ms;
} far[] = {
    {10 * DAY, 10 * 86400000L - 1000, 10 * 86400000L + 1},
    {(uint64_t)INT_MAX * MS - 5000 * MS, INT_MAX - 6000L, INT_MAX},
    {24 * DAY + DAY * 9 / 10, INT_MAX, INT_MAX}, /* 24.9 days */
    {49 * DAY, INT_MAX, INT_MAX},
    {36500 * DAY, INT_MAX, INT_MAX},
    {(uint64_t)INT64_MAX, INT_MAX, INT_MAX},
    {0, INT_MAX, INT_MAX},
};

ACTX_TEST("/embed/timeout-ms/far-timers-clamped-never-negative")
{
    actx_timer *t = actx_timer_new(nop, NULL);

    ASSERT_NOT_NULL(t);
    for (size_t i = 0; i < sizeof(far) / sizeof(far[0]); i++) {
        uint64_t now = actx_now_ns();
        uint64_t at = far[i].in_ns == 0 || far[i].in_ns > UINT64_MAX - now
                          ? UINT64_MAX
                          : now + far[i].in_ns;
        int ms;

        actx_timer_mod(t, at);
        ms = actx_backend_timeout_ms();
        ASSERT_GE(ms, far[i].min_ms);
        ASSERT_LE(ms, far[i].max_ms);
        actx_poll(false);
    }
    actx_timer_del(t);
    ASSERT_EQ(actx_backend_timeout_ms(), -1);
    actx_timer_free(t);
}

/* Rounded up: waking after the answer finds the timer due, and the answer
 * is no more than the whole ms left when asked (whatever the delays). */
ACTX_TEST("/embed/timeout-ms/near-timer-rounded-up")
{
    actx_timer *t = actx_timer_new(nop, NULL);

    ASSERT_NOT_NULL(t);
    for (int i = 0; i < 20; i++) {
        uint64_t t0 = actx_now_ns(), due = t0 + 1500 * 1000 + i * 77777, t1;
        int ms;

        actx_timer_mod(t, due);
        ms = actx_backend_timeout_ms();
        t1 = actx_now_ns();
        ASSERT_GE(ms, 0);
        ASSERT_GE(t1 + (uint64_t)ms * MS, due);
        ASSERT_LE((uint64_t)ms, (due - t0 + MS - 1) / MS);
        actx_poll(false);
    }
    actx_timer_free(t);
}

static void use_old_kernel_path(void)
{
    atomic_store(&inject_no_epoll_pwait2, 1);
    atomic_store(&inject_epoll_wait_calls, 0);
}

/* The epoll_wait path runs timers, never early. */
ACTX_TEST("/poll/old-kernel/timers-run-not-early")
{
    int runs = 0;
    actx_timer *t;
    uint64_t due;

    use_old_kernel_path();
    t = actx_timer_new(fired, &runs);
    ASSERT_NOT_NULL(t);
    for (int i = 0; i < 5; i++) {
        due = actx_now_ns() + 2500 * 1000;
        actx_timer_mod(t, due);
        ASSERT_EQ(ACTX_WAIT_WHILE(runs == i), 0);
        ASSERT_GE(actx_now_ns(), due);
    }
    ASSERT_GT(atomic_load(&inject_epoll_wait_calls), 0);
    actx_timer_free(t);
}

/* A far timer on the epoll_wait path: the sleep gets INT_MAX ms (not a
 * negative "forever", not an overflow), and another thread still wakes
 * it. */
ACTX_TEST("/poll/old-kernel/far-timer-sleep-clamped")
{
    actx_timer *t = actx_timer_new(nop, NULL);

    ASSERT_NOT_NULL(t);
    use_old_kernel_path();
    for (int i = 0; i < 3; i++) {
        struct cb_rec r = {0};
        actx_req *req = actx_req_new(rec_done, &r);
        pthread_t th;

        ASSERT_NOT_NULL(req);
        actx_timer_mod(t, i == 2 ? UINT64_MAX : actx_now_ns() + (30 + i) * DAY);
        th = later_complete(req, 5, 0, test_gettid(), NULL);
        ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
        thread_join(th);
        ASSERT_EQ(r.ret, 5);
        ASSERT_EQ(atomic_load(&inject_epoll_wait_last_ms), INT_MAX);
    }
    ASSERT_GT(atomic_load(&inject_epoll_wait_calls), 0);
    actx_timer_free(t);
}

/* The same path with fd handlers and cross-thread posts, no timers: the
 * sleep is "forever" (-1) and wakes for both. */
ACTX_TEST("/poll/old-kernel/fds-and-posts")
{
    struct cb_rec r = {0};
    int fds[2], seen = 0;
    actx_req *req;
    pthread_t th;

    use_old_kernel_path();
    ASSERT_EQ(pipe(fds), 0);
    ASSERT_EQ(actx_set_fd_handler(fds[0], fired, NULL, &seen), 0);
    ASSERT_EQ(write(fds[1], "x", 1), 1);
    ASSERT_EQ(ACTX_WAIT_WHILE(seen == 0), 0);
    ASSERT_EQ(actx_set_fd_handler(fds[0], NULL, NULL, NULL), 0);
    req = actx_req_new(rec_done, &r);
    ASSERT_NOT_NULL(req);
    th = later_complete(req, 8, 0, test_gettid(), NULL);
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    thread_join(th);
    ASSERT_EQ(atomic_load(&inject_epoll_wait_last_ms), -1);
    ASSERT_GT(atomic_load(&inject_epoll_wait_calls), 0);
    close(fds[0]);
    close(fds[1]);
}
