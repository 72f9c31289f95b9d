/*
 * test-shutdown-cb.c - actx_thread_shutdown() called from inside a
 * callback of every kind (BH, done, call, timer, fd handler, and deeper,
 * inside a nested wait).  The shutdown is deferred until the outermost
 * call that runs callbacks returns (actx.h): the callback and its callers
 * keep a working loop, and afterwards the runtime is shut down (handles
 * taken before are refused with -EPIPE).
 */
#include "test.h"

#include <sys/socket.h>

struct sd {
    int runs;
    int id_after; /* actx_context_id() after the shutdown call */
    actx_ctx *h;
};

static void shut(struct sd *s)
{
    s->runs++;
    actx_thread_shutdown();
    /* Still running: the loop is intact until the outer call returns. */
    s->id_after = actx_context_id();
}

static void shut_fn(void *opaque)
{
    shut(opaque);
}

static void shut_done(void *opaque, long ret)
{
    (void)ret;
    shut(opaque);
}

static void noop(void *opaque)
{
    (void)opaque;
}

/* Push a context, make a handle on the root, return it. */
static void sd_init(struct sd *s)
{
    memset(s, 0, sizeof(*s));
    s->h = actx_ctx_current();
    ASSERT_NOT_NULL(s->h);
    ASSERT_EQ(actx_push(), 1);
}

/* The loop was shut down by the time the outer call returned. */
static void sd_check(struct sd *s)
{
    struct actx_stats st;

    ASSERT_EQ(s->runs, 1);
    ASSERT_EQ(s->id_after, 1);
    ASSERT_EQ(actx_ctx_call(s->h, noop, NULL), -EPIPE);
    actx_ctx_unref(s->h);
    actx_stats(&st);
    ASSERT_EQ(st.depth, 0);
    ASSERT_EQ(st.live_bhs, 0);
}

ACTX_TEST("/shutdown/in-callback/bh")
{
    struct sd s;
    actx_bh *bh;

    sd_init(&s);
    bh = actx_bh_new(shut_fn, &s);
    ASSERT_NOT_NULL(bh);
    actx_bh_schedule(bh);
    ASSERT_EQ(actx_poll(false), 1);
    sd_check(&s);
}

ACTX_TEST("/shutdown/in-callback/bh-via-bh-poll")
{
    struct sd s;
    actx_bh *bh;

    sd_init(&s);
    bh = actx_bh_new(shut_fn, &s);
    ASSERT_NOT_NULL(bh);
    actx_bh_schedule(bh);
    ASSERT_EQ(actx_bh_poll(), 1);
    sd_check(&s);
}

ACTX_TEST("/shutdown/in-callback/bh-in-pop-flush")
{
    struct sd s;
    actx_bh *bh;

    sd_init(&s);
    bh = actx_bh_new(shut_fn, &s);
    ASSERT_NOT_NULL(bh);
    actx_bh_schedule(bh);
    ASSERT_EQ(actx_pop(), 0);
    sd_check(&s);
}

ACTX_TEST("/shutdown/in-callback/done")
{
    struct sd s;

    sd_init(&s);
    ASSERT_EQ(actx_req_complete(actx_req_new(shut_done, &s), 0), 0);
    ASSERT_EQ(actx_flush(), 0);
    sd_check(&s);
}

ACTX_TEST("/shutdown/in-callback/done-via-process-queue")
{
    struct sd s;

    sd_init(&s);
    ASSERT_EQ(complete_from_thread(actx_req_new(shut_done, &s), 0), 0);
    ASSERT_EQ(actx_process_queue(), 1);
    sd_check(&s);
}

ACTX_TEST("/shutdown/in-callback/call-in-run")
{
    struct sd s;
    actx_ctx *h;

    sd_init(&s);
    h = actx_ctx_current();
    ASSERT_EQ(actx_ctx_call(h, shut_fn, &s), 0);
    actx_ctx_unref(h);
    ASSERT_EQ(actx_run(), 0);
    sd_check(&s);
}

ACTX_TEST("/shutdown/in-callback/timer")
{
    struct sd s;
    actx_timer *t;

    sd_init(&s);
    t = actx_timer_new(shut_fn, &s);
    ASSERT_NOT_NULL(t);
    actx_timer_mod(t, actx_now_ns());
    ASSERT_EQ(actx_poll(true), 1);
    sd_check(&s);
}

static int fd_sd_fd;

static void shut_reader(void *opaque)
{
    char c;

    ASSERT_EQ(read(fd_sd_fd, &c, 1), 1);
    shut(opaque);
}

ACTX_TEST("/shutdown/in-callback/fd-handler")
{
    struct sd s;
    int sv[2];

    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ASSERT_EQ(write(sv[1], "x", 1), 1);
    sd_init(&s);
    fd_sd_fd = sv[0];
    ASSERT_EQ(actx_set_fd_handler(sv[0], shut_reader, NULL, &s), 0);
    ASSERT_EQ(actx_poll(true), 1);
    sd_check(&s);
    close(sv[0]);
    close(sv[1]);
}

/* Deeper: a BH waits for a request whose done shuts down. */
static struct sd nested_sd;
static int nested_wait_ret = 1;

static void nested_waiter(void *opaque)
{
    actx_req *req;

    (void)opaque;
    ASSERT_EQ(actx_push(), 2);
    req = actx_req_new(shut_done, &nested_sd);
    ASSERT_NOT_NULL(req);
    ASSERT_EQ(actx_req_complete(req, 0), 0);
    nested_wait_ret = ACTX_WAIT_WHILE(nested_sd.runs == 0);
    /* The waiter's own context is still there to pop. */
    ASSERT_EQ(actx_context_id(), 2);
    ASSERT_EQ(actx_pop(), 0);
}

ACTX_TEST("/shutdown/in-callback/inside-nested-wait")
{
    actx_bh *bh;

    sd_init(&nested_sd);
    bh = actx_bh_new(nested_waiter, NULL);
    ASSERT_NOT_NULL(bh);
    actx_bh_schedule(bh);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(nested_wait_ret, 0);
    nested_sd.id_after = 1; /* it was 2 there: checked above */
    sd_check(&nested_sd);
}

/* A callback that ends its thread: shut down at thread exit as usual. */
static void exit_fn(void *opaque)
{
    (void)opaque;
    actx_thread_shutdown();
    pthread_exit(NULL);
}

static void *exit_thread(void *arg)
{
    actx_bh *bh = actx_bh_new(exit_fn, NULL);

    (void)arg;
    ASSERT_NOT_NULL(bh);
    actx_bh_schedule(bh);
    actx_poll(false);
    ASSERT_TRUE(false); /* not reached */
    return NULL;
}

ACTX_TEST("/shutdown/in-callback/then-pthread-exit")
{
    thread_join(thread_start(exit_thread, NULL));
}
