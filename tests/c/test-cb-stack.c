/*
 * test-cb-stack.c - callbacks that change the context stack (actx.h,
 * "Callbacks and the context stack"; docs/semantics.md, rule 2).
 *
 * A callback that pushes a context and returns without popping it makes
 * that context current: the call that ran it runs no more callbacks of
 * the old context, of any kind (BHs, completions, calls, timers, fd
 * handlers), in the same pass; they stay queued in their context, in
 * their order, and run once it is current again.  A callback that pushes,
 * waits and pops (a nested wait) leaves the pass going on.  Every probe
 * records the context id current when it ran and compares it with the id
 * of the context it belongs to.
 */
#include "test.h"

#include <fcntl.h>
#include <sys/socket.h>

struct probe {
    int runs;
    int want_id; /* the id of the context it belongs to */
    int bad;     /* runs with another context current */
    long seq;
    int push; /* contexts to push (and leave pushed) when it runs */
};

static void probe_run(struct probe *p)
{
    p->runs++;
    if (actx_context_id() != p->want_id) {
        p->bad++;
    }
    p->seq = test_next_seq();
    for (int i = 0; i < p->push; i++) {
        ASSERT_GT(actx_push(), 0);
    }
}

static void probe_fn(void *opaque)
{
    probe_run(opaque);
}

static void probe_done(void *opaque, long ret)
{
    (void)ret;
    probe_run(opaque);
}

/* Ran once each, in this order, each in its own context. */
static void ran_in_order(struct probe *p, int n)
{
    for (int i = 0; i < n; i++) {
        ASSERT_EQ(p[i].runs, 1);
        ASSERT_EQ(p[i].bad, 0);
        if (i > 0) {
            ASSERT_LT(p[i - 1].seq, p[i].seq);
        }
    }
}

/* --- each kind of callback --------------------------------------------- */

ACTX_TEST("/ctx/cb-push/bh/rest-waits-for-pop")
{
    struct probe p[3] = {{.push = 1}, {0}, {0}};
    actx_bh *bh[3];

    for (int i = 0; i < 3; i++) {
        bh[i] = actx_bh_new(probe_fn, &p[i]);
        ASSERT_NOT_NULL(bh[i]);
        actx_bh_schedule(bh[i]);
    }
    ASSERT_EQ(actx_bh_poll(), 1);
    ASSERT_EQ(actx_context_id(), 1);
    ASSERT_EQ(p[0].runs, 1);
    ASSERT_EQ(p[1].runs, 0);
    ASSERT_EQ(p[2].runs, 0);
    ASSERT_EQ(actx_bh_poll(), 0); /* context 1 has none */
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(p[1].runs, 0);
    ASSERT_EQ(actx_pop(), 0); /* flushes context 1's BHs, not the root's */
    ASSERT_EQ(p[1].runs, 0);
    ASSERT_EQ(actx_bh_poll(), 1);
    ran_in_order(p, 3);
    for (int i = 0; i < 3; i++) {
        actx_bh_delete(bh[i]);
    }
}

ACTX_TEST("/ctx/cb-push/completions/rest-waits-for-pop")
{
    struct probe p[4] = {{.push = 1}, {0}, {0}, {0}};
    actx_req *req[4];

    for (int i = 0; i < 4; i++) {
        req[i] = actx_req_new(probe_done, &p[i]);
        ASSERT_NOT_NULL(req[i]);
    }
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(actx_req_complete(req[i], 0), 0);
    }
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(actx_context_id(), 1);
    ASSERT_EQ(p[0].runs, 1);
    ASSERT_EQ(p[1].runs, 0);
    ASSERT_EQ(actx_req_complete(req[3], 0), 0); /* behind the other two */
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(actx_process_queue(), 0);
    ASSERT_EQ(p[1].runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_poll(false), 1);
    ran_in_order(p, 4);
}

ACTX_TEST("/ctx/cb-push/completions/blocking-poll")
{
    struct probe p[2] = {{.push = 1}, {0}};

    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(actx_req_complete(actx_req_new(probe_done, &p[i]), 0), 0);
    }
    ASSERT_EQ(actx_poll(true), 1);
    ASSERT_EQ(actx_context_id(), 1);
    ASSERT_EQ(p[1].runs, 0);
    ASSERT_EQ(actx_poll(true), 0); /* context 1 can make no progress */
    ASSERT_EQ(p[1].runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_poll(true), 1);
    ran_in_order(p, 2);
}

