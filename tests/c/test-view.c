/*
 * test-view.c - what other threads can read (actx.h): another loop's
 * counters through a handle on one of its contexts (actx_ctx_stats), the
 * worker pool's state (actx_pool_stats), and the pool threads' names.
 * Both structs follow actx_stats' rule: a smaller (older) struct gets its
 * fields and nothing past them, a bigger one reads 0 beyond.
 */
#include "test.h"

#include "inject.h"

#include <semaphore.h>

/* --- another loop's counters --------------------------------------------- */

static void count_bh(void *opaque)
{
    (void)opaque;
}

/*
 * The owner: runs `bhs` BH callbacks and `timers` timer callbacks, hands
 * out a handle on its root context, then sits in actx_run() (asleep) until
 * stopped, or blocks in a callback first when `hold` is set.
 */
struct owner {
    int bhs, timers;
    sem_t *hold; /* a call waits on it, the owner inside a callback */
    actx_ctx *h;
    sem_t ready;
    pid_t tid;
};

static void hold_fn(void *opaque)
{
    sem_wait(opaque);
}

static void *owner_main(void *arg)
{
    struct owner *o = arg;
    actx_bh *bh = actx_bh_new(count_bh, NULL);

    ASSERT_NOT_NULL(bh);
    for (int i = 0; i < o->bhs; i++) {
        actx_bh_schedule(bh);
        ASSERT_EQ(actx_bh_poll(), 1);
    }
    actx_bh_delete(bh);
    for (int i = 0; i < o->timers; i++) {
        actx_timer *t = actx_timer_new(count_bh, NULL);

        actx_timer_mod(t, 0);
        POLL_UNTIL(false, 1);
        actx_timer_free(t);
    }
    o->h = actx_ctx_current();
    o->tid = test_gettid();
    if (o->hold) {
        ASSERT_EQ(actx_ctx_call(o->h, hold_fn, o->hold), 0);
    }
    sem_post(&o->ready);
    ASSERT_EQ(actx_run(), 0);
    return NULL;
}

static pthread_t owner_start(struct owner *o)
{
    pthread_t t;

    sem_init(&o->ready, 0, 0);
    t = thread_start(owner_main, o);
    sem_wait(&o->ready);
    return t;
}

static void owner_stop(struct owner *o, pthread_t t)
{
    ASSERT_EQ(actx_stop(o->h), 0);
    thread_join(t);
    actx_ctx_unref(o->h);
    sem_destroy(&o->ready);
}

ACTX_TEST("/view/ctx-stats/another-thread-reads-the-owners-counters")
{
    struct owner o = {.bhs = 7, .timers = 3};
    struct actx_stats st, mine;
    pthread_t t = owner_start(&o);

    /* The owner is (or soon is) asleep in actx_run: the question wakes
     * it, and it answers with its own counters, not the asker's. */
    wait_until_sleeping(o.tid, 0);
    ASSERT_EQ(actx_ctx_stats(o.h, &st, -1), (long)sizeof(st));
    ASSERT_EQ(st.bh_runs, 7);
    ASSERT_EQ(st.timers_fired, 3);
    ASSERT_EQ(st.live_bhs, 0);
    ASSERT_EQ(st.depth, 0);
    ASSERT_GE(st.sleeps, 1);
    actx_stats(&mine);
    ASSERT_EQ(mine.bh_runs, 0);
    /* Asked again, it answers again (each answer is a call it ran). */
    ASSERT_EQ(actx_ctx_stats(o.h, &st, 1000000000LL * 60), (long)sizeof(st));
    ASSERT_EQ(st.bh_runs, 7);
    ASSERT_GE(st.calls_run, 1);
    owner_stop(&o, t);
}

