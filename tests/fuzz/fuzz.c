/*
 * fuzz.c - a randomized API-sequence fuzzer for actx, checked against an
 * executable model of the contract.
 *
 * Usage: actx-fuzz [--seed N] [--iterations N] [--ops N] [--same] [-v]
 *   Iteration i runs seed N + i (default N = 1, 100 iterations, 400 ops;
 *   --same: seed N every time) in a forked child with a timeout (30 s x
 *   ACTX_TEST_TIMEOUT_SCALE).  A failing seed is printed with the command
 *   that replays it and the owner's last operations; -v prints what each
 *   iteration did.  The last line is "N passed, N failed".
 *
 * The long run (about 10 minutes per build on 2 CPUs; build first with
 * `scons mode=asan` and `scons mode=tsan`):
 *     build/asan/tests/fuzz/actx-fuzz --seed 1000 --iterations 1500
 *     build/tsan/tests/fuzz/actx-fuzz --seed 1000 --iterations 1500
 * CI (`scons test` in asan and tsan modes) runs a bounded smoke: see
 * tests/fuzz/SConscript.
 *
 * A seed fixes the sequence of operations the owner thread makes (and what
 * it asks the helpers to do); the interleaving with the helper and pool
 * threads is the scheduler's, so a seed that fails once may need a few
 * replays: --seed N --same --iterations 50 runs seed N fifty times.
 *
 * One iteration: the owner thread does --ops random operations - push and
 * pop; BH new/schedule/schedule_idle/cancel/delete, and BHs scheduled by
 * helper threads; requests completed by
 * helper threads or by the owner; actx_ctx_call from helpers through
 * handles; pool submissions (plain, cancelled, and nested: a job that
 * pushes, submits, waits and pops on its pool thread); timers
 * new/mod/del/free; fd handlers on pipes the helpers write; every way of
 * running the loop (actx_poll(false), actx_poll(true) with a guard timer,
 * actx_process_queue, actx_flush, ACTX_WAIT_WHILE, actx_run ended by a
 * helper's actx_stop); and nested waits (push, submit, wait, pop) - also
 * from inside callbacks, which themselves do random operations; and
 * waits with a deadline (already passed, near, or none) that cancel their
 * context (actx_cancel_context) after a timeout or at random.  Then it
 * pops to the root, waits for everything accepted, shuts the thread down.
 *
 * The model, checked at every callback and at the end:
 *   - a callback runs on its owner thread, only while its own context (or
 *     the context it was re-homed to by a pop) is current;
 *   - exactly once: every accepted completion, call and job runs once;
 *     a BH runs only while scheduled (never after cancel or delete), runs
 *     again after a helper's schedule, and actx_flush leaves no non-idle
 *     BH of the current context scheduled;
 *     a timer fires only while armed, never before its deadline; an fd
 *     handler never finds its pipe empty and reads every byte written;
 *   - per-poster FIFO: the completions and calls one thread posts to one
 *     context run in the order they were posted;
 *   - no wait on accepted work reports -EDEADLK; actx_flush returns 0;
 *   - the effective deadline is the earlier of a push's own and its
 *     parent's, and the parent's again after the pop; a wait with one
 *     returns 0, or -ETIMEDOUT only once it has passed; a cancelled job's
 *     work never runs and its done gets -ECANCELED; when
 *     actx_cancel_context returns, nothing of its context is pending.
 */
#define _GNU_SOURCE
#include "actx.h"
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NHELPERS 2
#define MAX_SERIALS 8192
#define MAX_DEPTH 8
#define MAX_ITEMS 16384
#define MAX_BHS 16
#define MAX_TIMERS 16
#define NPIPES 2
#define MS 1000000ULL

/* The owner's latest operations, printed with a failure. */
#define TRACE_N 48
static const char *trace_ops[TRACE_N];
static int trace_depth[TRACE_N];
static unsigned trace_pos;
static __thread bool is_owner;

static void trace(const char *op);
static void trace_print(void);

__attribute__((noreturn, format(printf, 1, 2))) static void
fail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(runner_msg(), RUNNER_MSG_LEN, fmt, ap);
    va_end(ap);
    fprintf(stderr, "actx-fuzz: %s\n", runner_msg());
    trace_print();
    fflush(stderr);
    _exit(1);
}

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fail(__VA_ARGS__);                                                 \
        }                                                                      \
    } while (0)

