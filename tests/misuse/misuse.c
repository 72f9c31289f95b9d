/*
 * misuse.c - every misuse of the contract the runtime can detect: it
 * returns the documented error (or does nothing, for void functions),
 * prints its diagnostic on stderr, and the process goes on working.  One
 * actx_ctx_unref too many stops debug builds with the message (abort).
 *
 * Each test runs in its own forked child (tests/c/main.c); EXPECT_MSG
 * captures what the runtime writes to stderr while it runs its statement.
 */
#include "test.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

/* ------------------------------------------------------------------------ */
/* Capturing stderr.                                                         */

static int cap_fd = -1, saved_fd = -1;

static void capture_begin(void)
{
    fflush(stderr);
    cap_fd = memfd_create("actx-misuse-stderr", 0);
    ASSERT_GE(cap_fd, 0);
    saved_fd = dup(2);
    ASSERT_GE(saved_fd, 0);
    ASSERT_EQ(dup2(cap_fd, 2), 2);
}

/* What was written since capture_begin (static buffer). */
static const char *capture_read(int fd)
{
    static char buf[4096];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static const char *capture_end(void)
{
    const char *s;

    fflush(stderr);
    ASSERT_EQ(dup2(saved_fd, 2), 2);
    close(saved_fd);
    s = capture_read(cap_fd);
    close(cap_fd);
    /* Echo it, so that the run's log shows the diagnostics. */
    fputs(s, stderr);
    return s;
}

static void assert_has(const char *file, int line, const char *text,
                       const char *want)
{
    if (!strstr(text, want)) {
        actx_test_fail(file, line, "stderr lacks \"%s\"; it was: \"%s\"", want,
                       text);
    }
}

/* Run stmt; its stderr must contain msg (NULL: must be empty). */
#define EXPECT_MSG(msg, stmt)                                                  \
    do {                                                                       \
        const char *expect_out_;                                               \
        capture_begin();                                                       \
        stmt;                                                                  \
        expect_out_ = capture_end();                                           \
        if ((msg) == NULL) {                                                   \
            if (*expect_out_) {                                                \
                actx_test_fail(__FILE__, __LINE__, "unexpected stderr: %s",    \
                               expect_out_);                                   \
            }                                                                  \
        } else {                                                               \
            assert_has(__FILE__, __LINE__, expect_out_, (msg));                \
        }                                                                      \
    } while (0)

/* Run fn in a child that must abort (SIGABRT) with msg on stderr. */
static void expect_abort(const char *msg, void (*fn)(void))
{
    int fd = memfd_create("actx-misuse-abort", 0), status;
    pid_t pid;

    ASSERT_GE(fd, 0);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        dup2(fd, 2);
        fn();
        _exit(0);
    }
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status));
    ASSERT_EQ(WTERMSIG(status), SIGABRT);
    assert_has(__FILE__, __LINE__, capture_read(fd), msg);
    close(fd);
}

/* The runtime still works: a BH runs and a request completes. */
static void still_works(void)
{
    struct cb_rec b = {0}, r = {0};
    actx_bh *bh = actx_bh_new(rec_fn, &b);
    actx_req *req = actx_req_new(rec_done, &r);

    ASSERT_NOT_NULL(bh);
    ASSERT_NOT_NULL(req);
    actx_bh_schedule(bh);
    ASSERT_EQ(complete_from_thread(req, 3), 0);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(b.runs, 1);
    ASSERT_EQ(r.runs, 1);
    ASSERT_EQ(r.ret, 3);
    actx_bh_delete(bh);
}

/* Run fn(arg) on a new thread and wait for it. */
struct on_thread_job {
    void (*fn)(void *);
    void *arg;
};

static void *on_thread_main(void *p)
{
    struct on_thread_job *j = p;

    j->fn(j->arg);
    return NULL;
}

static void on_thread(void (*fn)(void *), void *arg)
{
    struct on_thread_job j = {fn, arg};

    thread_join(thread_start(on_thread_main, &j));
}

