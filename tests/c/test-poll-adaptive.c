/*
 * test-poll-adaptive.c - actx_set_poll_max_ns (adaptive polling before a
 * blocking poll sleeps, runtime/src/poll.c): bad input, posters write no
 * eventfd while the owner polls, a post after the window still wakes the
 * sleeper, the window grows on short sleeps and dies out when idle, an
 * empty window counts toward the wait's end (a deadline, a poll_timeout),
 * and polling never changes what runs (same callbacks, contexts, order).
 *
 * White-box where a window must be known: loop->poll_ns is set or read
 * through runtime/src/actx-internal.h.  No test asserts on timing: delays
 * only make a phase (polling, sleeping) likely, and the windows used are
 * far longer or shorter than the delays.
 */
#include "test.h"

#include "actx-internal.h"
#include "inject.h"

#include <fcntl.h>
#include <sys/eventfd.h>

ACTX_TEST("/poll/adaptive/bad-input")
{
    ASSERT_EQ(actx_thread_init(), 0);
    ASSERT_EQ(actx_set_poll_max_ns(-1), -EINVAL);
    ASSERT_EQ(actx_set_poll_max_ns(INT64_MIN), -EINVAL);
    ASSERT_EQ(actx__tls_loop->poll_max_ns, 0);
    ASSERT_EQ(actx_set_poll_max_ns(50000), 0);
    ASSERT_EQ(actx__tls_loop->poll_max_ns, 50000);
    /* Huge values are clamped (no overflow of a deadline). */
    ASSERT_EQ(actx_set_poll_max_ns(INT64_MAX), 0);
    ASSERT_GT(actx__tls_loop->poll_max_ns, 0);
    ASSERT_EQ(actx_set_poll_max_ns(0), 0);
    ASSERT_EQ(actx__tls_loop->poll_max_ns, 0);
}

/* Per thread: another thread's setting does not change this loop's. */
static void *set_other(void *arg)
{
    (void)arg;
    actx_set_poll_max_ns(123456);
    return NULL;
}

ACTX_TEST("/poll/adaptive/per-thread")
{
    ASSERT_EQ(actx_set_poll_max_ns(1000), 0);
    thread_join(thread_start(set_other, NULL));
    ASSERT_EQ(actx__tls_loop->poll_max_ns, 1000);
}

/* Nothing to wait for: returns 0 at once, polling or not. */
ACTX_TEST("/poll/adaptive/nothing-to-wait")
{
    ASSERT_EQ(actx_set_poll_max_ns(1000000000), 0);
    actx__tls_loop->poll_ns = 1000000000;
    ASSERT_EQ(actx_poll(true), 0);
}

struct watch {
    actx_req *req;
    actx__mailbox *mb;
    int notify_me_seen;
};

static void *post_while_polling(void *arg)
{
    struct watch *w = arg;

    usleep(2000);
    /* The owner polls (a 5 s window): the protocol must not be armed. */
    w->notify_me_seen = atomic_load(&w->mb->notify_me);
    actx_req_complete(w->req, 7);
    return NULL;
}

ACTX_TEST("/poll/adaptive/no-eventfd-while-polling")
{
    struct cb_rec rec = {0};
    struct actx_stats st0, st1;
    struct watch w;
    pthread_t t;
    uint64_t v;

    ASSERT_EQ(actx_set_poll_max_ns(10LL * 1000 * 1000 * 1000), 0);
    actx__tls_loop->poll_ns = 5LL * 1000 * 1000 * 1000;
    w.req = actx_req_new(rec_done, &rec);
    w.mb = actx__tls_loop->mb;
    w.notify_me_seen = -1;
    actx_stats(&st0);
    t = thread_start(post_while_polling, &w);
    ASSERT_EQ(actx_poll(true), 1);
    thread_join(t);
    actx_stats(&st1);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ret, 7);
    ASSERT_EQ(w.notify_me_seen, 0);
    ASSERT_EQ(st1.sleeps, st0.sleeps);
    ASSERT_EQ(st1.wakeups, st0.wakeups);
    /* Nobody wrote the eventfd. */
    ASSERT_FALSE(atomic_load(&w.mb->notified));
    ASSERT_EQ(read(w.mb->efd, &v, sizeof(v)), -1);
    ASSERT_EQ(errno, EAGAIN);
}

