/*
 * inject.h - failure injection for white-box tests of error paths.
 *
 * The test binary is linked with -Wl,--wrap for pthread_create, epoll_ctl
 * and the allocation functions (tests/c/SConscript): every call the
 * runtime's objects (and the tests) make to them goes through inject.c,
 * which passes it on to the real function unless a test asked for failures.
 * The production library has no hook: nothing here is in libactx.
 *
 * Each knob counts down: inject_fail(&inject_X, n) makes the next n calls
 * fail (INJECT_ALWAYS: every call until reset with n = 0).
 */
#ifndef ACTX_TEST_INJECT_H
#define ACTX_TEST_INJECT_H

#include <stdatomic.h>

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

#endif /* ACTX_TEST_INJECT_H */
