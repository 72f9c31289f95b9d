/*
 * test-faults.c - resources that run out: thread creation, allocation and
 * epoll_ctl failures injected into the runtime (inject.h).  Whatever fails,
 * nothing accepted is lost, no wait hangs, no operation that cannot fail
 * by contract (actx_pop, actx_timer_mod) fails or aborts, and what cannot
 * be done is refused with the documented error.
 */
#include "test.h"

#include "inject.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>

/* --- the pool cannot start a worker -------------------------------------- */

struct fjob {
    pthread_t owner;
    atomic_int work_runs;
    atomic_bool work_on_owner;
    int done_runs;
    long ret;
    int ctx_id;
};

static long fjob_work(void *opaque)
{
    struct fjob *j = opaque;

    atomic_store(&j->work_on_owner, pthread_equal(pthread_self(), j->owner));
    atomic_fetch_add(&j->work_runs, 1);
    return 42;
}

static void fjob_done(void *opaque, long ret)
{
    struct fjob *j = opaque;

    j->done_runs++;
    j->ret = ret;
    j->ctx_id = actx_context_id();
}

static void fjob_init(struct fjob *j)
{
    memset(j, 0, sizeof(*j));
    j->owner = pthread_self();
}

/* No worker can be created: the submission is refused, never stranded. */
static void refused_then_runs(atomic_int *knob)
{
    struct actx_stats st;
    struct fjob a, b;

    fjob_init(&a);
    fjob_init(&b);
    ASSERT_EQ(actx_thread_init(), 0);
    /* A request slab exists: the submission allocates its job only. */
    ASSERT_EQ(actx_req_complete(actx_req_new(NULL, NULL), 0), 0);
    ASSERT_EQ(actx_flush(), 0);
    inject_fail(knob, 1);
    errno = 0;
    ASSERT_NULL(actx_submit(fjob_work, fjob_done, &a));
    ASSERT_EQ(errno, EAGAIN);
    ASSERT_EQ(atomic_load(knob), 0); /* the failure was reached */
    actx_stats(&st);
    ASSERT_EQ(st.outstanding, 0);
    /* Nothing left to wait for: a wait reports it instead of hanging. */
    ASSERT_EQ(ACTX_WAIT_WHILE(a.done_runs == 0), -EDEADLK);
    ASSERT_EQ(atomic_load(&a.work_runs), 0);

    /* Once a thread can be created, the pool works. */
    ASSERT_NOT_NULL(actx_submit(fjob_work, fjob_done, &b));
    ASSERT_EQ(ACTX_WAIT_WHILE(b.done_runs == 0), 0);
    ASSERT_EQ(b.ret, 42);
    ASSERT_EQ(atomic_load(&a.work_runs), 0);
    ASSERT_EQ(a.done_runs, 0);
}

ACTX_TEST("/pool/fault/thread-create-fails-refused")
{
    refused_then_runs(&inject_pthread_create);
}

ACTX_TEST("/pool/fault/worker-alloc-fails-refused")
{
    /* The job's own allocation is the first; the worker's the second. */
    inject_skip_alloc(1);
    refused_then_runs(&inject_alloc);
}

ACTX_TEST("/pool/fault/aio-refused")
{
    char path[] = "/tmp/actx-fault-XXXXXX";
    struct fjob a;
    int fd = mkstemp(path);

    ASSERT_GE(fd, 0);
    unlink(path);
    setenv("ACTX_IO", "pool", 1); /* the pool path, whatever the kernel */
    fjob_init(&a);
    ASSERT_EQ(actx_thread_init(), 0);
    inject_fail(&inject_pthread_create, INJECT_ALWAYS);
    errno = 0;
    ASSERT_NULL(actx_aio_fsync(fd, fjob_done, &a));
    ASSERT_EQ(errno, EAGAIN);
    errno = 0;
    ASSERT_NULL(actx_aio_pwrite(fd, "x", 1, 0, fjob_done, &a));
    ASSERT_EQ(errno, EAGAIN);
    inject_fail(&inject_pthread_create, 0);
    ASSERT_NOT_NULL(actx_aio_pwrite(fd, "x", 1, 0, fjob_done, &a));
    ASSERT_EQ(ACTX_WAIT_WHILE(a.done_runs == 0), 0);
    ASSERT_EQ(a.ret, 1);
    close(fd);
}

