/*
 * log.c - where the runtime's messages go: actx_set_log_handler, the
 * default handler (stderr, bounded) and actx__log, which every message of
 * the runtime goes through (misuse reports included, see thread.c).
 *
 * The handler and its opaque are one pair, read and written under a
 * mutex; the handler itself runs outside it.  A count of calls in
 * progress lets actx_set_log_handler wait until no other thread still
 * runs the previous handler, so the caller may free its opaque once the
 * call returns.
 */
#define _GNU_SOURCE
#include "actx-internal.h"

#include <stdarg.h>
#include <stdio.h>

typedef void log_fn(int level, const char *msg, void *opaque);

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t log_idle = PTHREAD_COND_INITIALIZER;
static log_fn *log_handler; /* NULL: the default */
static void *log_opaque;
static long log_busy; /* calls of log_handler in progress, all threads */

/* Calls of log_handler in progress on this thread (nested: re-entrant). */
static __thread long tls_in_handler;

#define DEFAULT_MAX_REPORTS 20

static void default_handler(int level, const char *msg)
{
    static _Atomic int reports;

    if (level == ACTX_LOG_DEBUG) {
        return;
    }
    /* Loud, but bounded: a misuse in a loop must not flood stderr. */
    if (atomic_fetch_add_explicit(&reports, 1, memory_order_relaxed) <
        DEFAULT_MAX_REPORTS) {
        fprintf(stderr, "actx: %s\n", msg);
    }
}

void actx__log(int level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    log_fn *fn;
    void *opaque;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (tls_in_handler) {
        /* Logged by the handler itself: no recursion into it. */
        default_handler(level, msg);
        return;
    }
    pthread_mutex_lock(&log_lock);
    fn = log_handler;
    opaque = log_opaque;
    if (fn) {
        log_busy++;
    }
    pthread_mutex_unlock(&log_lock);
    if (!fn) {
        default_handler(level, msg);
        return;
    }
    tls_in_handler++;
    fn(level, msg, opaque);
    tls_in_handler--;
    pthread_mutex_lock(&log_lock);
    if (--log_busy == 0) {
        pthread_cond_broadcast(&log_idle);
    }
    pthread_mutex_unlock(&log_lock);
}

void actx_set_log_handler(void (*fn)(int level, const char *msg, void *opaque),
                          void *opaque)
{
    pthread_mutex_lock(&log_lock);
    log_handler = fn;
    log_opaque = fn ? opaque : NULL;
    /* Calls in progress on this thread (a handler replacing itself) cannot
     * finish while we wait: wait for the other threads' only. */
    while (log_busy > tls_in_handler) {
        pthread_cond_wait(&log_idle, &log_lock);
    }
    pthread_mutex_unlock(&log_lock);
}

void actx__log_atfork(int phase)
{
    if (phase == 0) {
        pthread_mutex_lock(&log_lock);
    } else if (phase == 1) {
        pthread_mutex_unlock(&log_lock);
    } else {
        /* Only this thread's handler calls survive in the child; the
         * condition's waiters (other threads) do not. */
        pthread_cond_init(&log_idle, NULL);
        log_busy = tls_in_handler;
        pthread_mutex_unlock(&log_lock);
    }
}
