/*
 * uv-poll.h - libuv's fd round-trip server: uv_poll on the request pipe
 * in a loop of its own (peers/raw-epoll.h has the round trip).  Built only
 * with HAVE_LIBUV.
 */
#ifndef BENCH_UV_POLL_H
#define BENCH_UV_POLL_H

#ifdef HAVE_LIBUV
/* Server thread (see rtt_run). */
void *rtt_server_uv(void *r);
#endif

#endif /* BENCH_UV_POLL_H */
