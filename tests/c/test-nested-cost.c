/*
 * test-nested-cost.c - what a nested wait costs does not depend on what
 * the outer contexts hold (actx.h, "Nested waits"; docs/nested-waits.md):
 * an outer fd that turns ready during a nested wait costs no system call
 * then or at the pop, and outer completions posted from other threads do
 * not wake a nested wait.  Counted, never timed: epoll_ctl calls through
 * the test binary's wrapper (inject.h), eventfd wake-ups in actx_stats.
 */
#include "test.h"

#include "inject.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define OUTER 1000
#define WAITS 300

/* Figures for the log (the runner prints a child's output). */
#define NOTE(...) (printf("  " __VA_ARGS__), printf("\n"))

struct outer {
    int sv[OUTER][2];
    int runs[OUTER];
    int bad_ctx;
};

static struct outer *outer_get(void)
{
    static struct outer o;

    return &o;
}

static void outer_read(void *opaque)
{
    struct outer *o = outer_get();
    int i = (int)(intptr_t)opaque;
    char c;

    if (actx_context_id() != 0) {
        o->bad_ctx++;
    }
    ASSERT_EQ(read(o->sv[i][0], &c, 1), 1);
    o->runs[i]++;
}

static void raise_nofile(void)
{
    struct rlimit rl;

    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    ASSERT_TRUE(rl.rlim_cur >= 2 * OUTER + 64);
}

/* OUTER sockets registered in the root context, each readable. */
static void outer_setup(struct outer *o, int n)
{
    raise_nofile();
    for (int i = 0; i < n; i++) {
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, o->sv[i]),
                  0);
        ASSERT_EQ(actx_set_fd_handler(o->sv[i][0], outer_read, NULL,
                                      (void *)(intptr_t)i),
                  0);
        ASSERT_EQ(write(o->sv[i][1], "x", 1), 1);
    }
}

/* After the nested waits: every outer handler runs once, in the root. */
static void outer_check_and_close(struct outer *o, int n)
{
    for (;;) {
        int done = 0;

        for (int i = 0; i < n; i++) {
            done += o->runs[i] != 0;
        }
        if (done == n) {
            break;
        }
        ASSERT_EQ(actx_poll(true), 1);
    }
    for (int i = 0; i < n; i++) {
        ASSERT_EQ(o->runs[i], 1);
        ASSERT_EQ(actx_set_fd_handler(o->sv[i][0], NULL, NULL, NULL), 0);
        close(o->sv[i][0]);
        close(o->sv[i][1]);
    }
    ASSERT_EQ(o->bad_ctx, 0);
}

static void set_flag(void *opaque)
{
    *(int *)opaque = 1;
}

/* WAITS nested waits for a BH each; epoll_ctl calls made meanwhile. */
static long nested_bh_waits(void)
{
    long before = atomic_load(&inject_epoll_ctl_calls);

    for (int w = 0; w < WAITS; w++) {
        int flag = 0;
        actx_bh *bh;

        ASSERT_EQ(actx_push(), 1);
        bh = actx_bh_new(set_flag, &flag);
        ASSERT_NOT_NULL(bh);
        actx_bh_schedule(bh);
        ASSERT_EQ(ACTX_WAIT_WHILE(!flag), 0);
        actx_bh_delete(bh);
        ASSERT_EQ(actx_pop(), 0);
    }
    return atomic_load(&inject_epoll_ctl_calls) - before;
}

/*
 * 300 nested waits, each for a BH, with 1000 ready outer sockets
 * registered: at most a small constant number of epoll_ctl calls per wait
 * (in fact none after the first), the same as with no outer fds.
 */
ACTX_TEST_TIMEOUT("/nested/cost/ready-outer-fds-cost-no-epoll-ctl", 120)
{
    struct outer *o = outer_get();
    long none, many;

    none = nested_bh_waits();
    outer_setup(o, OUTER);
    many = nested_bh_waits();
    NOTE("epoll_ctl calls for %d nested waits: %ld with no outer "
         "fds, %ld with %d ready outer fds",
         WAITS, none, many, OUTER);
    ASSERT_LE(many, 4 + none);
    ASSERT_EQ(o->bad_ctx, 0);
    for (int i = 0; i < OUTER; i++) {
        ASSERT_EQ(o->runs[i], 0); /* never in the nested context */
    }
    outer_check_and_close(o, OUTER);
}

/*
 * The same with waits that sleep: each nested wait waits for a request
 * another thread completes, so the loop sleeps in epoll_wait while 1000
 * outer sockets are ready.  No epoll_ctl per wait, no busy loop (the
 * number of wake-ups stays about one per wait).
 */
struct completer {
    actx_req *_Atomic req;
    _Atomic bool stop;
};

