/*
 * bench-scale.c - scaling curves: how actx's costs grow, beside libuv (and
 * the raw protocol where it applies).  Every point checks that each
 * completion, call or token hop happened exactly once.
 *
 *   producers      P threads (1, 2, 4, 8) complete a fixed total of
 *                  requests the owner made beforehand (actx_req_new; for
 *                  the peers, preallocated nodes); the owner waits in its
 *                  loop until every done callback ran.  ns per completion.
 *                  Peers: libuv (mutex-protected queue + uv_async_send,
 *                  the owner in uv_run(UV_RUN_ONCE)); raw (CAS-push MPSC
 *                  list, one exchange takes it all, a blocking eventfd read
 *                  written only when the owner said it may sleep).
 *   outer queue    N completions of the root context (10 .. 1e6) have
 *                  arrived and sit queued while an inner context (after
 *                  actx_push) takes M completions that a helper thread
 *                  made (all arrived before the clock starts: the owner's
 *                  cost alone).  ns per inner completion; target: flat
 *                  within 1.2x.
 *                  Afterwards the pop lets the N outer ones run (checked).
 *                  libuv reference: the N sit in another loop's queue while
 *                  the inner loop runs (libuv has no context stack).
 *   stack depth    the same inner completions with the stack d deep (1 ..
 *                  256, nothing queued outside).  libuv reference: one loop.
 *
 *                  What these two curves control for, so that every point
 *                  measures the same thing: the completions have all
 *                  arrived before the clock starts and the clock is the
 *                  owner thread's CPU time (no other thread takes part; a
 *                  time slice another process takes is not the owner's
 *                  cost); unmeasured warm-up rounds, the last at the
 *                  curve's largest point, grow every allocator first;
 *                  the points are measured in interleaved rounds (each
 *                  round every point once, starting one point later each
 *                  round; 3 rounds per repetition) and each reports its
 *                  median, so that load from other processes falls on all
 *                  points alike.  Memory state: runtime/src/req.c carves
 *                  the requests' slabs in address order from chunks, so
 *                  a point's cost does not depend on the allocator's
 *                  history.
 *   token ring     n threads (2 .. 64), each in its own blocking loop, pass
 *                  one token around a ring: thread k hands it to k+1 with
 *                  actx_ctx_call.  us per hop.  Peers: libuv (one loop and
 *                  uv_async per thread), raw (a blocking eventfd read per
 *                  thread).
 *
 * Options: see --help (-only LIST picks curves).  Each point reports the
 * median of its repetitions and their spread.
 *
 * Files (scale.h): scale-producers.c, scale-inner.c (outer queue, stack
 * depth), scale-ring.c (with its raw and libuv rings), and
 * scale-pipeline.c (exactly-once bookkeeping, the completing threads,
 * the peers' completion channels); this file: main.
 */
#define _GNU_SOURCE
#include "scale.h"

/* ---------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static const bench_spec spec = {
        .prog = "bench-scale",
        .what = "scaling curves: cost per completion as producers grow "
                "(1-8), as outer-context\ncompletions wait (10-1e6) and as "
                "the context stack deepens (1-256); a token\npassed around "
                "a ring of 2-64 loops.  Every point checks exactly-once "
                "delivery.\nThe outer and depth curves measure their points "
                "in 3 interleaved rounds per\nrepetition.",
        .reps = 5,
        .figures = "producers,outer,depth,ring",
    };
    bench_opts o;

    bench_init(&o, &spec, argc, argv);
    if (actx_thread_init() < 0) {
        fprintf(stderr, "actx_thread_init failed\n");
        return 1;
    }
    if (bench_want_fig("producers")) {
        curve_producers(&o);
    }
    if (bench_want_fig("outer")) {
        curve_outer(&o, o.quick ? 100000 : 1000000);
    }
    if (bench_want_fig("depth")) {
        curve_depth(&o);
    }
    if (bench_want_fig("ring")) {
        curve_ring(&o);
    }
    free(t_inner.hits);
    free(t_outer.hits);
    actx_thread_shutdown();
    return bench_finish();
}
