/*
 * test-embed.c - actx_run/actx_stop serving a loop until stopped (sleeping,
 * not spinning), and embedding a thread's loop in another event loop
 * through actx_backend_fd/actx_backend_timeout_ms (docs/embedding.md): a
 * GLib main loop, through libactx-glib's actx_g_source_new(), drives actx
 * and delivers cross-thread calls, completions, timers and fd handlers.
 *
 * GLib is a test-only dependency (CI installs libglib2.0-dev).  Without it
 * the GLib tests are still registered and fail, loudly: a missing
 * dependency must not pass for a working embedding.
 */
#include "test.h"

#include <fcntl.h>
#include <poll.h>
#include <time.h>

#ifdef ACTX_HAVE_GLIB
#include "actx-glib.h"
#endif

#define MS 1000000ULL

static bool readable(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};

    return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* --- actx_run / actx_stop ------------------------------------------------------ */

static atomic_long calls;

static void count_call(void *opaque)
{
    (void)opaque;
    atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
}

struct caller {
    actx_ctx *h;
    int n;
    actx_fn *fn; /* default count_call */
};

static void *caller_main(void *arg)
{
    struct caller *c = arg;

    for (int i = 0; i < c->n; i++) {
        ASSERT_EQ(actx_ctx_call(c->h, c->fn ? c->fn : count_call, NULL), 0);
        if (i % 64 == 0) {
            usleep(200); /* let the owner fall asleep now and then */
        }
    }
    return NULL;
}

struct stopper {
    actx_ctx *h;
    pthread_t callers[4];
    unsigned delay_us;
};

static void *stopper_main(void *arg)
{
    struct stopper *s = arg;

    for (int i = 0; i < 4; i++) {
        if (s->callers[i]) {
            thread_join(s->callers[i]);
        }
    }
    usleep(s->delay_us);
    ASSERT_EQ(actx_stop(s->h), 0);
    return NULL;
}

ACTX_TEST("/run/serves-calls-from-4-threads-until-stop")
{
    struct caller c = {.n = 2500};
    struct stopper s = {.delay_us = 20000};
    struct actx_stats st0, st1;
    pthread_t st;

    atomic_store(&calls, 0);
    c.h = actx_ctx_current();
    s.h = c.h;
    for (int i = 0; i < 4; i++) {
        s.callers[i] = thread_start(caller_main, &c);
    }
    st = thread_start(stopper_main, &s);
    actx_stats(&st0);
    ASSERT_EQ(actx_run(), 0);
    actx_stats(&st1);
    thread_join(st);
    /* The stop was posted after every call: all ran first. */
    ASSERT_EQ(atomic_load(&calls), 4 * 2500);
    ASSERT_EQ(st1.calls_run - st0.calls_run, 4 * 2500);
    ASSERT_GT(st1.sleeps, st0.sleeps); /* it slept between bursts */
    actx_ctx_unref(c.h);
}

/* An idle actx_run sleeps: under 1% CPU over a second, also with an fd
 * handler and a far timer registered, and in a child while the parent's
 * fd is ready the whole time. */
static void run_idle_for_a_second(void)
{
    struct stopper s = {.delay_us = 1000000};
    struct actx_stats st0, st1;
    uint64_t cpu0, cpu1;
    pthread_t st;

    s.h = actx_ctx_current();
    st = thread_start(stopper_main, &s);
    actx_stats(&st0);
    cpu0 = thread_cpu_ns();
    ASSERT_EQ(actx_run(), 0);
    cpu1 = thread_cpu_ns();
    actx_stats(&st1);
    thread_join(st);
    printf("  idle run: %.3f ms CPU over 1 s, %lu sleeps\n",
           (cpu1 - cpu0) / 1e6, st1.sleeps - st0.sleeps);
    /* A busy loop costs ~1 s; valgrind (scale 20) inflates an idle one. */
    ASSERT_LT(cpu1 - cpu0,
              10 * MS * test_env_double("ACTX_TEST_TIMEOUT_SCALE", 1.0));
    ASSERT_LE(st1.sleeps - st0.sleeps, 20);
    actx_ctx_unref(s.h);
}

