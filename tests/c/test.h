/*
 * test.h - the actx C test runner's interface.
 *
 * A test is a small function with a path-style name, defined in one place:
 *
 *     ACTX_TEST("/ctx/pop/at-root") { ASSERT_EQ(actx_pop(), -EINVAL); }
 *     ACTX_TEST_TIMEOUT("/stress/completions/4x1M", 600) { ... }
 *
 * Definition registers the test (a constructor appends it to the runner's
 * list, so tests run in link order, then in file order).  main.c forks a
 * child per test, runs the body, then actx_thread_shutdown(), then exit(0)
 * so that LeakSanitizer looks at what shutdown left behind.  A failed
 * assertion prints file:line and both sides, and ends the child with status
 * 1 from whichever thread it fails on.
 *
 * Tests are written from the contract (actx.h, docs/semantics.md), never
 * from the implementation: every assertion is an observation the contract
 * promises (which context id was current when a callback ran, on which
 * thread, how often, in which order).
 * No timing assertion beyond "did not hang"; the runner's timeout is the
 * hang detector.
 *
 * Include this header first: it defines _GNU_SOURCE.
 */
#ifndef ACTX_TEST_H
#define ACTX_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "actx.h"

/* ------------------------------------------------------------------------ */
/* Registration.                                                             */

struct actx_test {
    const char *name;
    void (*fn)(void);
    double timeout_s; /* before ACTX_TEST_TIMEOUT_SCALE */
    const char *file;
    int line;
    struct actx_test *next;
};

void actx_test_register(struct actx_test *t);

#define ACTX_TEST_CAT2_(a, b) a##b
#define ACTX_TEST_CAT_(a, b) ACTX_TEST_CAT2_(a, b)

#define ACTX_TEST_DEFINE_(id, name_, secs_)                                    \
    static void id(void);                                                      \
    static struct actx_test ACTX_TEST_CAT_(id, _desc) = {                      \
        name_, id, secs_, __FILE__, __LINE__, NULL};                           \
    __attribute__((constructor)) static void ACTX_TEST_CAT_(id, _reg)(void)    \
    {                                                                          \
        actx_test_register(&ACTX_TEST_CAT_(id, _desc));                        \
    }                                                                          \
    static void id(void)

/* A test with its own timeout in seconds (scaled by the environment). */
#define ACTX_TEST_TIMEOUT(name_, secs_)                                        \
    ACTX_TEST_DEFINE_(ACTX_TEST_CAT_(actx_test_, __COUNTER__), name_, secs_)

/* A test with the default 30 s timeout. */
#define ACTX_TEST(name_) ACTX_TEST_TIMEOUT(name_, 30)

/* ------------------------------------------------------------------------ */
/* Assertions: print file:line and both sides, end the test child.          */

__attribute__((noreturn, format(printf, 3, 4))) void
actx_test_fail(const char *file, int line, const char *fmt, ...);

