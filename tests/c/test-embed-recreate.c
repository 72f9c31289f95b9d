/*
 * test-embed-recreate.c - a host loop that embeds actx (GLib through
 * libactx-glib, libuv through integrations/libuv/actx-uv.h) keeps working
 * when the thread's loop is shut down and a new one is made: the backend
 * fd is the thread's, the new loop uses it, so the host never watches a
 * dead loop's number that another file may have taken (actx.h,
 * actx_backend_fd; docs/embedding.md).  That holds whichever context was
 * current at the embedder's last declared wait (actx_backend_timeout_ms),
 * nested ones included, and whether the loop ends by actx_thread_shutdown
 * or by thread exit.
 */
#include "test.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>

#ifdef ACTX_HAVE_GLIB
#include "actx-glib.h"
#endif
#ifdef ACTX_HAVE_LIBUV
#include "actx-uv.h"
#endif

enum { GRAB = 8 };

static void ran(void *opaque)
{
    (*(int *)opaque)++;
}

/* Files that take the lowest free numbers (those a dead loop freed). */
static void grab_numbers(int *fds, bool readable_files)
{
    for (int i = 0; i < GRAB; i += 2) {
        if (readable_files) {
            fds[i] = open("/dev/zero", O_RDONLY | O_CLOEXEC);
            fds[i + 1] = open("/dev/zero", O_RDONLY | O_CLOEXEC);
        } else {
            int p[2];

            ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
            fds[i] = p[0];
            fds[i + 1] = p[1];
        }
        ASSERT_GE(fds[i], 0);
        ASSERT_GE(fds[i + 1], 0);
    }
}

static void release_numbers(int *fds)
{
    for (int i = 0; i < GRAB; i++) {
        close(fds[i]);
    }
}

ACTX_TEST("/embed/backend/fd-survives-shutdown")
{
    int fd = actx_backend_fd(), grabbed[GRAB];

    ASSERT_GE(fd, 0);
    actx_thread_shutdown();
    grab_numbers(grabbed, false);
    for (int i = 0; i < GRAB; i++) {
        ASSERT_NE(grabbed[i], fd);
    }
    ASSERT_EQ(actx_backend_fd(), fd);
    ASSERT_EQ(actx_backend_timeout_ms(), -1);
    release_numbers(grabbed);
}

static bool readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* Where the fd handlers are when the embedder declares a nested wait. */
enum nested_wait {
    HANDLER_IN_ROOT,  /* the nested context has none of its own */
    HANDLER_IN_CHILD, /* it has one, removed before the pop */
    HANDLER_KEPT,     /* it has one, still registered (and ready) at the pop */
};

/*
 * The embedder's last declared wait is one in a nested context, which is
 * then popped; a handler of that context, or of the root, runs in the
 * root after the pop.
 */
static void declare_wait_in_nested(enum nested_wait how)
{
    int fd = actx_backend_fd(), efd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
    int runs = 0;

    ASSERT_GE(fd, 0);
    ASSERT_GE(efd, 0);
    if (how == HANDLER_IN_ROOT) {
        ASSERT_EQ(actx_set_fd_handler(efd, ran, NULL, &runs), 0);
    }
    ASSERT_EQ(actx_push(), 1);
    if (how != HANDLER_IN_ROOT) {
        ASSERT_EQ(actx_set_fd_handler(efd, ran, NULL, &runs), 0);
    }
    ASSERT_EQ(actx_backend_timeout_ms(), -1);
    ASSERT_EQ(readable(fd), how != HANDLER_IN_ROOT);
    if (how == HANDLER_IN_CHILD) {
        ASSERT_EQ(actx_set_fd_handler(efd, NULL, NULL, NULL), 0);
    }
    ASSERT_EQ(actx_pop(), 0);
    if (how != HANDLER_IN_CHILD) {
        ASSERT_EQ(actx_poll(false), 1);
        ASSERT_EQ(runs, 1);
        ASSERT_EQ(actx_set_fd_handler(efd, NULL, NULL, NULL), 0);
    }
    close(efd);
}

/* After the shutdown the backend fd is quiet and follows the next loop. */
static void check_next_loop(int fd)
{
    int runs = 0;
    actx_ctx *h;

    ASSERT_FALSE(readable(fd));
    ASSERT_EQ(actx_backend_fd(), fd);
    ASSERT_EQ(actx_backend_timeout_ms(), -1);
    ASSERT_FALSE(readable(fd));
    h = actx_ctx_current();
    ASSERT_NOT_NULL(h);
    ASSERT_EQ(call_from_thread(h, ran, &runs), 0);
    ASSERT_TRUE(readable(fd));
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(runs, 1);
    actx_ctx_unref(h);
}

ACTX_TEST("/embed/backend/shutdown-after-nested-wait/handler-in-root")
{
    declare_wait_in_nested(HANDLER_IN_ROOT);
    actx_thread_shutdown();
    check_next_loop(actx_backend_fd());
}

ACTX_TEST("/embed/backend/shutdown-after-nested-wait/handler-in-child")
{
    declare_wait_in_nested(HANDLER_IN_CHILD);
    actx_thread_shutdown();
    check_next_loop(actx_backend_fd());
}

ACTX_TEST("/embed/backend/shutdown-after-nested-wait/handler-kept")
{
    declare_wait_in_nested(HANDLER_KEPT);
    actx_thread_shutdown();
    check_next_loop(actx_backend_fd());
}

static void *nested_wait_then_exit(void *arg)
{
    declare_wait_in_nested(*(enum nested_wait *)arg);
    return NULL; /* thread exit ends the loop */
}