static void random_ops(int n);
static pthread_t owner_thread;
static int cb_depth;  /* callbacks running (nested) on the owner */
static bool draining; /* the end of an iteration: no random ops */
/* Inside op_deadline_wait: callbacks do no random ops (their waits would
 * inherit the deadline); in_cancel: inside actx_cancel_context. */
static int in_deadline;
static bool in_cancel;
static bool verbose;
static void maybe_ops(void);
/* What an iteration did (-v). */
static long n_bh_runs, n_timer_fires, n_fd_reads, n_pushes, n_max_depth;
static long n_deadline_waits, n_timeouts, n_cancelled;

static void trace(const char *op)
{
    if (is_owner) {
        trace_ops[trace_pos % TRACE_N] = op;
        trace_depth[trace_pos % TRACE_N] = actx_context_id();
        trace_pos++;
    }
}

static void trace_print(void)
{
    unsigned i = trace_pos > TRACE_N ? trace_pos - TRACE_N : 0;

    fprintf(stderr, "actx-fuzz: the owner's last operations (depth: op):\n");
    for (; i < trace_pos; i++) {
        fprintf(stderr, "  %u. %d: %s\n", i, trace_depth[i % TRACE_N],
                trace_ops[i % TRACE_N]);
    }
}

/* splitmix64: one stream per seed. */
static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static unsigned rnd_below(unsigned n)
{
    return (unsigned)(rnd() % n);
}

/* ------------------------------------------------------------------------ */
/* The context model (owner thread; pool threads keep their own stack).     */

static int parent_of[MAX_SERIALS];
static _Atomic int next_serial = 1;

struct stack {
    int s[MAX_DEPTH + 2];
    int depth;
};

static __thread struct stack tm;

static int cur_serial(void)
{
    if (tm.s[0] == 0) {
        tm.s[0] = atomic_fetch_add(&next_serial, 1);
        CHECK(tm.s[0] < MAX_SERIALS, "too many contexts");
    }
    return tm.s[tm.depth];
}

static int resolve(int s)
{
    while (parent_of[s]) {
        s = parent_of[s];
    }
    return s;
}

static void push(void)
{
    trace("push");
    int rc = actx_push();

    cur_serial();
    CHECK(rc == tm.depth + 1, "actx_push: %d at depth %d", rc, tm.depth);
    tm.s[++tm.depth] = atomic_fetch_add(&next_serial, 1);
    if (pthread_equal(pthread_self(), owner_thread)) {
        n_pushes++;
        n_max_depth = tm.depth > n_max_depth ? tm.depth : n_max_depth;
    }
    CHECK(tm.s[tm.depth] < MAX_SERIALS, "too many contexts");
}

/* push() with a deadline: the model checks the effective value. */
static void push_deadline(uint64_t dl)
{
    trace("push_deadline");
    uint64_t parent = actx_deadline();
    int rc = actx_push_deadline(dl);

    cur_serial();
    CHECK(rc == tm.depth + 1, "actx_push_deadline: %d at depth %d", rc,
          tm.depth);
    CHECK(actx_deadline() == (dl < parent ? dl : parent),
          "effective deadline %llu, own %llu, parent's %llu",
          (unsigned long long)actx_deadline(), (unsigned long long)dl,
          (unsigned long long)parent);
    tm.s[++tm.depth] = atomic_fetch_add(&next_serial, 1);
    CHECK(tm.s[tm.depth] < MAX_SERIALS, "too many contexts");
}

static void pop(void)
{
    trace("pop");
    int rc = actx_pop();

    CHECK(rc == 0, "actx_pop: %d", rc);
    parent_of[tm.s[tm.depth]] = tm.s[tm.depth - 1];
    tm.depth--;
    CHECK(actx_context_id() == tm.depth, "depth %d after pop, model %d",
          actx_context_id(), tm.depth);
}

/* Check that a callback of context serial s may run now, on thread owner. */
static void check_ctx(const char *what, int s, pthread_t owner)
{
    CHECK(pthread_equal(owner, pthread_self()), "%s ran on another thread",
          what);
    CHECK(resolve(s) == tm.s[tm.depth],
          "%s of context #%d ran while #%d (depth %d) is current", what, s,
          tm.s[tm.depth], tm.depth);
    CHECK(actx_context_id() == tm.depth, "%s: depth %d, model %d", what,
          actx_context_id(), tm.depth);
}

/* ------------------------------------------------------------------------ */
/* The ledger of completions, calls and jobs.                                */

enum kind { K_REQ, K_CALL, K_JOB, K_NESTED_JOB };

