/*
 * inject.c - the wrappers behind inject.h (linked with -Wl,--wrap=NAME).
 *
 * Sweep counting is one atomic increment per resource call, so a sweep
 * over k sees every call the scenario reaches, on every thread.  With
 * worker threads the k-th call is not always the same call from run to
 * run; the sweep covers every k up to the count of an uninjected run,
 * which reaches every call site.
 */
#define _GNU_SOURCE
#include "inject.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

atomic_int inject_pthread_create;
atomic_int inject_alloc;
atomic_int inject_alloc_skip;
atomic_int inject_epoll_create;
atomic_int inject_epoll_create_hits;
atomic_int inject_epoll_ctl;
atomic_int inject_epoll_ctl_op = EPOLL_CTL_ADD;
atomic_int inject_epoll_ctl_errno = ENOMEM;
atomic_int inject_pthread_create_hits;
atomic_int inject_alloc_hits;
atomic_int inject_epoll_ctl_hits;
atomic_long inject_epoll_ctl_calls;
atomic_int inject_uring_enter;
atomic_int inject_uring_enter_errno = ENOMEM;
atomic_int inject_uring_enter_hits;
atomic_int inject_uring_probe;
atomic_int inject_uring_probe_errno = ENOSYS;
atomic_int inject_uring_setup;
atomic_int inject_uring_setup_errno = ENOMEM;
atomic_int inject_uring_setup_hits;
atomic_int inject_uring_old_kernel = -1;
atomic_int inject_no_epoll_pwait2;
atomic_long inject_epoll_wait_calls;
atomic_int inject_epoll_wait_last_ms;

/* ------------------------------------------------------------------------ */
/* Knobs.                                                                    */