static void never(void *opaque)
{
    (void)opaque;
    actx_test_fail(__FILE__, __LINE__, "callback of a non-current context");
}

ACTX_TEST("/run/idle-cpu-under-1pct")
{
    int p[2];
    actx_timer *t = actx_timer_new(never, NULL);

    ASSERT_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    ASSERT_EQ(actx_set_fd_handler(p[0], never, NULL, NULL), 0);
    actx_timer_mod(t, actx_now_ns() + 3600 * 1000 * MS);
    run_idle_for_a_second();
    ASSERT_EQ(actx_set_fd_handler(p[0], NULL, NULL, NULL), 0);
    actx_timer_free(t);
    close(p[0]);
    close(p[1]);
}

ACTX_TEST("/run/idle-child-while-parent-fd-and-timer-ready")
{
    int p[2];
    actx_timer *t = actx_timer_new(never, NULL);

    ASSERT_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    ASSERT_EQ(actx_set_fd_handler(p[0], never, NULL, NULL), 0);
    ASSERT_EQ(write(p[1], "x", 1), 1); /* ready throughout */
    actx_timer_mod(t, 0);              /* due throughout */
    ASSERT_EQ(actx_push(), 1);
    run_idle_for_a_second();
    ASSERT_EQ(actx_set_fd_handler(p[0], NULL, NULL, NULL), 0);
    actx_timer_free(t);
    ASSERT_EQ(actx_pop(), 0);
    close(p[0]);
    close(p[1]);
}

/* A stop that arrives before actx_run makes it return after one round. */
ACTX_TEST("/run/stop-before-run")
{
    actx_ctx *h = actx_ctx_current();

    ASSERT_EQ(actx_stop(h), 0);
    ASSERT_EQ(actx_run(), 0);
    actx_ctx_unref(h);
}

/* --- the backend fd and timeout ------------------------------------------------- */

ACTX_TEST("/embed/backend/timeout-values")
{
    actx_timer *t = actx_timer_new(never, NULL);
    actx_bh *bh = actx_bh_new(never, NULL);
    int ms;

    ASSERT_GE(actx_backend_fd(), 0);
    ASSERT_EQ(actx_backend_timeout_ms(), -1);
    /* Far enough that a slow run (valgrind) still sees it in the future. */
    actx_timer_mod(t, actx_now_ns() + 5000 * MS);
    ms = actx_backend_timeout_ms();
    ASSERT_GT(ms, 0);
    ASSERT_LE(ms, 5001);
    actx_bh_schedule_idle(bh);
    ms = actx_backend_timeout_ms();
    ASSERT_GT(ms, 0);
    ASSERT_LE(ms, 10);
    actx_bh_cancel(bh);
    actx_timer_mod(t, 0);
    ASSERT_EQ(actx_backend_timeout_ms(), 0);
    actx_timer_del(t);
    actx_bh_schedule(bh);
    ASSERT_EQ(actx_backend_timeout_ms(), 0);
    actx_bh_delete(bh);
    actx_timer_free(t);
    /* In a child, the parent's due timer does not count. */
    t = actx_timer_new(never, NULL);
    actx_timer_mod(t, 0);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_backend_timeout_ms(), -1);
    ASSERT_EQ(actx_pop(), 0);
    actx_timer_free(t);
}

ACTX_TEST("/embed/backend/fd-readable-after-post")
{
    actx_ctx *h = actx_ctx_current();
    int fd = actx_backend_fd();

    atomic_store(&calls, 0);
    ASSERT_FALSE(readable(fd));
    ASSERT_EQ(actx_backend_timeout_ms(), -1); /* about to wait */
    ASSERT_EQ(call_from_thread(h, count_call, NULL), 0);
    ASSERT_TRUE(readable(fd));
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(atomic_load(&calls), 1);
    ASSERT_FALSE(readable(fd));
    /* Not declared: a post queues without writing the eventfd. */
    ASSERT_EQ(call_from_thread(h, count_call, NULL), 0);
    ASSERT_FALSE(readable(fd));
    ASSERT_EQ(actx_poll(false), 1);
    actx_ctx_unref(h);
}

