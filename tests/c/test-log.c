/*
 * test-log.c - actx_set_log_handler: every message the runtime would print
 * reaches the handler (level and text), stderr stays silent meanwhile,
 * NULL restores stderr, and a handler can be replaced from one thread
 * while others log, without losing a message or touching a retired
 * handler's opaque (ASan sees a use after free, TSan a race).
 */
#include "test.h"

#include <fcntl.h>

struct log_rec {
    int n;
    int level;
    char msg[256];
};

static void rec_log(int level, const char *msg, void *opaque)
{
    struct log_rec *r = opaque;

    r->n++;
    r->level = level;
    snprintf(r->msg, sizeof(r->msg), "%s", msg);
}

/* A misuse without side effects: deleting a BH from a foreign thread is
 * refused with a message. */
static void *delete_from_here(void *arg)
{
    actx_bh_delete(arg);
    return NULL;
}

static void noop(void *opaque)
{
    (void)opaque;
}

static void misuse_from_other_thread(actx_bh *bh)
{
    thread_join(thread_start(delete_from_here, bh));
}

/* Point stderr at a fresh temporary file; returns the file's fd. */
static int capture_stderr(void)
{
    char path[] = "/tmp/actx-test-log-XXXXXX";
    int fd = mkstemp(path);

    ASSERT_GE(fd, 0);
    unlink(path);
    fflush(stderr);
    ASSERT_EQ(dup2(fd, 2), 2);
    return fd;
}

static size_t captured(int fd, char *buf, size_t n)
{
    ssize_t r;

    fflush(stderr);
    r = pread(fd, buf, n - 1, 0);
    ASSERT_GE(r, 0);
    buf[r] = '\0';
    return (size_t)r;
}

ACTX_TEST("/log/default-is-stderr")
{
    actx_bh *bh = actx_bh_new(noop, NULL);
    int fd = capture_stderr();
    char out[512];

    misuse_from_other_thread(bh);
    captured(fd, out, sizeof(out));
    ASSERT_TRUE(strstr(out, "actx: actx_bh_delete: not called on the owner "
                            "thread\n") != NULL);
    actx_bh_delete(bh);
    close(fd);
}

ACTX_TEST("/log/handler-gets-every-message-stderr-silent")
{
    actx_bh *bh = actx_bh_new(noop, NULL);
    struct log_rec rec = {0};
    int fd = capture_stderr();
    char out[512];

    actx_set_log_handler(rec_log, &rec);
    for (int i = 0; i < 50; i++) { /* the default stops at 20 */
        misuse_from_other_thread(bh);
    }
    ASSERT_EQ(rec.n, 50);
    ASSERT_EQ(rec.level, ACTX_LOG_ERROR);
    ASSERT_EQ(strcmp(rec.msg, "actx_bh_delete: not called on the owner thread"),
              0);
    ASSERT_EQ(captured(fd, out, sizeof(out)), 0);

    /* NULL: back to stderr. */
    actx_set_log_handler(NULL, NULL);
    misuse_from_other_thread(bh);
    ASSERT_EQ(rec.n, 50);
    captured(fd, out, sizeof(out));
    ASSERT_TRUE(strstr(out, "actx: actx_bh_delete:") != NULL);
    actx_bh_delete(bh);
    close(fd);
}

/* A bad ACTX_POOL_THREADS is reported as a warning, by a thread that holds
 * no runtime lock: the handler may use the runtime (here: the pool). */
static actx_req *nested_req;
static int pool_warnings;

static long work_id(void *opaque)
{
    return (long)(intptr_t)opaque;
}

static void log_and_submit(int level, const char *msg, void *opaque)
{
    (void)opaque;
    if (level == ACTX_LOG_WARNING && strstr(msg, "ACTX_POOL_THREADS")) {
        pool_warnings++;
        nested_req = actx_submit(work_id, NULL, NULL);
    }
}

