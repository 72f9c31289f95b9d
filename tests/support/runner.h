/*
 * runner.h - run one piece of a test program in a forked child with a
 * timeout: the one runner of the C suite (tests/c/main.c, also the misuse
 * suite's), the fault sweep (tests/fault/sweep.c) and the fuzzer
 * (tests/fuzz/fuzz.c).
 *
 * The child dies with the parent (PR_SET_PDEATHSIG), runs the body, and
 * ends with exit(0): atexit work runs (the pool stops, the coverage build
 * writes its counters) and LeakSanitizer looks at what the body left.  A
 * body that finds a failure ends the child with _exit(non-zero), after
 * saying why on stderr or in runner_msg().  The parent fails the child
 * when it exits non-zero, dies of a signal or outlives its timeout (then
 * it is killed: a hang).
 */
#ifndef ACTX_TEST_RUNNER_H
#define ACTX_TEST_RUNNER_H

#include <stddef.h>

/* The timeout multiplier of ACTX_TEST_TIMEOUT_SCALE (sanitizers, valgrind,
 * a loaded machine), 1 when unset. */
double runner_timeout_scale(void);

/* CLOCK_MONOTONIC in seconds. */
double runner_now_s(void);

/*
 * A buffer of RUNNER_MSG_LEN bytes shared with the children: a child
 * writes why it fails there before _exit, and the parent's report uses it.
 * Cleared before each child.  Never NULL after the first call.
 */
#define RUNNER_MSG_LEN 512
char *runner_msg(void);

/*
 * Fork; in the child, send stderr to stderr_fd (if >= 0), run body(arg)
 * and exit(0).  Wait at most timeout_s seconds.  0 when the child exited
 * 0; otherwise -1 with *why (n bytes) saying how it failed: the child's
 * runner_msg() if it wrote one, else the timeout, the exit status or the
 * signal.
 */
int runner_run_forked(void (*body)(void *), void *arg, double timeout_s,
                      int stderr_fd, char *why, size_t n);

#endif /* ACTX_TEST_RUNNER_H */
