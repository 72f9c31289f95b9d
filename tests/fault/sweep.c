/*
 * sweep.c - fail the k-th resource call, for every k a broad scenario
 * reaches, and check that the runtime keeps its contract.
 *
 * Usage: actx-fault [-v] [--persist] [--k K] [--from K] [--to K]
 *   (no --k)     count the calls of an uninjected run (k = 0), then run
 *                the scenario once per k = 1..count, each in a forked
 *                child with a timeout; the last line is "N passed, N failed"
 *   --k K        run only k = K, in the foreground, with the scenario's
 *                log on stderr (to replay a failure, under gdb too)
 *   --from/--to  sweep only these k
 *   --persist    fail every call from the k-th on, not only the k-th (a
 *                process out of memory, threads or fds for good); the same
 *                checks hold: what was accepted still runs
 *   -v           a line per k, passed ones too
 * Environment: ACTX_TEST_TIMEOUT_SCALE multiplies the per-k timeout (20 s:
 * a k takes well under 1 s, but a loaded machine can stretch that tenfold
 * under ASan).
 *
 * For each k the child checks, failing with a message on the first breach:
 *   - every call returns success or one of the errors actx.h documents
 *     for it (the *_errs tables below); a failed creation changes nothing;
 *   - nothing accepted is lost: every accepted BH schedule, completion,
 *     call, timer arm and ready fd runs exactly once, or is reported
 *     (-ECANCELED to done, -EPIPE to the poster) - the `item` ledger;
 *   - every callback runs on its owner thread while its own context (or the
 *     one it was re-homed to at pop) is current - the context model;
 *   - no wait reports -EDEADLK for work that was accepted;
 * and the parent fails the k when the child crashes, exits non-zero (an
 * ASan, UBSan or LeakSanitizer report: the child ends with exit(), so LSan
 * looks at what actx_thread_shutdown and process exit left behind) or
 * outlives its timeout (a hang; a watchdog thread in the child first
 * reports which wait hung and what never ran).
 */
#define _GNU_SOURCE
#include "inject.h"
#include "runner.h"

#include "actx.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* What a child reports to the sweep through shared memory (why it
 * failed: runner_msg()). */
struct report {
    long calls;
    char fired[32];
};

static struct report *rep;
static bool verbose;
static bool persist;

__attribute__((noreturn, format(printf, 1, 2))) static void
fail(const char *fmt, ...)
{
    va_list ap;
    char buf[RUNNER_MSG_LEN];

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    snprintf(runner_msg(), RUNNER_MSG_LEN, "%s", buf);
    fprintf(stderr, "actx-fault: %s\n", buf);
    fflush(stderr);
    _exit(1);
}

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fail(__VA_ARGS__);                                                 \
        }                                                                      \
    } while (0)

/* ------------------------------------------------------------------------ */
/* The context model: which context each callback may run in.                */

#define MAX_SERIALS 256
#define MAX_DEPTH 16

/* Popped contexts forward to the context that was their parent. */
static int parent_of[MAX_SERIALS];
static _Atomic int next_serial = 1;

struct model {
    int stack[MAX_DEPTH];
    int depth;
};

static __thread struct model tm;

static int model_serial(void)
{
    if (tm.stack[0] == 0) {
        tm.stack[0] = atomic_fetch_add(&next_serial, 1);
    }
    return tm.stack[tm.depth];
}

static bool allowed(int err, const int *ok)
{
    for (; *ok; ok++) {
        if (err == *ok) {
            return true;
        }
    }
    return false;
}

/* What any call may return when the thread's loop cannot be created. */
static const int loop_errs[] = {ENOMEM, EMFILE, ENFILE, 0};
static const int alloc_errs[] = {ENOMEM, EMFILE, ENFILE, 0};
static const int submit_errs[] = {ENOMEM, EMFILE, ENFILE, EAGAIN, 0};

/* actx_flush: 0, or no loop to flush (it could not be created). */
static void flush(const char *where)
{
    int rc = actx_flush();

    CHECK(rc == 0 || allowed(-rc, loop_errs), "%s: actx_flush: %d (%s)", where,
          rc, actx_strerror(rc));
}