ACTX_TEST("/poll/adaptive/post-after-window-wakes")
{
    struct cb_rec rec = {0};
    struct actx_stats st0, st1;
    atomic_int rc;
    actx_req *req;
    pthread_t t;

    ASSERT_EQ(actx_set_poll_max_ns(20000), 0);
    actx__tls_loop->poll_ns = 20000;
    req = actx_req_new(rec_done, &rec);
    actx_stats(&st0);
    /* Posted only once the owner sleeps, far after its 20 us window. */
    t = later_complete(req, 9, 50000, test_gettid(), &rc);
    ASSERT_EQ(actx_poll(true), 1);
    thread_join(t);
    ASSERT_EQ(atomic_load(&rc), 0);
    actx_stats(&st1);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_EQ(rec.ret, 9);
    ASSERT_GE(st1.sleeps, st0.sleeps + 1);
    ASSERT_GE(st1.wakeups, st0.wakeups + 1);
    /* The sleep outlasted poll_max_ns: the window shrank. */
    ASSERT_LT(actx__tls_loop->poll_ns, 20000);
}

ACTX_TEST("/poll/adaptive/grows-after-short-sleep")
{
    struct cb_rec rec = {0};
    atomic_int rc;
    actx_req *req;
    pthread_t t;

    /* A 1 s maximum: any sleep this test sees is shorter. */
    ASSERT_EQ(actx_set_poll_max_ns(1000000000), 0);
    ASSERT_EQ(actx__tls_loop->poll_ns, 0);
    req = actx_req_new(rec_done, &rec);
    t = later_complete(req, 1, 1000, test_gettid(), &rc);
    ASSERT_EQ(actx_poll(true), 1);
    thread_join(t);
    ASSERT_EQ(rec.runs, 1);
    ASSERT_GT(actx__tls_loop->poll_ns, 0);
    ASSERT_LE(actx__tls_loop->poll_ns, 1000000000);
}

static void flag_cb(void *opaque)
{
    (*(int *)opaque)++;
}

/*
 * Waits longer than the maximum (a timer 100 ms away, max 20 ms) halve the
 * window; much longer ones (200 ms, over 16 times a 5 ms maximum) end
 * polling at once.  (The margins are wide: a window that overran to the
 * timer, on a loaded machine, would count as having found work.)
 */
ACTX_TEST("/poll/adaptive/idle-stops-polling")
{
    int fired = 0;
    actx_timer *t = actx_timer_new(flag_cb, &fired);

    ASSERT_NOT_NULL(t);
    ASSERT_EQ(actx_set_poll_max_ns(20000000), 0);
    actx__tls_loop->poll_ns = 20000000;
    actx_timer_mod(t, actx_now_ns() + 100 * 1000 * 1000);
    while (fired == 0) {
        actx_poll(true);
    }
    ASSERT_LT(actx__tls_loop->poll_ns, 20000000);
    ASSERT_GT(actx__tls_loop->poll_ns, 0);
    ASSERT_EQ(actx_set_poll_max_ns(5000000), 0);
    actx__tls_loop->poll_ns = 5000000;
    actx_timer_mod(t, actx_now_ns() + 200 * 1000 * 1000);
    while (fired == 1) {
        actx_poll(true);
    }
    ASSERT_EQ(actx__tls_loop->poll_ns, 0);
    actx_timer_free(t);
}

/*
 * What runs, where and in which order, with polling off and on.  The owner
 * has requests in the root and in a pushed context, a BH and a timer in the
 * pushed context, and a handle call into the root; another thread completes
 * the requests alternately (root, inner, root, ...) with short pauses, so
 * that the owner polls and sleeps in between.  While the inner context is
 * current only its things may run; the root's run after the pop, in their
 * arrival order.
 */
#define NREQ 12

struct log {
    int n;
    int id[4 * NREQ];
    int ctx[4 * NREQ];
};

struct order_item {
    struct log *log;
    int id;
};

static void log_done(void *opaque, long ret)
{
    struct order_item *it = opaque;

    (void)ret;
    it->log->id[it->log->n] = it->id;
    it->log->ctx[it->log->n] = actx_context_id();
    it->log->n++;
}

static void log_fn(void *opaque)
{
    log_done(opaque, 0);
}

struct completer {
    actx_req *reqs[NREQ];
    actx_ctx *root;
    struct order_item call_item;
};

