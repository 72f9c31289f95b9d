/*
 * runner.c - a forked child with a timeout (runner.h).
 */
#define _GNU_SOURCE
#include "runner.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *shared_msg;

double runner_timeout_scale(void)
{
    const char *s = getenv("ACTX_TEST_TIMEOUT_SCALE");
    char *end;
    double v;

    if (!s || !*s) {
        return 1.0;
    }
    v = strtod(s, &end);
    if (end == s || !(v > 0)) {
        fprintf(stderr, "ignoring ACTX_TEST_TIMEOUT_SCALE=%s\n", s);
        return 1.0;
    }
    return v;
}

double runner_now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

char *runner_msg(void)
{
    if (!shared_msg) {
        void *p = mmap(NULL, RUNNER_MSG_LEN, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

        if (p == MAP_FAILED) {
            perror("runner: mmap");
            exit(2);
        }
        shared_msg = p;
    }
    return shared_msg;
}

int runner_run_forked(void (*body)(void *), void *arg, double timeout_s,
                      int stderr_fd, char *why, size_t n)
{
    char *msg = runner_msg();
    unsigned nap_us = 200;
    double deadline;
    int status;
    pid_t pid, r;

    msg[0] = '\0';
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        snprintf(why, n, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (stderr_fd >= 0) {
            dup2(stderr_fd, 2);
        }
        body(arg);
        fflush(stdout);
        fflush(stderr);
        exit(0);
    }
    deadline = runner_now_s() + timeout_s;
    for (;;) {
        r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            break;
        }
        if (r < 0 && errno != EINTR) {
            snprintf(why, n, "waitpid: %s", strerror(errno));
            return -1;
        }
        if (runner_now_s() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            snprintf(why, n, "hang: killed after %.0f s", timeout_s);
            return -1;
        }
        usleep(nap_us);
        if (nap_us < 20000) {
            nap_us *= 2;
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return 0;
    }
    msg[RUNNER_MSG_LEN - 1] = '\0';
    if (msg[0]) {
        snprintf(why, n, "%s", msg);
    } else if (WIFEXITED(status)) {
        snprintf(why, n,
                 "exit status %d (a failed check, or a sanitizer "
                 "report or leak)",
                 WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        snprintf(why, n, "crash: signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    } else {
        snprintf(why, n, "unexpected wait status %#x", status);
    }
    return -1;
}