static void *complete_thread(void *arg)
{
    struct completer *c = arg;

    while (!atomic_load(&c->stop)) {
        actx_req *r = atomic_exchange(&c->req, NULL);

        if (r) {
            usleep(100);
            ASSERT_EQ(actx_req_complete(r, 7), 0);
        } else {
            usleep(50);
        }
    }
    return NULL;
}

static void store_ret(void *opaque, long ret)
{
    *(long *)opaque = ret;
}

ACTX_TEST_TIMEOUT("/nested/cost/sleeping-waits-ignore-ready-outer-fds", 120)
{
    struct outer *o = outer_get();
    struct completer c = {NULL, false};
    struct actx_stats st0, st1;
    pthread_t t;
    long before, calls;

    outer_setup(o, OUTER);
    ASSERT_EQ(pthread_create(&t, NULL, complete_thread, &c), 0);
    actx_stats(&st0);
    before = atomic_load(&inject_epoll_ctl_calls);
    for (int w = 0; w < WAITS; w++) {
        long ret = 0;

        ASSERT_EQ(actx_push(), 1);
        atomic_store(&c.req, actx_req_new(store_ret, &ret));
        ASSERT_EQ(ACTX_WAIT_WHILE(ret == 0), 0);
        ASSERT_EQ(ret, 7);
        ASSERT_EQ(actx_pop(), 0);
    }
    calls = atomic_load(&inject_epoll_ctl_calls) - before;
    actx_stats(&st1);
    atomic_store(&c.stop, true);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    NOTE("%d sleeping nested waits, %d ready outer fds: %ld epoll_ctl, "
         "%lu sleeps, %lu wake-ups",
         WAITS, OUTER, calls, st1.sleeps - st0.sleeps,
         st1.wakeups - st0.wakeups);
    ASSERT_LE(calls, 4);
    /* A busy loop would sleep (and wake) far more often than it waits. */
    ASSERT_LE(st1.sleeps - st0.sleeps, 2 * WAITS);
    for (int i = 0; i < OUTER; i++) {
        ASSERT_EQ(o->runs[i], 0);
    }
    outer_check_and_close(o, OUTER);
}

/*
 * Completions of an outer context, posted from another thread while the
 * loop sleeps in a nested wait, do not wake it (they cannot run there);
 * they are queued at the next wake-up and run after the pop, in order.
 */
struct poster {
    actx_req *outer[100];
    actx_req *inner;
    pid_t owner;
};

static void *post_outer_then_inner(void *arg)
{
    struct poster *p = arg;

    wait_until_sleeping(p->owner, 1000);
    for (int i = 0; i < 100; i++) {
        ASSERT_EQ(actx_req_complete(p->outer[i], i), 0);
    }
    wait_until_sleeping(p->owner, 1000);
    ASSERT_EQ(actx_req_complete(p->inner, 1), 0);
    return NULL;
}

static long outer_seen[100];
static int outer_n, outer_bad;

static void outer_done(void *opaque, long ret)
{
    (void)opaque;
    if (actx_context_id() != 0) {
        outer_bad++;
    }
    outer_seen[outer_n++] = ret;
}

ACTX_TEST("/nested/cost/outer-completions-do-not-wake-nested-wait")
{
    struct poster p;
    struct actx_stats st0, st1;
    long inner = 0;
    pthread_t t;

    for (int i = 0; i < 100; i++) {
        p.outer[i] = actx_req_new(outer_done, NULL);
        ASSERT_NOT_NULL(p.outer[i]);
    }
    ASSERT_EQ(actx_push(), 1);
    p.inner = actx_req_new(store_ret, &inner);
    p.owner = test_gettid();
    actx_stats(&st0);
    ASSERT_EQ(pthread_create(&t, NULL, post_outer_then_inner, &p), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(inner == 0), 0);
    actx_stats(&st1);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    NOTE("nested wait: %lu sleeps, %lu wake-ups for 100 outer and 1 "
         "inner completion",
         st1.sleeps - st0.sleeps, st1.wakeups - st0.wakeups);
    ASSERT_LE(st1.wakeups - st0.wakeups, 1);
    ASSERT_EQ(outer_n, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(outer_n, 100);
    ASSERT_EQ(outer_bad, 0);
    for (int i = 0; i < 100; i++) {
        ASSERT_EQ(outer_seen[i], i);
    }
}

/*
 * A context's own fd handlers during a nested wait: a nested context that
 * registers its own fd waits on it (and only on it), and at the pop the
 * handler moves to the parent, which keeps getting its events.
 */
static int own_runs, own_fd_r;

static void own_read(void *opaque)
{
    char c;

    *(int *)opaque = actx_context_id();
    ASSERT_EQ(read(own_fd_r, &c, 1), 1);
    own_runs++;
}

ACTX_TEST("/nested/cost/own-fd-moves-to-parent-at-pop")
{
    struct outer *o = outer_get();
    int sv[2], depth = -1;

    outer_setup(o, 50);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    own_fd_r = sv[0];
    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_set_fd_handler(sv[0], own_read, NULL, &depth), 0);
    ASSERT_EQ(write(sv[1], "a", 1), 1);
    ASSERT_EQ(ACTX_WAIT_WHILE(own_runs == 0), 0);
    ASSERT_EQ(depth, 1);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(write(sv[1], "b", 1), 1);
    ASSERT_EQ(ACTX_WAIT_WHILE(own_runs == 1), 0);
    ASSERT_EQ(depth, 0);
    ASSERT_EQ(actx_set_fd_handler(sv[0], NULL, NULL, NULL), 0);
    close(sv[0]);
    close(sv[1]);
    outer_check_and_close(o, 50);
}