static void *complete_alternately(void *arg)
{
    struct completer *c = arg;

    for (int i = 0; i < NREQ; i++) {
        /* Root requests are even ids, inner ones odd. */
        int k = (i % 2 == 0) ? i / 2 : NREQ / 2 + i / 2;

        usleep((unsigned)(100 + 300 * (i % 3)));
        actx_req_complete(c->reqs[k], i);
        if (i == NREQ / 2) {
            actx_ctx_call(c->root, log_fn, &c->call_item);
        }
    }
    return NULL;
}

/* Returns the polling window the loop ended with. */
static int64_t run_scenario(int64_t poll_ns, struct log *log)
{
    int64_t window;
    struct order_item items[NREQ], bh_item = {log, 100},
                                   timer_item = {log, 200};
    struct completer c;
    actx_bh *bh;
    actx_timer *tm;
    pthread_t t;
    int inner_done;

    memset(log, 0, sizeof(*log));
    ASSERT_EQ(actx_set_poll_max_ns(poll_ns), 0);
    c.root = actx_ctx_current();
    c.call_item.log = log;
    c.call_item.id = 300;
    for (int i = 0; i < NREQ / 2; i++) {
        items[i].log = log;
        items[i].id = 2 * i; /* root: even completion index */
        c.reqs[i] = actx_req_new(log_done, &items[i]);
    }
    ASSERT_EQ(actx_push(), 1);
    for (int i = NREQ / 2; i < NREQ; i++) {
        items[i].log = log;
        items[i].id = 2 * (i - NREQ / 2) + 1; /* inner: odd */
        c.reqs[i] = actx_req_new(log_done, &items[i]);
    }
    bh = actx_bh_new(log_fn, &bh_item);
    tm = actx_timer_new(log_fn, &timer_item);
    t = thread_start(complete_alternately, &c);
    /* Inner: its 6 completions, then its BH, then its timer. */
    inner_done = 0;
    while (inner_done < NREQ / 2) {
        int before = log->n;

        actx_poll(true);
        inner_done += log->n - before;
    }
    actx_bh_schedule(bh);
    while (log->n < NREQ / 2 + 1) {
        actx_poll(true);
    }
    actx_timer_mod(tm, actx_now_ns() + 1000000);
    while (log->n < NREQ / 2 + 2) {
        actx_poll(true);
    }
    actx_bh_delete(bh);
    actx_timer_free(tm);
    ASSERT_EQ(actx_pop(), 0);
    thread_join(t);
    /* Root: its 6 completions and the call. */
    while (log->n < NREQ + 3) {
        ASSERT_EQ(actx_poll(true), 1);
    }
    actx_ctx_unref(c.root);
    window = actx__tls_loop->poll_ns;
    ASSERT_EQ(actx_set_poll_max_ns(0), 0);
    return window;
}

ACTX_TEST("/poll/adaptive/same-callbacks-contexts-order")
{
    struct log off, on;

    ASSERT_EQ(run_scenario(0, &off), 0);
    /* A 1 s maximum with short pauses: the window grows and is used. */
    ASSERT_GT(run_scenario(1000000000, &on), 0);
    ASSERT_EQ(off.n, NREQ + 3);
    ASSERT_EQ(on.n, off.n);
    for (int i = 0; i < off.n; i++) {
        ASSERT_EQ(on.id[i], off.id[i]);
        ASSERT_EQ(on.ctx[i], off.ctx[i]);
    }
    /* Inner first (odd ids in arrival order, BH, timer), then the root. */
    for (int i = 0; i < NREQ / 2; i++) {
        ASSERT_EQ(off.id[i], 2 * i + 1);
        ASSERT_EQ(off.ctx[i], 1);
    }
    ASSERT_EQ(off.id[NREQ / 2], 100);
    ASSERT_EQ(off.id[NREQ / 2 + 1], 200);
    ASSERT_EQ(off.ctx[NREQ / 2 + 1], 1);
    for (int i = NREQ / 2 + 2; i < off.n; i++) {
        ASSERT_EQ(off.ctx[i], 0);
    }
}

/*
 * Fd handlers during the window: the window also looks for ready fds (a
 * zero-timeout wait now and then), so an fd made readable by another
 * thread while the owner polls is dispatched without a sleep - once, in
 * its context.  A 5 s window and a write 2 ms in: the write lands inside
 * the window (without fd polling the window would run out, then sleep).
 */
struct fd_probe {
    int fd; /* read end */
    int reads;
    int ctx_id;
    pthread_t thread;
    int *remove_fd; /* if set and >= 0: remove that fd's handler, once */
};