ACTX_TEST("/embed/backend/thread-exit-after-nested-wait")
{
    enum nested_wait how[] = {HANDLER_IN_ROOT, HANDLER_IN_CHILD, HANDLER_KEPT};

    for (size_t i = 0; i < sizeof(how) / sizeof(how[0]); i++) {
        thread_join(thread_start(nested_wait_then_exit, &how[i]));
    }
}

/*
 * A nested context's set goes back to the spares at its pop and is taken
 * again by the next context that registers a handler: the backend fd
 * follows each declared wait all the same.
 */
ACTX_TEST("/embed/backend/nested-set-reused-after-pop")
{
    int fd = actx_backend_fd(), runs = 0;
    int e1 = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int e2 = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);

    ASSERT_GE(e1, 0);
    ASSERT_GE(e2, 0);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_set_fd_handler(e1, ran, NULL, &runs), 0);
    ASSERT_EQ(actx_backend_timeout_ms(), -1);
    ASSERT_FALSE(readable(fd));
    ASSERT_EQ(actx_set_fd_handler(e1, NULL, NULL, NULL), 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_set_fd_handler(e2, ran, NULL, &runs), 0);
    ASSERT_EQ(actx_backend_timeout_ms(), -1);
    ASSERT_TRUE(readable(fd));
    ASSERT_EQ(actx_push(), 2); /* e2 is an outer context's now */
    ASSERT_EQ(actx_backend_timeout_ms(), -1);
    ASSERT_FALSE(readable(fd));
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_backend_timeout_ms(), -1);
    ASSERT_TRUE(readable(fd));
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(runs, 1);
    ASSERT_EQ(actx_set_fd_handler(e2, NULL, NULL, NULL), 0);
    actx_thread_shutdown();
    check_next_loop(fd);
    close(e1);
    close(e2);
}

#ifdef ACTX_HAVE_GLIB
/* A call from another thread reaches the new loop while GLib sleeps. */
ACTX_TEST_TIMEOUT("/embed/glib/follows-recreated-loop", 20)
{
    GMainContext *gctx = g_main_context_new();
    GSource *src = actx_g_source_new();
    int grabbed[GRAB], runs = 0;
    atomic_int rc = -1;
    actx_ctx *h;
    pthread_t t;

    ASSERT_NOT_NULL(src);
    g_source_attach(src, gctx);
    for (int round = 0; round < 3; round++) {
        g_main_context_iteration(gctx, FALSE);
        actx_thread_shutdown();
        grab_numbers(grabbed, false); /* idle pipes */
        h = actx_ctx_current();       /* the new loop */
        ASSERT_NOT_NULL(h);
        t = later_call(h, ran, &runs, 0, test_gettid(), &rc);
        while (runs == round) {
            g_main_context_iteration(gctx, TRUE);
        }
        thread_join(t);
        ASSERT_EQ(atomic_load(&rc), 0);
        ASSERT_EQ(runs, round + 1);
        actx_ctx_unref(h);
        release_numbers(grabbed);
    }
    g_source_destroy(src);
    g_source_unref(src);
    g_main_context_unref(gctx);
}

/* Always-readable files on the dead loop's numbers: an idle new loop
 * leaves GLib with nothing to dispatch (no busy loop). */
ACTX_TEST_TIMEOUT("/embed/glib/recreated-loop-idle-no-spin", 20)
{
    GMainContext *gctx = g_main_context_new();
    GSource *src = actx_g_source_new();
    int grabbed[GRAB];

    ASSERT_NOT_NULL(src);
    g_source_attach(src, gctx);
    g_main_context_iteration(gctx, FALSE);
    actx_thread_shutdown();
    grab_numbers(grabbed, true);
    ASSERT_EQ(actx_thread_init(), 0);
    for (int i = 0; i < 3; i++) {
        g_main_context_iteration(gctx, FALSE); /* settle */
    }
    for (int i = 0; i < 10; i++) {
        ASSERT_FALSE(g_main_context_iteration(gctx, FALSE));
    }
    release_numbers(grabbed);
    g_source_destroy(src);
    g_source_unref(src);
    g_main_context_unref(gctx);
}
#else
ACTX_TEST("/embed/glib/follows-recreated-loop")
{
    actx_test_fail(__FILE__, __LINE__,
                   "built without glib-2.0: install libglib2.0-dev");
}
#endif

#ifdef ACTX_HAVE_LIBUV
ACTX_TEST_TIMEOUT("/embed/libuv/follows-recreated-loop", 20)
{
    uv_loop_t loop;
    actx_uv glue;
    int grabbed[GRAB], runs = 0;
    atomic_int rc = -1;
    actx_ctx *h;
    pthread_t t;

    ASSERT_EQ(uv_loop_init(&loop), 0);
    ASSERT_EQ(actx_uv_start(&glue, &loop), 0);
    for (int round = 0; round < 3; round++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        actx_thread_shutdown();
        grab_numbers(grabbed, false);
        h = actx_ctx_current();
        ASSERT_NOT_NULL(h);
        t = later_call(h, ran, &runs, 0, test_gettid(), &rc);
        while (runs == round) {
            uv_run(&loop, UV_RUN_ONCE);
        }
        thread_join(t);
        ASSERT_EQ(atomic_load(&rc), 0);
        actx_ctx_unref(h);
        release_numbers(grabbed);
    }
    actx_uv_close(&glue);
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(&loop), 0);
}
#else
ACTX_TEST("/embed/libuv/follows-recreated-loop")
{
    actx_test_fail(__FILE__, __LINE__,
                   "built without libuv: install libuv1-dev");
}
#endif