static int push(void)
{
    int rc = actx_push();

    model_serial();
    if (rc < 0) {
        CHECK(allowed(-rc, alloc_errs), "actx_push: %d (%s)", rc,
              actx_strerror(rc));
        CHECK(actx_context_id() == tm.depth,
              "a failed actx_push changed the depth to %d", actx_context_id());
        return rc;
    }
    CHECK(rc == tm.depth + 1, "actx_push returned %d at depth %d", rc,
          tm.depth);
    tm.stack[++tm.depth] = atomic_fetch_add(&next_serial, 1);
    return rc;
}

static void pop(void)
{
    int rc = actx_pop();

    CHECK(rc == 0, "actx_pop: %d (%s)", rc, actx_strerror(rc));
    parent_of[tm.stack[tm.depth]] = tm.stack[tm.depth - 1];
    tm.depth--;
    CHECK(actx_context_id() == tm.depth, "after pop: depth %d, model %d",
          actx_context_id(), tm.depth);
}

/* ------------------------------------------------------------------------ */
/* The ledger: what was accepted, and how often it ran.                      */

#define MAX_ITEMS 256

struct item {
    const char *what;
    pthread_t owner;
    int serial; /* the model context it belongs to */
    int expect; /* runs it must have had at the end: 0 or 1 */
    _Atomic int runs;
    long want;      /* done's ret */
    bool cancelled; /* actx_req_cancel returned 0: done gets -ECANCELED */
    _Atomic long got;
    _Atomic int work_runs; /* pool work */
    int fd;                /* fd handlers: the pipe's read end */
};

static struct item items[MAX_ITEMS];
static int nitems;
/* Items are added by several threads (pool work, other loops). */
static pthread_mutex_t items_lock = PTHREAD_MUTEX_INITIALIZER;

static struct item *item_new(const char *what)
{
    struct item *it;

    pthread_mutex_lock(&items_lock);
    CHECK(nitems < MAX_ITEMS, "too many items");
    it = &items[nitems++];
    it->what = what;
    it->owner = pthread_self();
    it->serial = model_serial();
    it->fd = -1;
    pthread_mutex_unlock(&items_lock);
    return it;
}

/* Called by every callback: right thread, right context, count. */
static void item_ran(struct item *it)
{
    int s = it->serial;

    CHECK(pthread_equal(it->owner, pthread_self()),
          "%s: callback on another thread", it->what);
    while (parent_of[s]) {
        s = parent_of[s];
    }
    CHECK(s == tm.stack[tm.depth],
          "%s: callback of context #%d ran while #%d (depth %d) is current",
          it->what, it->serial, tm.stack[tm.depth], tm.depth);
    CHECK(atomic_fetch_add(&it->runs, 1) == 0, "%s: ran twice", it->what);
}

static void item_fn(void *opaque)
{
    item_ran(opaque);
}

static void item_done(void *opaque, long ret)
{
    struct item *it = opaque;

    atomic_store(&it->got, ret);
    item_ran(it);
}

static long item_work(void *opaque)
{
    struct item *it = opaque;

    atomic_fetch_add(&it->work_runs, 1);
    return it->want;
}

/* Accepted items of the current model context that have not run yet. */
static bool pending_here(void)
{
    bool pending = false;

    pthread_mutex_lock(&items_lock);
    for (int i = 0; i < nitems && !pending; i++) {
        struct item *it = &items[i];
        int s = it->serial;

        if (!pthread_equal(it->owner, pthread_self())) {
            continue;
        }
        while (parent_of[s]) {
            s = parent_of[s];
        }
        pending =
            s == tm.stack[tm.depth] && it->expect > atomic_load(&it->runs);
    }
    pthread_mutex_unlock(&items_lock);
    return pending;
}

static const char *_Atomic waiting_at;

static void wait_pending(const char *where)
{
    int rc;

    atomic_store(&waiting_at, where);
    rc = ACTX_WAIT_WHILE(pending_here());
    atomic_store(&waiting_at, NULL);

    CHECK(rc == 0, "%s: ACTX_WAIT_WHILE on accepted work: %d (%s)", where, rc,
          actx_strerror(rc));
}