static void bh_count(void *opaque)
{
    (void)opaque;
    atomic_fetch_add(&calls, 1);
}

static void done_count(void *opaque, long ret)
{
    (void)opaque;
    (void)ret;
    atomic_fetch_add(&calls, 1);
}

/* A post from the owner thread itself (a callback of the embedding loop)
 * while it is about to wait must make the fd readable too: call, BH, stop
 * and completion. */
ACTX_TEST("/embed/backend/fd-readable-after-own-thread-post")
{
    actx_ctx *h = actx_ctx_current();
    actx_bh *bh = actx_bh_new(bh_count, NULL);
    int fd = actx_backend_fd();

    atomic_store(&calls, 0);
    ASSERT_EQ(actx_backend_timeout_ms(), -1);
    ASSERT_FALSE(readable(fd));
    ASSERT_EQ(actx_ctx_call(h, count_call, NULL), 0);
    ASSERT_TRUE(readable(fd));
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(atomic_load(&calls), 1);

    ASSERT_EQ(actx_backend_timeout_ms(), -1);
    ASSERT_FALSE(readable(fd));
    actx_bh_schedule(bh);
    ASSERT_TRUE(readable(fd));
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(atomic_load(&calls), 2);

    ASSERT_EQ(actx_backend_timeout_ms(), -1);
    ASSERT_FALSE(readable(fd));
    ASSERT_EQ(actx_req_complete(actx_req_new(done_count, NULL), 0), 0);
    ASSERT_TRUE(readable(fd));
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(atomic_load(&calls), 3);
    ASSERT_FALSE(readable(fd));
    actx_bh_delete(bh);
    actx_ctx_unref(h);
}

ACTX_TEST("/embed/backend/fd-readable-for-ready-fd-handler")
{
    int p[2], fd = actx_backend_fd();
    struct cb_rec rec = {0};

    ASSERT_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    ASSERT_EQ(actx_set_fd_handler(p[0], rec_fn, NULL, &rec), 0);
    ASSERT_FALSE(readable(fd));
    ASSERT_EQ(write(p[1], "x", 1), 1);
    ASSERT_TRUE(readable(fd));
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(rec.runs, 1);
    /* In a child the parent's ready fd is not in the set the backend fd
     * follows (from the embedder's actx_backend_timeout_ms() on): the
     * backend fd goes quiet, so a foreign loop does not spin. */
    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(actx_backend_timeout_ms(), -1);
    ASSERT_FALSE(readable(fd));
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_backend_timeout_ms(), -1);
    ASSERT_TRUE(readable(fd));
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(rec.runs, 2);
    ASSERT_EQ(actx_set_fd_handler(p[0], NULL, NULL, NULL), 0);
    close(p[0]);
    close(p[1]);
}

/* --- GLib -------------------------------------------------------------------- */

#ifdef ACTX_HAVE_GLIB

struct embed_state {
    GMainLoop *ml;
    int calls_expected;
    struct cb_rec req_rec, fd_rec;
    int timer_runs;
    uint64_t timer_deadline[2], timer_fired[2];
    actx_timer *t[2];
    int pipe_fd;
    int glib_timeouts;
};

static struct embed_state es;

static void embed_check_done(void)
{
    if (atomic_load(&calls) == es.calls_expected && es.req_rec.runs == 1 &&
        es.timer_runs == 2 && es.fd_rec.runs >= 1) {
        g_main_loop_quit(es.ml);
    }
}

static void embed_call(void *opaque)
{
    count_call(opaque);
    embed_check_done();
}

static void embed_done(void *opaque, long ret)
{
    rec_done(opaque, ret);
    embed_check_done();
}

static void embed_timer(void *opaque)
{
    int i = (int)(intptr_t)opaque;

    es.timer_fired[i] = actx_now_ns();
    es.timer_runs++;
    ASSERT_EQ(actx_context_id(), 0);
    embed_check_done();
}