#define ASSERT_CMP_(a, op, b, name)                                            \
    do {                                                                       \
        long assert_a_ = (long)(a);                                            \
        long assert_b_ = (long)(b);                                            \
        if (!(assert_a_ op assert_b_)) {                                       \
            actx_test_fail(__FILE__, __LINE__,                                 \
                           name "(%s, %s): %ld vs %ld (need %s " #op " %s)",   \
                           #a, #b, assert_a_, assert_b_, #a, #b);              \
        }                                                                      \
    } while (0)

#define ASSERT_EQ(a, b) ASSERT_CMP_(a, ==, b, "ASSERT_EQ")
#define ASSERT_NE(a, b) ASSERT_CMP_(a, !=, b, "ASSERT_NE")
#define ASSERT_LT(a, b) ASSERT_CMP_(a, <, b, "ASSERT_LT")
#define ASSERT_LE(a, b) ASSERT_CMP_(a, <=, b, "ASSERT_LE")
#define ASSERT_GT(a, b) ASSERT_CMP_(a, >, b, "ASSERT_GT")
#define ASSERT_GE(a, b) ASSERT_CMP_(a, >=, b, "ASSERT_GE")

#define ASSERT_TRUE(x)                                                         \
    do {                                                                       \
        if (!(x)) {                                                            \
            actx_test_fail(__FILE__, __LINE__, "ASSERT_TRUE(%s): false", #x);  \
        }                                                                      \
    } while (0)

#define ASSERT_FALSE(x)                                                        \
    do {                                                                       \
        if (x) {                                                               \
            actx_test_fail(__FILE__, __LINE__, "ASSERT_FALSE(%s): true", #x);  \
        }                                                                      \
    } while (0)

#define ASSERT_PTR_EQ(a, b)                                                    \
    do {                                                                       \
        const void *assert_a_ = (const void *)(a);                             \
        const void *assert_b_ = (const void *)(b);                             \
        if (assert_a_ != assert_b_) {                                          \
            actx_test_fail(__FILE__, __LINE__,                                 \
                           "ASSERT_PTR_EQ(%s, %s): %p vs %p", #a, #b,          \
                           assert_a_, assert_b_);                              \
        }                                                                      \
    } while (0)

#define ASSERT_PTR_NE(a, b)                                                    \
    do {                                                                       \
        const void *assert_a_ = (const void *)(a);                             \
        const void *assert_b_ = (const void *)(b);                             \
        if (assert_a_ == assert_b_) {                                          \
            actx_test_fail(__FILE__, __LINE__,                                 \
                           "ASSERT_PTR_NE(%s, %s): both %p", #a, #b,           \
                           assert_a_);                                         \
        }                                                                      \
    } while (0)

#define ASSERT_NULL(a) ASSERT_PTR_EQ(a, NULL)
#define ASSERT_NOT_NULL(a) ASSERT_PTR_NE(a, NULL)

/* Two pthread_t are the same thread. */
#define ASSERT_THREAD_EQ(a, b)                                                 \
    do {                                                                       \
        if (!pthread_equal((a), (b))) {                                        \
            actx_test_fail(__FILE__, __LINE__,                                 \
                           "ASSERT_THREAD_EQ(%s, %s): %#lx vs %#lx", #a, #b,   \
                           (unsigned long)(a), (unsigned long)(b));            \
        }                                                                      \
    } while (0)

/* The callback ran on the calling (owner) thread. */
#define ASSERT_ON_SELF(thr) ASSERT_THREAD_EQ(thr, pthread_self())

/* ------------------------------------------------------------------------ */
/* Helpers shared by the tests (main.c).                                     */

/*
 * What a callback saw when it ran: how often, the context id current at the
 * last run, the thread, the ret of a done callback, and a global sequence
 * number (order across callbacks).
 */
struct cb_rec {
    int runs;
    int ctx_id;
    pthread_t thread;
    long ret;
    long seq;
};

/* actx_fn / actx_done_fn that fill a struct cb_rec passed as opaque. */
void rec_fn(void *opaque);
void rec_done(void *opaque, long ret);

/* Next global sequence number (starts at 1). */
long test_next_seq(void);

/* Repeat actx_poll(false) up to n times or until cond holds. */
#define POLL_UNTIL(cond, n)                                                    \
    do {                                                                       \
        for (int poll_i_ = 0; poll_i_ < (n) && !(cond); poll_i_++) {           \
            actx_poll(false);                                                  \
        }                                                                      \
    } while (0)

pthread_t thread_start(void *(*fn)(void *), void *arg);
void *thread_join(pthread_t t);

/* The kernel thread id of the caller. */
pid_t test_gettid(void);

/*
 * Sleep delay_us, then wait until the thread tid is sleeping (state S in
 * /proc).  Used by a helper thread to post only once the owner is blocked
 * in its loop, so that "the post woke a sleeping owner" is what is tested.
 */
void wait_until_sleeping(pid_t tid, unsigned delay_us);

/*
 * Block in actx_poll_timeout(-1) until a signal ends the sleep: another
 * thread sends SIGUSR1 (handler without SA_RESTART) once this one sleeps.
 * Asserts that every such call returned -EINTR, nothing run.
 */
void poll_until_signalled(void);

/*
 * How this program was started (main's argv[0]), to run it again in a
 * fresh process (/proc/self/exe is valgrind's own under valgrind).
 */
extern const char *test_argv0;

/* Is this run under valgrind (test:valgrind runs the suite again)? */
bool under_valgrind(void);

/*
 * Do one cross-thread operation from a new thread: first usleep(delay_us),
 * then (if sleeper != 0) wait until that thread sleeps, then do it and
 * store the return value in *rc (if rc).  Join with thread_join().
 */
pthread_t later_complete(actx_req *req, long ret, unsigned delay_us,
                         pid_t sleeper, atomic_int *rc);
pthread_t later_call(actx_ctx *h, actx_fn *fn, void *opaque, unsigned delay_us,
                     pid_t sleeper, atomic_int *rc);
pthread_t later_stop(actx_ctx *h, unsigned delay_us, pid_t sleeper,
                     atomic_int *rc);
pthread_t later_schedule(actx_bh *bh, unsigned delay_us, pid_t sleeper);

/* The same, done at once by another thread and joined; returns its rc. */
int complete_from_thread(actx_req *req, long ret);
int call_from_thread(actx_ctx *h, actx_fn *fn, void *opaque);
int stop_from_thread(actx_ctx *h);

/* Environment knobs. */
double test_env_double(const char *name, double dflt);

/* A temporary file (in $TMPDIR, else /tmp), already unlinked, holding
 * nbytes bytes of value c.  The caller closes it. */
int test_temp_file(size_t nbytes, char c);

/*
 * Run body(arg) in a child process (tests/support/runner.h: it ends with
 * exit(0), so atexit handlers run) and fail the test unless the child
 * exits 0 within 60 s (scaled).  For what must happen in a fresh process
 * or at its exit.
 */
void test_in_child(void (*body)(void *), void *arg);

#endif /* ACTX_TEST_H */
