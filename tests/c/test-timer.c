/*
 * test-timer.c - timers (actx.h): never before the deadline, at most
 * once per mod, in deadline order (equal deadlines in arm order), only
 * while their context is current (one due under a pushed context fires
 * after the pop), re-homed at pop;
 * mod/del/free from callbacks; a deadline in the past fires at the next
 * poll.  Also the idle-BH bound of a sleeping loop.
 */
#include "test.h"

#define MS 1000000ULL

struct trec {
    actx_timer *t;
    int runs;
    int ctx_id;
    uint64_t deadline;
    uint64_t fired_at;
    long seq;
};

static void trec_cb(void *opaque)
{
    struct trec *r = opaque;

    r->fired_at = actx_now_ns();
    r->runs++;
    r->ctx_id = actx_context_id();
    r->seq = test_next_seq();
}

static void arm(struct trec *r, uint64_t deadline)
{
    r->deadline = deadline;
    actx_timer_mod(r->t, deadline);
}

ACTX_TEST("/timer/args")
{
    errno = 0;
    ASSERT_NULL(actx_timer_new(NULL, NULL));
    ASSERT_EQ(errno, EINVAL);
    /* NULL timers are ignored. */
    actx_timer_mod(NULL, 0);
    actx_timer_del(NULL);
    actx_timer_free(NULL);
    ASSERT_GT(actx_now_ns(), 0);
}

ACTX_TEST("/timer/unarmed-is-no-progress")
{
    struct trec r = {0};

    r.t = actx_timer_new(trec_cb, &r);
    ASSERT_NOT_NULL(r.t);
    ASSERT_FALSE(actx_can_progress());
    ASSERT_EQ(actx_poll(true), 0);
    arm(&r, actx_now_ns() + 1000 * MS);
    ASSERT_TRUE(actx_can_progress());
    actx_timer_del(r.t);
    actx_timer_del(r.t); /* twice is fine */
    ASSERT_FALSE(actx_can_progress());
    ASSERT_EQ(actx_poll(true), 0);
    ASSERT_EQ(r.runs, 0);
    actx_timer_free(r.t);
}

ACTX_TEST("/timer/past-deadline-fires-at-next-poll")
{
    struct trec r = {0};

    r.t = actx_timer_new(trec_cb, &r);
    arm(&r, 0);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(r.runs, 1);
    ASSERT_EQ(r.ctx_id, 0);
    /* At most once per mod. */
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(r.runs, 1);
    arm(&r, actx_now_ns() - 5 * MS);
    ASSERT_EQ(actx_poll(true), 1);
    ASSERT_EQ(r.runs, 2);
    ASSERT_FALSE(actx_can_progress());
    actx_timer_free(r.t);
}

ACTX_TEST("/timer/not-before-deadline")
{
    struct trec r = {0};

    r.t = actx_timer_new(trec_cb, &r);
    for (int i = 0; i < 20; i++) {
        arm(&r, actx_now_ns() + (uint64_t)(i % 5 + 1) * MS / 2);
        ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == i), 0);
        ASSERT_EQ(r.runs, i + 1);
        ASSERT_GE(r.fired_at, r.deadline);
    }
    actx_timer_free(r.t);
}

/* Repeated short timers fire once each, never early.  How late they fire
 * (the 1 ms target) is measured by benchmarks/bench-io.c, not asserted
 * here: tests carry no timing assertions. */
ACTX_TEST("/timer/repeated-short-never-early")
{
    struct trec r = {0};

    r.t = actx_timer_new(trec_cb, &r);
    for (int i = 0; i < 20; i++) {
        arm(&r, actx_now_ns() + 2 * MS);
        ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == i), 0);
        ASSERT_EQ(r.runs, i + 1);
        ASSERT_GE(r.fired_at, r.deadline);
    }
    actx_timer_free(r.t);
}

/* A simple xorshift so the order test is reproducible. */
static uint64_t rng_state = 88172645463325252ULL;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