ACTX_TEST("/log/pool-env-warning-outside-locks")
{
    struct cb_rec rec = {0};

    setenv("ACTX_POOL_THREADS", "lots", 1);
    actx_set_log_handler(log_and_submit, NULL);
    ASSERT_NOT_NULL(actx_submit(work_id, rec_done, &rec));
    ASSERT_EQ(pool_warnings, 1);
    ASSERT_NOT_NULL(nested_req);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(rec.runs, 1);
    actx_set_log_handler(NULL, NULL);
    unsetenv("ACTX_POOL_THREADS");
}

/* A handler that triggers a message itself: that one goes to the default
 * handler, not back into the handler (no recursion). */
static actx_bh *reentry_bh;
static int reentries;

static void log_reentrant(int level, const char *msg, void *opaque)
{
    (void)level;
    (void)msg;
    (void)opaque;
    reentries++;
    actx_bh_delete(reentry_bh); /* foreign thread: logs again */
}

ACTX_TEST("/log/message-from-handler-goes-to-default")
{
    int fd;
    char out[512];

    reentry_bh = actx_bh_new(noop, NULL);
    fd = capture_stderr();
    actx_set_log_handler(log_reentrant, NULL);
    misuse_from_other_thread(reentry_bh);
    ASSERT_EQ(reentries, 1);
    captured(fd, out, sizeof(out));
    ASSERT_TRUE(strstr(out, "actx: actx_bh_delete:") != NULL);
    actx_set_log_handler(NULL, NULL);
    actx_bh_delete(reentry_bh);
    close(fd);
}

/* --- replacing the handler while other threads log ------------------------ */

#define LOGGERS 3
#define LOGS_EACH 3000

struct counter {
    atomic_long n;
    atomic_int retired; /* set after the handler was replaced */
};

static atomic_long lost; /* calls that reached a retired handler */

static void count_log(int level, const char *msg, void *opaque)
{
    struct counter *c = opaque;

    (void)level;
    (void)msg;
    if (atomic_load(&c->retired)) {
        atomic_fetch_add(&lost, 1);
    }
    atomic_fetch_add(&c->n, 1);
}

static actx_bh *race_bh;
static atomic_bool loggers_done;

static void *logger_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < LOGS_EACH; i++) {
        actx_bh_delete(race_bh); /* not the owner: one message each */
    }
    return NULL;
}

static void *all_loggers_main(void *arg)
{
    pthread_t t[LOGGERS];

    for (int i = 0; i < LOGGERS; i++) {
        t[i] = thread_start(logger_main, arg);
    }
    for (int i = 0; i < LOGGERS; i++) {
        thread_join(t[i]);
    }
    atomic_store(&loggers_done, true);
    return NULL;
}

ACTX_TEST("/log/set-handler-while-other-threads-log")
{
    struct counter *cur = calloc(1, sizeof(*cur));
    long total = 0;
    int swaps = 0;
    pthread_t loggers;

    ASSERT_NOT_NULL(cur);
    race_bh = actx_bh_new(noop, NULL);
    atomic_store(&lost, 0);
    atomic_store(&loggers_done, false);
    actx_set_log_handler(count_log, cur);
    loggers = thread_start(all_loggers_main, NULL);
    while (!atomic_load(&loggers_done) || swaps < 100) {
        struct counter *next = calloc(1, sizeof(*next));

        ASSERT_NOT_NULL(next);
        actx_set_log_handler(count_log, next);
        /* Nobody runs the old handler any more: retire and free it. */
        atomic_store(&cur->retired, 1);
        total += atomic_load(&cur->n);
        free(cur);
        cur = next;
        swaps++;
    }
    thread_join(loggers);
    actx_set_log_handler(NULL, NULL);
    total += atomic_load(&cur->n);
    free(cur);
    ASSERT_EQ(atomic_load(&lost), 0);
    ASSERT_EQ(total, (long)LOGGERS * LOGS_EACH);
    actx_bh_delete(race_bh);
}