/* ------------------------------------------------------------------------ */
/* The context stack.                                                        */

ACTX_TEST("/misuse/pop/at-root")
{
    EXPECT_MSG("actx_pop: pop at the root", ASSERT_EQ(actx_pop(), -EINVAL));
    ASSERT_EQ(actx_context_id(), 0);
    still_works();
}

static void pushing_bh(void *opaque)
{
    (void)opaque;
    actx_push(); /* leaves the stack changed inside pop's flush */
}

ACTX_TEST("/misuse/pop/bh-changes-stack-in-flush")
{
    actx_bh *bh;

    ASSERT_EQ(actx_push(), 1);
    bh = actx_bh_new(pushing_bh, NULL);
    ASSERT_NOT_NULL(bh);
    actx_bh_schedule(bh);
    EXPECT_MSG("a BH left the context stack changed",
               ASSERT_EQ(actx_pop(), -EBUSY));
    ASSERT_EQ(actx_context_id(), 2);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_pop(), 0);
    actx_bh_delete(bh);
    still_works();
}

static void resched(void *opaque)
{
    actx_bh_schedule(*(actx_bh **)opaque);
}

ACTX_TEST("/misuse/pop/self-rescheduling-bh-does-not-hang")
{
    static actx_bh *bh;

    ASSERT_EQ(actx_push(), 1);
    bh = actx_bh_new(resched, &bh);
    ASSERT_NOT_NULL(bh);
    actx_bh_schedule(bh);
    ASSERT_EQ(actx_pop(), 0);
    actx_bh_delete(bh);
    still_works();
}

ACTX_TEST("/misuse/wait/nothing-to-wait-for")
{
    bool never = false;

    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(ACTX_WAIT_WHILE(!never), -EDEADLK);
    ASSERT_EQ(actx_poll(true), 0);
    ASSERT_EQ(actx_pop(), 0);
}

/* ------------------------------------------------------------------------ */
/* NULL and bad arguments.                                                   */

ACTX_TEST("/misuse/null/bh")
{
    errno = 0;
    ASSERT_NULL(actx_bh_new(NULL, NULL));
    ASSERT_EQ(errno, EINVAL);
    EXPECT_MSG(NULL, {
        actx_bh_schedule(NULL);
        actx_bh_schedule_idle(NULL);
        actx_bh_cancel(NULL);
        actx_bh_delete(NULL);
    });
    still_works();
}

ACTX_TEST("/misuse/null/req")
{
    ASSERT_EQ(actx_req_complete(NULL, 0), -EINVAL);
    ASSERT_EQ(actx_req_cancel(NULL), -EINVAL);
    errno = 0;
    ASSERT_NULL(actx_submit(NULL, NULL, NULL));
    ASSERT_EQ(errno, EINVAL);
    still_works();
}

ACTX_TEST("/misuse/null/aio")
{
    errno = 0;
    ASSERT_NULL(actx_aio_pread(-1, NULL, 0, 0, NULL, NULL));
    ASSERT_EQ(errno, EBADF);
    errno = 0;
    ASSERT_NULL(actx_aio_pread(0, NULL, 1, 0, NULL, NULL));
    ASSERT_EQ(errno, EINVAL);
    errno = 0;
    ASSERT_NULL(actx_aio_pwrite(1, NULL, 1, 0, NULL, NULL));
    ASSERT_EQ(errno, EINVAL);
    errno = 0;
    ASSERT_NULL(actx_aio_pwrite(1, "x", 1, -1, NULL, NULL));
    ASSERT_EQ(errno, EINVAL);
    errno = 0;
    ASSERT_NULL(actx_aio_fsync(-1, NULL, NULL));
    ASSERT_EQ(errno, EBADF);
    still_works();
}

