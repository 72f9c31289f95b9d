/* scale-producers.c - the producers curve (see bench-scale.c). */
#define _GNU_SOURCE
#include "scale.h"

/* ---------------------------------------------------------------------- */
/* Curve: producers.                                                        */

void curve_producers(const bench_opts *o)
{
    long total = (long)(400000 * o->scale);

    bench_group("scale-producers",
                "cross-thread completions: cost per completion as "
                "producers grow");
    for (int p = 1; p <= P_MAX; p *= 2) {
        char name[64];
        bench_fig *f;
        bool ok = true;

        snprintf(name, sizeof(name), "completions, %d producer%s", p,
                 p > 1 ? "s" : "");
        f = bench_fig_new(name, "ns/compl", BENCH_LOWER);
        bench_fig_x(f, "producers", "producer threads", p);
        for (int r = 0; r < o->reps; r++) {
            bench_add(f, "actx", completions(I_ACTX, p, total, false));
            ok &= tally_once(&t_inner);
#ifdef HAVE_LIBUV
            bench_add(f, "libuv mutex+async",
                      completions(I_UV, p, total, false));
            ok &= tally_once(&t_inner);
#endif
            bench_add(f, "raw mpsc+eventfd",
                      completions(I_RAW, p, total, false));
            ok &= tally_once(&t_inner);
        }
        bench_peer(f, "libuv mutex+async");
        bench_note(f, "%ld completions per repetition", total);
        bench_fig_check(f, ok, "every completion ran exactly once");
        bench_fig_done(f);
    }
}