/* A busy worker exists: work queued behind it is accepted and runs. */
static atomic_bool gate_open;

static long gated(void *opaque)
{
    (void)opaque;
    while (!atomic_load(&gate_open)) {
        usleep(500);
    }
    return 1;
}

ACTX_TEST("/pool/fault/queued-behind-busy-worker-runs")
{
    struct fjob a, b;

    fjob_init(&a);
    fjob_init(&b);
    ASSERT_EQ(actx_pool_set_size(2), 0);
    ASSERT_NOT_NULL(actx_submit(gated, fjob_done, &a));
    inject_fail(&inject_pthread_create, INJECT_ALWAYS);
    ASSERT_NOT_NULL(actx_submit(fjob_work, fjob_done, &b));
    atomic_store(&gate_open, true);
    ASSERT_EQ(ACTX_WAIT_WHILE(a.done_runs == 0 || b.done_runs == 0), 0);
    ASSERT_EQ(b.ret, 42);
    inject_fail(&inject_pthread_create, 0);
}

/*
 * Nested submit-and-wait on the only worker while no thread can be
 * created: the waiting worker runs the nested job itself.  A nest is one
 * outer job and the jobs it waits for (work and done share an opaque).
 */
struct nest {
    struct fjob self, mid, leaf;
};

static void nest_done(void *opaque, long ret)
{
    fjob_done(&((struct nest *)opaque)->self, ret);
}

static long nested_outer(void *opaque)
{
    struct fjob *inner = &((struct nest *)opaque)->leaf;
    int id = actx_push();

    if (id != 1) {
        return -1;
    }
    /* From here on the pool cannot grow. */
    inject_fail(&inject_pthread_create, INJECT_ALWAYS);
    if (!actx_submit(fjob_work, fjob_done, inner)) {
        return -2;
    }
    if (ACTX_WAIT_WHILE(inner->done_runs == 0) != 0) {
        return -3;
    }
    if (inner->ctx_id != 1 || actx_pop() != 0) {
        return -4;
    }
    return inner->ret;
}

static void nest_init(struct nest *n)
{
    fjob_init(&n->self);
    fjob_init(&n->mid);
    fjob_init(&n->leaf);
}

ACTX_TEST("/pool/fault/nested-wait-on-only-worker-cannot-grow")
{
    struct nest n;

    nest_init(&n);
    ASSERT_EQ(actx_pool_set_size(1), 0);
    ASSERT_NOT_NULL(actx_submit(nested_outer, nest_done, &n));
    ASSERT_EQ(ACTX_WAIT_WHILE(n.self.done_runs == 0), 0);
    inject_fail(&inject_pthread_create, 0);
    ASSERT_EQ(n.self.ret, 42);
    ASSERT_EQ(atomic_load(&n.leaf.work_runs), 1);
    ASSERT_EQ(n.leaf.done_runs, 1);
    ASSERT_GT(atomic_load(&inject_pthread_create_hits), 0);
}

/* Two levels deep, twice over, on a pool of size 1 that cannot grow. */
static long nested_mid(void *opaque)
{
    struct nest *n = opaque;
    int id = actx_push();

    if (id < 1 || !actx_submit(fjob_work, fjob_done, &n->leaf)) {
        return -1;
    }
    if (ACTX_WAIT_WHILE(n->leaf.done_runs == 0) != 0 || actx_pop() != 0) {
        return -2;
    }
    return n->leaf.ret + 1;
}

static void mid_done(void *opaque, long ret)
{
    fjob_done(&((struct nest *)opaque)->mid, ret);
}