ACTX_TEST("/ctx/cb-push/completions/process-queue")
{
    struct probe p[2] = {{.push = 1}, {0}};

    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(actx_req_complete(actx_req_new(probe_done, &p[i]), 0), 0);
    }
    ASSERT_EQ(actx_process_queue(), 1);
    ASSERT_EQ(actx_context_id(), 1);
    ASSERT_EQ(p[1].runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_process_queue(), 1);
    ran_in_order(p, 2);
}

ACTX_TEST("/ctx/cb-push/calls/rest-waits-for-pop")
{
    struct probe p[3] = {{.push = 1}, {0}, {0}};
    actx_ctx *h = actx_ctx_current();

    ASSERT_NOT_NULL(h);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(actx_ctx_call(h, probe_fn, &p[i]), 0);
    }
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(actx_context_id(), 1);
    ASSERT_EQ(p[1].runs, 0);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(p[1].runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_poll(false), 1);
    ran_in_order(p, 3);
    actx_ctx_unref(h);
}

ACTX_TEST("/ctx/cb-push/timers/rest-wait-for-pop")
{
    struct probe p[3] = {{.push = 1}, {0}, {0}};
    actx_timer *t[3];

    for (int i = 0; i < 3; i++) {
        t[i] = actx_timer_new(probe_fn, &p[i]);
        ASSERT_NOT_NULL(t[i]);
        actx_timer_mod(t[i], (uint64_t)i + 1); /* all due, in this order */
    }
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(actx_context_id(), 1);
    ASSERT_EQ(p[0].runs, 1);
    ASSERT_EQ(p[1].runs, 0);
    ASSERT_EQ(p[2].runs, 0);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(p[1].runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_poll(false), 1);
    ran_in_order(p, 3);
    for (int i = 0; i < 3; i++) {
        actx_timer_free(t[i]);
    }
}

struct fdprobe {
    struct probe p;
    int fd;
    bool *pushed; /* the first handler to run pushes */
};

static void fd_read_push_once(void *opaque)
{
    struct fdprobe *f = opaque;
    char b;

    ASSERT_EQ(read(f->fd, &b, 1), 1);
    f->p.push = *f->pushed ? 0 : 1;
    *f->pushed = true;
    probe_run(&f->p);
}

ACTX_TEST("/ctx/cb-push/fd/other-ready-fds-wait-for-pop")
{
    struct fdprobe f[3];
    bool pushed = false;
    int pipes[3][2], first = -1;

    for (int i = 0; i < 3; i++) {
        memset(&f[i], 0, sizeof(f[i]));
        ASSERT_EQ(pipe2(pipes[i], O_NONBLOCK | O_CLOEXEC), 0);
        ASSERT_EQ(write(pipes[i][1], "x", 1), 1);
        f[i].fd = pipes[i][0];
        f[i].pushed = &pushed;
        ASSERT_EQ(actx_set_fd_handler(f[i].fd, fd_read_push_once, NULL, &f[i]),
                  0);
    }
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(actx_context_id(), 1);
    for (int i = 0; i < 3; i++) {
        if (f[i].p.runs) {
            ASSERT_EQ(first, -1); /* only the handler that pushed ran */
            first = i;
        }
    }
    ASSERT_NE(first, -1);
    ASSERT_EQ(actx_poll(false), 0); /* the others are the root's */
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_poll(false), 1);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(f[i].p.runs, 1);
        ASSERT_EQ(f[i].p.bad, 0);
        ASSERT_EQ(actx_set_fd_handler(f[i].fd, NULL, NULL, NULL), 0);
        close(pipes[i][0]);
        close(pipes[i][1]);
    }
}

/* One fd readable and writable: on_read pushes, on_write waits. */
static void fd_read_push(void *opaque)
{
    struct fdprobe *f = opaque;
    char b;

    ASSERT_EQ(read(f->fd, &b, 1), 1);
    probe_run(&f->p);
}

static struct probe write_probe;

static void fd_write_probe(void *opaque)
{
    (void)opaque;
    probe_run(&write_probe);
}

