/*
 * test-embed-errors.c - the integrations' error paths: actx_g_source_new()
 * and actx_uv_start() on a thread whose loop cannot be created report the
 * error (NULL/errno, a negative errno) instead of watching nothing; a GLib
 * source dispatched on another thread than its creator's is destroyed
 * with a critical, never polling a loop that is not that thread's.
 */
#include "test.h"

#include "inject.h"

#ifdef ACTX_HAVE_GLIB
#include "actx-glib.h"
#endif
#ifdef ACTX_HAVE_LIBUV
#include "actx-uv.h"
#endif

#ifdef ACTX_HAVE_GLIB

static void *glib_noloop_main(void *arg)
{
    int *err = arg;
    GSource *s;

    inject_fail(&inject_alloc, INJECT_ALWAYS);
    errno = 0;
    s = actx_g_source_new();
    *err = errno;
    inject_fail(&inject_alloc, 0);
    ASSERT_NULL(s);
    return NULL;
}

ACTX_TEST("/embed/glib/source-new-without-loop-fails")
{
    int err = 0;

    thread_join(thread_start(glib_noloop_main, &err));
    ASSERT_EQ(err, ENOMEM);
}

static void *iterate_main(void *arg)
{
    g_main_context_iteration(arg, FALSE);
    return NULL;
}

ACTX_TEST("/embed/glib/dispatch-on-another-thread-destroys-the-source")
{
    GMainContext *gctx = g_main_context_new();
    GSource *src = actx_g_source_new();
    struct cb_rec r = {0};
    actx_bh *bh = actx_bh_new(rec_fn, &r);

    ASSERT_NOT_NULL(src);
    ASSERT_NOT_NULL(bh);
    actx_bh_schedule(bh); /* something to run: the source would fire */
    g_source_attach(src, gctx);
    thread_join(thread_start(iterate_main, gctx));
    ASSERT_TRUE(g_source_is_destroyed(src));
    ASSERT_EQ(r.runs, 0); /* the other thread never polled this loop */
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(r.runs, 1);
    actx_bh_delete(bh);
    g_source_unref(src);
    g_main_context_unref(gctx);
}

#else /* !ACTX_HAVE_GLIB */

ACTX_TEST("/embed/glib/source-new-without-loop-fails")
{
    actx_test_fail(__FILE__, __LINE__,
                   "built without glib-2.0: install libglib2.0-dev");
}

#endif

#ifdef ACTX_HAVE_LIBUV

static void *uv_noloop_main(void *arg)
{
    int *err = arg;
    uv_loop_t uvl;
    actx_uv a;

    ASSERT_EQ(uv_loop_init(&uvl), 0);
    inject_fail(&inject_alloc, INJECT_ALWAYS);
    *err = actx_uv_start(&a, &uvl);
    inject_fail(&inject_alloc, 0);
    ASSERT_EQ(uv_loop_close(&uvl), 0);
    return NULL;
}

ACTX_TEST("/embed/libuv/start-without-loop-fails")
{
    int err = 0;

    thread_join(thread_start(uv_noloop_main, &err));
    ASSERT_EQ(err, -ENOMEM);
}

#else /* !ACTX_HAVE_LIBUV */

ACTX_TEST("/embed/libuv/start-without-loop-fails")
{
    actx_test_fail(__FILE__, __LINE__,
                   "built without libuv: install libuv1-dev");
}

#endif