ACTX_TEST("/misuse/null/handles")
{
    ASSERT_NULL(actx_ctx_ref(NULL));
    actx_ctx_unref(NULL);
    ASSERT_EQ(actx_ctx_id(NULL), -EINVAL);
    ASSERT_EQ(actx_ctx_call(NULL, rec_fn, NULL), -EINVAL);
    ASSERT_EQ(actx_stop(NULL), -EINVAL);
    actx_ctx *h = actx_ctx_current();
    ASSERT_EQ(actx_ctx_call(h, NULL, NULL), -EINVAL);
    actx_ctx_unref(h);
    still_works();
}

ACTX_TEST("/misuse/null/timers-and-stats")
{
    errno = 0;
    ASSERT_NULL(actx_timer_new(NULL, NULL));
    ASSERT_EQ(errno, EINVAL);
    actx_timer_mod(NULL, 0);
    actx_timer_del(NULL);
    actx_timer_free(NULL);
    actx_stats(NULL);
    still_works();
}

ACTX_TEST("/misuse/bad/fd-handler")
{
    char path[] = "/tmp/actx-misuse-XXXXXX";
    int fd = mkstemp(path), sv[2];

    ASSERT_GE(fd, 0);
    unlink(path);
    ASSERT_EQ(actx_set_fd_handler(-1, rec_fn, NULL, NULL), -EBADF);
    ASSERT_EQ(actx_set_fd_handler(fd, rec_fn, NULL, NULL), -EPERM);
    ASSERT_EQ(actx_set_fd_handler(actx_backend_fd(), rec_fn, NULL, NULL),
              -EINVAL);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[0]);
    ASSERT_EQ(actx_set_fd_handler(sv[0], rec_fn, NULL, NULL), -EBADF);
    close(sv[1]);
    close(fd);
    still_works();
}

ACTX_TEST("/misuse/bad/pool-size")
{
    ASSERT_EQ(actx_pool_set_size(0), -EINVAL);
    ASSERT_EQ(actx_pool_set_size(4097), -EINVAL);
    ASSERT_NOT_NULL(
        actx_submit((actx_work_fn *)(void *)actx_now_ns, NULL, NULL));
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(actx_pool_set_size(2), -EBUSY);
}

ACTX_TEST("/misuse/bad/strerror")
{
    ASSERT_NOT_NULL(actx_strerror(INT_MIN));
    ASSERT_NOT_NULL(actx_strerror(-100000));
    ASSERT_NOT_NULL(actx_strerror(12345));
}

/* ------------------------------------------------------------------------ */
/* Requests.                                                                 */

ACTX_TEST("/misuse/req/complete-twice")
{
    struct cb_rec r = {0};
    actx_req *req = actx_req_new(rec_done, &r);

    ASSERT_NOT_NULL(req);
    ASSERT_EQ(actx_req_complete(req, 1), 0);
    EXPECT_MSG("request completed twice",
               ASSERT_EQ(actx_req_complete(req, 2), -EALREADY));
    ASSERT_EQ(actx_flush(), 0);
    EXPECT_MSG("request completed twice",
               ASSERT_EQ(complete_from_thread(req, 3), -EALREADY));
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r.runs, 1);
    ASSERT_EQ(r.ret, 1);
    still_works();
}

static long slow_work(void *opaque)
{
    (void)opaque;
    usleep(20000);
    return 9;
}

ACTX_TEST("/misuse/req/complete-pool-request-by-hand")
{
    struct cb_rec r = {0};
    actx_req *req = actx_submit(slow_work, rec_done, &r);

    ASSERT_NOT_NULL(req);
    EXPECT_MSG("the pool completes it",
               ASSERT_EQ(actx_req_complete(req, 1), -EINVAL));
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r.runs, 1);
    ASSERT_EQ(r.ret, 9);
    still_works();
}