ACTX_TEST("/ctx/cb-push/fd/write-handler-waits-for-pop")
{
    struct fdprobe f = {.p = {.push = 1}};
    int sv[2];

    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    ASSERT_EQ(write(sv[1], "x", 1), 1);
    f.fd = sv[0];
    ASSERT_EQ(actx_set_fd_handler(sv[0], fd_read_push, fd_write_probe, &f), 0);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(actx_context_id(), 1);
    ASSERT_EQ(f.p.runs, 1);
    ASSERT_EQ(write_probe.runs, 0);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(write_probe.runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(f.p.runs, 1);
    ASSERT_GE(write_probe.runs, 1);
    ASSERT_EQ(write_probe.bad, 0);
    ASSERT_EQ(actx_set_fd_handler(sv[0], NULL, NULL, NULL), 0);
    close(sv[0]);
    close(sv[1]);
}

/* A BH pushes: the root's completion, call and timer due in the same
 * actx_poll wait as well (every stage of the pass stops). */
ACTX_TEST("/ctx/cb-push/bh/later-stages-wait-for-pop")
{
    struct probe pb = {.push = 1}, pd = {0}, pc = {0}, pt = {0};
    actx_ctx *h = actx_ctx_current();
    actx_bh *bh = actx_bh_new(probe_fn, &pb);
    actx_timer *t = actx_timer_new(probe_fn, &pt);

    ASSERT_EQ(actx_req_complete(actx_req_new(probe_done, &pd), 0), 0);
    ASSERT_EQ(actx_ctx_call(h, probe_fn, &pc), 0);
    actx_timer_mod(t, 1);
    actx_bh_schedule(bh);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(actx_context_id(), 1);
    ASSERT_EQ(pb.runs, 1);
    ASSERT_EQ(pd.runs + pc.runs + pt.runs, 0);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(pd.runs + pc.runs + pt.runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_poll(false), 1);
    ran_in_order((struct probe[]){pb, pd, pc, pt}, 4);
    actx_bh_delete(bh);
    actx_timer_free(t);
    actx_ctx_unref(h);
}

/* An idle BH that pushes: the scheduled BH after it waits too. */
ACTX_TEST("/ctx/cb-push/bh/idle")
{
    struct probe p[2] = {{.push = 1}, {0}};
    actx_bh *a = actx_bh_new(probe_fn, &p[0]);
    actx_bh *b = actx_bh_new(probe_fn, &p[1]);

    actx_bh_schedule_idle(a);
    actx_bh_schedule(b);
    actx_poll(false); /* only an idle BH ran: 0 or 1 are both fine */
    ASSERT_EQ(actx_context_id(), 1);
    ASSERT_EQ(p[0].runs, 1);
    ASSERT_EQ(p[1].runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_poll(false), 1);
    ran_in_order(p, 2);
    actx_bh_delete(a);
    actx_bh_delete(b);
}

/* --- pushes several levels deep ------------------------------------------ */

ACTX_TEST("/ctx/cb-push/deep")
{
    struct probe p[3] = {{.push = 3}, {0}, {0}};

    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(actx_req_complete(actx_req_new(probe_done, &p[i]), 0), 0);
    }
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(actx_context_id(), 3);
    for (int depth = 3; depth > 0; depth--) {
        ASSERT_EQ(actx_poll(false), 0);
        ASSERT_EQ(p[1].runs, 0);
        ASSERT_EQ(actx_pop(), 0);
        ASSERT_EQ(actx_context_id(), depth - 1);
    }
    ASSERT_EQ(actx_poll(false), 1);
    ran_in_order(p, 3);
}

/* In a nested context: the pushing callback belongs to context 2. */
ACTX_TEST("/ctx/cb-push/from-nested-context")
{
    struct probe p[2] = {{.want_id = 2, .push = 2}, {.want_id = 2}};
    actx_bh *bh[2];

    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_push(), 2);
    for (int i = 0; i < 2; i++) {
        bh[i] = actx_bh_new(probe_fn, &p[i]);
        actx_bh_schedule(bh[i]);
    }
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(actx_context_id(), 4);
    ASSERT_EQ(p[1].runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(p[1].runs, 0);
    ASSERT_EQ(actx_poll(false), 1);
    ran_in_order(p, 2);
    for (int i = 0; i < 2; i++) {
        actx_bh_delete(bh[i]);
    }
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_pop(), 0);
}

/* --- a push that another callback pops ------------------------------------ */

