/*
 * uv-queue.h - the libuv idiom for cross-thread completions (the one its
 * threadpool uses): nodes appended to a mutex-protected queue, then
 * uv_async_send(); the async callback takes the whole queue under the lock
 * and runs the done callbacks outside it.  Built only with HAVE_LIBUV.
 */
#ifndef BENCH_UV_QUEUE_H
#define BENCH_UV_QUEUE_H

#ifdef HAVE_LIBUV
#include <uv.h>

#include "raw-mailbox.h" /* bench_node */

/* The owner's loop (initialised by uvq_init). */
extern uv_loop_t uvq_loop;

/* Owner thread.  Set up uvq_loop and its async handle. */
void uvq_init(void);
/* Owner thread.  Close the handle and the loop. */
void uvq_fini(void);
/*
 * Owner thread.  fn (or NULL) runs after each drain, inside uv_run: a
 * service's issuing step.
 */
void uvq_set_after_drain(void (*fn)(void));

/* Any thread.  Hand n (its ret set) to the owner's loop. */
void uvq_post(bench_node *n);
#endif

#endif /* BENCH_UV_QUEUE_H */
