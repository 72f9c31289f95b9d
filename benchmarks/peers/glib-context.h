/*
 * glib-context.h - GLib's nearest to actx_push/actx_pop:
 * g_main_context_push/pop_thread_default() of one context.  Built only
 * with HAVE_GLIB.
 */
#ifndef BENCH_GLIB_CONTEXT_H
#define BENCH_GLIB_CONTEXT_H

#ifdef HAVE_GLIB
/* Main thread. */
void glib_context_peer_init(void);
void glib_context_peer_fini(void);
double pushpop_glib(long n); /* ns per push+pop pair */
#endif

#endif /* BENCH_GLIB_CONTEXT_H */