/* Take one failure from a knob; true if this call must fail. */
static bool take(atomic_int *knob, atomic_int *hits)
{
    int n = atomic_load_explicit(knob, memory_order_relaxed);

    if (n > 0 && knob == &inject_alloc) {
        int skip = atomic_load(&inject_alloc_skip);

        while (skip > 0) {
            if (atomic_compare_exchange_weak(&inject_alloc_skip, &skip,
                                             skip - 1)) {
                return false;
            }
        }
    }
    while (n > 0) {
        int next = n >= INJECT_ALWAYS ? n : n - 1;

        if (atomic_compare_exchange_weak(knob, &n, next)) {
            atomic_fetch_add(hits, 1);
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* The sweep.                                                                */

static _Atomic long sweep_count;
static _Atomic long sweep_at;
static _Atomic bool sweep_persist;
static char *sweep_fired;
static size_t sweep_fired_len;

void inject_sweep_arm(long k, bool persist, char *fired, size_t n)
{
    atomic_store(&sweep_persist, persist);
    sweep_fired = fired;
    sweep_fired_len = n;
    atomic_store(&sweep_count, 0);
    atomic_store(&sweep_at, k);
}

void inject_sweep_disarm(void)
{
    atomic_store(&sweep_at, 0);
}

long inject_sweep_calls(void)
{
    return atomic_load(&sweep_count);
}

/* Count this resource call; true if the sweep makes it fail. */
static bool sweep_hit(const char *name)
{
    long n = atomic_fetch_add(&sweep_count, 1) + 1;
    long k = atomic_load(&sweep_at);

    if (k == 0 || n < k || (n > k && !atomic_load(&sweep_persist))) {
        return false;
    }
    if (sweep_fired && n == k) {
        snprintf(sweep_fired, sweep_fired_len, "%s", name);
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* The wrappers.                                                             */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_pthread_setspecific(pthread_key_t key, const void *value);
int __real_eventfd(unsigned int initval, int flags);
int __real_epoll_create1(int flags);
int __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int __real_epoll_pwait2(int epfd, struct epoll_event *evs, int max,
                        const struct timespec *ts, const sigset_t *sigmask);
int __real_epoll_wait(int epfd, struct epoll_event *evs, int max, int ms);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t a, size_t n);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg);
int __wrap_pthread_setspecific(pthread_key_t key, const void *value);
int __wrap_eventfd(unsigned int initval, int flags);
int __wrap_epoll_create1(int flags);
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int __wrap_epoll_pwait2(int epfd, struct epoll_event *evs, int max,
                        const struct timespec *ts, const sigset_t *sigmask);
int __wrap_epoll_wait(int epfd, struct epoll_event *evs, int max, int ms);

/* An allocation fails for the sweep or for the knob. */
static bool alloc_fails(const char *name)
{
    bool swept = sweep_hit(name);

    if (swept || take(&inject_alloc, &inject_alloc_hits)) {
        errno = ENOMEM;
        return true;
    }
    return false;
}

void *__wrap_malloc(size_t n)
{
    return alloc_fails("malloc") ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
    return alloc_fails("calloc") ? NULL : __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
    return alloc_fails("realloc") ? NULL : __real_realloc(p, n);
}

void *__wrap_aligned_alloc(size_t a, size_t n)
{
    return alloc_fails("aligned_alloc") ? NULL : __real_aligned_alloc(a, n);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg)
{
    bool swept = sweep_hit("pthread_create");

    if (swept || take(&inject_pthread_create, &inject_pthread_create_hits)) {
        return EAGAIN;
    }
    return __real_pthread_create(t, attr, fn, arg);
}

int __wrap_pthread_setspecific(pthread_key_t key, const void *value)
{
    if (sweep_hit("pthread_setspecific")) {
        return ENOMEM;
    }
    return __real_pthread_setspecific(key, value);
}

int __wrap_eventfd(unsigned int initval, int flags)
{
    if (sweep_hit("eventfd")) {
        errno = EMFILE;
        return -1;
    }
    return __real_eventfd(initval, flags);
}

int __wrap_epoll_create1(int flags)
{
    bool swept = sweep_hit("epoll_create1");

    if (swept || take(&inject_epoll_create, &inject_epoll_create_hits)) {
        errno = EMFILE;
        return -1;
    }
    return __real_epoll_create1(flags);
}

int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    atomic_fetch_add(&inject_epoll_ctl_calls, 1);
    /*
     * The sweep never fails a removal: it cannot fail for lack of memory
     * in the kernel, and failing it would test a failure Linux never
     * produces.  A knob may (EBADF, ENOENT: an fd closed behind our back).
     */
    if (op != EPOLL_CTL_DEL && sweep_hit("epoll_ctl")) {
        errno = ENOMEM;
        return -1;
    }
    if (op == atomic_load(&inject_epoll_ctl_op) &&
        take(&inject_epoll_ctl, &inject_epoll_ctl_hits)) {
        errno = atomic_load(&inject_epoll_ctl_errno);
        return -1;
    }
    return __real_epoll_ctl(epfd, op, fd, ev);
}

/* The old-kernel path of backend-epoll.c: epoll_pwait2 says ENOSYS. */
int __wrap_epoll_pwait2(int epfd, struct epoll_event *evs, int max,
                        const struct timespec *ts, const sigset_t *sigmask)
{
    if (atomic_load(&inject_no_epoll_pwait2)) {
        errno = ENOSYS;
        return -1;
    }
    return __real_epoll_pwait2(epfd, evs, max, ts, sigmask);
}

int __wrap_epoll_wait(int epfd, struct epoll_event *evs, int max, int ms)
{
    atomic_fetch_add(&inject_epoll_wait_calls, 1);
    atomic_store(&inject_epoll_wait_last_ms, ms);
    return __real_epoll_wait(epfd, evs, max, ms);
}

#ifdef ACTX_TEST_WRAP_URING
#include <liburing.h>

/*
 * The runtime enters its ring only through these two (aio-uring.c,
 * ring_enter).  A failure returns before the real call, so the SQEs stay
 * queued as after a refused io_uring_enter.
 */
int __real_io_uring_submit(struct io_uring *ring);
int __wrap_io_uring_submit(struct io_uring *ring);
int __real_io_uring_submit_and_wait(struct io_uring *ring, unsigned n);
int __wrap_io_uring_submit_and_wait(struct io_uring *ring, unsigned n);

int __wrap_io_uring_submit(struct io_uring *ring)
{
    if (take(&inject_uring_enter, &inject_uring_enter_hits)) {
        return -atomic_load(&inject_uring_enter_errno);
    }
    return __real_io_uring_submit(ring);
}

int __wrap_io_uring_submit_and_wait(struct io_uring *ring, unsigned n)
{
    if (take(&inject_uring_enter, &inject_uring_enter_hits)) {
        return -atomic_load(&inject_uring_enter_errno);
    }
    return __real_io_uring_submit_and_wait(ring, n);
}

/* The probe ring (aio-uring.c, uring_usable) and a loop's ring. */
int __real_io_uring_queue_init(unsigned entries, struct io_uring *ring,
                               unsigned flags);
int __wrap_io_uring_queue_init(unsigned entries, struct io_uring *ring,
                               unsigned flags);
int __real_io_uring_queue_init_params(unsigned entries, struct io_uring *ring,
                                      struct io_uring_params *p);
int __wrap_io_uring_queue_init_params(unsigned entries, struct io_uring *ring,
                                      struct io_uring_params *p);
struct io_uring_probe *__real_io_uring_get_probe_ring(struct io_uring *ring);
struct io_uring_probe *__wrap_io_uring_get_probe_ring(struct io_uring *ring);

static atomic_int probe_hits;

int __wrap_io_uring_queue_init(unsigned entries, struct io_uring *ring,
                               unsigned flags)
{
    int err;

    if (take(&inject_uring_probe, &probe_hits)) {
        return -atomic_load(&inject_uring_probe_errno);
    }
    err = __real_io_uring_queue_init(entries, ring, flags);
    if (err == 0 && atomic_load(&inject_uring_old_kernel) == INJECT_NO_NODROP) {
        ring->features &= ~IORING_FEAT_NODROP;
    }
    return err;
}

int __wrap_io_uring_queue_init_params(unsigned entries, struct io_uring *ring,
                                      struct io_uring_params *p)
{
    if (take(&inject_uring_setup, &inject_uring_setup_hits)) {
        return -atomic_load(&inject_uring_setup_errno);
    }
    return __real_io_uring_queue_init_params(entries, ring, p);
}

struct io_uring_probe *__wrap_io_uring_get_probe_ring(struct io_uring *ring)
{
    int op = atomic_load(&inject_uring_old_kernel);
    struct io_uring_probe *p;

    if (op == INJECT_NO_PROBE) {
        return NULL;
    }
    p = __real_io_uring_get_probe_ring(ring);
    if (p && op >= 0 && op < p->ops_len) {
        p->ops[op].flags &= ~IO_URING_OP_SUPPORTED;
    }
    return p;
}
#endif