struct enter_leave {
    struct probe enter; /* the root's: pushes, schedules leave */
    struct probe leave; /* the pushed context's: pops */
    actx_bh *leave_bh;
    bool poll_inside; /* enter polls the new context itself */
};

static void leave_fn(void *opaque)
{
    struct enter_leave *el = opaque;

    probe_run(&el->leave);
    ASSERT_EQ(actx_pop(), 0);
}

static void enter_fn(void *opaque)
{
    struct enter_leave *el = opaque;

    probe_run(&el->enter);
    ASSERT_EQ(actx_push(), 1);
    el->leave_bh = actx_bh_new(leave_fn, el); /* context 1's */
    ASSERT_NOT_NULL(el->leave_bh);
    actx_bh_schedule(el->leave_bh);
    if (el->poll_inside) {
        ASSERT_EQ(actx_poll(false), 1);
        ASSERT_EQ(actx_context_id(), 0);
    }
}

/* The pushed context's own callback pops it at the next poll; the root's
 * rest runs at the poll after that, in the root. */
ACTX_TEST("/ctx/cb-push/popped-by-later-callback")
{
    struct enter_leave el = {.leave = {.want_id = 1}};
    struct probe rest = {0};
    actx_bh *a = actx_bh_new(enter_fn, &el), *b = actx_bh_new(probe_fn, &rest);

    actx_bh_schedule(a);
    actx_bh_schedule(b);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(actx_context_id(), 1);
    ASSERT_EQ(rest.runs, 0);
    ASSERT_EQ(actx_poll(false), 1); /* context 1's: leave pops it */
    ASSERT_EQ(el.leave.runs, 1);
    ASSERT_EQ(actx_context_id(), 0);
    ASSERT_EQ(rest.runs, 0); /* that pass was context 1's */
    ASSERT_EQ(actx_poll(false), 1);
    ran_in_order((struct probe[]){el.enter, el.leave, rest}, 3);
    actx_bh_delete(a);
    actx_bh_delete(b);
    actx_bh_delete(el.leave_bh);
}

/* The same within one callback's nested poll: enter pushes, polls, leave
 * pops; enter returns with the root current, so the pass goes on. */
ACTX_TEST("/ctx/cb-push/popped-inside-by-nested-callback")
{
    struct enter_leave el = {.leave = {.want_id = 1}, .poll_inside = true};
    struct probe rest = {0};
    actx_bh *a = actx_bh_new(enter_fn, &el), *b = actx_bh_new(probe_fn, &rest);

    actx_bh_schedule(a);
    actx_bh_schedule(b);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(actx_context_id(), 0);
    ran_in_order((struct probe[]){el.enter, el.leave, rest}, 3);
    actx_bh_delete(a);
    actx_bh_delete(b);
    actx_bh_delete(el.leave_bh);
}

/* --- balanced: push, wait, pop inside a callback; the pass goes on ------- */

static void nested_wait_fn(void *opaque)
{
    struct probe *p = opaque;
    struct probe inner = {.want_id = 1};

    probe_run(p);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_req_complete(actx_req_new(probe_done, &inner), 0), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(inner.runs == 0), 0);
    ASSERT_EQ(inner.bad, 0);
    ASSERT_EQ(actx_pop(), 0);
}

static void nested_wait_done(void *opaque, long ret)
{
    (void)ret;
    nested_wait_fn(opaque);
}

ACTX_TEST("/ctx/cb-push/balanced-nested-wait-pass-goes-on")
{
    struct probe p[2] = {{0}, {0}}, q[2] = {{0}, {0}};
    actx_bh *bh[2];

    ASSERT_EQ(actx_req_complete(actx_req_new(nested_wait_done, &p[0]), 0), 0);
    ASSERT_EQ(actx_req_complete(actx_req_new(probe_done, &p[1]), 0), 0);
    ASSERT_EQ(actx_poll(false), 1); /* one pass runs both */
    ran_in_order(p, 2);

    bh[0] = actx_bh_new(nested_wait_fn, &q[0]);
    bh[1] = actx_bh_new(probe_fn, &q[1]);
    actx_bh_schedule(bh[0]);
    actx_bh_schedule(bh[1]);
    ASSERT_EQ(actx_bh_poll(), 1);
    ran_in_order(q, 2);
    actx_bh_delete(bh[0]);
    actx_bh_delete(bh[1]);
}

/* --- pop's flush, flush, run, shutdown ------------------------------------ */