ACTX_TEST("/timer/order/1000-random-deadlines")
{
    enum { N = 1000 };
    struct trec *r = calloc(N, sizeof(*r));
    uint64_t base = actx_now_ns() + 2 * MS;
    int fired = 0;

    ASSERT_NOT_NULL(r);
    for (int i = 0; i < N; i++) {
        r[i].t = actx_timer_new(trec_cb, &r[i]);
        ASSERT_NOT_NULL(r[i].t);
        arm(&r[i], base + rng() % (50 * MS));
    }
    /* Re-arm a third of them to new random deadlines. */
    for (int i = 0; i < N; i += 3) {
        arm(&r[i], base + rng() % (50 * MS));
    }
    ASSERT_EQ(ACTX_WAIT_WHILE(actx_can_progress()), 0);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(r[i].runs, 1);
        ASSERT_GE(r[i].fired_at, r[i].deadline);
        fired += r[i].runs;
    }
    ASSERT_EQ(fired, N);
    /* Fire order is deadline order (seq is the global run order). */
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < N; j++) {
            if (r[i].deadline < r[j].deadline) {
                ASSERT_LT(r[i].seq, r[j].seq);
            }
        }
    }
    for (int i = 0; i < N; i++) {
        actx_timer_free(r[i].t);
    }
    free(r);
}

/*
 * Equal deadlines fire in the order the timers were armed, as QEMU's
 * timer lists and libuv's timers (uv_timer_start) order them: a re-arm
 * goes behind the timers already armed for that time, and a child's
 * timers merged into the parent's at pop keep the order of their arming.
 */
ACTX_TEST("/timer/order/equal-deadlines-in-arm-order")
{
    enum { N = 20 };
    struct trec r[N];
    uint64_t due = actx_now_ns();

    memset(r, 0, sizeof(r));
    for (int i = 0; i < N; i++) {
        r[i].t = actx_timer_new(trec_cb, &r[i]);
        ASSERT_NOT_NULL(r[i].t);
        arm(&r[i], due);
    }
    ASSERT_EQ(actx_poll(false), 1);
    for (int i = 1; i < N; i++) {
        ASSERT_EQ(r[i].runs, 1);
        ASSERT_LT(r[i - 1].seq, r[i].seq);
    }
    /* Armed in reverse, with 0 re-armed last: N-1, ..., 1, then 0. */
    for (int i = N - 1; i >= 0; i--) {
        arm(&r[i], due);
    }
    arm(&r[0], due);
    ASSERT_EQ(actx_poll(false), 1);
    for (int i = N - 1; i > 1; i--) {
        ASSERT_LT(r[i].seq, r[i - 1].seq);
    }
    ASSERT_LT(r[1].seq, r[0].seq);
    /* Odd ones armed in the root, even ones in a child, alternately. */
    for (int i = 0; i < N; i++) {
        if (i % 2 == 0) {
            ASSERT_EQ(actx_push(), 1);
        }
        actx_timer_free(r[i].t);
        r[i].t = actx_timer_new(trec_cb, &r[i]);
        arm(&r[i], due);
        if (i % 2 == 0) {
            ASSERT_EQ(actx_pop(), 0);
        }
    }
    ASSERT_EQ(actx_poll(false), 1);
    for (int i = 1; i < N; i++) {
        ASSERT_EQ(r[i].runs, 3);
        ASSERT_LT(r[i - 1].seq, r[i].seq);
    }
    for (int i = 0; i < N; i++) {
        actx_timer_free(r[i].t);
    }
}

/* --- contexts ---------------------------------------------------------------- */

ACTX_TEST("/timer/ctx/parent-timer-due-in-child-fires-after-pop")
{
    struct trec pr = {0}, cr = {0};
    struct actx_stats st0, st1;

    pr.t = actx_timer_new(trec_cb, &pr);
    arm(&pr, actx_now_ns() + 1 * MS);
    ASSERT_EQ(actx_push(), 1);
    cr.t = actx_timer_new(trec_cb, &cr);
    arm(&cr, actx_now_ns() + 20 * MS);
    actx_stats(&st0);
    /* The parent's timer is due long before the child's. */
    ASSERT_EQ(ACTX_WAIT_WHILE(cr.runs == 0), 0);
    actx_stats(&st1);
    ASSERT_EQ(pr.runs, 0);
    ASSERT_EQ(cr.ctx_id, 1);
    ASSERT_LE(st1.sleeps - st0.sleeps, 5); /* slept, did not spin */
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(pr.runs, 0);
    actx_timer_free(cr.t);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(pr.runs, 1);
    ASSERT_EQ(pr.ctx_id, 0);
    ASSERT_GT(pr.seq, cr.seq);
    actx_timer_free(pr.t);
}