ACTX_TEST("/misuse/req/cancel-twice-and-cancel-plain")
{
    struct cb_rec r = {0}, p = {0};
    actx_req *busy, *req, *plain;

    ASSERT_EQ(actx_pool_set_size(1), 0);
    busy = actx_submit(slow_work, NULL, NULL);
    req = actx_submit(slow_work, rec_done, &r);
    plain = actx_req_new(rec_done, &p);
    ASSERT_NOT_NULL(busy);
    ASSERT_NOT_NULL(req);
    ASSERT_NOT_NULL(plain);
    ASSERT_EQ(actx_req_cancel(req), 0);
    ASSERT_EQ(actx_req_cancel(req), -EBUSY);
    ASSERT_EQ(actx_req_cancel(plain), -EBUSY);
    ASSERT_EQ(actx_req_complete(plain, 0), 0);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r.runs, 1);
    ASSERT_EQ(r.ret, -ECANCELED);
    still_works();
}

static void cancel_foreign(void *req)
{
    EXPECT_MSG("not called on the owner thread",
               ASSERT_EQ(actx_req_cancel(req), -EPERM));
}

ACTX_TEST("/misuse/req/cancel-foreign-request")
{
    struct cb_rec r = {0};
    actx_req *req = actx_submit(slow_work, rec_done, &r);

    ASSERT_NOT_NULL(req);
    on_thread(cancel_foreign, req);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r.runs, 1);
    ASSERT_EQ(r.ret, 9);
    still_works();
}

static long leaves_pushed(void *opaque)
{
    (void)opaque;
    actx_push();
    return 1;
}

ACTX_TEST("/misuse/req/work-leaves-context-pushed")
{
    struct cb_rec r[2] = {{0}};

    ASSERT_EQ(actx_pool_set_size(1), 0);
    EXPECT_MSG("context still pushed", {
        ASSERT_NOT_NULL(actx_submit(leaves_pushed, rec_done, &r[0]));
        ASSERT_EQ(actx_flush(), 0);
        /* The same worker takes the next job with a clean stack. */
        ASSERT_NOT_NULL(actx_submit(leaves_pushed, rec_done, &r[1]));
        ASSERT_EQ(actx_flush(), 0);
    });
    ASSERT_EQ(r[0].runs + r[1].runs, 2);
    still_works();
}

/* ------------------------------------------------------------------------ */
/* Owner-only calls from the wrong thread.                                   */

struct objs {
    actx_bh *bh;
    actx_timer *t;
};

static void wrong_thread_calls(void *opaque)
{
    struct objs *o = opaque;

    EXPECT_MSG("actx_bh_delete: not called on the owner thread",
               actx_bh_delete(o->bh));
    EXPECT_MSG("actx_timer_mod: not called on the owner thread",
               actx_timer_mod(o->t, 0));
    EXPECT_MSG("actx_timer_del: not called on the owner thread",
               actx_timer_del(o->t));
    EXPECT_MSG("actx_timer_free: not called on the owner thread",
               actx_timer_free(o->t));
}

/* The calls made by caller (on another thread) change nothing: the BH
 * still runs, the timer is still unarmed. */
static void owner_only_case(void (*caller)(void *))
{
    struct cb_rec b = {0}, t = {0};
    struct objs o = {actx_bh_new(rec_fn, &b), actx_timer_new(rec_fn, &t)};

    ASSERT_NOT_NULL(o.bh);
    ASSERT_NOT_NULL(o.t);
    on_thread(caller, &o);
    actx_bh_schedule(o.bh);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(b.runs, 1);
    ASSERT_EQ(t.runs, 0);
    actx_bh_delete(o.bh);
    actx_timer_free(o.t);
    still_works();
}

ACTX_TEST("/misuse/thread/owner-only-calls")
{
    owner_only_case(wrong_thread_calls);
}

/* The same from a thread that has a loop of its own: not the owner either. */
static void other_loop_calls(void *opaque)
{
    ASSERT_EQ(actx_thread_init(), 0);
    wrong_thread_calls(opaque);
    actx_thread_shutdown();
}

