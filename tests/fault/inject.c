/*
 * inject.c - wrappers that make the k-th resource call fail (inject.h).
 *
 * Counting is one atomic increment per call, so a sweep over k sees every
 * call the scenario reaches, on every thread.  With worker threads the k-th
 * call is not always the same call from run to run; the sweep covers every
 * k up to the count of an uninjected run, which reaches every call site.
 */
#define _GNU_SOURCE
#include "inject.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
int __real_pthread_setspecific(pthread_key_t key, const void *value);
int __real_eventfd(unsigned int initval, int flags);
int __real_epoll_create1(int flags);
int __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);

static _Atomic long calls;
static _Atomic long fail_at;
static _Atomic bool fail_persist;
static char *fired;
static size_t fired_len;

void fault_arm(long k, bool persist, char *fired_buf, size_t n)
{
    atomic_store(&fail_persist, persist);
    fired = fired_buf;
    fired_len = n;
    atomic_store(&calls, 0);
    atomic_store(&fail_at, k);
}

void fault_disarm(void)
{
    atomic_store(&fail_at, 0);
}

long fault_calls(void)
{
    return atomic_load(&calls);
}

/* Count this call; true if it must fail. */
static bool hit(const char *name)
{
    long n = atomic_fetch_add(&calls, 1) + 1;
    long k = atomic_load(&fail_at);

    if (k == 0 || n < k || (n > k && !atomic_load(&fail_persist))) {
        return false;
    }
    if (fired && n == k) {
        snprintf(fired, fired_len, "%s", name);
    }
    return true;
}

void *__wrap_malloc(size_t n)
{
    if (hit("malloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    if (hit("calloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    if (hit("realloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_realloc(p, n);
}

void *__wrap_aligned_alloc(size_t align, size_t n)
{
    if (hit("aligned_alloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_aligned_alloc(align, n);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg)
{
    if (hit("pthread_create")) {
        return EAGAIN;
    }
    return __real_pthread_create(t, attr, fn, arg);
}

int __wrap_pthread_setspecific(pthread_key_t key, const void *value)
{
    if (hit("pthread_setspecific")) {
        return ENOMEM;
    }
    return __real_pthread_setspecific(key, value);
}

int __wrap_eventfd(unsigned int initval, int flags)
{
    if (hit("eventfd")) {
        errno = EMFILE;
        return -1;
    }
    return __real_eventfd(initval, flags);
}

int __wrap_epoll_create1(int flags)
{
    if (hit("epoll_create1")) {
        errno = EMFILE;
        return -1;
    }
    return __real_epoll_create1(flags);
}

int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    /*
     * Removal cannot fail for lack of memory in the kernel; failing it
     * would test a failure Linux never produces.
     */
    if (op != EPOLL_CTL_DEL && hit("epoll_ctl")) {
        errno = ENOMEM;
        return -1;
    }
    return __real_epoll_ctl(epfd, op, fd, ev);
}