ACTX_TEST("/view/ctx-stats/asking-thread-gets-no-loop")
{
    struct owner o = {.bhs = 1};
    struct actx_stats st;
    pthread_t t = owner_start(&o);

    /* This thread never called into actx before: it still has no loop
     * afterwards (actx_context_id does not create one; stats say 0). */
    ASSERT_EQ(actx_ctx_stats(o.h, &st, -1), (long)sizeof(st));
    ASSERT_EQ(st.bh_runs, 1);
    actx_stats(&st);
    ASSERT_EQ(st.bh_runs, 0);
    ASSERT_EQ(st.sleeps, 0);
    owner_stop(&o, t);
}

ACTX_TEST("/view/ctx-stats/owner-thread-reads-at-once")
{
    actx_ctx *h = actx_ctx_current();
    actx_bh *bh = actx_bh_new(count_bh, NULL);
    struct actx_stats st, direct;

    actx_bh_schedule(bh);
    ASSERT_EQ(actx_bh_poll(), 1);
    ASSERT_EQ(actx_push(), 1);
    /* Another context current: still answered here, with no poll. */
    ASSERT_EQ(actx_ctx_stats(h, &st, 0), (long)sizeof(st));
    actx_stats(&direct);
    ASSERT_EQ(st.bh_runs, 1);
    ASSERT_EQ(st.depth, 1);
    ASSERT_EQ(st.live_bhs, direct.live_bhs);
    ASSERT_EQ(actx_pop(), 0);
    actx_bh_delete(bh);
    actx_ctx_unref(h);
}

ACTX_TEST("/view/ctx-stats/times-out-while-the-owner-is-in-a-callback")
{
    sem_t hold;
    struct owner o = {.bhs = 2, .hold = &hold};
    struct actx_stats st;
    pthread_t t;

    sem_init(&hold, 0, 0);
    t = owner_start(&o);
    /* The owner runs hold_fn and stays in it until released. */
    memset(&st, 0xa5, sizeof(st));
    ASSERT_EQ(actx_ctx_stats(o.h, &st, 20 * 1000000LL), -ETIMEDOUT);
    ASSERT_EQ(actx_ctx_stats(o.h, &st, 0), -ETIMEDOUT);
    ASSERT_EQ(st.depth, (int)0xa5a5a5a5); /* untouched */
    /* Released, it answers the questions nobody waits for any more (they
     * are freed then: asan and valgrind check) and then a new one. */
    sem_post(&hold);
    ASSERT_EQ(actx_ctx_stats(o.h, &st, -1), (long)sizeof(st));
    ASSERT_EQ(st.bh_runs, 2);
    owner_stop(&o, t);
    sem_destroy(&hold);
}

ACTX_TEST("/view/ctx-stats/after-the-owner-shut-down-is-epipe")
{
    struct owner o = {.bhs = 1};
    struct actx_stats st;
    pthread_t t = owner_start(&o);

    ASSERT_EQ(actx_stop(o.h), 0);
    thread_join(t);
    ASSERT_EQ(actx_ctx_stats(o.h, &st, -1), -EPIPE);
    actx_ctx_unref(o.h);
    sem_destroy(&o.ready);
}

ACTX_TEST("/view/ctx-stats/bad-arguments")
{
    struct actx_stats st;
    actx_ctx *h = actx_ctx_current();

    ASSERT_EQ(actx_ctx_stats(NULL, &st, -1), -EINVAL);
    ASSERT_EQ(actx_ctx_stats_size(h, NULL, sizeof(st), -1), -EINVAL);
    actx_ctx_unref(h);
}

