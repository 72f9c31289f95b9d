/*
 * inject.h - the one failure injector of the test programs (tests/c,
 * tests/misuse, tests/fault, tests/fuzz link it; tests/support/SConscript).
 *
 * Each program is linked with -Wl,--wrap=NAME for every call below
 * (INJECT_WRAPS in tests/support/SConscript), all of them calls the
 * runtime makes: the references of the objects being linked (the runtime's
 * and the test's own) go to inject.c, never libc's or the sanitizers'
 * internal ones.  inject.c passes each call on to the real function unless
 * a test asked for a failure, which it reports as the system would:
 * NULL/ENOMEM for allocations, EAGAIN for pthread_create, ENOMEM for
 * pthread_setspecific and epoll_ctl, EMFILE for the fd creators.  The
 * production library has no hook: nothing here is in libactx.
 *
 * Two ways to ask:
 *   - knobs (white-box tests of one error path): inject_fail(&inject_X, n)
 *     makes the next n calls of that kind fail (INJECT_ALWAYS: every call
 *     until reset with n = 0); inject_X_hits counts the failures made;
 *   - the sweep (tests/fault): inject_sweep_arm(k, ...) counts the
 *     resource calls (allocations, thread, TLS, eventfd, epoll_create1,
 *     epoll_ctl other than EPOLL_CTL_DEL) of every thread from 0 and fails
 *     the k-th one, or every one from the k-th on.
 */
#ifndef ACTX_TEST_INJECT_H
#define ACTX_TEST_INJECT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#define INJECT_ALWAYS (1 << 30)

/* pthread_create returns EAGAIN. */
extern atomic_int inject_pthread_create;
/* malloc, calloc, realloc and aligned_alloc return NULL (ENOMEM). */
extern atomic_int inject_alloc;
/* Let the next n allocations through before inject_alloc applies. */
extern atomic_int inject_alloc_skip;
static inline void inject_skip_alloc(int n)
{
    atomic_store(&inject_alloc_skip, n);
}
/* epoll_create1 fails with EMFILE. */
extern atomic_int inject_epoll_create;
extern atomic_int inject_epoll_create_hits;
/* epoll_ctl with op inject_epoll_ctl_op (EPOLL_CTL_ADD by default) fails
 * with inject_epoll_ctl_errno (ENOMEM by default). */
extern atomic_int inject_epoll_ctl;
extern atomic_int inject_epoll_ctl_op;
extern atomic_int inject_epoll_ctl_errno;

/* io_uring_submit and io_uring_submit_and_wait (the runtime's enters)
 * return -inject_uring_enter_errno (ENOMEM by default) without entering.
 * Only where the runtime was built with liburing. */
extern atomic_int inject_uring_enter;
extern atomic_int inject_uring_enter_errno;
extern atomic_int inject_uring_enter_hits;
/* The ring's setup (aio-uring.c), where the runtime was built with
 * liburing.  inject_uring_probe: io_uring_queue_init (the process-wide
 * probe) returns -inject_uring_probe_errno (ENOSYS by default);
 * inject_uring_setup: io_uring_queue_init_params (a loop's own ring)
 * returns -inject_uring_setup_errno (ENOMEM by default).
 * inject_uring_old_kernel makes the probe see an older kernel:
 * INJECT_NO_PROBE (io_uring_get_probe_ring returns NULL), INJECT_NO_NODROP
 * (the ring lacks IORING_FEAT_NODROP) or an IORING_OP_* the probe then
 * says is unsupported; -1 (the default): the kernel as it is. */
extern atomic_int inject_uring_probe;
extern atomic_int inject_uring_probe_errno;
extern atomic_int inject_uring_setup;
extern atomic_int inject_uring_setup_errno;
extern atomic_int inject_uring_setup_hits;
#define INJECT_NO_PROBE 1000
#define INJECT_NO_NODROP 1001
extern atomic_int inject_uring_old_kernel;
/* Non-zero: epoll_pwait2 fails with ENOSYS (a kernel before 5.11), so the
 * loop takes backend-epoll.c's epoll_wait path. */
extern atomic_int inject_no_epoll_pwait2;
/* epoll_wait calls, and the timeout (ms) the latest one was given. */
extern atomic_long inject_epoll_wait_calls;
extern atomic_int inject_epoll_wait_last_ms;

/* Calls that failed because of a knob, per knob (for assertions). */
extern atomic_int inject_pthread_create_hits;
extern atomic_int inject_alloc_hits;
extern atomic_int inject_epoll_ctl_hits;
/* Every epoll_ctl call made through the wrapper, failed or not. */
extern atomic_long inject_epoll_ctl_calls;

static inline void inject_fail(atomic_int *knob, int n)
{
    atomic_store(knob, n);
}

/*
 * The sweep.  Arm: count resource calls from 0; fail call number k
 * (1-based; 0 fails nothing) and, with persist, every call after it too
 * (resources exhausted).  The name of the first call made to fail is
 * copied to fired (n bytes), which may be shared memory that outlives a
 * killed process.
 */
void inject_sweep_arm(long k, bool persist, char *fired, size_t n);
/* Stop failing (counting goes on). */
void inject_sweep_disarm(void);
/* Resource calls counted since inject_sweep_arm. */
long inject_sweep_calls(void);

/* Thread creation that no knob or sweep fails, for a test's own helpers
 * (the real function behind the wrapper). */
int __real_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg);

#endif /* ACTX_TEST_INJECT_H */
