/*
 * test-embed-recreate.c - a host loop that embeds actx (GLib through
 * libactx-glib, libuv through integrations/libuv/actx-uv.h) keeps working
 * when the thread's loop is shut down and a new one is made: the backend
 * fd is the thread's, the new loop uses it, so the host never watches a
 * dead loop's number that another file may have taken (actx.h,
 * actx_backend_fd; docs/embedding.md).
 */
#include "test.h"

#include <fcntl.h>

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
