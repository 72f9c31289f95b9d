/*
 * main.c - runs the actx C tests, each in a forked child with a timeout
 * (tests/support/runner.h).  The C suite's and the misuse suite's main.
 *
 * Usage: actx-tests [-l] [-n] [PREFIX...]
 *   -l        list the test names (filtered by the prefixes) and exit
 *   -n        no fork: run the selected tests in this process (debugging;
 *             the first failure ends the run)
 *   PREFIX    run only tests whose name starts with one of the prefixes
 * Environment:
 *   ACTX_TEST_TIMEOUT_SCALE  multiplies every timeout (sanitizers, valgrind)
 *
 * Tests run one after the other (stress tests need both cores).  A child
 * that exits non-zero, dies on a signal or outlives its timeout is a
 * failure.  The last line of output is exactly "N passed, N failed" and the
 * exit status is non-zero if any test failed.
 *
 * Also holds the helpers declared in test.h.
 */
#include "test.h"

#include "runner.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/syscall.h>

static struct actx_test *tests_head;
static struct actx_test **tests_tail = &tests_head;

void actx_test_register(struct actx_test *t)
{
    t->next = NULL;
    *tests_tail = t;
    tests_tail = &t->next;
}

void actx_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fprintf(stderr, "%s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    /* From any thread: the whole test child ends, without atexit work. */
    _exit(1);
}

/* ------------------------------------------------------------------------ */
/* Helpers.                                                                  */

static atomic_long seq_counter;

long test_next_seq(void)
{
    return atomic_fetch_add(&seq_counter, 1) + 1;
}

void rec_fn(void *opaque)
{
    struct cb_rec *r = opaque;

    r->runs++;
    r->ctx_id = actx_context_id();
    r->thread = pthread_self();
    r->seq = test_next_seq();
}

void rec_done(void *opaque, long ret)
{
    struct cb_rec *r = opaque;

    r->runs++;
    r->ctx_id = actx_context_id();
    r->thread = pthread_self();
    r->ret = ret;
    r->seq = test_next_seq();
}

pthread_t thread_start(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    int rc = pthread_create(&t, NULL, fn, arg);

    if (rc != 0) {
        actx_test_fail(__FILE__, __LINE__, "pthread_create: %s", strerror(rc));
    }
    return t;
}

void *thread_join(pthread_t t)
{
    void *ret = NULL;
    int rc = pthread_join(t, &ret);

    if (rc != 0) {
        actx_test_fail(__FILE__, __LINE__, "pthread_join: %s", strerror(rc));
    }
    return ret;
}

pid_t test_gettid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

static char thread_state(pid_t tid)
{
    char path[64], buf[512];
    FILE *f;
    size_t n;
    char *p;

    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    f = fopen(path, "r");
    if (!f) {
        return 0;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    if (!p || p[1] != ' ') {
        return 0;
    }
    return p[2];
}

void wait_until_sleeping(pid_t tid, unsigned delay_us)
{
    if (delay_us) {
        usleep(delay_us);
    }
    if (tid == 0) {
        return;
    }
    /* Two consecutive observations, so a transient sleep counts less. */
    for (int seen = 0; seen < 2;) {
        char s = thread_state(tid);

        if (s == 0) {
            return; /* thread gone: nothing to wait for */
        }
        seen = (s == 'S') ? seen + 1 : 0;
        usleep(1000);
    }
}

static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig)
{
    (void)sig;
    got_usr1 = 1;
}

struct kicker {
    pthread_t owner;
    pid_t tid;
};

static void *kick_owner(void *arg)
{
    struct kicker *k = arg;

    wait_until_sleeping(k->tid, 1000);
    pthread_kill(k->owner, SIGUSR1);
    return NULL;
}