static void check_items(void)
{
    for (int i = 0; i < nitems; i++) {
        struct item *it = &items[i];
        long got = atomic_load(&it->got);
        int runs = atomic_load(&it->runs);

        CHECK(runs == it->expect, "%s: ran %d times, expected %d", it->what,
              runs, it->expect);
        if (runs && it->cancelled) {
            CHECK(got == -ECANCELED, "%s: cancelled, done got %ld", it->what,
                  got);
            CHECK(atomic_load(&it->work_runs) == 0, "%s: cancelled work ran",
                  it->what);
        } else if (runs) {
            CHECK(got == it->want, "%s: done got %ld, expected %ld", it->what,
                  got, it->want);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Scenario pieces.                                                          */

static void helper_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    int rc = __real_pthread_create(t, NULL, fn, arg);

    CHECK(rc == 0, "helper pthread_create: %s", strerror(rc));
}

static void helper_join(pthread_t t)
{
    pthread_join(t, NULL);
}

/* A BH, scheduled once (idle or not); accepted unless bh_new failed. */
static actx_bh *bh_scheduled(const char *what, bool idle)
{
    struct item *it = item_new(what);
    actx_bh *bh = actx_bh_new(item_fn, it);

    if (!bh) {
        CHECK(allowed(errno, alloc_errs), "actx_bh_new: errno %d", errno);
        return NULL;
    }
    it->expect = 1;
    if (idle) {
        actx_bh_schedule_idle(bh);
    } else {
        actx_bh_schedule(bh);
    }
    return bh;
}

static actx_req *req_new(const char *what, long want, struct item **out)
{
    struct item *it = item_new(what);
    actx_req *req = actx_req_new(item_done, it);

    if (!req) {
        CHECK(allowed(errno, alloc_errs), "actx_req_new: errno %d", errno);
    } else {
        it->expect = 1;
        it->want = want;
    }
    *out = it;
    return req;
}

static actx_req *submit(const char *what, long want)
{
    struct item *it = item_new(what);
    actx_req *req;

    it->want = want;
    req = actx_submit(item_work, item_done, it);
    if (!req) {
        CHECK(allowed(errno, submit_errs), "actx_submit: errno %d", errno);
        return NULL;
    }
    it->expect = 1;
    return req;
}

struct complete_arg {
    actx_req *req;
    long ret;
    int want_rc;
};

static void *complete_main(void *p)
{
    struct complete_arg *a = p;
    int rc = actx_req_complete(a->req, a->ret);

    CHECK(rc == a->want_rc, "actx_req_complete from a helper: %d, want %d", rc,
          a->want_rc);
    return NULL;
}

struct call_arg {
    actx_ctx *h;
    struct item *it;
};

static void *call_main(void *p)
{
    struct call_arg *a = p;
    int rc = actx_ctx_call(a->h, item_fn, a->it);

    if (rc == 0) {
        a->it->expect = 1; /* the owner joins us before it waits */
    } else {
        CHECK(rc == -ENOMEM, "actx_ctx_call: %d (%s)", rc, actx_strerror(rc));
    }
    return NULL;
}

/* A timer armed at deadline; freed by the owner at the end. */
static actx_timer *timer_armed(const char *what, uint64_t deadline)
{
    struct item *it = item_new(what);
    actx_timer *t = actx_timer_new(item_fn, it);

    if (!t) {
        CHECK(allowed(errno, alloc_errs), "actx_timer_new: errno %d", errno);
        return NULL;
    }
    actx_timer_mod(t, deadline); /* cannot fail: must fire */
    it->expect = 1;
    return t;
}

/* Reads the byte, then removes itself: runs once per registration. */
static void fd_read(void *opaque)
{
    struct item *it = opaque;
    char c;
    int rc;

    CHECK(read(it->fd, &c, 1) == 1, "%s: readable fd with nothing to read",
          it->what);
    rc = actx_set_fd_handler(it->fd, NULL, NULL, NULL);
    CHECK(rc == 0, "removing an fd handler: %d", rc);
    item_ran(it);
}

/* An fd handler on a pipe that holds one byte; p[] is closed later. */
static void fd_ready(const char *what, int p[2])
{
    struct item *it = item_new(what);
    int rc;

    CHECK(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0, "pipe2");
    CHECK(write(p[1], "x", 1) == 1, "write");
    it->fd = p[0];
    rc = actx_set_fd_handler(p[0], fd_read, NULL, it);
    if (rc < 0) {
        CHECK(allowed(-rc, alloc_errs), "actx_set_fd_handler: %d (%s)", rc,
              actx_strerror(rc));
        return;
    }
    it->expect = 1;
}

/* Pool work that nests: push, submit, wait, pop on its pool thread. */
static long nested_work(void *opaque)
{
    struct item *it = opaque;
    actx_req *inner;
    int rc;

    atomic_fetch_add(&it->work_runs, 1);
    if (push() < 0) {
        return it->want; /* nothing accepted: nothing to check */
    }
    inner = submit("nested inner job", 41);
    if (inner) {
        wait_pending("nested wait on a pool thread");
    }
    pop();
    rc = (int)it->want;
    return rc;
}

static actx_req *submit_nested(void)
{
    struct item *it = item_new("nested pool job");
    actx_req *req;

    it->want = 1000;
    req = actx_submit(nested_work, item_done, it);
    if (!req) {
        CHECK(allowed(errno, submit_errs), "actx_submit: errno %d", errno);
        return NULL;
    }
    it->expect = 1;
    return req;
}

/*
 * actx_run ends with a helper's actx_stop.  A stop needs memory: without
 * any (--persist), the helper completes a request instead whose done drops
 * what kept the context alive (the handle, its live BHs), and actx_run
 * returns for lack of anything left to run.
 */
struct stop_arg {
    actx_ctx **h;
    actx_req *fallback;
};

static void *stop_main(void *p)
{
    struct stop_arg *a = p;
    int rc, tries = 0;

    usleep(2000);
    while ((rc = actx_stop(*a->h)) == -ENOMEM && ++tries < 100) {
        usleep(1000); /* no memory for the message: try again */
    }
    CHECK(rc == 0 || rc == -ENOMEM, "actx_stop: %d (%s)", rc,
          actx_strerror(rc));
    rc = actx_req_complete(a->fallback, rc);
    CHECK(rc == 0, "actx_req_complete: %d", rc);
    return NULL;
}

static actx_ctx **run_handle;
static actx_bh **run_bhs[3];

static void run_fallback_done(void *opaque, long ret)
{
    (void)opaque;
    if (ret < 0) {
        actx_ctx_unref(*run_handle);
        *run_handle = NULL;
        for (int i = 0; i < 3; i++) {
            actx_bh_delete(*run_bhs[i]);
            *run_bhs[i] = NULL;
        }
    }
}

/* Another thread with its own loop: a BH, a request, a pool job. */
static void *other_loop_main(void *p)
{
    actx_req *r;
    struct item *it;
    pthread_t t;
    struct complete_arg ca;
    int rc = actx_thread_init();

    (void)p;
    if (rc < 0) {
        CHECK(allowed(-rc, alloc_errs), "actx_thread_init: %d", rc);
    }
    bh_scheduled("other thread: BH", false);
    submit("other thread: job", 5);
    r = req_new("other thread: request", 9, &it);
    if (r) {
        ca = (struct complete_arg){r, 9, 0};
        helper_start(&t, complete_main, &ca);
        helper_join(t);
    }
    wait_pending("other thread");
    return NULL; /* thread exit shuts the loop down */
}

/* ------------------------------------------------------------------------ */
/* The scenario.                                                             */

#define NMERGE 10

static void scenario(void)
{
    int proot[2], pparked[2], pchild[2] = {-1, -1};
    /* Timers enough on both sides of the pop that merging grows a heap. */
    actx_timer *t_root, *t_parent[NMERGE], *t_child = NULL, *t_merge[NMERGE];
    actx_bh *bh_root, *bh_idle, *bh_child = NULL, *bh_cancel, *bh_del;
    actx_bh *bh_grandchild = NULL;
    actx_req *r1 = NULL, *r2 = NULL, *r_late, *cancel_req;
    struct item *it1, *it2, *it_late, *it_cancel = NULL;
    struct complete_arg ca;
    struct call_arg cl;
    struct stop_arg sa;
    actx_ctx *h_root, *h_child = NULL;
    pthread_t t;
    char path[] = "/tmp/actx-fault-XXXXXX";
    char wbuf[64], rbuf[64];
    int fd, rc, depth_pushed;

    /* Thread init, the pool's first job, the root context's things. */
    rc = actx_thread_init();
    CHECK(rc == 0 || allowed(-rc, alloc_errs), "actx_thread_init: %d", rc);
    submit("the pool's first job", 1);
    wait_pending("the pool's first job");
    bh_root = bh_scheduled("root BH", false);
    bh_idle = bh_scheduled("root idle BH", true);
    t_root = timer_armed("root timer", 0);
    fd_ready("root fd", proot);
    h_root = actx_ctx_current();
    if (!h_root) {
        CHECK(allowed(errno, alloc_errs), "actx_ctx_current: errno %d", errno);
    }

    /* A parked fd and a timer of the root that come due in the child. */
    fd_ready("root fd parked while a child is current", pparked);
    for (int i = 0; i < NMERGE; i++) {
        t_parent[i] = timer_armed("root timer due in the child", 0);
    }

    depth_pushed = push();
    /* Whatever the push gave, the rest runs in the current context. */
    bh_child = bh_scheduled("child BH", false);
    {
        struct item *it = item_new("cancelled BH");

        bh_cancel = actx_bh_new(item_fn, it);
        if (bh_cancel) {
            actx_bh_schedule(bh_cancel);
            actx_bh_cancel(bh_cancel);
        }
        it = item_new("deleted BH");
        bh_del = actx_bh_new(item_fn, it);
        if (bh_del) {
            actx_bh_schedule(bh_del);
            actx_bh_delete(bh_del);
        }
    }
    r1 = req_new("request completed by a helper", 7, &it1);
    if (r1) {
        ca = (struct complete_arg){r1, 7, 0};
        helper_start(&t, complete_main, &ca);
        helper_join(t);
    }
    h_child = actx_ctx_current();
    if (h_child) {
        cl = (struct call_arg){h_child, item_new("ctx call from a helper")};
        helper_start(&t, call_main, &cl);
        helper_join(t);
        rc = actx_ctx_call(h_child, item_fn, (it1 = item_new("owner call")));
        if (rc == 0) {
            it1->expect = 1;
        } else {
            CHECK(rc == -ENOMEM, "actx_ctx_call: %d", rc);
        }
    } else {
        CHECK(allowed(errno, alloc_errs), "actx_ctx_current: errno %d", errno);
    }
    submit("pool job 1", 11);
    submit("pool job 2", 12);
    cancel_req = submit("pool job cancelled", 13);
    if (cancel_req) {
        it_cancel = &items[nitems - 1];
        rc = actx_req_cancel(cancel_req);
        CHECK(rc == 0 || rc == -EBUSY, "actx_req_cancel: %d", rc);
        it_cancel->cancelled = rc == 0;
    }
    submit_nested();

    /* AIO on a private file. */
    fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    unlink(path);
    memset(wbuf, 'w', sizeof(wbuf));
    {
        struct item *w = item_new("aio pwrite");

        w->want = sizeof(wbuf);
        if (actx_aio_pwrite(fd, wbuf, sizeof(wbuf), 0, item_done, w)) {
            w->expect = 1;
        } else {
            CHECK(allowed(errno, submit_errs), "pwrite: errno %d", errno);
        }
        wait_pending("aio pwrite");
        if (w->expect) {
            struct item *r = item_new("aio pread");
            struct item *f = item_new("aio fsync");

            r->want = sizeof(rbuf);
            if (actx_aio_pread(fd, rbuf, sizeof(rbuf), 0, item_done, r)) {
                r->expect = 1;
            } else {
                CHECK(allowed(errno, submit_errs), "pread: errno %d", errno);
            }
            if (actx_aio_fsync(fd, item_done, f)) {
                f->expect = 1;
            } else {
                CHECK(allowed(errno, submit_errs), "fsync: errno %d", errno);
            }
            wait_pending("aio pread");
            CHECK(!r->expect || memcmp(wbuf, rbuf, sizeof(rbuf)) == 0,
                  "aio pread read back other bytes");
        }
    }
    close(fd);

    t_child = timer_armed("child timer", actx_now_ns() + 1000 * 1000);
    fd_ready("child fd", pchild);

    /* A nested context: its BH runs in pop's flush, its request moves. */
    if (push() > 0) {
        bh_grandchild = bh_scheduled("grandchild BH (pop flush)", false);
        r2 = req_new("request re-homed at pop", 8, &it2);
        pop();
        if (r2) {
            ca = (struct complete_arg){r2, 8, 0};
            helper_start(&t, complete_main, &ca);
            helper_join(t);
        }
    }
    /* Everything of this context, polled by all the variants. */
    actx_poll(false);
    actx_process_queue();
    flush("child");
    wait_pending("child");

    /*
     * actx_run until a helper's stop (in the child only: the fallback
     * cannot drop all the root has).
     */
    sa.fallback = h_child && depth_pushed > 0
                      ? actx_req_new(run_fallback_done, NULL)
                      : NULL;
    if (sa.fallback) {
        sa.h = run_handle = &h_child;
        run_bhs[0] = &bh_child;
        run_bhs[1] = &bh_cancel;
        run_bhs[2] = &bh_grandchild;
        helper_start(&t, stop_main, &sa);
        rc = actx_run();
        CHECK(rc == 0, "actx_run: %d", rc);
        helper_join(t);
        /* The fallback's done may still be queued after a stop. */
        flush("after actx_run");
    } else if (h_child && depth_pushed > 0) {
        CHECK(allowed(errno, alloc_errs), "actx_req_new: errno %d", errno);
    }

    /* Timers still armed at pop: merged into the root's heap. */
    for (int i = 0; i < NMERGE; i++) {
        t_merge[i] = timer_armed("child timer merged at pop",
                                 actx_now_ns() + 2 * 1000 * 1000);
    }
    if (depth_pushed > 0) {
        pop();
    }

    /* Back in the root: everything of the root, the child's leftovers. */
    wait_pending("root");
    flush("root");

    /* A second loop on another thread, shut down at its exit. */
    helper_start(&t, other_loop_main, NULL);
    helper_join(t);

    actx_timer_free(t_root);
    for (int i = 0; i < NMERGE; i++) {
        actx_timer_free(t_parent[i]);
    }
    actx_timer_free(t_child);
    for (int i = 0; i < NMERGE; i++) {
        actx_timer_free(t_merge[i]);
    }
    if (bh_root) {
        actx_bh_delete(bh_root);
    }
    if (bh_idle) {
        actx_bh_delete(bh_idle);
    }
    if (bh_child) {
        actx_bh_delete(bh_child);
    }
    if (bh_cancel) {
        actx_bh_delete(bh_cancel);
    }
    if (bh_grandchild) {
        actx_bh_delete(bh_grandchild);
    }
    if (h_child) {
        actx_ctx_unref(h_child);
    }
    if (h_root) {
        actx_ctx_unref(h_root);
    }
    r_late = req_new("request completed after shutdown", 3, &it_late);
    if (r_late) {
        it_late->expect = 0; /* refused with -EPIPE: never runs */
    }
    actx_thread_shutdown();

    /* After shutdown: a late completion is refused, done never runs. */
    if (r_late) {
        ca = (struct complete_arg){r_late, 3, -EPIPE};
        helper_start(&t, complete_main, &ca);
        helper_join(t);
    }
    for (int *p = (int[]){proot[0], proot[1], pparked[0], pparked[1], pchild[0],
                          pchild[1], -2};
         *p != -2; p++) {
        if (*p >= 0) {
            close(*p);
        }
    }

    /* A new loop after shutdown works. */
    submit("job on a loop created after shutdown", 21);
    wait_pending("after shutdown");
    actx_thread_shutdown();
}

/* ------------------------------------------------------------------------ */
/* The sweep.                                                                */

/*
 * Before the sweep's timeout kills a hung child: say what it waits for
 * (the accepted items that never ran).
 */
static void *watchdog_main(void *p)
{
    char why[RUNNER_MSG_LEN];
    const char *at;
    size_t len;

    usleep((useconds_t)(*(double *)p * 0.8 * 1e6));
    at = atomic_load(&waiting_at);
    len = (size_t)snprintf(why, sizeof(why), "hang in %s; never ran:",
                           at ? at : "the runtime (not in a wait)");
    for (int i = 0; i < nitems && len < sizeof(why); i++) {
        if (items[i].expect > atomic_load(&items[i].runs) &&
            (i == 0 || items[i].what != items[i - 1].what)) {
            len += (size_t)snprintf(why + len, sizeof(why) - len, " [%s]",
                                    items[i].what);
        }
    }
    fail("%s", why);
}

static void child_main(long k, double timeout)
{
    pthread_t t;

    if (timeout > 0) {
        helper_start(&t, watchdog_main, &timeout);
        pthread_detach(t);
    }
    /*
     * One pool thread: the nested job's wait needs the pool to grow, and
     * the first job has only the first worker.
     */
    actx_pool_set_size(1);
    inject_sweep_arm(k, persist, rep->fired, sizeof(rep->fired));
    scenario();
    inject_sweep_disarm();
    check_items();
    rep->calls = inject_sweep_calls();
}

struct k_arg {
    long k;
    double timeout;
};

static void k_body(void *p)
{
    struct k_arg *a = p;

    child_main(a->k, a->timeout);
}

/*
 * Run k in a forked child; 0 if it passed, else *why says how it failed.
 * The child's stderr goes to log (a sanitizer report is printed on failure).
 */
static int run_k(long k, double timeout, int log, char *why, size_t n)
{
    struct k_arg a = {k, timeout};

    memset(rep, 0, sizeof(*rep));
    return runner_run_forked(k_body, &a, timeout, log, why, n);
}

/* The child's stderr, indented, at most 40 lines. */
static void print_log(FILE *log)
{
    char line[512];
    int n = 0;

    if (!log) {
        return;
    }
    rewind(log);
    while (fgets(line, sizeof(line), log) && n++ < 40) {
        printf("     | %s", line);
    }
}

int main(int argc, char **argv)
{
    long only = -1, from = 1, to = -1, count;
    int passed = 0, failed = 0;
    double timeout;
    char why[RUNNER_MSG_LEN];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0) {
            verbose = true;
        } else if (strcmp(argv[i], "--persist") == 0) {
            persist = true;
        } else if (strcmp(argv[i], "--k") == 0 && i + 1 < argc) {
            only = atol(argv[++i]);
        } else if (strcmp(argv[i], "--from") == 0 && i + 1 < argc) {
            from = atol(argv[++i]);
        } else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc) {
            to = atol(argv[++i]);
        } else {
            fprintf(stderr,
                    "usage: %s [-v] [--persist] [--k K] [--from K] "
                    "[--to K]\n",
                    argv[0]);
            return 2;
        }
    }
    timeout = 20.0 * runner_timeout_scale();
    rep = mmap(NULL, sizeof(*rep), PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (rep == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    if (only >= 0) {
        verbose = true;
        child_main(only, 0);
        printf("k=%ld: passed (%ld calls, failed: %s)\n", only, rep->calls,
               rep->fired[0] ? rep->fired : "none");
        return 0;
    }

    /* k = 0: nothing fails; it must pass, and it counts the calls. */
    if (run_k(0, timeout, -1, why, sizeof(why)) != 0) {
        printf("FAIL k=0 (no fault): %s\n", why);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    count = rep->calls;
    if (to < 0) {
        /* Threads make the count vary a little between runs. */
        to = count + count / 10 + 5;
    }
    printf("actx-fault: %ld resource calls without faults; failing each of "
           "k = %ld..%ld%s\n",
           count, from, to, persist ? " and every call after it" : "");
    for (long k = from; k <= to; k++) {
        double t0 = runner_now_s();
        FILE *log = tmpfile();

        if (run_k(k, timeout, log ? fileno(log) : -1, why, sizeof(why)) == 0) {
            passed++;
            if (verbose) {
                printf("PASS k=%ld (%s, %.2f s)\n", k,
                       rep->fired[0] ? rep->fired : "no fault",
                       runner_now_s() - t0);
            }
        } else {
            failed++;
            printf("FAIL k=%ld (%s failed): %s\n", k,
                   rep->fired[0] ? rep->fired : "nothing", why);
            print_log(log);
            printf("     replay: %s%s --k %ld\n", argv[0],
                   persist ? " --persist" : "", k);
        }
        if (log) {
            fclose(log);
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