ACTX_TEST("/view/ctx-stats/older-and-newer-structs")
{
    struct owner o = {.bhs = 5};
    pthread_t t = owner_start(&o);
    size_t old = offsetof(struct actx_stats, bh_runs) +
                 sizeof(((struct actx_stats *)0)->bh_runs);
    struct {
        struct actx_stats st;
        unsigned long later[4];
    } big;
    struct actx_stats st;

    /* An older caller: its fields, nothing past them. */
    memset(&st, 0xa5, sizeof(st));
    ASSERT_EQ(actx_ctx_stats_size(o.h, &st, old, -1), (long)old);
    ASSERT_EQ(st.bh_runs, 5);
    ASSERT_EQ(st.completions_run, (unsigned long)-1 / 255 * 0xa5);
    /* A newer caller: zeros past what this library knows. */
    memset(&big, 0xa5, sizeof(big));
    ASSERT_EQ(actx_ctx_stats_size(o.h, &big.st, sizeof(big), -1),
              (long)sizeof(big.st));
    ASSERT_EQ(big.st.bh_runs, 5);
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(big.later[i], 0);
    }
    owner_stop(&o, t);
}

/* --- the pool ------------------------------------------------------------ */

static sem_t gate;
static atomic_int started;

static long gated_work(void *opaque)
{
    char name[16] = "";

    (void)opaque;
    pthread_getname_np(pthread_self(), name, sizeof(name));
    atomic_fetch_add(&started, 1);
    sem_wait(&gate);
    /* The number after the prefix, or -1 for any other name. */
    if (strncmp(name, "actx-pool-", 10) != 0 || !name[10]) {
        return -1;
    }
    return strtol(name + 10, NULL, 10);
}

static void keep_ret(void *opaque, long ret)
{
    *(long *)opaque = ret;
}

static struct actx_pool_stats pool_now(void)
{
    struct actx_pool_stats ps;

    actx_pool_stats(&ps);
    return ps;
}

ACTX_TEST("/view/pool-stats/busy-queued-idle")
{
    long ret[5];
    struct actx_pool_stats ps = pool_now();

    ASSERT_EQ(ps.size, 0); /* not started */
    ASSERT_EQ(ps.threads, 0);
    ASSERT_EQ(ps.queued, 0);
    sem_init(&gate, 0, 0);
    ASSERT_EQ(actx_pool_set_size(2), 0);
    for (int i = 0; i < 5; i++) {
        ASSERT_NOT_NULL(actx_submit(gated_work, keep_ret, &ret[i]));
    }
    /* Two run (and wait at the gate), three wait in the queue. */
    while (atomic_load(&started) < 2) {
        usleep(1000);
    }
    ps = pool_now();
    ASSERT_EQ(ps.size, 2);
    ASSERT_EQ(ps.threads, 2);
    ASSERT_EQ(ps.busy, 2);
    ASSERT_EQ(ps.idle, 0);
    ASSERT_EQ(ps.blocked, 0);
    ASSERT_EQ(ps.queued, 3);
    ASSERT_EQ(ps.threads_created, 2);
    ASSERT_EQ(ps.create_failed, 0);
    for (int i = 0; i < 5; i++) {
        sem_post(&gate);
    }
    ASSERT_EQ(actx_flush(), 0);
    /* Each worker goes back to idle after its last completion is posted:
     * wait for that, then nothing is busy or queued. */
    do {
        ps = pool_now();
    } while (ps.idle < 2 && usleep(1000) == 0);
    ASSERT_EQ(ps.busy, 0);
    ASSERT_EQ(ps.queued, 0);
    ASSERT_EQ(ps.threads, 2);
    sem_destroy(&gate);
}

ACTX_TEST("/view/pool-stats/older-and-newer-structs")
{
    size_t old = offsetof(struct actx_pool_stats, threads) + sizeof(int);
    struct {
        struct actx_pool_stats ps;
        long later[3];
    } big;
    struct actx_pool_stats ps;

    ASSERT_EQ(actx_pool_stats_size(NULL, sizeof(ps)), 0);
    memset(&ps, 0xa5, sizeof(ps));
    ASSERT_EQ(actx_pool_stats_size(&ps, old), old);
    ASSERT_EQ(ps.threads, 0);
    ASSERT_EQ(ps.idle, (int)0xa5a5a5a5);
    memset(&big, 0xa5, sizeof(big));
    ASSERT_EQ(actx_pool_stats_size(&big.ps, sizeof(big)), sizeof(big.ps));
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(big.later[i], 0);
    }
}