/*
 * Two nested levels with fds of their own, the inner popped into the
 * middle one (a move of the inner's handlers only), the middle one into
 * the root: every handler keeps working, in the context it belongs to.
 */
struct lvl {
    int sv[2];
    int runs, depth;
};

static void lvl_read(void *opaque)
{
    struct lvl *l = opaque;
    char c;

    ASSERT_EQ(read(l->sv[0], &c, 1), 1);
    l->depth = actx_context_id();
    l->runs++;
}

ACTX_TEST("/nested/cost/handlers-of-three-levels")
{
    struct lvl l[3];

    for (int i = 0; i < 3; i++) {
        memset(&l[i], 0, sizeof(l[i]));
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, l[i].sv),
                  0);
        if (i > 0) {
            ASSERT_EQ(actx_push(), i);
        }
        ASSERT_EQ(actx_set_fd_handler(l[i].sv[0], lvl_read, NULL, &l[i]), 0);
        ASSERT_EQ(write(l[i].sv[1], "x", 1), 1);
    }
    /* At depth 2 only l[2] runs. */
    ASSERT_EQ(ACTX_WAIT_WHILE(l[2].runs == 0), 0);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(l[0].runs + l[1].runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    /* Depth 1: l[1] and the re-homed l[2] (written again). */
    ASSERT_EQ(write(l[2].sv[1], "y", 1), 1);
    ASSERT_EQ(ACTX_WAIT_WHILE(l[1].runs == 0 || l[2].runs == 1), 0);
    ASSERT_EQ(l[1].depth, 1);
    ASSERT_EQ(l[2].depth, 1);
    ASSERT_EQ(l[0].runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(write(l[1].sv[1], "z", 1), 1);
    ASSERT_EQ(ACTX_WAIT_WHILE(l[0].runs == 0 || l[1].runs == 1), 0);
    ASSERT_EQ(l[0].depth, 0);
    ASSERT_EQ(l[1].depth, 0);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(actx_set_fd_handler(l[i].sv[0], NULL, NULL, NULL), 0);
        close(l[i].sv[0]);
        close(l[i].sv[1]);
    }
}

/* The loop's own fds (its epoll sets, the backend fd) are refused. */
#define SCAN_FDS 256

ACTX_TEST("/nested/cost/own-epoll-sets-refused")
{
    bool open_before[SCAN_FDS];
    int sv[2], backend;

    for (int fd = 0; fd < SCAN_FDS; fd++) {
        open_before[fd] = fcntl(fd, F_GETFD) >= 0;
    }
    backend = actx_backend_fd();
    ASSERT_GE(backend, 0);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ASSERT_EQ(actx_set_fd_handler(sv[0], outer_read, NULL, NULL), 0);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_set_fd_handler(sv[1], outer_read, NULL, NULL), 0);
    /* Every fd opened since, but the socket pair, is the loop's own. */
    for (int fd = 0; fd < SCAN_FDS; fd++) {
        if (!open_before[fd] && fd != sv[0] && fd != sv[1] &&
            fcntl(fd, F_GETFD) >= 0) {
            ASSERT_EQ(actx_set_fd_handler(fd, outer_read, NULL, NULL), -EINVAL);
        }
    }
    ASSERT_EQ(actx_set_fd_handler(backend, outer_read, NULL, NULL), -EINVAL);
    ASSERT_EQ(actx_set_fd_handler(sv[1], NULL, NULL, NULL), 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_set_fd_handler(sv[0], NULL, NULL, NULL), 0);
    close(sv[0]);
    close(sv[1]);
}

/* A huge fd number that is not open: -EBADF at once, nothing grows. */
ACTX_TEST("/nested/cost/huge-closed-fd-numbers")
{
    ASSERT_EQ(actx_set_fd_handler(INT_MAX, outer_read, NULL, NULL), -EBADF);
    ASSERT_EQ(actx_set_fd_handler(100000000, outer_read, NULL, NULL), -EBADF);
    ASSERT_EQ(actx_set_fd_handler(1000000000, outer_read, NULL, NULL), -EBADF);
    ASSERT_EQ(actx_set_fd_handler(INT_MAX, NULL, NULL, NULL), 0);
}