struct item {
    enum kind kind;
    int serial;
    pthread_t owner;
    _Atomic int expect; /* 1 once accepted */
    _Atomic int runs;
    _Atomic int work_runs;
    long want;
    _Atomic bool cancelled;
    int poster;        /* 1..NHELPERS, or 0: the owner; -1: not FIFO */
    _Atomic long pseq; /* order among that poster's posts */
    actx_req *req;     /* owner: set until done ran (cancel) */
};

static struct item items[MAX_ITEMS];
static _Atomic int nitems;
static pthread_mutex_t items_lock = PTHREAD_MUTEX_INITIALIZER;

/* last_run[poster][serial]: the pseq of the latest post that ran. */
static long last_run[NHELPERS + 1][MAX_SERIALS];
static _Atomic long pseq_next[NHELPERS + 1];

static struct item *item_new(enum kind kind)
{
    struct item *it;

    pthread_mutex_lock(&items_lock);
    CHECK(nitems < MAX_ITEMS, "too many items");
    it = &items[nitems];
    it->kind = kind;
    it->serial = cur_serial();
    it->owner = pthread_self();
    it->poster = -1;
    atomic_fetch_add(&nitems, 1);
    pthread_mutex_unlock(&items_lock);
    return it;
}

static void item_ran(struct item *it, const char *what)
{
    long seq;

    check_ctx(what, it->serial, it->owner);
    CHECK(atomic_fetch_add(&it->runs, 1) == 0, "%s ran twice", what);
    CHECK(atomic_load(&it->expect), "%s ran but was never accepted", what);
    if (it->poster >= 0) {
        long *last = &last_run[it->poster][it->serial];

        seq = atomic_load(&it->pseq);
        CHECK(seq > *last,
              "per-poster FIFO: post %ld of poster %d ran after post %ld to "
              "the same context",
              seq, it->poster, *last);
        *last = seq;
    }
}

static void post_stamp(struct item *it, int poster)
{
    it->poster = poster;
    atomic_store(&it->pseq, atomic_fetch_add(&pseq_next[poster], 1) + 1);
}

static void item_done(void *opaque, long ret)
{
    trace("item_done");
    struct item *it = opaque;

    item_ran(it, it->kind == K_REQ ? "a request's done" : "a job's done");
    it->req = NULL;
    if (ret == -ECANCELED && in_cancel && it->kind != K_REQ) {
        atomic_store(&it->cancelled, true); /* by actx_cancel_context */
    }
    if (atomic_load(&it->cancelled)) {
        CHECK(ret == -ECANCELED, "cancelled job: done got %ld", ret);
        CHECK(atomic_load(&it->work_runs) == 0, "cancelled work ran");
    } else {
        CHECK(ret == it->want, "done got %ld, want %ld", ret, it->want);
    }
    maybe_ops();
}

/* Callbacks of the owner thread do random operations too (bounded). */
static void maybe_ops(void)
{
    if (is_owner && !draining && !in_deadline && cb_depth < 2) {
        cb_depth++;
        random_ops((int)rnd_below(3));
        cb_depth--;
    }
}

static void item_call(void *opaque)
{
    trace("item_call");
    item_ran(opaque, "an actx_ctx_call function");
    maybe_ops();
}

static long item_work(void *opaque)
{
    struct item *it = opaque;

    CHECK(atomic_fetch_add(&it->work_runs, 1) == 0, "work ran twice");
    return it->want;
}

/* Any accepted item of the current (model) context not run yet. */
static bool item_pending(struct item *it)
{
    return atomic_load(&it->expect) > atomic_load(&it->runs);
}

/* ------------------------------------------------------------------------ */
/* Helper threads: complete, call, write, stop - in the order asked.        */

enum task_op { T_COMPLETE, T_CALL, T_WRITE, T_STOP, T_SCHED };

struct xbh;

struct task {
    enum task_op op;
    struct item *it;
    actx_req *req;
    actx_ctx *h;
    int fd;
    struct xbh *x;
};

/*
 * BHs that helper threads schedule (never cancelled, deleted only after
 * the helpers are joined): after the last schedule, the BH runs again.
 */
#define MAX_XBHS 4

static struct xbh {
    actx_bh *bh;
    int serial;
    _Atomic long scheduled; /* bumped before each actx_bh_schedule */
    _Atomic long seen;      /* scheduled, read as a run starts */
} xbhs[MAX_XBHS];

#define QCAP 4096

static struct helper {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct task q[QCAP];
    unsigned head, tail;
    bool quit;
    int id;
} helpers[NHELPERS];

