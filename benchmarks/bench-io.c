/*
 * bench-io.c - timers and fd wake-ups, actx against its peers in the same
 * run.  One scenario per file (io.h):
 *   io-timers.c    timers, curve   timers arm+fire x10k, and the curve of
 *                                  10 ... 1e6 timers armed at once
 *   io-fd.c        fd              fd wake-up round trip between threads
 *   io-lateness.c  lateness        a 2 ms timer's lateness on an idle loop
 */
#include <stdio.h>

#include "io.h"

int main(int argc, char **argv)
{
    static bool no_curve;
    static const bench_option extra[] = {
        {"--no-curve", NULL, "skip the timers scaling curve (10 to 1e6)", NULL,
         &no_curve},
        {NULL, NULL, NULL, NULL, NULL},
    };
    static const bench_spec spec = {
        .prog = "bench-io",
        .what = "timers (arm+fire, and a curve as armed timers grow 10 -> "
                "1e6), fd wake-up round\ntrips between threads and timer "
                "lateness: actx, a raw heap / epoll loop and libuv.",
        .reps = 7,
        .extra = extra,
        .usage_more = "Timers and round trips run 2xREPS repetitions "
                      "(interleaved, the order reversed\nevery other one); "
                      "the curve about REPS per point, lateness 20.",
        .figures = "timers,curve,fd,lateness",
        .impls = "actx,raw,uv",
    };
    bench_opts o;
    io_setup s;

    bench_init(&o, &spec, argc, argv);
    s.reps = o.reps;
    s.quick = o.quick;
    s.curve = !no_curve;
    s.rtt_iters = (int)(20000 * o.scale);
    if (s.rtt_iters < 1000) {
        s.rtt_iters = 1000;
    }
    bench_group("io", "timers and fd wake-ups");
    io_timers(&s);
    io_fd(&s);
    io_lateness(&s);
    io_timers_curve(&s); /* a group of its own */
    return bench_finish();
}
