/*
 * bench-util.h - timing, best-of-N and the result table shared by the actx
 * benchmarks.
 *
 * Every benchmark measures actx and its peers in the same process run,
 * repeated and interleaved (actx, peer, peer, actx, ...), and keeps the best
 * of N repetitions of each: on a shared, noisy machine the best run is the
 * one least disturbed, and interleaving exposes every candidate to the same
 * noise.  Nothing asserts on timing; the table says "met" or "missed" and
 * the program exits 0.
 *
 * Peers are compiled in when the build found them: HAVE_LIBUV,
 * HAVE_LIBEVENT, HAVE_GLIB (the SCons build defines them from pkg-config).
 * BENCH_NO_ACTX builds the peers alone (for checking them without the
 * runtime).
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <math.h> /* NAN and isnan only: no -lm needed */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_NOINLINE __attribute__((noinline))
#define BENCH_UNUSED __attribute__((unused))
#define BENCH_CACHELINE 64

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void bench_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/* Keep the compiler from deleting work whose result is otherwise unused. */
#define BENCH_USE(x) __asm__ __volatile__("" : : "g"(x) : "memory")

/*
 * Best-of-N bookkeeping.  "lower" figures are times per operation (best =
 * minimum), "higher" figures are rates (best = maximum).  NAN means "not
 * measured" (peer not compiled in).
 */
typedef struct {
    double best;
    bool higher_is_better;
    int n;
} bench_best;

static inline void bench_best_init(bench_best *b, bool higher_is_better)
{
    b->best = NAN;
    b->higher_is_better = higher_is_better;
    b->n = 0;
}

static inline void bench_best_add(bench_best *b, double v)
{
    if (b->n++ == 0 || (b->higher_is_better ? v > b->best : v < b->best)) {
        b->best = v;
    }
}

/* ---------------------------------------------------------------------- */
/* The result table.                                                        */

/*
 * One benchmark row: actx's figure, up to four peers, and a target that
 * applies to either actx's own figure (an absolute bound) or the ratio
 * actx/peer[target_peer].
 */
enum bench_target_kind {
    BENCH_TARGET_NONE,
    BENCH_TARGET_ABS_MAX,   /* actx figure <= value */
    BENCH_TARGET_RATIO_MAX, /* actx/peer <= value */
    BENCH_TARGET_RATIO_MIN, /* actx/peer >= value */
    BENCH_TARGET_ABS_EQ0,   /* actx figure == 0 (e.g. mallocs) */
};

typedef struct {
    const char *name;
    double fig;
} bench_peer;

typedef struct {
    const char *name;
    const char *unit;
    double actx;
    bench_peer peer[4];
    int npeers;
    enum bench_target_kind target;
    double target_value;
    int target_peer; /* for ratio targets */
    const char *note;
} bench_row;

static inline void bench_fmt(char *buf, size_t n, double v)
{
    double a = v < 0 ? -v : v;

    if (isnan(v)) {
        snprintf(buf, n, "-");
    } else if (v == 0) {
        snprintf(buf, n, "0.000");
    } else if (a < 10) {
        snprintf(buf, n, "%.3f", v);
    } else if (a < 100) {
        snprintf(buf, n, "%.2f", v);
    } else {
        snprintf(buf, n, "%.1f", v);
    }
}

static inline void bench_table_header(const char *title)
{
    printf("\n%s\n", title);
    printf("%-28s %-10s %9s  %-22s %9s %9s  %-20s\n", "benchmark", "unit",
           "actx", "peer", "peer fig", "actx/peer", "target");
    printf("%-28s %-10s %9s  %-22s %9s %9s  %-20s\n",
           "----------------------------", "----------", "---------",
           "----------------------", "---------", "---------",
           "--------------------");
}

static inline void bench_table_row(const bench_row *r)
{
    char a[32], t[64], pf[32], ra[32];
    bool have_actx = !isnan(r->actx);

    bench_fmt(a, sizeof(a), r->actx);
    t[0] = '\0';
    switch (r->target) {
    case BENCH_TARGET_NONE:
        break;
    case BENCH_TARGET_ABS_MAX:
        snprintf(t, sizeof(t), "<= %g %s  %s", r->target_value, r->unit,
                 !have_actx ? "" : r->actx <= r->target_value ? "met"
                                                              : "MISSED");
        break;
    case BENCH_TARGET_ABS_EQ0:
        snprintf(t, sizeof(t), "== 0  %s",
                 !have_actx ? "" : r->actx == 0 ? "met" : "MISSED");
        break;
    case BENCH_TARGET_RATIO_MAX:
    case BENCH_TARGET_RATIO_MIN: {
        double pv = r->peer[r->target_peer].fig;
        double ratio = r->actx / pv;
        bool ok = r->target == BENCH_TARGET_RATIO_MAX
                      ? ratio <= r->target_value
                      : ratio >= r->target_value;
        snprintf(t, sizeof(t), "vs %s %s %gx  %s", r->peer[r->target_peer].name,
                 r->target == BENCH_TARGET_RATIO_MAX ? "<=" : ">=",
                 r->target_value,
                 (!have_actx || isnan(pv)) ? "" : ok ? "met" : "MISSED");
        break;
    }
    }
    if (r->npeers == 0) {
        printf("%-28s %-10s %9s  %-22s %9s %9s  %s\n", r->name, r->unit, a,
               "", "", "", t);
    }
    for (int i = 0; i < r->npeers; i++) {
        bench_fmt(pf, sizeof(pf), r->peer[i].fig);
        if (have_actx && !isnan(r->peer[i].fig) && r->peer[i].fig != 0) {
            snprintf(ra, sizeof(ra), "%.2fx", r->actx / r->peer[i].fig);
        } else {
            snprintf(ra, sizeof(ra), "-");
        }
        if (i == 0) {
            printf("%-28s %-10s %9s  %-22s %9s %9s  %s\n", r->name, r->unit,
                   a, r->peer[i].name, pf, ra, t);
        } else {
            printf("%-28s %-10s %9s  %-22s %9s %9s\n", "", "", "",
                   r->peer[i].name, pf, ra);
        }
    }
    if (r->note) {
        printf("%-28s   (%s)\n", "", r->note);
    }
}

static inline void bench_row_peer(bench_row *r, const char *name, double v)
{
    r->peer[r->npeers].name = name;
    r->peer[r->npeers].fig = v;
    r->npeers++;
}

/* Command-line: -n REPS, -t SECONDS-PER-REP (rate benchmarks), -q (quick). */
typedef struct {
    int reps;
    double rep_seconds;
    double scale; /* multiplies iteration counts */
} bench_opts;

static inline void bench_parse(bench_opts *o, int argc, char **argv,
                               int reps, double rep_seconds)
{
    o->reps = reps;
    o->rep_seconds = rep_seconds;
    o->scale = 1.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc) {
            o->reps = atoi(argv[++i]);
            if (o->reps < 1) {
                o->reps = 1;
            }
        } else if (!strcmp(argv[i], "-t") && i + 1 < argc) {
            o->rep_seconds = atof(argv[++i]);
        } else if (!strcmp(argv[i], "-q")) {
            o->reps = 2;
            o->rep_seconds /= 4;
            o->scale = 0.25;
        }
    }
}

#endif /* BENCH_UTIL_H */
