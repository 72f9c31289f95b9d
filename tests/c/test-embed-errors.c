/*
 * test-embed-errors.c - the integrations' error paths: actx_g_source_new()
 * and actx_uv_start() on a thread whose loop cannot be created report the
 * error (NULL/errno, a negative errno) instead of watching nothing; a GLib
 * source dispatched on another thread than its creator's is destroyed
 * with a critical, never polling a loop that is not that thread's.  The
 * backend fd (actx_backend_fd) that cannot be created or registered (at
 * a declared wait, or at the pop of the context it followed) is reported
 * and made or registered at the next call.
 */
#include "test.h"

#include "inject.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#ifdef ACTX_HAVE_GLIB
#include "actx-glib.h"
#endif
#ifdef ACTX_HAVE_LIBUV
#include "actx-uv.h"
#endif

/* --- the backend fd ------------------------------------------------------ */

static bool readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static atomic_int calls;

static void count_call(void *opaque)
{
    (void)opaque;
    atomic_fetch_add(&calls, 1);
}

ACTX_TEST("/embed/backend/fd-creation-fails-then-made-next-time")
{
    int fd;

    ASSERT_EQ(actx_thread_init(), 0);
    inject_fail(&inject_epoll_create, 1);
    ASSERT_EQ(actx_backend_fd(), -EMFILE);
    ASSERT_EQ(inject_epoll_create_hits, 1);
    fd = actx_backend_fd();
    ASSERT_GE(fd, 0);
    ASSERT_EQ(actx_backend_fd(), fd);
}

static atomic_int embed_warnings;

static void count_embed_log(int level, const char *msg, void *opaque)
{
    (void)opaque;
    if (level == ACTX_LOG_ERROR && strstr(msg, "backend fd may not wake")) {
        atomic_fetch_add(&embed_warnings, 1);
    }
}

/* The loop's wait set could not join the backend fd: reported; the next
 * actx_backend_timeout_ms (before the host waits) joins it, and a post
 * then makes the fd readable. */
ACTX_TEST("/embed/backend/fd-registration-fails-then-retried")
{
    actx_ctx *h;
    int fd;

    ASSERT_EQ(actx_thread_init(), 0);
    h = actx_ctx_current();
    actx_set_log_handler(count_embed_log, NULL);
    inject_epoll_ctl_op = EPOLL_CTL_ADD;
    inject_fail(&inject_epoll_ctl, 1);
    fd = actx_backend_fd();
    ASSERT_GE(fd, 0);
    ASSERT_EQ(inject_epoll_ctl_hits, 1);
    ASSERT_EQ(atomic_load(&embed_warnings), 1);
    ASSERT_EQ(actx_backend_timeout_ms(), -1);
    ASSERT_EQ(atomic_load(&embed_warnings), 1);
    ASSERT_EQ(call_from_thread(h, count_call, NULL), 0);
    ASSERT_TRUE(readable(fd));
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(atomic_load(&calls), 1);
    actx_ctx_unref(h);
}

static void count_fd(void *opaque)
{
    (*(int *)opaque)++;
}

/* The pop of a context whose set the backend fd follows (the last declared
 * wait was in it) could not move the backend fd to the parent's set:
 * reported; the next actx_backend_timeout_ms joins it, and the child's
 * ready handler, the parent's now, makes the fd readable. */
ACTX_TEST("/embed/backend/pop-registration-fails-then-retried")
{
    int fd, efd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC), runs = 0;

    ASSERT_GE(efd, 0);
    fd = actx_backend_fd();
    ASSERT_GE(fd, 0);
    actx_set_log_handler(count_embed_log, NULL);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_set_fd_handler(efd, count_fd, NULL, &runs), 0);
    ASSERT_EQ(actx_backend_timeout_ms(), -1);
    ASSERT_TRUE(readable(fd));
    inject_epoll_ctl_op = EPOLL_CTL_ADD;
    inject_fail(&inject_epoll_ctl, 1);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(inject_epoll_ctl_hits, 1);
    ASSERT_EQ(atomic_load(&embed_warnings), 1);
    ASSERT_EQ(actx_backend_timeout_ms(), -1);
    ASSERT_EQ(atomic_load(&embed_warnings), 1);
    ASSERT_TRUE(readable(fd));
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(runs, 1);
    ASSERT_EQ(actx_set_fd_handler(efd, NULL, NULL, NULL), 0);
    close(efd);
}

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