void poll_until_signalled(void)
{
    struct sigaction sa = {0};
    struct kicker k = {pthread_self(), test_gettid()};
    pthread_t t;

    sa.sa_handler = on_usr1; /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    got_usr1 = 0;
    ASSERT_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
    t = thread_start(kick_owner, &k);
    while (!got_usr1) {
        ASSERT_EQ(actx_poll_timeout(-1), -EINTR);
    }
    thread_join(t);
}

enum later_op { OP_COMPLETE, OP_CALL, OP_STOP, OP_SCHEDULE };

struct later {
    enum later_op op;
    void *obj;
    long ret;
    actx_fn *fn;
    void *opaque;
    unsigned delay_us;
    pid_t sleeper;
    atomic_int *rc;
};

static void *later_main(void *arg)
{
    struct later *l = arg;
    int rc = 0;

    wait_until_sleeping(l->sleeper, l->delay_us);
    switch (l->op) {
    case OP_COMPLETE:
        rc = actx_req_complete(l->obj, l->ret);
        break;
    case OP_CALL:
        rc = actx_ctx_call(l->obj, l->fn, l->opaque);
        break;
    case OP_STOP:
        rc = actx_stop(l->obj);
        break;
    case OP_SCHEDULE:
        actx_bh_schedule(l->obj);
        break;
    }
    if (l->rc) {
        atomic_store(l->rc, rc);
    }
    free(l);
    return NULL;
}

static pthread_t later_start(enum later_op op, void *obj, long ret, actx_fn *fn,
                             void *opaque, unsigned delay_us, pid_t sleeper,
                             atomic_int *rc)
{
    struct later *l = calloc(1, sizeof(*l));

    if (!l) {
        actx_test_fail(__FILE__, __LINE__, "calloc failed");
    }
    l->op = op;
    l->obj = obj;
    l->ret = ret;
    l->fn = fn;
    l->opaque = opaque;
    l->delay_us = delay_us;
    l->sleeper = sleeper;
    l->rc = rc;
    if (rc) {
        atomic_store(rc, INT_MIN);
    }
    return thread_start(later_main, l);
}

pthread_t later_complete(actx_req *req, long ret, unsigned delay_us,
                         pid_t sleeper, atomic_int *rc)
{
    return later_start(OP_COMPLETE, req, ret, NULL, NULL, delay_us, sleeper,
                       rc);
}

pthread_t later_call(actx_ctx *h, actx_fn *fn, void *opaque, unsigned delay_us,
                     pid_t sleeper, atomic_int *rc)
{
    return later_start(OP_CALL, h, 0, fn, opaque, delay_us, sleeper, rc);
}

pthread_t later_stop(actx_ctx *h, unsigned delay_us, pid_t sleeper,
                     atomic_int *rc)
{
    return later_start(OP_STOP, h, 0, NULL, NULL, delay_us, sleeper, rc);
}

pthread_t later_schedule(actx_bh *bh, unsigned delay_us, pid_t sleeper)
{
    return later_start(OP_SCHEDULE, bh, 0, NULL, NULL, delay_us, sleeper, NULL);
}

int complete_from_thread(actx_req *req, long ret)
{
    atomic_int rc;

    thread_join(later_complete(req, ret, 0, 0, &rc));
    return atomic_load(&rc);
}

int call_from_thread(actx_ctx *h, actx_fn *fn, void *opaque)
{
    atomic_int rc;

    thread_join(later_call(h, fn, opaque, 0, 0, &rc));
    return atomic_load(&rc);
}

int stop_from_thread(actx_ctx *h)
{
    atomic_int rc;

    thread_join(later_stop(h, 0, 0, &rc));
    return atomic_load(&rc);
}

double test_env_double(const char *name, double dflt)
{
    const char *s = getenv(name);
    char *end;
    double v;

    if (!s || !*s) {
        return dflt;
    }
    v = strtod(s, &end);
    if (end == s || !(v > 0)) {
        fprintf(stderr, "ignoring %s=%s\n", name, s);
        return dflt;
    }
    return v;
}

