/*
 * uv-pool.h - libuv's thread pool: null jobs through uv_queue_work (each
 * after-work callback queues the next) and file reads through uv_fs_read
 * (random BENCH_BS-byte blocks, each callback reads the next), on the
 * default loop.  Its size is UV_THREADPOOL_SIZE, read at the first job.
 * Built only with HAVE_LIBUV.
 */
#ifndef BENCH_UV_POOL_H
#define BENCH_UV_POOL_H

#ifdef HAVE_LIBUV
/* Main thread.  Jobs per second, `window` in flight, `total` in all. */
double uv_pool_null(int window, long total);
/* Main thread.  Reads per second, `window` in flight, `total` in all. */
double uv_pool_preads(int fd, long blocks, int window, long total);
#endif

#endif /* BENCH_UV_POOL_H */