/* A BH that pushes inside the pop's flush: the pop fails with -EBUSY and
 * the child's next BH waits for its own context. */
ACTX_TEST("/ctx/cb-push/in-pop-flush")
{
    struct probe p[2] = {{.want_id = 1, .push = 1}, {.want_id = 1}};
    actx_bh *bh[2];

    ASSERT_EQ(actx_push(), 1);
    for (int i = 0; i < 2; i++) {
        bh[i] = actx_bh_new(probe_fn, &p[i]);
        actx_bh_schedule(bh[i]);
    }
    ASSERT_EQ(actx_pop(), -EBUSY);
    ASSERT_EQ(actx_context_id(), 2);
    ASSERT_EQ(p[0].runs, 1);
    ASSERT_EQ(p[1].runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_context_id(), 1);
    ASSERT_EQ(p[1].runs, 0);
    ASSERT_EQ(actx_pop(), 0); /* its flush runs the rest, in context 1 */
    ran_in_order(p, 2);
    for (int i = 0; i < 2; i++) {
        actx_bh_delete(bh[i]);
    }
}

/* actx_flush while a completion leaves a context pushed that can do
 * nothing: the flush can never finish, so it reports it. */
ACTX_TEST_TIMEOUT("/ctx/cb-push/flush-reports-deadlock", 10)
{
    struct probe p[2] = {{.push = 1}, {0}};
    actx_req *never = actx_req_new(probe_done, &p[1]);

    ASSERT_EQ(actx_req_complete(actx_req_new(probe_done, &p[0]), 0), 0);
    ASSERT_EQ(actx_flush(), -EDEADLK);
    ASSERT_EQ(actx_context_id(), 1);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_req_complete(never, 0), 0);
    ASSERT_EQ(actx_flush(), 0);
    ran_in_order(p, 2);
}

/* A flush goes on once another callback pops the pushed context. */
ACTX_TEST_TIMEOUT("/ctx/cb-push/flush-after-later-pop", 10)
{
    struct enter_leave el = {.leave = {.want_id = 1}};
    struct probe rest = {0};
    actx_bh *a = actx_bh_new(enter_fn, &el);

    ASSERT_EQ(actx_req_complete(actx_req_new(probe_done, &rest), 0), 0);
    actx_bh_schedule(a);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(actx_context_id(), 0);
    ran_in_order((struct probe[]){el.enter, el.leave, rest}, 3);
    actx_bh_delete(a);
    actx_bh_delete(el.leave_bh);
}

/* actx_run while a BH leaves a context pushed that can do nothing. */
ACTX_TEST_TIMEOUT("/ctx/cb-push/run-returns", 10)
{
    struct probe p[2] = {{.push = 1}, {0}};
    actx_bh *bh[2];

    for (int i = 0; i < 2; i++) {
        bh[i] = actx_bh_new(probe_fn, &p[i]);
        actx_bh_schedule(bh[i]);
    }
    ASSERT_EQ(actx_run(), 0);
    ASSERT_EQ(actx_context_id(), 1);
    ASSERT_EQ(p[1].runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_poll(false), 1);
    ran_in_order(p, 2);
    for (int i = 0; i < 2; i++) {
        actx_bh_delete(bh[i]);
    }
}

/*
 * A BH that pushes a context with a deadline and keeps a handle on it (it
 * can make progress: a call to it may pop it), then returns.  Once that
 * deadline passes, a poll there sleeps no more: a wait in progress must
 * end with -ETIMEDOUT, not spin on it.
 */
static actx_ctx *pushed_dl;

static void push_deadline_fn(void *opaque)
{
    (void)opaque;
    ASSERT_EQ(actx_push_deadline(actx_now_ns() + 1000 * 1000), 1);
    pushed_dl = actx_ctx_current();
}

enum dl_wait { DL_FLUSH, DL_RUN, DL_WAIT_WHILE };

