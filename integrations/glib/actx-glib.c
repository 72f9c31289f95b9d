/*
 * actx-glib.c - actx_g_source_new(): the embedding recipe of
 * docs/embedding.md as a GSource.
 *
 * prepare: ask actx for its timeout (this also declares that GLib is
 *          about to sleep, so posts from then on write the eventfd); a
 *          timeout of 0 means "ready now", -1 "only the fd can wake us".
 * check:   ready if the backend fd is readable or the timeout has passed
 *          (on the real clock: GLib's cached source time may be older).
 * dispatch: actx_poll(false).  GLib calls prepare again before it next
 *          sleeps, which is the rule: ask for the timeout before every
 *          sleep.
 */
#include "actx-glib.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

typedef struct {
    GSource src;
    gpointer tag;       /* the backend fd's poll record */
    gint64 deadline_us; /* on g_source_get_time()'s clock; -1: none */
    pthread_t owner;
} ActxGSource;

static gboolean on_owner(ActxGSource *a)
{
    if (G_LIKELY(pthread_equal(a->owner, pthread_self()))) {
        return TRUE;
    }
    g_critical("actx_g_source_new: source dispatched on a thread other "
               "than the one that created it; destroying it");
    g_source_destroy(&a->src);
    return FALSE;
}

static gboolean actx_g_prepare(GSource *s, gint *timeout)
{
    ActxGSource *a = (ActxGSource *)s;
    int ms;

    if (!on_owner(a)) {
        *timeout = -1;
        return FALSE;
    }
    ms = actx_backend_timeout_ms();
    *timeout = ms;
    a->deadline_us = ms < 0 ? -1 : g_source_get_time(s) + (gint64)ms * 1000;
    return ms == 0;
}

static gboolean actx_g_check(GSource *s)
{
    ActxGSource *a = (ActxGSource *)s;

    return (g_source_query_unix_fd(s, a->tag) & G_IO_IN) ||
           (a->deadline_us >= 0 && g_get_monotonic_time() >= a->deadline_us);
}

static gboolean actx_g_dispatch(GSource *s, GSourceFunc cb, gpointer data)
{
    (void)cb;
    (void)data;
    if (on_owner((ActxGSource *)s)) {
        actx_poll(false);
    }
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs actx_g_funcs = {
    .prepare = actx_g_prepare,
    .check = actx_g_check,
    .dispatch = actx_g_dispatch,
};

GSource *actx_g_source_new(void)
{
    ActxGSource *a;
    GSource *s;
    int err = actx_thread_init();

    if (err < 0) {
        g_critical("actx_g_source_new: %s", actx_strerror(err));
        errno = -err;
        return NULL;
    }
    s = g_source_new(&actx_g_funcs, sizeof(ActxGSource));
    a = (ActxGSource *)s;
    a->owner = pthread_self();
    a->deadline_us = -1;
    a->tag = g_source_add_unix_fd(s, actx_backend_fd(), G_IO_IN);
    g_source_set_name(s, "actx");
    /*
     * GLib blocks a source that cannot recurse while it dispatches: it
     * removes the source's fds and adds them back, and adding an fd wakes
     * the context, so every dispatch would cost one more, empty, loop
     * iteration.  actx_poll() may nest (a callback that runs a nested GLib
     * iteration polls actx again, as ACTX_WAIT_WHILE does), so recursion
     * is allowed.
     */
    g_source_set_can_recurse(s, TRUE);
    return s;
}