static long nested_top(void *opaque)
{
    struct nest *n = opaque;

    long ret;

    inject_fail(&inject_pthread_create, INJECT_ALWAYS);
    /* (Deeper than 1 when run inline inside the other top job's wait.) */
    if (actx_push() < 1) {
        return -1;
    }
    if (!actx_submit(nested_mid, mid_done, n)) {
        ret = -2;
    } else if (ACTX_WAIT_WHILE(n->mid.done_runs == 0) != 0) {
        ret = -3;
    } else {
        ret = n->mid.ret + 1;
    }
    return actx_pop() == 0 ? ret : -4;
}

ACTX_TEST("/pool/fault/nested-two-deep-cannot-grow")
{
    struct nest n[2];

    ASSERT_EQ(actx_pool_set_size(1), 0);
    for (int i = 0; i < 2; i++) {
        nest_init(&n[i]);
        ASSERT_NOT_NULL(actx_submit(nested_top, nest_done, &n[i]));
    }
    /* The second top job is queued behind the first, not stranded. */
    ASSERT_EQ(actx_flush(), 0);
    inject_fail(&inject_pthread_create, 0);
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(n[i].self.done_runs, 1);
        ASSERT_EQ(n[i].self.ret, 44);
        ASSERT_EQ(n[i].mid.done_runs, 1);
        ASSERT_EQ(n[i].leaf.done_runs, 1);
    }
}

/* --- timers: mod and pop never allocate ------------------------------------ */

ACTX_TEST("/timer/fault/pop-merges-heaps-without-allocating")
{
    enum { N = 40 };
    struct cb_rec parent[N], child[N];
    actx_timer *tp[N], *tc[N];
    uint64_t now = actx_now_ns();

    memset(parent, 0, sizeof(parent));
    memset(child, 0, sizeof(child));
    for (int i = 0; i < N; i++) {
        tp[i] = actx_timer_new(rec_fn, &parent[i]);
        ASSERT_NOT_NULL(tp[i]);
        actx_timer_mod(tp[i], now + (uint64_t)(N - i) * 1000);
    }
    ASSERT_EQ(actx_push(), 1);
    for (int i = 0; i < N; i++) {
        tc[i] = actx_timer_new(rec_fn, &child[i]);
        ASSERT_NOT_NULL(tc[i]);
        actx_timer_mod(tc[i], now + (uint64_t)i * 1000);
    }
    /* No allocation may succeed from here: mod, del and pop need none. */
    inject_fail(&inject_alloc, INJECT_ALWAYS);
    for (int i = 0; i < N; i += 2) {
        actx_timer_mod(tp[i], now); /* re-arm from the child */
    }
    ASSERT_EQ(actx_pop(), 0);
    actx_timer_del(tc[1]);
    actx_timer_mod(tc[1], now);
    inject_fail(&inject_alloc, 0);
    ASSERT_EQ(atomic_load(&inject_alloc_hits), 0);
    ASSERT_EQ(actx_flush(), 0);
    while (actx_can_progress()) {
        ASSERT_TRUE(actx_poll(true) >= 0);
    }
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(parent[i].runs, 1);
        ASSERT_EQ(child[i].runs, 1);
        ASSERT_EQ(child[i].ctx_id, 0);
        actx_timer_free(tp[i]);
        actx_timer_free(tc[i]);
    }
}

ACTX_TEST("/timer/fault/mod-arms-without-allocating")
{
    struct cb_rec r[3] = {{0}};
    actx_timer *t[3];

    for (int i = 0; i < 3; i++) {
        t[i] = actx_timer_new(rec_fn, &r[i]);
        ASSERT_NOT_NULL(t[i]);
    }
    ASSERT_EQ(actx_push(), 1);
    inject_fail(&inject_alloc, INJECT_ALWAYS);
    for (int i = 0; i < 3; i++) {
        actx_timer_mod(t[i], 0);
    }
    inject_fail(&inject_alloc, 0);
    ASSERT_EQ(actx_pop(), 0);
    POLL_UNTIL(r[0].runs && r[1].runs && r[2].runs, 10);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(r[i].runs, 1);
        actx_timer_free(t[i]);
    }
}

