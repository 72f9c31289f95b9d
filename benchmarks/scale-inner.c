/*
 * scale-inner.c - the outer-queue and stack-depth curves (see
 * bench-scale.c): inner completions with outer ones queued or the stack
 * deep.
 */
#define _GNU_SOURCE
#include "scale.h"

/* ---------------------------------------------------------------------- */
/* Curves: outer queue, stack depth.                                        */

/*
 * ns per inner completion (M of them, one helper thread) with n completions
 * of the root context queued, at stack depth `depth` (>= 1).  Checks the
 * inner and the outer completions; *ok is cleared on a miss.
 */
static double inner_actx(long n, int depth, long m, bool *ok)
{
    actx_req **outer = NULL;
    double ns;

    tally_reset(&t_outer, n);
    if (n) {
        outer = make_reqs(n, done_outer);
        /* Complete them all now: they arrive and wait for the root. */
        completers_start(I_ACTX, 1, n, outer, NULL, NULL);
        completers_join(1);
    }
    for (int d = 0; d < depth; d++) {
        if (actx_push() < 0) {
            die("actx_push");
        }
    }
    /* Move the arrivals into the root's queue before the clock starts. */
    actx_poll(false);
    ns = completions(I_ACTX, 1, m, true);
    *ok &= tally_once(&t_inner) && t_outer.done == 0;
    for (int d = 0; d < depth; d++) {
        actx_pop();
    }
    if (ACTX_WAIT_WHILE(t_outer.done < n) < 0) {
        fprintf(stderr, "actx: outer completions stalled\n");
        exit(1);
    }
    *ok &= tally_once(&t_outer);
    free(outer);
    return ns;
}

#ifdef HAVE_LIBUV
/* The libuv reference: n completions wait in another loop's queue. */
static double inner_uv(long n, long m, bool *ok)
{
    uv_q *outer = xcalloc(1, sizeof(*outer));
    idq_node *onodes = xcalloc((size_t)(n ? n : 1), sizeof(idq_node));
    double ns;

    tally_reset(&t_outer, n);
    idq_uv_init(outer, &t_outer);
    if (n) {
        completers_start(I_UV, 1, n, NULL, onodes, outer);
        completers_join(1);
    }
    ns = completions(I_UV, 1, m, true);
    *ok &= tally_once(&t_inner) && t_outer.done == 0;
    while (t_outer.done < n && t_outer.ok) {
        uv_run(&outer->loop, UV_RUN_ONCE);
    }
    *ok &= tally_once(&t_outer);
    idq_uv_destroy(outer);
    free(outer);
    free(onodes);
    return ns;
}
#endif

/*
 * Unmeasured rounds of each: the first runs pay for cold caches and for
 * growing the allocators.  The last round is the curve's largest point (n
 * outer completions queued, the stack depth deep), so that the requests'
 * slabs, the contexts and the peer's nodes have grown to what every point
 * needs before any is measured: growth happens once in a loop's life (the
 * slabs live until it shuts down), and without this the first repetition
 * of the largest point alone would touch fresh memory.
 */
static void inner_warm_up(long m, long n, int depth)
{
    bool ok = true;

    for (int i = 0; i < 3; i++) {
        inner_actx(0, 1, m, &ok);
#ifdef HAVE_LIBUV
        inner_uv(0, m, &ok);
#endif
    }
    inner_actx(n, depth, m, &ok);
#ifdef HAVE_LIBUV
    inner_uv(n, m, &ok);
#endif
    if (!ok) {
        fprintf(stderr, "bench-scale: warm-up: a completion was lost\n");
        exit(1);
    }
}

/*
 * The points of the outer-queue and depth curves are measured in
 * interleaved rounds: each round measures every point once, and a point's
 * figure is the median over the rounds.  A burst of load from other
 * processes (a compilation on a shared machine lasts longer than a point's
 * repetitions) then falls on the points of a round alike instead of on one
 * point's repetitions.  Round r starts at point r (mod the number of
 * points) and goes on in order, so that each point takes a different place
 * in each round and never runs twice in a row.
 *
 * ROUNDS_PER_REP rounds per repetition (-n): a round of a curve takes
 * about half a second, and a burst of load of a few seconds must cover a
 * minority of a curve's rounds, which the median leaves out.
 */