int test_temp_file(size_t nbytes, char c)
{
    const char *dir = getenv("TMPDIR");
    char path[4096], buf[4096];
    int fd;

    snprintf(path, sizeof(path), "%s/actx-test-XXXXXX",
             dir && *dir ? dir : "/tmp");
    fd = mkstemp(path);
    if (fd < 0) {
        actx_test_fail(__FILE__, __LINE__, "mkstemp: %s", strerror(errno));
    }
    unlink(path);
    memset(buf, c, sizeof(buf));
    for (size_t done = 0; done < nbytes;) {
        size_t n = nbytes - done < sizeof(buf) ? nbytes - done : sizeof(buf);

        if (pwrite(fd, buf, n, (off_t)done) != (ssize_t)n) {
            actx_test_fail(__FILE__, __LINE__, "pwrite: %s", strerror(errno));
        }
        done += n;
    }
    return fd;
}

void test_in_child(void (*body)(void *), void *arg)
{
    char why[256];

    if (runner_run_forked(body, arg, 60 * runner_timeout_scale(), -1, why,
                          sizeof(why)) != 0) {
        actx_test_fail(__FILE__, __LINE__, "child: %s", why);
    }
}

/* ------------------------------------------------------------------------ */
/* Running.                                                                  */

static bool selected(const struct actx_test *t, int nprefix, char **prefix)
{
    if (nprefix == 0) {
        return true;
    }
    for (int i = 0; i < nprefix; i++) {
        if (strncmp(t->name, prefix[i], strlen(prefix[i])) == 0) {
            return true;
        }
    }
    return false;
}

static void run_body(void *arg)
{
    const struct actx_test *t = arg;

    t->fn();
    /* Shutdown paths are part of every test; LSan checks what is left. */
    actx_thread_shutdown();
}

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [-l] [-n] [PREFIX...]\n", argv0);
}

const char *test_argv0;

bool under_valgrind(void)
{
    const char *pre = getenv("LD_PRELOAD");

    return pre && strstr(pre, "vgpreload");
}

int main(int argc, char **argv)
{
    bool list = false, nofork = false;
    char **prefix = calloc((size_t)argc + 1, sizeof(*prefix));
    int nprefix = 0, passed = 0, failed = 0;
    double scale = runner_timeout_scale();

    test_argv0 = argv[0];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-l") == 0) {
            list = true;
        } else if (strcmp(argv[i], "-n") == 0) {
            nofork = true;
        } else if (strcmp(argv[i], "-h") == 0 ||
                   strcmp(argv[i], "--help") == 0) {
            usage(argv[0]);
            return 0;
        } else if (argv[i][0] == '-') {
            usage(argv[0]);
            return 2;
        } else {
            prefix[nprefix++] = argv[i];
        }
    }

    for (struct actx_test *t = tests_head; t; t = t->next) {
        if (!selected(t, nprefix, prefix)) {
            continue;
        }
        if (list) {
            printf("%s\n", t->name);
            continue;
        }
        if (nofork) {
            printf("RUN  %s\n", t->name);
            fflush(stdout);
            t->fn();
            printf("PASS %s\n", t->name);
            passed++;
            continue;
        }
        char why[256];
        double t0 = runner_now_s();
        int rc = runner_run_forked(run_body, t, t->timeout_s * scale, -1, why,
                                   sizeof(why));
        double dt = runner_now_s() - t0;

        if (rc == 0) {
            printf("PASS %s (%.2f s)\n", t->name, dt);
            passed++;
        } else {
            printf("FAIL %s (%.2f s): %s [%s:%d]\n", t->name, dt, why, t->file,
                   t->line);
            failed++;
        }
        fflush(stdout);
    }
    free(prefix);
    if (list) {
        return 0;
    }
    if (nofork) {
        actx_thread_shutdown();
    }
    printf("%d passed, %d failed\n", passed, failed);
    fflush(stdout);
    return failed ? 1 : 0;
}
