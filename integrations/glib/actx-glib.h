/**
 * @file actx-glib.h
 * actx-glib.h - run a thread's actx loop inside a GLib main loop.
 *
 * Library libactx-glib, pkg-config package actx-glib (which brings actx and
 * glib-2.0 with it).  One call makes a GSource; attach it to the
 * GMainContext that the thread runs, and every actx callback of that
 * thread - BHs, completions, cross-thread calls, fd handlers, timers -
 * runs from g_main_loop_run(), in its own context, with the context rules
 * intact:
 *
 *     GSource *src = actx_g_source_new();
 *     g_source_attach(src, NULL);          (or the thread's own context)
 *     g_source_unref(src);                 (the context keeps it alive)
 *     g_main_loop_run(loop);
 *
 * It follows the recipe of docs/embedding.md: prepare asks
 * actx_backend_timeout_ms() (which also declares that GLib is about to
 * sleep), the backend fd is polled for input, dispatch calls
 * actx_poll(false).  A synchronous wait inside a callback
 * (actx_push(), ACTX_WAIT_WHILE(), actx_pop()) blocks the GLib loop for
 * its duration, as any blocking call in a GLib callback does.
 */
#ifndef ACTX_GLIB_H
#define ACTX_GLIB_H

#include <actx.h>
#include <glib.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Owner thread only: a new GSource that runs the calling thread's actx
 * loop (whatever context is current when it dispatches) in the
 * GMainContext it is attached to.  The caller owns the returned reference
 * (g_source_unref()).  Attach it to a GMainContext that only the calling
 * thread iterates; a source dispatched on another thread reports a GLib
 * critical and destroys itself.  Destroying the source (g_source_destroy())
 * stops driving the loop and changes nothing in it.  NULL (with a GLib
 * critical) if the thread's actx loop cannot be created (errno from
 * actx_thread_init(): EMFILE, ENOMEM).
 */
GSource *actx_g_source_new(void);

#ifdef __cplusplus
}
#endif

#endif /* ACTX_GLIB_H */