static void embed_fd(void *opaque)
{
    char b;

    rec_fn(opaque);
    ASSERT_EQ(read(es.pipe_fd, &b, 1), 1);
    embed_check_done();
}

static gboolean glib_tick(gpointer data)
{
    (void)data;
    es.glib_timeouts++; /* GLib's own sources keep working beside actx */
    return G_SOURCE_CONTINUE;
}

static void *write_later(void *arg)
{
    int fd = *(int *)arg;

    usleep(30000);
    ASSERT_EQ(write(fd, "x", 1), 1);
    return NULL;
}

ACTX_TEST("/embed/glib/drives-actx")
{
    GMainContext *gctx = g_main_context_new();
    GSource *src = actx_g_source_new();
    struct caller c = {.n = 500, .fn = embed_call};
    pthread_t callers[4], wr;
    actx_req *req;
    int p[2];

    memset(&es, 0, sizeof(es));
    atomic_store(&calls, 0);
    es.ml = g_main_loop_new(gctx, FALSE);
    es.calls_expected = 4 * c.n;
    g_source_attach(src, gctx);
    GSource *tick = g_timeout_source_new(5);
    g_source_set_callback(tick, glib_tick, NULL, NULL);
    g_source_attach(tick, gctx);

    /* Cross-thread calls and a completion from other threads. */
    c.h = actx_ctx_current();
    for (int i = 0; i < 4; i++) {
        callers[i] = thread_start(caller_main, &c);
    }
    req = actx_req_new(embed_done, &es.req_rec);
    ASSERT_NOT_NULL(req);
    pthread_t comp = later_complete(req, 42, 20000, 0, NULL);
    /* Two timers. */
    for (int i = 0; i < 2; i++) {
        es.t[i] = actx_timer_new(embed_timer, (void *)(intptr_t)i);
        es.timer_deadline[i] = actx_now_ns() + (uint64_t)(10 + 30 * i) * MS;
        actx_timer_mod(es.t[i], es.timer_deadline[i]);
    }
    /* An fd handler. */
    ASSERT_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    es.pipe_fd = p[0];
    ASSERT_EQ(actx_set_fd_handler(p[0], embed_fd, NULL, &es.fd_rec), 0);
    wr = thread_start(write_later, &p[1]);
    g_main_loop_run(es.ml); /* until everything above was delivered */

    for (int i = 0; i < 4; i++) {
        thread_join(callers[i]);
    }
    thread_join(comp);
    thread_join(wr);
    ASSERT_EQ(atomic_load(&calls), 4 * c.n);
    ASSERT_EQ(es.req_rec.runs, 1);
    ASSERT_EQ(es.req_rec.ret, 42);
    ASSERT_EQ(es.req_rec.ctx_id, 0);
    ASSERT_EQ(es.timer_runs, 2);
    for (int i = 0; i < 2; i++) {
        ASSERT_GE(es.timer_fired[i], es.timer_deadline[i]);
    }
    ASSERT_EQ(es.fd_rec.runs, 1);
    ASSERT_EQ(es.fd_rec.ctx_id, 0);
    ASSERT_GT(es.glib_timeouts, 0);

    ASSERT_EQ(actx_set_fd_handler(p[0], NULL, NULL, NULL), 0);
    close(p[0]);
    close(p[1]);
    for (int i = 0; i < 2; i++) {
        actx_timer_free(es.t[i]);
    }
    actx_ctx_unref(c.h);
    g_source_destroy(tick);
    g_source_unref(tick);
    g_source_destroy(src);
    g_source_unref(src);
    g_main_loop_unref(es.ml);
    g_main_context_unref(gctx);
}

#else /* !ACTX_HAVE_GLIB */

ACTX_TEST("/embed/glib/drives-actx")
{
    actx_test_fail(__FILE__, __LINE__,
                   "built without glib-2.0 (pkg-config found none): install "
                   "libglib2.0-dev; the embedding test cannot run");
}

#endif