ACTX_TEST("/timer/ctx/child-timer-rehomed-at-pop")
{
    struct trec a = {0}, b = {0}, c = {0};
    uint64_t base = actx_now_ns(); /* one base: the order is by design */

    a.t = actx_timer_new(trec_cb, &a); /* root, armed before */
    arm(&a, base + 30 * MS);
    ASSERT_EQ(actx_push(), 1);
    b.t = actx_timer_new(trec_cb, &b); /* armed in the child */
    arm(&b, base + 10 * MS);
    c.t = actx_timer_new(trec_cb, &c); /* created in the child, not armed */
    ASSERT_EQ(actx_pop(), 0);
    arm(&c, base + 20 * MS); /* armed after the pop: the root's */
    ASSERT_TRUE(actx_can_progress());
    ASSERT_EQ(ACTX_WAIT_WHILE(a.runs + b.runs + c.runs < 3), 0);
    ASSERT_EQ(b.ctx_id, 0);
    ASSERT_EQ(c.ctx_id, 0);
    ASSERT_EQ(a.ctx_id, 0);
    ASSERT_LT(b.seq, c.seq);
    ASSERT_LT(c.seq, a.seq);
    ASSERT_FALSE(actx_can_progress());
    actx_timer_free(a.t);
    actx_timer_free(b.t);
    actx_timer_free(c.t);
}

ACTX_TEST("/timer/ctx/merge-into-busy-parent")
{
    enum { N = 64 };
    struct trec r[N];
    uint64_t base = actx_now_ns() + 1 * MS;

    memset(r, 0, sizeof(r));
    /* Odd ones in the root, even ones in a child; interleaved deadlines. */
    for (int i = 1; i < N; i += 2) {
        r[i].t = actx_timer_new(trec_cb, &r[i]);
        arm(&r[i], base + (uint64_t)(N - i) * 50000);
    }
    ASSERT_EQ(actx_push(), 1);
    for (int i = 0; i < N; i += 2) {
        r[i].t = actx_timer_new(trec_cb, &r[i]);
        arm(&r[i], base + (uint64_t)(N - i) * 50000);
    }
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(actx_can_progress()), 0);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(r[i].runs, 1);
        ASSERT_EQ(r[i].ctx_id, 0);
        if (i > 0) {
            ASSERT_LT(r[i].seq, r[i - 1].seq);
        }
        actx_timer_free(r[i].t);
    }
}

/* Popped, then freed while its context is a zombie: nothing leaks. */
ACTX_TEST("/timer/ctx/free-after-pop")
{
    struct trec r = {0};

    ASSERT_EQ(actx_push(), 1);
    r.t = actx_timer_new(trec_cb, &r);
    arm(&r, actx_now_ns() + 1000 * MS);
    ASSERT_EQ(actx_pop(), 0);
    actx_timer_free(r.t);
    ASSERT_FALSE(actx_can_progress());
    /* And a timer left alive at shutdown is freed by it (LSan checks). */
    actx_timer *left = actx_timer_new(trec_cb, &r);
    actx_timer_mod(left, actx_now_ns() + 1000 * MS);
}

/* --- callbacks ---------------------------------------------------------------- */

struct periodic {
    actx_timer *t;
    int runs, limit;
};

static void periodic_cb(void *opaque)
{
    struct periodic *p = opaque;

    if (++p->runs < p->limit) {
        actx_timer_mod(p->t, actx_now_ns() + 100000);
    }
}

ACTX_TEST("/timer/cb/re-arm-itself")
{
    struct periodic p = {.limit = 10};

    p.t = actx_timer_new(periodic_cb, &p);
    actx_timer_mod(p.t, actx_now_ns());
    ASSERT_EQ(ACTX_WAIT_WHILE(actx_can_progress()), 0);
    ASSERT_EQ(p.runs, 10);
    actx_timer_free(p.t);
}

static void free_self_cb(void *opaque)
{
    struct trec *r = opaque;

    r->runs++;
    actx_timer_free(r->t);
    r->t = NULL;
}

ACTX_TEST("/timer/cb/free-itself")
{
    struct trec r = {0};

    r.t = actx_timer_new(free_self_cb, &r);
    arm(&r, 0);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(r.runs, 1);
    ASSERT_NULL(r.t);
    ASSERT_FALSE(actx_can_progress());
}

struct killer {
    actx_timer *self;
    actx_timer *victim_del, *victim_free, *victim_mod;
    int runs;
};

static void killer_cb(void *opaque)
{
    struct killer *k = opaque;

    k->runs++;
    actx_timer_del(k->victim_del);
    actx_timer_free(k->victim_free);
    actx_timer_mod(k->victim_mod, actx_now_ns() + 1 * MS);
}