ACTX_TEST("/misuse/thread/owner-only-calls-from-another-loop")
{
    owner_only_case(other_loop_calls);
}

/* ------------------------------------------------------------------------ */
/* Double delete / free, over-release.                                       */

ACTX_TEST("/misuse/bh/delete-twice")
{
    struct cb_rec b = {0};
    actx_bh *bh = actx_bh_new(rec_fn, &b);

    ASSERT_NOT_NULL(bh);
    actx_bh_schedule(bh);
    actx_bh_delete(bh);
    EXPECT_MSG("BH deleted twice", actx_bh_delete(bh));
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(b.runs, 0);
    still_works();
}

ACTX_TEST("/misuse/timer/free-twice")
{
    struct cb_rec t = {0};
    actx_timer *tm = actx_timer_new(rec_fn, &t);

    ASSERT_NOT_NULL(tm);
    actx_timer_mod(tm, 0);
    actx_timer_free(tm);
    EXPECT_MSG("timer already freed", actx_timer_free(tm));
    EXPECT_MSG("timer already freed", actx_timer_mod(tm, 0));
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(t.runs, 0);
    still_works();
}

static void unref_twice(void)
{
    actx_ctx *h = actx_ctx_current();

    actx_ctx_unref(h);
    actx_ctx_unref(h);
}

static actx_ctx *exited_h;

static void *handle_then_exit(void *arg)
{
    (void)arg;
    exited_h = actx_ctx_current();
    return NULL;
}

static void unref_twice_after_exit(void)
{
    thread_join(thread_start(handle_then_exit, NULL));
    actx_ctx_unref(exited_h);
    actx_ctx_unref(exited_h);
}

#ifdef ACTX_DEBUG
ACTX_TEST("/misuse/ctx/unref-too-often-aborts-in-debug")
{
    expect_abort("released more often than it was taken", unref_twice);
    expect_abort("released more often than it was taken",
                 unref_twice_after_exit);
}
#else
ACTX_TEST("/misuse/ctx/unref-too-often-reported")
{
    EXPECT_MSG("released more often than it was taken", unref_twice());
    EXPECT_MSG("released more often than it was taken",
               unref_twice_after_exit());
    still_works();
}
#endif

/* ------------------------------------------------------------------------ */
/* Shutdown.                                                                 */

static void shutdown_inside(void *opaque)
{
    (void)opaque;
    actx_thread_shutdown(); /* deferred until the poll returns */
    ASSERT_EQ(actx_context_id(), 1);
}

ACTX_TEST("/misuse/shutdown/inside-callback-is-deferred")
{
    actx_ctx *h = actx_ctx_current();
    actx_bh *bh;

    ASSERT_EQ(actx_push(), 1);
    bh = actx_bh_new(shutdown_inside, NULL);
    ASSERT_NOT_NULL(bh);
    actx_bh_schedule(bh);
    EXPECT_MSG(NULL, ASSERT_EQ(actx_poll(false), 1));
    ASSERT_EQ(actx_ctx_call(h, rec_fn, NULL), -EPIPE);
    actx_ctx_unref(h);
    still_works(); /* a new loop */
}

static void *handle_of_exiting_thread(void *arg)
{
    (void)arg;
    return actx_ctx_current();
}

ACTX_TEST("/misuse/shutdown/posts-after-owner-exit")
{
    actx_ctx *h = thread_join(thread_start(handle_of_exiting_thread, NULL));

    ASSERT_NOT_NULL(h);
    ASSERT_EQ(actx_ctx_call(h, rec_fn, NULL), -EPIPE);
    ASSERT_EQ(actx_stop(h), -EPIPE);
    actx_ctx_unref(h);
    still_works();
}

ACTX_TEST("/misuse/shutdown/twice-and-use-after")
{
    actx_thread_shutdown();
    actx_thread_shutdown();
    ASSERT_EQ(actx_pop(), -EINVAL);
    still_works();
}