/* Many timers in random order: they fire in deadline order, each once. */
enum { CHURN_N = 2000 };
static uint64_t churn_deadline[CHURN_N];
static uint64_t churn_fired[CHURN_N];
static int churn_runs[CHURN_N];
static int churn_nfired;

static void churn_fn(void *opaque)
{
    int i = (int)(intptr_t)opaque;

    churn_runs[i]++;
    churn_fired[churn_nfired++] = churn_deadline[i];
}

ACTX_TEST("/timer/heap/fires-in-deadline-order-under-churn")
{
    static actx_timer *t[CHURN_N];
    uint64_t base = actx_now_ns() - 1000000000ULL; /* all due */
    unsigned x = 12345;
    int expect = 0;

    for (int i = 0; i < CHURN_N; i++) {
        t[i] = actx_timer_new(churn_fn, (void *)(intptr_t)i);
        ASSERT_NOT_NULL(t[i]);
        x = x * 1103515245 + 12345;
        churn_deadline[i] = base + (x >> 8) % 1000000;
        actx_timer_mod(t[i], churn_deadline[i]);
    }
    for (int i = 0; i < CHURN_N; i += 3) {
        x = x * 1103515245 + 12345;
        churn_deadline[i] = base + (x >> 8) % 1000000;
        actx_timer_mod(t[i], churn_deadline[i]); /* re-arm, armed */
    }
    for (int i = 1; i < CHURN_N; i += 7) {
        actx_timer_del(t[i]);
    }
    while (actx_poll(false)) {
    }
    for (int i = 0; i < CHURN_N; i++) {
        ASSERT_EQ(churn_runs[i], i % 7 == 1 ? 0 : 1);
        expect += i % 7 == 1 ? 0 : 1;
    }
    ASSERT_EQ(churn_nfired, expect);
    for (int i = 1; i < churn_nfired; i++) {
        ASSERT_LE(churn_fired[i - 1], churn_fired[i]);
    }
    for (int i = 0; i < CHURN_N; i++) {
        actx_timer_free(t[i]);
    }
}

/* --- fd handlers: a failed move at pop keeps the handler ----------------- */

static int fdf_fd;
static int fdf_runs;
static int fdf_depth;

static void fdf_read(void *opaque)
{
    char c;

    (void)opaque;
    ASSERT_EQ(read(fdf_fd, &c, 1), 1);
    fdf_depth = actx_context_id();
    fdf_runs++;
}

static void nop_read(void *opaque)
{
    (void)opaque;
}

/*
 * A handler registered in a nested context moves to its parent's epoll set
 * at the pop; when the parent has a set of its own, that is an epoll_ctl
 * ADD, which fails here (err, once): the handler is kept, counted, and
 * moved at the parent's next poll.
 */
static void move_at_pop_fails(int err)
{
    struct actx_stats st;
    int sv[2], other[2];

    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, other), 0);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_set_fd_handler(other[0], nop_read, NULL, NULL), 0);
    ASSERT_EQ(actx_push(), 2);
    fdf_fd = sv[0];
    ASSERT_EQ(actx_set_fd_handler(sv[0], fdf_read, NULL, NULL), 0);
    ASSERT_EQ(write(sv[1], "x", 1), 1);
    inject_epoll_ctl_errno = err;
    inject_fail(&inject_epoll_ctl, 1);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(atomic_load(&inject_epoll_ctl_hits), 1);
    actx_stats(&st);
    ASSERT_EQ(st.fd_errors, 1);
    /* Kept, retried: it runs, and a blocking poll does not hang. */
    ASSERT_EQ(actx_poll(true), 1);
    ASSERT_EQ(fdf_runs, 1);
    ASSERT_EQ(fdf_depth, 1);
    ASSERT_EQ(write(sv[1], "y", 1), 1);
    ASSERT_EQ(actx_poll(true), 1);
    ASSERT_EQ(fdf_runs, 2);
    ASSERT_EQ(actx_set_fd_handler(sv[0], NULL, NULL, NULL), 0);
    ASSERT_EQ(actx_set_fd_handler(other[0], NULL, NULL, NULL), 0);
    ASSERT_EQ(actx_pop(), 0);
    close(sv[0]);
    close(sv[1]);
    close(other[0]);
    close(other[1]);
}