ACTX_TEST("/timer/cb/del-free-mod-others-due-in-same-run")
{
    struct trec d = {0}, f = {0}, m = {0};
    struct killer k = {0};

    k.self = actx_timer_new(killer_cb, &k);
    d.t = actx_timer_new(trec_cb, &d);
    f.t = actx_timer_new(trec_cb, &f);
    m.t = actx_timer_new(trec_cb, &m);
    k.victim_del = d.t;
    k.victim_free = f.t;
    k.victim_mod = m.t;
    actx_timer_mod(k.self, 1);
    arm(&d, 2);
    arm(&f, 3);
    arm(&m, 4); /* all due; the killer runs first */
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(k.runs, 1);
    ASSERT_EQ(d.runs, 0);
    ASSERT_EQ(f.runs, 0);
    ASSERT_EQ(m.runs, 0); /* moved 1 ms ahead */
    ASSERT_EQ(ACTX_WAIT_WHILE(m.runs == 0), 0);
    ASSERT_EQ(d.runs, 0);
    ASSERT_FALSE(actx_can_progress());
    actx_timer_free(k.self);
    actx_timer_free(d.t);
    actx_timer_free(m.t);
}

static void rearm_past_cb(void *opaque)
{
    struct trec *r = opaque;

    r->runs++;
    actx_timer_mod(r->t, 0); /* always due again */
}

/* A timer that keeps re-arming in the past does not trap one poll. */
ACTX_TEST("/timer/cb/re-arm-in-past-does-not-hang-a-poll")
{
    struct trec r = {0};

    r.t = actx_timer_new(rearm_past_cb, &r);
    actx_timer_mod(r.t, 0);
    for (int i = 1; i <= 100; i++) {
        ASSERT_EQ(actx_poll(false), 1);
        ASSERT_EQ(r.runs, i);
    }
    actx_timer_free(r.t);
}

/* A callback that pushes, waits on a child timer, pops. */
static void nested_timer_cb(void *opaque)
{
    struct trec *outer = opaque;
    struct trec inner = {0};

    trec_cb(outer);
    ASSERT_EQ(actx_push(), 1);
    inner.t = actx_timer_new(trec_cb, &inner);
    arm(&inner, actx_now_ns() + 1 * MS);
    ASSERT_EQ(ACTX_WAIT_WHILE(inner.runs == 0), 0);
    ASSERT_EQ(inner.ctx_id, 1);
    actx_timer_free(inner.t);
    ASSERT_EQ(actx_pop(), 0);
}

ACTX_TEST("/timer/cb/nested-wait")
{
    struct trec a = {0}, b = {0};

    a.t = actx_timer_new(nested_timer_cb, &a);
    b.t = actx_timer_new(trec_cb, &b);
    arm(&a, 0);
    arm(&b, 0); /* due, but must not run inside a's nested wait */
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(a.runs, 1);
    POLL_UNTIL(b.runs == 1, 10);
    ASSERT_EQ(b.runs, 1);
    ASSERT_EQ(b.ctx_id, 0);
    actx_timer_free(a.t);
    actx_timer_free(b.t);
}

/* --- threads ----------------------------------------------------------------- */

static void *foreign_mod(void *arg)
{
    actx_timer *t = arg;

    /* Not the owner: refused (diagnostic), nothing changes. */
    actx_timer_mod(t, 0);
    actx_timer_del(t);
    actx_timer_free(t);
    return NULL;
}

ACTX_TEST("/timer/threads/owner-only")
{
    struct trec r = {0};

    r.t = actx_timer_new(trec_cb, &r);
    arm(&r, actx_now_ns() + 2 * MS);
    thread_join(thread_start(foreign_mod, r.t));
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    ASSERT_GE(r.fired_at, r.deadline);
    actx_timer_free(r.t);
}

/* --- idle BHs -------------------------------------------------------------- */

ACTX_TEST("/timer/idle-bh-runs-within-10ms-of-sleep")
{
    struct cb_rec rec = {0};
    struct trec r = {0};
    actx_bh *bh = actx_bh_new(rec_fn, &rec);
    uint64_t t0;

    /* A far timer keeps the loop asleep; the idle BH bounds the sleep. */
    r.t = actx_timer_new(trec_cb, &r);
    arm(&r, actx_now_ns() + 10000 * MS);
    actx_bh_schedule_idle(bh);
    t0 = actx_now_ns();
    ASSERT_EQ(actx_poll(true), 0);
    ASSERT_EQ(rec.runs, 1);
    /* Only "did not wait for the 10 s timer": loaded machines and valgrind
     * stretch the 10 ms idle bound a lot. */
    ASSERT_LT(actx_now_ns() - t0, 5000 * MS);
    ASSERT_EQ(r.runs, 0);
    actx_bh_delete(bh);
    actx_timer_free(r.t);
}