#define ROUNDS_PER_REP 3
#define CURVE_MAX 16
#define DEPTH_MAX 256

/* Round r's k-th point of n. */
static int round_point(int r, int k, int n)
{
    return (r + k) % n;
}

/*
 * A million inner completions per repetition (about 10 ms): a repetition
 * must be long against thread start-up and scheduling.
 */
void curve_outer(const bench_opts *o, long nmax)
{
    long m = (long)(1000000 * o->scale);
    bench_fig *f[CURVE_MAX];
    long queued[CURVE_MAX];
    bool ok[CURVE_MAX];
    int np = 0;

    inner_warm_up(m, nmax, 1);
    bench_group("scale-outer",
                "inner-context completions while outer completions wait");
    for (long n = 10; n <= nmax && np < CURVE_MAX; n *= 10, np++) {
        char name[64];

        snprintf(name, sizeof(name), "inner compl, %ld outer queued", n);
        f[np] = bench_fig_new(name, "ns/compl", BENCH_LOWER);
        bench_fig_x(f[np], "outer queue", "outer completions queued",
                    (double)n);
        bench_curve_target(f[np], "flat 1.2");
        queued[np] = n;
        ok[np] = true;
    }
    for (int r = 0; r < ROUNDS_PER_REP * o->reps; r++) {
        for (int k = 0; k < np; k++) {
            int i = round_point(r, k, np);

            bench_add(f[i], "actx", inner_actx(queued[i], 1, m, &ok[i]));
#ifdef HAVE_LIBUV
            bench_add(f[i], "libuv (other loop)",
                      inner_uv(queued[i], m, &ok[i]));
#endif
        }
    }
    for (int i = 0; i < np; i++) {
        bench_peer(f[i], "libuv (other loop)");
        bench_note(f[i], "%ld inner completions from one thread", m);
        bench_note(f[i], "points measured in %d interleaved rounds",
                   ROUNDS_PER_REP * o->reps);
        bench_fig_check(f[i], ok[i],
                        "inner and outer completions each ran exactly once, "
                        "outer ones only after the pop");
        bench_fig_done(f[i]);
    }
}

void curve_depth(const bench_opts *o)
{
    long m = (long)(1000000 * o->scale);
    bench_fig *f[CURVE_MAX];
    int depth[CURVE_MAX];
    bool ok[CURVE_MAX];
    int np = 0;

    inner_warm_up(m, 0, DEPTH_MAX);
    bench_group("scale-depth",
                "completions in the innermost context as the stack deepens");
    for (int d = 1; d <= DEPTH_MAX && np < CURVE_MAX; d *= 2, np++) {
        char name[64];

        snprintf(name, sizeof(name), "inner compl, depth %d", d);
        f[np] = bench_fig_new(name, "ns/compl", BENCH_LOWER);
        bench_fig_x(f[np], "stack depth", "context stack depth", d);
        bench_curve_target(f[np], "flat 1.2");
        depth[np] = d;
        ok[np] = true;
    }
    for (int r = 0; r < ROUNDS_PER_REP * o->reps; r++) {
        for (int k = 0; k < np; k++) {
            int i = round_point(r, k, np);

            bench_add(f[i], "actx", inner_actx(0, depth[i], m, &ok[i]));
#ifdef HAVE_LIBUV
            bench_add(f[i], "libuv (one loop)", inner_uv(0, m, &ok[i]));
#endif
        }
    }
    for (int i = 0; i < np; i++) {
        bench_peer(f[i], "libuv (one loop)");
        bench_note(f[i], "%ld completions from one thread", m);
        bench_note(f[i], "points measured in %d interleaved rounds",
                   ROUNDS_PER_REP * o->reps);
        bench_fig_check(f[i], ok[i], "every completion ran exactly once");
        bench_fig_done(f[i]);
    }
}
