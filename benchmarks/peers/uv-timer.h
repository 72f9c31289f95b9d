/*
 * uv-timer.h - libuv's timers: n uv_timer_start(0) + one
 * uv_run(UV_RUN_NOWAIT).  libuv cannot be given past deadlines, so its
 * timers fire in insertion order: a cheaper heap workload.  Built only
 * with HAVE_LIBUV.
 */
#ifndef BENCH_UV_TIMER_H
#define BENCH_UV_TIMER_H

#ifdef HAVE_LIBUV
/* Main thread.  cb((void *)i) for each; ns per timer arm+fire. */
double uv_timers_run(int n, int max, void (*cb)(void *opaque));
#endif

#endif /* BENCH_UV_TIMER_H */
