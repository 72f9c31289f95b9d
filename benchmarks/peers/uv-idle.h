/*
 * uv-idle.h - libuv's nearest to bottom halves: idle handles.  Burst:
 * BENCH_BH_BURST handles started, one uv_run(UV_RUN_NOWAIT), each callback
 * stops its own handle.  Chain: an idle handle left running,
 * uv_run(UV_RUN_NOWAIT) per iteration.  Built only with HAVE_LIBUV.
 */
#ifndef BENCH_UV_IDLE_H
#define BENCH_UV_IDLE_H

#ifdef HAVE_LIBUV
/* Main thread. */
void uv_idle_peer_init(void);
void uv_idle_peer_fini(void);
double bh_burst_uv(long rounds); /* ns per BH */
double bh_chain_uv(long n);      /* ns per iteration */
#endif

#endif /* BENCH_UV_IDLE_H */
