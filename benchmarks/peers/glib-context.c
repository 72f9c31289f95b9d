/* glib-context.c - GLib's context push/pop (glib-context.h). */
#include "glib-context.h"

#ifdef HAVE_GLIB
#include <glib.h>

#include "harness/harness.h"

static GMainContext *gctx;

void glib_context_peer_init(void)
{
    gctx = g_main_context_new();
}

void glib_context_peer_fini(void)
{
    g_main_context_unref(gctx);
}

double pushpop_glib(long n)
{
    uint64_t t0 = bench_now_ns();

    for (long i = 0; i < n; i++) {
        g_main_context_push_thread_default(gctx);
        g_main_context_pop_thread_default(gctx);
    }
    return (double)(bench_now_ns() - t0) / (double)n;
}
#endif