static void probe_read(void *opaque)
{
    struct fd_probe *p = opaque;
    char b;

    p->reads++;
    p->ctx_id = actx_context_id();
    p->thread = pthread_self();
    ASSERT_EQ(read(p->fd, &b, 1), 1);
    if (p->remove_fd && *p->remove_fd >= 0) {
        ASSERT_EQ(actx_set_fd_handler(*p->remove_fd, NULL, NULL, NULL), 0);
        *p->remove_fd = -1;
    }
}

struct late_writes {
    int fds[2]; /* write ends; -1: none */
    unsigned delay_us;
    actx_req *req; /* completed after the writes, if set */
    unsigned req_delay_us;
};

static void *write_later(void *arg)
{
    struct late_writes *w = arg;

    usleep(w->delay_us);
    for (int i = 0; i < 2; i++) {
        if (w->fds[i] >= 0) {
            ASSERT_EQ(write(w->fds[i], "x", 1), 1);
        }
    }
    if (w->req) {
        usleep(w->req_delay_us);
        actx_req_complete(w->req, 5);
    }
    return NULL;
}

static void pipe_nb(int p[2])
{
    ASSERT_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

static void window_of(int64_t ns)
{
    ASSERT_EQ(actx_set_poll_max_ns(10LL * 1000 * 1000 * 1000), 0);
    actx__tls_loop->poll_ns = ns;
}

ACTX_TEST("/poll/adaptive/fd-ready-in-window")
{
    struct fd_probe pr = {0};
    struct late_writes w = {{-1, -1}, 2000, NULL, 0};
    struct actx_stats st0, st1;
    pthread_t t;
    int p[2];

    pipe_nb(p);
    pr.fd = p[0];
    ASSERT_EQ(actx_set_fd_handler(p[0], probe_read, NULL, &pr), 0);
    window_of(5LL * 1000 * 1000 * 1000);
    w.fds[0] = p[1];
    actx_stats(&st0);
    t = thread_start(write_later, &w);
    ASSERT_EQ(actx_poll(true), 1);
    thread_join(t);
    actx_stats(&st1);
    ASSERT_EQ(pr.reads, 1);
    ASSERT_EQ(pr.ctx_id, 0);
    ASSERT_ON_SELF(pr.thread);
    /* Seen while polling: the owner never slept, nobody woke it. */
    ASSERT_EQ(st1.sleeps, st0.sleeps);
    ASSERT_EQ(st1.wakeups, st0.wakeups);
    /* Dispatched once: the stash was consumed, the pipe is drained. */
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(pr.reads, 1);
    ASSERT_EQ(actx_set_fd_handler(p[0], NULL, NULL, NULL), 0);
    ASSERT_EQ(actx_set_poll_max_ns(0), 0);
    close(p[0]);
    close(p[1]);
}

/*
 * An outer context's fd turns ready while an inner context polls: the
 * window does not see it (the inner context's epoll set does not hold it,
 * so no system call is spent on it and nothing busy-loops); the window
 * goes on and finds the inner request; the outer fd runs after the pop,
 * in the outer context.
 */
ACTX_TEST("/poll/adaptive/fd-of-outer-context-waits")
{
    struct fd_probe pr = {0};
    struct cb_rec done = {0};
    struct late_writes w = {{-1, -1}, 2000, NULL, 20000};
    struct actx_stats st0, st1;
    long ctl0;
    pthread_t t;
    int p[2];

    pipe_nb(p);
    pr.fd = p[0];
    ASSERT_EQ(actx_set_fd_handler(p[0], probe_read, NULL, &pr), 0);
    ASSERT_EQ(actx_push(), 1);
    w.req = actx_req_new(rec_done, &done);
    w.fds[0] = p[1];
    window_of(5LL * 1000 * 1000 * 1000);
    actx_stats(&st0);
    ctl0 = atomic_load(&inject_epoll_ctl_calls);
    t = thread_start(write_later, &w);
    while (done.runs == 0) {
        actx_poll(true);
    }
    thread_join(t);
    actx_stats(&st1);
    ASSERT_EQ(done.runs, 1);
    ASSERT_EQ(done.ctx_id, 1);
    ASSERT_EQ(pr.reads, 0);
    ASSERT_EQ(st1.sleeps, st0.sleeps);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(pr.reads, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(atomic_load(&inject_epoll_ctl_calls), ctl0);
    ASSERT_EQ(actx_poll(true), 1);
    ASSERT_EQ(pr.reads, 1);
    ASSERT_EQ(pr.ctx_id, 0);
    ASSERT_EQ(actx_set_fd_handler(p[0], NULL, NULL, NULL), 0);
    ASSERT_EQ(actx_set_poll_max_ns(0), 0);
    close(p[0]);
    close(p[1]);
}

/*
 * Two fds turn ready during the window; whichever handler runs first
 * removes the other's handler, which then never runs (its event may be in
 * the same stash: no use of the freed registration, ASan checks).
 */
ACTX_TEST("/poll/adaptive/fd-handler-removes-other-in-window")
{
    struct fd_probe a = {0}, b = {0};
    struct late_writes w = {{-1, -1}, 2000, NULL, 0};
    struct actx_stats st0, st1;
    pthread_t t;
    int pa[2], pb[2], victim;

    pipe_nb(pa);
    pipe_nb(pb);
    a.fd = pa[0];
    b.fd = pb[0];
    victim = pb[0];
    a.remove_fd = &victim;
    b.remove_fd = &victim; /* b first: removes itself */
    ASSERT_EQ(actx_set_fd_handler(pa[0], probe_read, NULL, &a), 0);
    ASSERT_EQ(actx_set_fd_handler(pb[0], probe_read, NULL, &b), 0);
    window_of(5LL * 1000 * 1000 * 1000);
    w.fds[0] = pa[1];
    w.fds[1] = pb[1];
    actx_stats(&st0);
    t = thread_start(write_later, &w);
    while (a.reads == 0) {
        ASSERT_EQ(actx_poll(true), 1);
    }
    thread_join(t);
    actx_stats(&st1);
    ASSERT_EQ(st1.sleeps, st0.sleeps);
    ASSERT_EQ(victim, -1);
    ASSERT_LE(b.reads, 1);
    ASSERT_EQ(a.reads, 1);
    for (int i = 0; i < 3; i++) {
        actx_poll(false);
    }
    ASSERT_LE(b.reads, 1);
    ASSERT_EQ(a.reads, 1);
    ASSERT_EQ(actx_set_fd_handler(pa[0], NULL, NULL, NULL), 0);
    ASSERT_FALSE(actx_can_progress());
    ASSERT_EQ(actx_set_poll_max_ns(0), 0);
    close(pa[0]);
    close(pa[1]);
    close(pb[0]);
    close(pb[1]);
}

/*
 * A window that ran empty until the wait's end (a context's deadline, a
 * poll_timeout) is time already waited: the sleep after it must not
 * start the full timeout again (actx.h, actx_push_deadline: waits never
 * sleep past the deadline; actx_poll_timeout: at most about timeout_ns in
 * all).  Observed through the epoll_wait path (inject.h), which records
 * each sleep's timeout: once the window has ended, the end has passed
 * (the window is never longer than the time left), so a sleep after it
 * may only look (0 ms).  Nothing completes the request: the window and
 * any sleep run to the end.
 */
static void window_then_end(bool ctx_deadline)
{
    actx_req *req;
    long calls0;
    int r;

    atomic_store(&inject_no_epoll_pwait2, 1);
    ASSERT_EQ(actx_set_poll_max_ns(10LL * 1000 * 1000 * 1000), 0);
    if (ctx_deadline) {
        ASSERT_EQ(actx_push_deadline(actx_now_ns() + 200 * 1000 * 1000), 1);
    }
    req = actx_req_new(NULL, NULL); /* something to wait for */
    ASSERT_NOT_NULL(req);
    actx__tls_loop->poll_ns = 10LL * 1000 * 1000 * 1000;
    calls0 = atomic_load(&inject_epoll_wait_calls);
    atomic_store(&inject_epoll_wait_last_ms, -2);
    r = ctx_deadline ? actx_poll(true) : actx_poll_timeout(200 * 1000 * 1000);
    ASSERT_EQ(r, ctx_deadline ? 0 : -ETIMEDOUT);
    if (atomic_load(&inject_epoll_wait_calls) != calls0) {
        int slept_ms = atomic_load(&inject_epoll_wait_last_ms);

        ASSERT_EQ(slept_ms, 0);
    }
    ASSERT_EQ(actx_req_complete(req, 0), 0);
    ASSERT_EQ(actx_flush(), 0);
    if (ctx_deadline) {
        ASSERT_EQ(actx_pop(), 0);
    }
}

ACTX_TEST("/poll/adaptive/window-counts-toward-deadline")
{
    window_then_end(true);
}

ACTX_TEST("/poll/adaptive/window-counts-toward-poll-timeout")
{
    window_then_end(false);
}