static void pushed_deadline_ends_wait(enum dl_wait w)
{
    struct cb_rec rest = {0};
    actx_bh *a = actx_bh_new(push_deadline_fn, NULL);
    actx_req *req = actx_req_new(rec_done, &rest);
    int r = 0;

    actx_bh_schedule(a);
    switch (w) {
    case DL_FLUSH:
        r = actx_flush();
        break;
    case DL_RUN:
        r = actx_run();
        break;
    case DL_WAIT_WHILE:
        r = ACTX_WAIT_WHILE(rest.runs == 0);
        break;
    }
    ASSERT_EQ(r, -ETIMEDOUT);
    ASSERT_EQ(actx_context_id(), 1);
    ASSERT_EQ(rest.runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    actx_ctx_unref(pushed_dl);
    ASSERT_EQ(actx_req_complete(req, 3), 0);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(rest.runs, 1);
    actx_bh_delete(a);
}

ACTX_TEST_TIMEOUT("/ctx/cb-push/deadline-passed/flush-ends", 10)
{
    pushed_deadline_ends_wait(DL_FLUSH);
}

ACTX_TEST_TIMEOUT("/ctx/cb-push/deadline-passed/run-ends", 10)
{
    pushed_deadline_ends_wait(DL_RUN);
}

ACTX_TEST_TIMEOUT("/ctx/cb-push/deadline-passed/wait-while-ends", 10)
{
    pushed_deadline_ends_wait(DL_WAIT_WHILE);
}

/* Shutdown runs what was accepted; a call that pushes is popped again and
 * the rest runs in the root. */
static struct probe shutdown_probes[3];

ACTX_TEST("/ctx/cb-push/thread-shutdown")
{
    actx_ctx *h = actx_ctx_current();

    shutdown_probes[0].push = 1;
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(actx_ctx_call(h, probe_fn, &shutdown_probes[i]), 0);
    }
    actx_ctx_unref(h);
    actx_thread_shutdown();
    ran_in_order(shutdown_probes, 3);
}

/*
 * A BH that pushes a context every time it runs, and reschedules itself:
 * the flush of every pop of its context runs it and leaves the stack
 * changed (-EBUSY), and so does every pass of the root it moves to.
 * Shutdown must still get back to the root and run what was accepted.
 */
static actx_bh *repush_bh;
static int repush_runs;

static void repush_fn(void *opaque)
{
    (void)opaque;
    repush_runs++;
    actx_bh_schedule(repush_bh);
    (void)actx_push();
}

ACTX_TEST_TIMEOUT("/ctx/cb-push/thread-shutdown-with-a-bh-that-pushes", 60)
{
    struct cb_rec rest = {0};

    ASSERT_EQ(actx_req_complete(actx_req_new(rec_done, &rest), 5), 0);
    ASSERT_EQ(actx_push(), 1);
    repush_bh = actx_bh_new(repush_fn, NULL);
    ASSERT_NOT_NULL(repush_bh);
    actx_bh_schedule(repush_bh);
    actx_thread_shutdown();
    ASSERT_GT(repush_runs, 0);
    ASSERT_EQ(rest.runs, 1);
    ASSERT_EQ(rest.ret, 5);
}

/* actx_cancel_context while a done callback leaves a context pushed that
 * can do nothing: the wait for the other request could never end. */
ACTX_TEST_TIMEOUT("/ctx/cb-push/cancel-context-returns", 10)
{
    struct probe p[2] = {{.push = 1}, {0}};
    actx_req *never = actx_req_new(probe_done, &p[1]);

    ASSERT_EQ(actx_req_complete(actx_req_new(probe_done, &p[0]), 0), 0);
    ASSERT_EQ(actx_cancel_context(), 0); /* made by actx_req_new: none */
    ASSERT_EQ(actx_context_id(), 1);
    ASSERT_EQ(p[1].runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_req_complete(never, 0), 0);
    ASSERT_EQ(actx_cancel_context(), 0);
    ran_in_order(p, 2);
}

/* --- pops: what the pass did not run moves with the popped context ------ */

static void pop_two_done(void *opaque, long ret)
{
    probe_done(opaque, ret);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_pop(), 0);
}

ACTX_TEST("/ctx/cb-pop/rest-runs-in-parent")
{
    struct probe p[2] = {{.want_id = 2}, {0}}; /* the second is re-homed */

    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_push(), 2);
    ASSERT_EQ(actx_req_complete(actx_req_new(pop_two_done, &p[0]), 0), 0);
    ASSERT_EQ(actx_req_complete(actx_req_new(probe_done, &p[1]), 0), 0);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(actx_context_id(), 0);
    ASSERT_EQ(p[1].runs, 0); /* that pass was context 2's */
    ASSERT_EQ(actx_poll(false), 1);
    ran_in_order(p, 2);
}
