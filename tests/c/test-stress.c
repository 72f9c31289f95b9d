/*
 * test-stress.c - many threads against one owner (actx.h, docs/semantics.md): no
 * completion lost or run twice, each in its own context instance (or the
 * nearest live ancestor once that instance was popped), on the owner
 * thread; no lost wake-up between two blocking loops.
 *
 * ACTX_STRESS_SCALE (default 1) scales the counts down for slow sanitizer
 * runs (e.g. 0.05 under TSan); the default is the full size.
 */
#include "test.h"

#include <sched.h>

static long scaled(long n)
{
    double s = test_env_double("ACTX_STRESS_SCALE", 1.0);
    long v = (long)(n * s);

    return v < 1 ? 1 : v;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* --- 4 producers x 1M completions, owner pushing and popping ----------- */

#define NPROD 4
#define MAX_DEPTH 6
#define RING 4096 /* per producer, power of two */
#define IN_FLIGHT 8192
#define BATCH 16

struct slot {
    actx_req *req;
    long idx;
};

struct ring {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct slot slot[RING];
    unsigned long head, tail; /* head: next to take; tail: next free */
    bool closed;              /* no more requests will come */
    long completed;
    long bad_rc;
};

static struct ring rings[NPROD];

/* Context instances: generation numbers, their parents, alive or popped. */
static uint32_t *gen_parent;
static uint8_t *gen_alive;
static uint32_t gen_next;
static uint32_t gen_cap;
static uint32_t gen_stack[MAX_DEPTH + 1];
static int depth;

/* Per request. */
static uint32_t *req_gen;
static uint8_t *req_done;
static long done_count;
static long errors_ctx, errors_thread, errors_ret, errors_twice;
static pthread_t owner_thread;

static void stress_done(void *opaque, long ret)
{
    long idx = (long)(intptr_t)opaque;
    uint32_t g = req_gen[idx];

    if (ret != idx) {
        errors_ret++;
    }
    if (req_done[idx]++) {
        errors_twice++;
    }
    if (!pthread_equal(pthread_self(), owner_thread)) {
        errors_thread++;
    }
    /* The instance it was created in, or its nearest live ancestor. */
    while (!gen_alive[g]) {
        g = gen_parent[g];
    }
    if (g != gen_stack[depth] || actx_context_id() != depth) {
        if (errors_ctx++ < 5) {
            fprintf(stderr,
                    "request %ld of instance %u ran in instance %u "
                    "(depth %d, id %d), expected instance %u\n",
                    idx, req_gen[idx], gen_stack[depth], depth,
                    actx_context_id(), g);
        }
    }
    done_count++;
}

static void stress_push(void)
{
    uint32_t g = gen_next++;

    if (g >= gen_cap) {
        gen_cap *= 2;
        gen_parent = realloc(gen_parent, gen_cap * sizeof(*gen_parent));
        gen_alive = realloc(gen_alive, gen_cap);
        ASSERT_NOT_NULL(gen_parent);
        ASSERT_NOT_NULL(gen_alive);
    }
    ASSERT_EQ(actx_push(), depth + 1);
    gen_parent[g] = gen_stack[depth];
    gen_alive[g] = 1;
    gen_stack[++depth] = g;
}

static void stress_pop(void)
{
    gen_alive[gen_stack[depth]] = 0;
    ASSERT_EQ(actx_pop(), 0);
    depth--;
    ASSERT_EQ(actx_context_id(), depth);
}

static void *stress_producer(void *p)
{
    struct ring *r = p;
    struct slot batch[256];

    for (;;) {
        unsigned n = 0;
        bool closed;

        pthread_mutex_lock(&r->mu);
        while (r->head == r->tail && !r->closed) {
            pthread_cond_wait(&r->cv, &r->mu);
        }
        while (r->head != r->tail && n < 256) {
            batch[n++] = r->slot[r->head++ % RING];
        }
        closed = r->closed && r->head == r->tail;
        pthread_cond_broadcast(&r->cv); /* room for the owner */
        pthread_mutex_unlock(&r->mu);
        for (unsigned i = 0; i < n; i++) {
            if (actx_req_complete(batch[i].req, batch[i].idx) != 0) {
                r->bad_rc++;
            }
        }
        r->completed += n;
        if (closed) {
            break;
        }
    }
    return NULL;
}

static void ring_put(struct ring *r, const struct slot *s, unsigned n)
{
    pthread_mutex_lock(&r->mu);
    for (unsigned i = 0; i < n; i++) {
        while (r->tail - r->head == RING) {
            pthread_cond_broadcast(&r->cv);
            pthread_cond_wait(&r->cv, &r->mu);
        }
        r->slot[r->tail++ % RING] = s[i];
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

ACTX_TEST_TIMEOUT("/stress/completions/4x1M", 600)
{
    long total = NPROD * scaled(1000000);
    long created = 0, last[MAX_DEPTH + 1];
    long pushes = 0, pops = 0, waits = 0, blocking = 0;
    uint64_t seed = (uint64_t)test_env_double("ACTX_STRESS_SEED", 88172645);
    uint64_t rng = seed;
    pthread_t prod[NPROD];
    unsigned rr = 0;

    req_gen = calloc((size_t)total, sizeof(*req_gen));
    req_done = calloc((size_t)total, 1);
    gen_cap = 1024;
    gen_parent = calloc(gen_cap, sizeof(*gen_parent));
    gen_alive = calloc(gen_cap, 1);
    ASSERT_NOT_NULL(req_gen);
    ASSERT_NOT_NULL(req_done);
    gen_alive[0] = 1;
    gen_next = 1;
    gen_stack[0] = 0;
    depth = 0;
    owner_thread = pthread_self();
    for (int i = 0; i <= MAX_DEPTH; i++) {
        last[i] = -1;
    }
    for (int i = 0; i < NPROD; i++) {
        pthread_mutex_init(&rings[i].mu, NULL);
        pthread_cond_init(&rings[i].cv, NULL);
        prod[i] = thread_start(stress_producer, &rings[i]);
    }

    while (created < total) {
        long room = IN_FLIGHT - (created - done_count);
        uint64_t r = xorshift(&rng) % 1000;

        if (room > 0) {
            struct slot s[BATCH];
            long n = room < BATCH ? room : BATCH;

            if (n > total - created) {
                n = total - created;
            }
            for (long i = 0; i < n; i++) {
                long idx = created++;

                req_gen[idx] = gen_stack[depth];
                s[i].idx = idx;
                s[i].req = actx_req_new(stress_done, (void *)(intptr_t)idx);
                ASSERT_NOT_NULL(s[i].req);
                last[depth] = idx;
            }
            ring_put(&rings[rr++ % NPROD], s, (unsigned)n);
        }

        if (r < 60 && depth < MAX_DEPTH) {
            stress_push();
            last[depth] = -1;
            pushes++;
        } else if (r < 120 && depth > 0) {
            stress_pop();
            pops++;
        } else if (r < 140 && last[depth] >= 0 && !req_done[last[depth]]) {
            /* A synchronous wait for this context's newest request:
             * blocks in this context, must not report -EDEADLK. */
            long idx = last[depth];

            ASSERT_EQ(req_gen[idx], gen_stack[depth]);
            ASSERT_EQ(ACTX_WAIT_WHILE(!req_done[idx]), 0);
            waits++;
        } else if (room <= 0) {
            /* Full: make progress here, or leave a context with nothing. */
            if (actx_poll(false) == 0) {
                if (depth > 0) {
                    stress_pop();
                    pops++;
                } else {
                    ASSERT_EQ(actx_poll(true), 1);
                    blocking++;
                }
            }
        } else if (r & 1) {
            actx_poll(false);
        } else {
            actx_process_queue();
        }
    }
    for (int i = 0; i < NPROD; i++) {
        pthread_mutex_lock(&rings[i].mu);
        rings[i].closed = true;
        pthread_cond_broadcast(&rings[i].cv);
        pthread_mutex_unlock(&rings[i].mu);
    }
    while (depth > 0) {
        stress_pop();
    }
    ASSERT_EQ(ACTX_WAIT_WHILE(done_count < total), 0);
    for (int i = 0; i < NPROD; i++) {
        thread_join(prod[i]);
        ASSERT_EQ(rings[i].bad_rc, 0);
    }
    printf("  seed %llu: %ld completions, %ld pushes, %ld pops, %ld waits, "
           "%ld blocking polls\n",
           (unsigned long long)seed, total, pushes, pops, waits, blocking);
    ASSERT_EQ(errors_ctx, 0);
    ASSERT_EQ(errors_thread, 0);
    ASSERT_EQ(errors_ret, 0);
    ASSERT_EQ(errors_twice, 0);
    ASSERT_EQ(done_count, total);
    for (long i = 0; i < total; i++) {
        if (req_done[i] != 1) {
            ASSERT_EQ(i * 0 + req_done[i], 1); /* prints the count */
        }
    }
    ASSERT_GT(pushes, 0);
    ASSERT_GT(pops, 0);
    free(req_gen);
    free(req_done);
    free(gen_parent);
    free(gen_alive);
}

/* --- ping-pong between two blocking loops ------------------------------ */

struct pp {
    actx_ctx *ha, *hb;
    long n, count_a, count_b;
    pthread_t ta, tb;
    long bad_thread;
    bool use_run;
    bool a_finished, b_finished;
    pthread_barrier_t bar;
};

static void pp_finish_b(void *opaque)
{
    struct pp *p = opaque;

    p->b_finished = true;
    if (p->use_run) {
        ASSERT_EQ(actx_stop(p->hb), 0);
    }
}

static void pp_ping(void *opaque);

static void pp_pong(void *opaque)
{
    struct pp *p = opaque;

    if (!pthread_equal(pthread_self(), p->tb)) {
        p->bad_thread++;
    }
    p->count_b++;
    ASSERT_EQ(actx_ctx_call(p->ha, pp_ping, p), 0);
}

static void pp_ping(void *opaque)
{
    struct pp *p = opaque;

    if (!pthread_equal(pthread_self(), p->ta)) {
        p->bad_thread++;
    }
    if (++p->count_a < p->n) {
        ASSERT_EQ(actx_ctx_call(p->hb, pp_pong, p), 0);
        return;
    }
    ASSERT_EQ(actx_ctx_call(p->hb, pp_finish_b, p), 0);
    p->a_finished = true;
    if (p->use_run) {
        ASSERT_EQ(actx_stop(p->ha), 0);
    }
}

static void *pp_a_main(void *opaque)
{
    struct pp *p = opaque;

    p->ta = pthread_self();
    p->ha = actx_ctx_current();
    pthread_barrier_wait(&p->bar);
    ASSERT_EQ(actx_ctx_call(p->hb, pp_pong, p), 0);
    if (p->use_run) {
        ASSERT_EQ(actx_run(), 0);
    } else {
        while (!p->a_finished) {
            actx_poll(true);
        }
    }
    return NULL;
}

static void *pp_b_main(void *opaque)
{
    struct pp *p = opaque;

    p->tb = pthread_self();
    p->hb = actx_ctx_current();
    pthread_barrier_wait(&p->bar);
    if (p->use_run) {
        ASSERT_EQ(actx_run(), 0);
    } else {
        while (!p->b_finished) {
            actx_poll(true);
        }
    }
    return NULL;
}

static void pingpong(bool use_run, long n)
{
    struct pp p;
    pthread_t a, b;

    memset(&p, 0, sizeof(p));
    p.n = n;
    p.use_run = use_run;
    pthread_barrier_init(&p.bar, NULL, 2);
    b = thread_start(pp_b_main, &p);
    a = thread_start(pp_a_main, &p);
    thread_join(a);
    thread_join(b);
    ASSERT_EQ(p.count_a, n);
    ASSERT_EQ(p.count_b, n);
    ASSERT_EQ(p.bad_thread, 0);
    ASSERT_TRUE(p.a_finished);
    ASSERT_TRUE(p.b_finished);
    actx_ctx_unref(p.ha);
    actx_ctx_unref(p.hb);
    pthread_barrier_destroy(&p.bar);
}

ACTX_TEST_TIMEOUT("/pingpong/100k", 180)
{
    pingpong(false, scaled(100000));
}

ACTX_TEST_TIMEOUT("/pingpong/100k-run", 180)
{
    pingpong(true, scaled(100000));
}

/* --- a BH scheduled from another thread, one at a time ----------------- */

static atomic_long hs_runs;

static void hs_cb(void *opaque)
{
    (void)opaque;
    atomic_fetch_add(&hs_runs, 1);
}

struct hs {
    actx_bh *bh;
    long n;
};

static void *hs_main(void *opaque)
{
    struct hs *h = opaque;

    for (long i = 0; i < h->n; i++) {
        actx_bh_schedule(h->bh);
        while (atomic_load(&hs_runs) <= i) {
            sched_yield();
        }
    }
    return NULL;
}

ACTX_TEST_TIMEOUT("/stress/bh/cross-thread-schedule-100k", 180)
{
    struct hs h = {actx_bh_new(hs_cb, NULL), scaled(100000)};
    pthread_t t = thread_start(hs_main, &h);

    while (atomic_load(&hs_runs) < h.n) {
        actx_poll(true);
    }
    thread_join(t);
    ASSERT_EQ(atomic_load(&hs_runs), h.n);
    actx_bh_delete(h.bh);
}

/* --- calls from 4 threads into a root handle while the owner nests ----- */

struct caller {
    actx_ctx *h;
    long n;
    long bad_rc;
};

static atomic_long calls_ran;
static long calls_wrong_ctx;

static void root_call(void *opaque)
{
    (void)opaque;
    if (actx_context_id() != 0) {
        calls_wrong_ctx++;
    }
    atomic_fetch_add(&calls_ran, 1);
}

static void *caller_main(void *opaque)
{
    struct caller *c = opaque;

    for (long i = 0; i < c->n; i++) {
        if (actx_ctx_call(c->h, root_call, NULL) != 0) {
            c->bad_rc++;
        }
    }
    return NULL;
}

ACTX_TEST_TIMEOUT("/stress/calls/4x250k-into-root-while-nesting", 300)
{
    struct caller c[4];
    pthread_t t[4];
    actx_ctx *root = actx_ctx_current();
    long n = scaled(250000);
    uint64_t rng = 12345;

    for (int i = 0; i < 4; i++) {
        c[i].h = root;
        c[i].n = n;
        c[i].bad_rc = 0;
        t[i] = thread_start(caller_main, &c[i]);
    }
    while (atomic_load(&calls_ran) < 4 * n) {
        uint64_t r = xorshift(&rng) % 8;

        if (r == 0 && actx_context_id() < 4) {
            actx_push();
            /* Nothing of the child: these must not run root calls. */
            actx_poll(false);
            actx_process_queue();
            ASSERT_EQ(actx_poll(true), 0);
        } else if (r == 1 && actx_context_id() > 0) {
            ASSERT_EQ(actx_pop(), 0);
        } else if (actx_context_id() == 0) {
            actx_poll(true);
        } else {
            ASSERT_EQ(actx_pop(), 0);
        }
    }
    while (actx_context_id() > 0) {
        ASSERT_EQ(actx_pop(), 0);
    }
    for (int i = 0; i < 4; i++) {
        thread_join(t[i]);
        ASSERT_EQ(c[i].bad_rc, 0);
    }
    ASSERT_EQ(atomic_load(&calls_ran), 4 * n);
    ASSERT_EQ(calls_wrong_ctx, 0);
    actx_ctx_unref(root);
}