ACTX_TEST("/fd/fault/move-at-pop-enomem-keeps-handler")
{
    move_at_pop_fails(ENOMEM);
}

ACTX_TEST("/fd/fault/move-at-pop-enospc-keeps-handler")
{
    move_at_pop_fails(ENOSPC);
}

static char fdf_log[256];
static int fdf_log_errors;

static void fdf_log_fn(int level, const char *msg, void *opaque)
{
    (void)opaque;
    if (level == ACTX_LOG_ERROR && strstr(msg, "handler removed")) {
        snprintf(fdf_log, sizeof(fdf_log), "%s", msg);
        fdf_log_errors++;
    }
}

/*
 * The move keeps failing: after a bounded number of tries the handler is
 * removed with an error through the log handler, and the loop does not
 * poll for ever (the wait that counted on it reports -EDEADLK).
 */
ACTX_TEST_TIMEOUT("/fd/fault/move-fails-for-ever-reports-error", 60)
{
    struct actx_stats st;
    int sv[2], other[2];

    actx_set_log_handler(fdf_log_fn, NULL);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, other), 0);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_set_fd_handler(other[0], nop_read, NULL, NULL), 0);
    ASSERT_EQ(actx_push(), 2);
    fdf_fd = sv[0];
    ASSERT_EQ(actx_set_fd_handler(sv[0], fdf_read, NULL, NULL), 0);
    inject_epoll_ctl_errno = ENOMEM;
    inject_fail(&inject_epoll_ctl, INJECT_ALWAYS);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_set_fd_handler(other[0], NULL, NULL, NULL), 0);
    /* Only the deferred handler is left to wait for: it never comes. */
    ASSERT_EQ(ACTX_WAIT_WHILE(fdf_runs == 0), -EDEADLK);
    inject_fail(&inject_epoll_ctl, 0);
    ASSERT_EQ(fdf_log_errors, 1);
    ASSERT_TRUE(strstr(fdf_log, "fd ") != NULL);
    actx_stats(&st);
    ASSERT_TRUE(st.fd_errors >= 2);
    ASSERT_FALSE(actx_can_progress());
    ASSERT_EQ(actx_pop(), 0);
    actx_set_log_handler(NULL, NULL);
    close(sv[0]);
    close(sv[1]);
    close(other[0]);
    close(other[1]);
}

/* Re-registering fails (ENOMEM): the old registration stays. */
ACTX_TEST("/fd/fault/reregister-enomem-keeps-old")
{
    int sv[2];

    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fdf_fd = sv[0];
    ASSERT_EQ(actx_set_fd_handler(sv[0], fdf_read, NULL, NULL), 0);
    inject_epoll_ctl_op = EPOLL_CTL_MOD;
    inject_fail(&inject_epoll_ctl, 1);
    ASSERT_EQ(actx_set_fd_handler(sv[0], fdf_read, fdf_read, NULL), -ENOMEM);
    ASSERT_EQ(write(sv[1], "x", 1), 1);
    ASSERT_EQ(actx_poll(true), 1);
    ASSERT_EQ(fdf_runs, 1);
    ASSERT_EQ(actx_set_fd_handler(sv[0], NULL, NULL, NULL), 0);
    close(sv[0]);
    close(sv[1]);
}