ACTX_TEST("/view/pool/threads-named-actx-pool-n")
{
    long ret[3] = {-2, -2, -2};

    sem_init(&gate, 0, 0);
    ASSERT_EQ(actx_pool_set_size(3), 0);
    for (int i = 0; i < 3; i++) {
        ASSERT_NOT_NULL(actx_submit(gated_work, keep_ret, &ret[i]));
    }
    /* All three at once: three threads, numbered from 0. */
    while (atomic_load(&started) < 3) {
        usleep(1000);
    }
    for (int i = 0; i < 3; i++) {
        sem_post(&gate);
    }
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(ret[0] + ret[1] + ret[2], 0 + 1 + 2);
    ASSERT_NE(ret[0], ret[1]);
    ASSERT_NE(ret[1], ret[2]);
    ASSERT_NE(ret[0], ret[2]);
    sem_destroy(&gate);
}

/* No memory for the question: -ENOMEM, the owner is not disturbed; the
 * next question (with a limit of just under a second) is answered. */
ACTX_TEST("/view/ctx-stats/no-memory-for-the-question-enomem")
{
    struct owner o = {.bhs = 2};
    struct actx_stats st;
    pthread_t t = owner_start(&o);

    wait_until_sleeping(o.tid, 0);
    inject_fail(&inject_alloc, 1);
    ASSERT_EQ(actx_ctx_stats(o.h, &st, -1), -ENOMEM);
    ASSERT_EQ(inject_alloc_hits, 1);
    ASSERT_EQ(actx_ctx_stats(o.h, &st, 999999999), (long)sizeof(st));
    ASSERT_EQ(st.bh_runs, 2);
    owner_stop(&o, t);
}

/* --- actx_dump ------------------------------------------------------------ */

static char *dump_of(bool to_stderr)
{
    FILE *f = tmpfile();
    char *text = calloc(1, 4096);
    int saved = -1;

    ASSERT_NOT_NULL(f);
    ASSERT_NOT_NULL(text);
    if (to_stderr) {
        /* NULL means stderr: catch it there. */
        fflush(stderr);
        saved = dup(2);
        ASSERT_GE(saved, 0);
        ASSERT_EQ(dup2(fileno(f), 2), 2);
        actx_dump(NULL);
        fflush(stderr);
        ASSERT_EQ(dup2(saved, 2), 2);
        close(saved);
    } else {
        actx_dump(f);
        fflush(f);
    }
    rewind(f);
    ASSERT_GT(fread(text, 1, 4095, f), 0);
    fclose(f);
    return text;
}

/* The dump names a popped context still referenced by a handle, and a
 * stop requested on a context of the stack; NULL writes to stderr. */
ACTX_TEST("/view/dump/zombies-stop-and-stderr")
{
    actx_ctx *h, *root;
    char *text;

    ASSERT_EQ(actx_push(), 1);
    h = actx_ctx_current();
    ASSERT_NOT_NULL(h);
    ASSERT_EQ(actx_pop(), 0);
    /* A stop from the owner arrives as a message: the poll takes it in,
     * and it waits for the next actx_run. */
    root = actx_ctx_current();
    ASSERT_EQ(actx_stop(root), 0);
    actx_ctx_unref(root);
    actx_poll(false);
    text = dump_of(true);
    ASSERT_NOT_NULL(strstr(text, "popped contexts still referenced 1"));
    ASSERT_NOT_NULL(strstr(text, "context 0 (current)"));
    ASSERT_NOT_NULL(strstr(text, ", stop requested"));
    free(text);
    ASSERT_EQ(actx_run(), 0); /* the stop is taken */
    actx_ctx_unref(h);
    text = dump_of(false);
    ASSERT_NOT_NULL(strstr(text, "popped contexts still referenced 0"));
    ASSERT_NULL(strstr(text, "stop requested"));
    free(text);
}