static void *helper_main(void *p)
{
    struct helper *h = p;

    for (;;) {
        struct task t;
        int rc;

        pthread_mutex_lock(&h->lock);
        while (h->head == h->tail && !h->quit) {
            pthread_cond_wait(&h->cond, &h->lock);
        }
        if (h->head == h->tail) {
            pthread_mutex_unlock(&h->lock);
            return NULL;
        }
        t = h->q[h->head++ % QCAP];
        pthread_mutex_unlock(&h->lock);

        switch (t.op) {
        case T_COMPLETE:
            post_stamp(t.it, h->id);
            rc = actx_req_complete(t.req, t.it->want);
            CHECK(rc == 0, "actx_req_complete from a helper: %d", rc);
            break;
        case T_CALL:
            post_stamp(t.it, h->id);
            rc = actx_ctx_call(t.h, item_call, t.it);
            CHECK(rc == 0, "actx_ctx_call from a helper: %d", rc);
            actx_ctx_unref(t.h);
            break;
        case T_WRITE:
            CHECK(write(t.fd, "x", 1) == 1, "pipe write");
            break;
        case T_STOP:
            rc = actx_stop(t.h);
            CHECK(rc == 0, "actx_stop: %d", rc);
            actx_ctx_unref(t.h);
            break;
        case T_SCHED:
            atomic_fetch_add(&t.x->scheduled, 1);
            actx_bh_schedule(t.x->bh);
            break;
        }
    }
}

