/*
 * xthread-stages.c - the two stages of the re-issue pipeline
 * (xthread-reissue.c) measured alone (os, ps): what the owner pays per
 * completion, and what a producer pays per post.
 *
 * In r1 and r2 the slower stage sets the throughput, and which stage is
 * slower decides more than its own cost: when the producer is the faster
 * one, the rings run empty and the producer spins on the ring head that
 * the owner writes at every issue, so each issue pays for cache lines
 * taken back from the spinning producer.  When the owner is the faster
 * one, the rings fill up, the producer reads them in long runs and the
 * owner sleeps between batches.  benchmarks/README.md ("Why the misses
 * happen") tells what these figures show.
 *
 * os: a producer thread posts STAGE_N completions while the owner does
 * nothing; then the owner runs them (owner_poll(false) until all ran),
 * each done callback issuing the next request into an array as r1 issues
 * into a ring (nobody consumes it).  Only the owner's run is timed.
 * ps: the producer's loop of STAGE_N posts, timed on the producer, with
 * the owner idle and not asleep (no wake-ups to write).  Both in ns per
 * completion; the lines travel between the two threads' caches as in r1,
 * only never while the other thread works on them.
 */
#include <pthread.h>

#include "xthread.h"

#define STAGE_N 16384

static struct {
    enum variant v;
    bool reissue;
    size_t issued;
    void *reqs[STAGE_N]; /* the batch the producer posts */
    void *next[STAGE_N]; /* what the done callbacks issued */
    uint64_t post_ns;    /* the producer's timed loop */
} st;

static void stage_done(void *opaque, long ret)
{
    (void)opaque;
    (void)ret;
    done_count++;
    if (st.reissue) {
        st.next[st.issued++] = new_request(st.v, stage_done, NULL);
    }
}

static void *stage_producer(void *arg)
{
    uint64_t t0 = bench_now_ns();

    (void)arg;
    for (size_t i = 0; i < STAGE_N; i++) {
        xthread_complete(st.v, st.reqs[i], 1);
    }
    st.post_ns = bench_now_ns() - t0;
    return NULL;
}

static void post_all(void)
{
    pthread_t th;

    if (pthread_create(&th, NULL, stage_producer, NULL) ||
        pthread_join(th, NULL)) {
        perror("pthread");
        exit(1);
    }
}

/* Run owner_poll(false) until every posted completion ran; ns taken. */
static uint64_t run_all(unsigned long target)
{
    uint64_t t0 = bench_now_ns();

    while (done_count < target) {
        owner_poll(st.v, false);
    }
    return bench_now_ns() - t0;
}

/*
 * One round: STAGE_N requests made, posted by a producer thread, run by
 * the owner (which issues STAGE_N more), and the issued ones put away
 * untimed (actx: completed on the owner and run without re-issuing).
 */
static void stage_round(uint64_t *owner_ns, uint64_t *post_ns)
{
    for (size_t i = 0; i < STAGE_N; i++) {
        st.reqs[i] = new_request(st.v, stage_done, NULL);
    }
    done_count = 0;
    st.issued = 0;
    st.reissue = true;
    post_all();
    *post_ns += st.post_ns;
    *owner_ns += run_all(STAGE_N);
    st.reissue = false;
    if (st.v == V_ACTX) {
        for (size_t i = 0; i < st.issued; i++) {
            actx_req_complete(st.next[i], 0);
        }
        run_all(STAGE_N + st.issued);
    } else {
        for (size_t i = 0; i < st.issued; i++) {
            bench_node_put(st.next[i]);
        }
    }
}

/* Rounds for r->seconds; ns per completion of the owner or the producer. */
static double run_stage(enum variant v, const bench_rep *r, bool owner)
{
    uint64_t end = bench_now_ns() + (uint64_t)(r->seconds * 1e9);
    uint64_t owner_ns = 0, post_ns = 0;
    unsigned long rounds = 0;

    st.v = v;
    bench_nodes_reset();
    do {
        stage_round(&owner_ns, &post_ns);
        rounds++;
    } while (bench_now_ns() < end);
    return (double)(owner ? owner_ns : post_ns) / (double)(rounds * STAGE_N);
}

#define STAGE_RUNS(kind, is_owner)                                             \
    static double kind##_actx(const bench_rep *r)                              \
    {                                                                          \
        return run_stage(V_ACTX, r, is_owner);                                 \
    }                                                                          \
    static BENCH_UNUSED double kind##_uv(const bench_rep *r)                   \
    {                                                                          \
        return run_stage(V_UV, r, is_owner);                                   \
    }                                                                          \
    static double kind##_raw(const bench_rep *r)                               \
    {                                                                          \
        return run_stage(V_RAW, r, is_owner);                                  \
    }

STAGE_RUNS(owner, true)
STAGE_RUNS(post, false)

static const bench_impl_def owner_impls[] =
    XTHREAD_IMPLS(owner_actx, owner_uv, owner_raw);
static const bench_impl_def post_impls[] =
    XTHREAD_IMPLS(post_actx, post_uv, post_raw);

void xthread_stages(const bench_opts *o)
{
    static const struct {
        const char *key, *name;
        const bench_impl_def *impls;
    } figs[] = {
        {"os", "owner's cost per re-issued completion", owner_impls},
        {"ps", "producer's cost per completion post", post_impls},
    };

    (void)o;
    for (size_t i = 0; i < sizeof(figs) / sizeof(figs[0]); i++) {
        bench_measure(&(bench_figure){
            .key = figs[i].key,
            .name = figs[i].name,
            .unit = "ns",
            .dir = BENCH_LOWER,
            .impls = figs[i].impls,
            .split = 3,
            .warmup = 1,
        });
    }
}
