/*
 * bench-xthread.c - cross-thread completions and cross-thread round trips:
 * actx, the libuv idiom and the raw protocol.  One scenario per file:
 *   xthread-batch.c     c1, c2  completions issued in batches
 *   xthread-reissue.c   r1, r2  completions re-issued from done callbacks
 *                       r1s, r2s  the same, producers sleeping when idle
 *   xthread-stages.c    os, ps  r1's owner and producer stages, each alone
 *   xthread-blocking.c  b1, b2  a C service's always-blocking owner loop
 *   xthread-pingpong.c  pp      round trips between two blocking loops
 *   xthread-polling.c   p1, p2, ppp, idle  the same with polling on
 * and the pipeline they share in xthread-pipeline.c (xthread.h).
 */
#include <stdio.h>

#include "xthread.h"

int main(int argc, char **argv)
{
    static const bench_spec spec = {
        .prog = "bench-xthread",
        .what = "cross-thread completions (1 and 2 producers into one "
                "owner) and round trips\nbetween two threads' blocking "
                "loops: actx, the libuv idiom and the raw protocol.",
        .reps = 5,
        .rep_seconds = 0.3,
        .usage_more = "Completions get 3xREPS repetitions of SECONDS/3, "
                      "ping-pong 10xREPS of SECONDS/10,\nper "
                      "implementation, interleaved.",
        .figures = "c1,c2,r1,r2,r1s,r2s,os,ps,b1,b2,pp,p1,p2,ppp,idle",
        .impls = "actx,uv,raw",
    };
    bench_opts o;

    bench_init(&o, &spec, argc, argv);
    xthread_init();
    printf("bench-xthread: %d interleaved repetitions of %.2f s "
           "(ping-pong: %d of %.3f s); batches: ring %d slots, at most %d "
           "outstanding per producer\n",
           3 * o.reps, o.rep_seconds / 3, 10 * o.reps, o.rep_seconds / 10, RING,
           OUTSTANDING_PER_PRODUCER);
    bench_group("xthread", "cross-thread completions and round trips");
    xthread_batch(&o);
    xthread_reissue(&o);
    xthread_stages(&o);
    xthread_blocking(&o);
    xthread_pingpong(&o);
    xthread_polling(&o);
    xthread_fini();
    return bench_finish();
}