static void helper_give(struct task t)
{
    struct helper *h = &helpers[rnd_below(NHELPERS)];

    pthread_mutex_lock(&h->lock);
    CHECK(h->tail - h->head < QCAP, "helper queue full");
    h->q[h->tail++ % QCAP] = t;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

/* ------------------------------------------------------------------------ */
/* BHs, timers, fds: owner-only objects with their model state.              */

static struct fbh {
    actx_bh *bh;
    int serial;
    bool sched, idle;
    int idx;
} bhs[MAX_BHS];

static struct ftimer {
    actx_timer *t;
    int serial;
    bool armed;
    uint64_t deadline;
    int idx;
} timers[MAX_TIMERS];

static struct fpipe {
    int p[2];
    bool registered;
    int serial;
    long written, read;
} pipes[NPIPES];

static int nest; /* inside op_nested_wait: no push, pop or run */

static void bh_cb(void *opaque)
{
    trace("bh_cb");
    struct fbh *b = opaque;

    check_ctx("a BH", b->serial, owner_thread);
    CHECK(b->sched, "BH %d ran while not scheduled (cancelled or deleted)",
          b->idx);
    b->sched = false;
    b->idle = false;
    n_bh_runs++;
    maybe_ops();
}

static void timer_cb(void *opaque)
{
    trace("timer_cb");
    struct ftimer *t = opaque;

    check_ctx("a timer", t->serial, owner_thread);
    CHECK(t->armed, "timer %d fired while not armed", t->idx);
    CHECK(actx_now_ns() >= t->deadline, "timer %d fired early", t->idx);
    t->armed = false;
    n_timer_fires++;
    maybe_ops();
}

static void xbh_cb(void *opaque)
{
    trace("xbh_cb");
    struct xbh *x = opaque;

    check_ctx("a BH scheduled by a helper", x->serial, owner_thread);
    atomic_store(&x->seen, atomic_load(&x->scheduled));
    n_bh_runs++;
}

static void op_xbh(void)
{
    trace("op_xbh");
    struct xbh *x = &xbhs[rnd_below(MAX_XBHS)];

    if (!x->bh) {
        x->bh = actx_bh_new(xbh_cb, x);
        CHECK(x->bh, "actx_bh_new: %d", errno);
        x->serial = cur_serial();
    }
    helper_give((struct task){T_SCHED, NULL, NULL, NULL, -1, x});
}

static void fd_cb(void *opaque)
{
    trace("fd_cb");
    struct fpipe *f = opaque;
    char buf[64];
    ssize_t n;

    check_ctx("an fd handler", f->serial, owner_thread);
    n = read(f->p[0], buf, sizeof(buf));
    CHECK(n > 0, "fd handler ran on an empty pipe (%zd)", n);
    f->read += n;
    n_fd_reads++;
    CHECK(f->read <= f->written, "read more than written");
}

static void fd_register(struct fpipe *f)
{
    int rc = actx_set_fd_handler(f->p[0], fd_cb, NULL, f);

    CHECK(rc == 0, "actx_set_fd_handler: %d", rc);
    f->registered = true;
    f->serial = cur_serial();
}

/* ------------------------------------------------------------------------ */
/* Operations.                                                               */

static struct item *op_req(void)
{
    trace("op_req");
    trace("op_req");
    struct item *it = item_new(K_REQ);
    actx_req *req;

    it->want = (long)rnd_below(1000);
    req = actx_req_new(item_done, it);
    CHECK(req, "actx_req_new: %d", errno);
    atomic_store(&it->expect, 1);
    if (rnd_below(4) == 0) {
        post_stamp(it, 0);
        CHECK(actx_req_complete(req, it->want) == 0, "owner complete");
    } else {
        helper_give((struct task){T_COMPLETE, it, req, NULL, -1, NULL});
    }
    return it;
}

static struct item *op_call(void)
{
    trace("op_call");
    trace("op_call");
    struct item *it = item_new(K_CALL);
    actx_ctx *h = actx_ctx_current();

    CHECK(h, "actx_ctx_current: %d", errno);
    atomic_store(&it->expect, 1); /* the helper's call cannot fail */
    helper_give((struct task){T_CALL, it, NULL, h, -1, NULL});
    return it;
}

static long nested_work(void *opaque);

static struct item *submit(int kind, long want)
{
    struct item *it = item_new(kind);
    actx_req *req;

    it->want = want;
    req = actx_submit(kind == K_NESTED_JOB ? nested_work : item_work, item_done,
                      it);
    CHECK(req, "actx_submit: %d", errno);
    it->req = req;
    atomic_store(&it->expect, 1);
    return it;
}

static struct item *op_submit(int kind)
{
    trace("op_submit");
    trace("op_submit");
    return submit(kind, (long)rnd_below(1000));
}

/* On a pool thread: push, submit, wait, pop. */
static long nested_work(void *opaque)
{
    struct item *outer = opaque, *inner;
    int rc;

    CHECK(atomic_fetch_add(&outer->work_runs, 1) == 0, "work ran twice");
    push();
    inner = submit(K_JOB, outer->want + 1);
    rc = ACTX_WAIT_WHILE(item_pending(inner));
    CHECK(rc == 0, "nested wait on a pool thread: %d", rc);
    pop();
    return outer->want;
}

/* Push, submit or request, wait for it, pop. */
static void op_nested_wait(void)
{
    trace("op_nested_wait");
    struct item *it;
    int rc;

    if (tm.depth >= MAX_DEPTH) {
        return;
    }
    push();
    switch (rnd_below(3)) {
    case 0:
        it = op_req();
        break;
    case 1:
        it = op_submit(K_JOB);
        break;
    default:
        it = op_submit(K_NESTED_JOB);
        break;
    }
    if (rnd_below(2)) {
        nest++;
        random_ops((int)rnd_below(4));
        nest--;
    }
    rc = ACTX_WAIT_WHILE(item_pending(it));
    CHECK(rc == 0, "nested ACTX_WAIT_WHILE: %d", rc);
    pop();
}

/* A BH of the current context that is never scheduled keeps no poll
 * blocking: a guard timer does (due in 0..2 ms). */
static void guard_timer(void)
{
    for (int i = 0; i < MAX_TIMERS; i++) {
        struct ftimer *t = &timers[i];

        if (t->t && !t->armed && resolve(t->serial) == cur_serial()) {
            t->deadline = actx_now_ns() + rnd_below(3) * MS;
            t->armed = true;
            actx_timer_mod(t->t, t->deadline);
            return;
        }
    }
    for (int i = 0; i < MAX_TIMERS; i++) {
        struct ftimer *t = &timers[i];

        if (!t->t) {
            t->t = actx_timer_new(timer_cb, t);
            CHECK(t->t, "actx_timer_new: %d", errno);
            t->serial = cur_serial();
            t->deadline = actx_now_ns() + rnd_below(3) * MS;
            t->armed = true;
            actx_timer_mod(t->t, t->deadline);
            return;
        }
    }
    /* All slots used by other contexts: a request will do. */
    op_req();
}

static bool nonidle_bh_here(void)
{
    for (int i = 0; i < MAX_BHS; i++) {
        if (bhs[i].bh && bhs[i].sched && !bhs[i].idle &&
            resolve(bhs[i].serial) == cur_serial()) {
            return true;
        }
    }
    return false;
}

static void op_bh(void)
{
    trace("op_bh");
    struct fbh *b = &bhs[rnd_below(MAX_BHS)];

    if (!b->bh) {
        b->bh = actx_bh_new(bh_cb, b);
        CHECK(b->bh, "actx_bh_new: %d", errno);
        b->serial = cur_serial();
        b->sched = b->idle = false;
        return;
    }
    switch (rnd_below(5)) {
    case 0:
    case 1:
        actx_bh_schedule(b->bh);
        if (!b->sched) {
            b->sched = true;
            b->idle = false;
        }
        break;
    case 2:
        actx_bh_schedule_idle(b->bh);
        if (!b->sched) {
            b->sched = true;
            b->idle = true;
        }
        break;
    case 3:
        actx_bh_cancel(b->bh);
        b->sched = false;
        break;
    default:
        actx_bh_delete(b->bh);
        b->bh = NULL;
        b->sched = false;
        break;
    }
}

static void op_timer(void)
{
    trace("op_timer");
    struct ftimer *t = &timers[rnd_below(MAX_TIMERS)];

    if (!t->t) {
        t->t = actx_timer_new(timer_cb, t);
        CHECK(t->t, "actx_timer_new: %d", errno);
        t->serial = cur_serial();
        t->armed = false;
        return;
    }
    switch (rnd_below(4)) {
    case 0:
    case 1:
        t->deadline = actx_now_ns() + rnd_below(3) * MS;
        t->armed = true;
        actx_timer_mod(t->t, t->deadline);
        break;
    case 2:
        actx_timer_del(t->t);
        t->armed = false;
        break;
    default:
        actx_timer_free(t->t);
        t->t = NULL;
        t->armed = false;
        break;
    }
}

static void op_fd(void)
{
    trace("op_fd");
    struct fpipe *f = &pipes[rnd_below(NPIPES)];

    switch (rnd_below(3)) {
    case 0:
        fd_register(f); /* (again: moves it to the current context) */
        break;
    case 1:
        f->written++;
        helper_give((struct task){T_WRITE, NULL, NULL, NULL, f->p[1], NULL});
        break;
    default:
        if (f->registered) {
            CHECK(actx_set_fd_handler(f->p[0], NULL, NULL, NULL) == 0,
                  "removing an fd handler");
            f->registered = false;
        }
        break;
    }
}

static void op_cancel(void)
{
    trace("op_cancel");
    int n = atomic_load(&nitems);

    /* A recent job of this thread whose done has not run. */
    for (int i = n - 1; i >= 0 && i >= n - 8; i--) {
        struct item *it = &items[i];
        int rc;

        if ((it->kind == K_JOB || it->kind == K_NESTED_JOB) &&
            pthread_equal(it->owner, pthread_self()) && it->req &&
            !atomic_load(&it->runs)) {
            rc = actx_req_cancel(it->req);
            CHECK(rc == 0 || rc == -EBUSY, "actx_req_cancel: %d", rc);
            if (rc == 0) {
                atomic_store(&it->cancelled, true);
            }
            return;
        }
    }
}

/*
 * Push with a deadline (passed, near, or none), submit jobs, wait; after a
 * timeout (and at random otherwise) cancel the context: nothing of it may
 * be pending then.  Then pop; what was not cancelled is re-homed.
 */
static void op_deadline_wait(void)
{
    trace("op_deadline_wait");
    struct item *it[3];
    uint64_t parent = actx_deadline(), dl;
    int n = 1 + (int)rnd_below(3), rc, cancelled;

    if (tm.depth >= MAX_DEPTH) {
        return;
    }
    switch (rnd_below(3)) {
    case 0:
        dl = 1;
        break;
    case 1:
        dl = actx_now_ns() + rnd_below(3) * MS;
        break;
    default:
        dl = UINT64_MAX;
        break;
    }
    in_deadline++;
    push_deadline(dl);
    for (int i = 0; i < n; i++) {
        it[i] =
            submit(rnd_below(4) ? K_JOB : K_NESTED_JOB, (long)rnd_below(1000));
    }
    rc = ACTX_WAIT_WHILE(item_pending(it[0]) || item_pending(it[n - 1]));
    CHECK(rc == 0 || (rc == -ETIMEDOUT && actx_now_ns() >= actx_deadline()),
          "ACTX_WAIT_WHILE with a deadline: %d", rc);
    n_deadline_waits++;
    n_timeouts += rc == -ETIMEDOUT;
    if (rc == -ETIMEDOUT || rnd_below(2)) {
        in_cancel = true;
        cancelled = actx_cancel_context();
        in_cancel = false;
        CHECK(cancelled >= 0 && cancelled <= n, "actx_cancel_context: %d of %d",
              cancelled, n);
        n_cancelled += cancelled;
        for (int i = 0; i < n; i++) {
            CHECK(!item_pending(it[i]), "pending after actx_cancel_context");
        }
    }
    pop();
    in_deadline--;
    CHECK(actx_deadline() == parent, "deadline after pop: %llu, want %llu",
          (unsigned long long)actx_deadline(), (unsigned long long)parent);
}

static void op_run(void)
{
    trace("op_run");
    actx_ctx *h = actx_ctx_current();
    int rc;

    CHECK(h, "actx_ctx_current");
    helper_give((struct task){T_STOP, NULL, NULL, h, -1, NULL});
    rc = actx_run();
    CHECK(rc == 0, "actx_run: %d", rc);
}

static void op_poll_variant(void)
{
    int rc;

    switch (rnd_below(5)) {
    case 0:
        trace("actx_poll(false)");
        actx_poll(false);
        break;
    case 1:
        guard_timer();
        trace("actx_poll(true)");
        actx_poll(true);
        break;
    case 2:
        trace("actx_process_queue");
        actx_process_queue();
        break;
    case 3:
        trace("actx_flush");
        rc = actx_flush();
        CHECK(rc == 0, "actx_flush: %d", rc);
        CHECK(!nonidle_bh_here(), "actx_flush left a non-idle BH scheduled");
        break;
    default: {
        struct item *it = op_req();

        trace("ACTX_WAIT_WHILE");
        rc = ACTX_WAIT_WHILE(item_pending(it));
        CHECK(rc == 0, "ACTX_WAIT_WHILE: %d", rc);
        break;
    }
    }
}

static void random_ops(int n)
{
    for (int i = 0; i < n; i++) {
        unsigned r = rnd_below(100);

        if (r < 12) {
            op_bh();
        } else if (r < 22) {
            op_req();
        } else if (r < 28) {
            op_call();
        } else if (r < 36) {
            op_submit(rnd_below(6) ? K_JOB : K_NESTED_JOB);
        } else if (r < 39) {
            op_cancel();
        } else if (r < 47) {
            op_timer();
        } else if (r < 53) {
            op_fd();
        } else if (r < 70) {
            op_poll_variant();
        } else if (r < 76) {
            op_nested_wait();
        } else if (r < 84 && !cb_depth && !nest && tm.depth < MAX_DEPTH) {
            push();
        } else if (r < 92 && !cb_depth && !nest && tm.depth > 0) {
            pop();
        } else if (r < 94 && !cb_depth && !nest) {
            op_run();
        } else if (r < 97) {
            op_xbh();
        } else if (r < 99) {
            op_deadline_wait();
        } else {
            actx_bh_poll();
        }
    }
}

/* ------------------------------------------------------------------------ */
/* One iteration.                                                            */

static bool any_pending_here(void)
{
    int n = atomic_load(&nitems);

    for (int i = 0; i < n; i++) {
        struct item *it = &items[i];

        if (pthread_equal(it->owner, pthread_self()) && item_pending(it) &&
            resolve(it->serial) == cur_serial()) {
            return true;
        }
    }
    for (int i = 0; i < MAX_TIMERS; i++) {
        if (timers[i].t && timers[i].armed) {
            return true;
        }
    }
    for (int i = 0; i < MAX_BHS; i++) {
        if (bhs[i].bh && bhs[i].sched) {
            return true;
        }
    }
    for (int i = 0; i < NPIPES; i++) {
        if (pipes[i].read < pipes[i].written) {
            return true;
        }
    }
    for (int i = 0; i < MAX_XBHS; i++) {
        if (atomic_load(&xbhs[i].seen) < atomic_load(&xbhs[i].scheduled)) {
            return true;
        }
    }
    return false;
}

static void iteration(uint64_t seed, int ops)
{
    int rc;

    rng_state = seed;
    owner_thread = pthread_self();
    is_owner = true;
    for (int i = 0; i < NHELPERS; i++) {
        helpers[i].id = i + 1;
        pthread_mutex_init(&helpers[i].lock, NULL);
        pthread_cond_init(&helpers[i].cond, NULL);
        CHECK(pthread_create(&helpers[i].thread, NULL, helper_main,
                             &helpers[i]) == 0,
              "pthread_create");
    }
    for (int i = 0; i < NPIPES; i++) {
        CHECK(pipe2(pipes[i].p, O_NONBLOCK | O_CLOEXEC) == 0, "pipe2");
    }
    for (int i = 0; i < MAX_BHS; i++) {
        bhs[i].idx = i;
    }
    for (int i = 0; i < MAX_TIMERS; i++) {
        timers[i].idx = i;
    }
    cur_serial();

    random_ops(ops);

    /* The end: back to the root, every fd registered, everything run. */
    draining = true;
    while (tm.depth > 0) {
        pop();
    }
    for (int i = 0; i < NPIPES; i++) {
        fd_register(&pipes[i]);
    }
    for (int i = 0; i < NHELPERS; i++) {
        pthread_mutex_lock(&helpers[i].lock);
        helpers[i].quit = true; /* after what is queued */
        pthread_cond_signal(&helpers[i].cond);
        pthread_mutex_unlock(&helpers[i].lock);
    }
    rc = ACTX_WAIT_WHILE(any_pending_here());
    CHECK(rc == 0, "final wait: %d", rc);
    rc = actx_flush();
    CHECK(rc == 0, "final actx_flush: %d", rc);
    for (int i = 0; i < NHELPERS; i++) {
        pthread_join(helpers[i].thread, NULL);
    }
    /* Schedules that ran while the helpers finished: run them too. */
    rc = ACTX_WAIT_WHILE(any_pending_here());
    CHECK(rc == 0, "final wait after the helpers: %d", rc);
    /* Stops may still sit in the queue: run them. */
    actx_poll(false);
    for (int i = 0; i < NPIPES; i++) {
        CHECK(actx_set_fd_handler(pipes[i].p[0], NULL, NULL, NULL) == 0,
              "fd removal");
        close(pipes[i].p[0]);
        close(pipes[i].p[1]);
    }
    for (int i = 0; i < MAX_BHS; i++) {
        actx_bh_delete(bhs[i].bh);
    }
    for (int i = 0; i < MAX_TIMERS; i++) {
        actx_timer_free(timers[i].t);
    }
    for (int i = 0; i < MAX_XBHS; i++) {
        actx_bh_delete(xbhs[i].bh);
    }
    actx_thread_shutdown();
    if (verbose) {
        struct actx_stats st;

        actx_stats(&st);
        printf("  seed %llu: %d items, %ld BH runs, %ld timer fires, %ld fd "
               "reads, %ld pushes (max depth %ld), %ld deadline waits (%ld "
               "timed out, %ld requests cancelled)\n",
               (unsigned long long)seed, atomic_load(&nitems), n_bh_runs,
               n_timer_fires, n_fd_reads, n_pushes, n_max_depth,
               n_deadline_waits, n_timeouts, n_cancelled);
    }
    for (int i = 0; i < atomic_load(&nitems); i++) {
        struct item *it = &items[i];

        CHECK(atomic_load(&it->runs) == atomic_load(&it->expect),
              "item %d (kind %d): ran %d times, accepted %d", i, it->kind,
              atomic_load(&it->runs), atomic_load(&it->expect));
    }
}

struct seed_arg {
    uint64_t seed;
    int ops;
};

static void seed_body(void *p)
{
    struct seed_arg *a = p;

    iteration(a->seed, a->ops);
}

int main(int argc, char **argv)
{
    uint64_t seed = 1;
    long iterations = 100;
    int ops = 400, passed = 0, failed = 0;
    bool same = false;
    double timeout = 30.0 * runner_timeout_scale();
    char why[RUNNER_MSG_LEN + 64];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc) {
            iterations = atol(argv[++i]);
        } else if (strcmp(argv[i], "--ops") == 0 && i + 1 < argc) {
            ops = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--same") == 0) {
            same = true;
        } else if (strcmp(argv[i], "-v") == 0) {
            verbose = true;
        } else {
            fprintf(stderr,
                    "usage: %s [--seed N] [--iterations N] [--ops N] "
                    "[--same] [-v]\n",
                    argv[0]);
            return 2;
        }
    }
    for (long i = 0; i < iterations; i++) {
        uint64_t sd = same ? seed : seed + (uint64_t)i;
        struct seed_arg a = {sd, ops};
        double t0 = runner_now_s();

        if (runner_run_forked(seed_body, &a, timeout, -1, why, sizeof(why)) ==
            0) {
            passed++;
            if (verbose) {
                printf("PASS seed %llu (%.2f s)\n", (unsigned long long)sd,
                       runner_now_s() - t0);
            }
        } else {
            failed++;
            printf("FAIL seed %llu: %s\n", (unsigned long long)sd, why);
            printf("     replay: %s --seed %llu --iterations 1 --ops %d "
                   "(interleavings vary: add --same --iterations 50)\n",
                   argv[0], (unsigned long long)sd, ops);
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
