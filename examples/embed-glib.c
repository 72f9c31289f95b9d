/*
 * embed-glib.c - actx inside a GLib main loop, with libactx-glib.
 *
 * One GSource (actx_g_source_new) runs this thread's actx loop from
 * g_main_loop_run: a pool job, a cross-thread call, a timer and a nested
 * synchronous wait (examples/embed-work.h) all run from GLib, beside a
 * GLib timeout of GLib's own.  The loop quits when everything ran; the
 * program exits non-zero if any check failed.
 *
 *   cc embed-glib.c $(pkg-config --cflags --libs actx-glib)
 */
#include <actx-glib.h>

#include "embed-work.h"

static int glib_ticks;

/* GLib's own sources keep working beside actx; this one also ends the
 * loop once all the actx work is done. */
static gboolean tick(gpointer loop)
{
    glib_ticks++;
    if (work_finished()) {
        g_main_loop_quit(loop);
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

int main(void)
{
    GMainLoop *loop = g_main_loop_new(NULL, FALSE);
    GSource *src = actx_g_source_new();
    int rc;

    if (!src) {
        return 1;
    }
    g_source_attach(src, NULL); /* the default GMainContext */
    g_timeout_add(5, tick, loop);
    work_start();
    g_main_loop_run(loop);
    CHECK(glib_ticks > 0);
    g_source_destroy(src);
    g_source_unref(src);
    g_main_loop_unref(loop);
    rc = work_report("GLib");
    return rc;
}
