/*
 * inject.h - the failure injector of tests/fault.
 *
 * The fault programs are linked with -Wl,--wrap=NAME for every resource
 * call the runtime makes (see SConscript): the runtime's references to
 * malloc, calloc, realloc, aligned_alloc, pthread_create,
 * pthread_setspecific, eventfd, epoll_create1 and epoll_ctl go to
 * inject.c, which counts them (process-wide, every thread) and makes
 * the k-th one fail as the system would: NULL/ENOMEM for allocations,
 * EAGAIN for pthread_create, ENOMEM for pthread_setspecific and epoll_ctl,
 * EMFILE for the fd creators.  --wrap acts at link time on the objects
 * being linked, so libc's own allocations (stdio, the sanitizers) are never
 * counted; the test code itself calls the __real_ functions where it needs
 * a resource that must not fail.
 */
#ifndef ACTX_FAULT_INJECT_H
#define ACTX_FAULT_INJECT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * Arm: count calls from 0; fail call number k (1-based; 0 fails nothing)
 * and, with persist, every call after it too (resources exhausted).  The
 * name of the first call made to fail is copied to fired (n bytes), which
 * may be shared memory that outlives a killed process.
 */
void fault_arm(long k, bool persist, char *fired, size_t n);
/* Stop failing (counting goes on). */
void fault_disarm(void);
/* Calls counted since fault_arm. */
long fault_calls(void);

/* Thread creation for the tests' own helpers: never fails by injection. */
int __real_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg);

#endif /* ACTX_FAULT_INJECT_H */
