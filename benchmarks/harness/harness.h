/*
 * harness.h - what every actx benchmark program shares: the command line,
 * the host's costs, timing, figures with their samples, the text table,
 * progress lines and the JSON file that benchmarks/report.py turns into
 * charts.
 *
 * Every figure measures actx and its peers in the same process run,
 * repeated and interleaved (actx, peer, peer, actx, ...), and reports the
 * median of the repetitions with their min-max spread.  Nothing asserts on
 * timing: the table says "met" or "MISSED" and the program exits 0 (1 only
 * if a correctness check failed, 2 on bad usage).
 *
 * A figure is a table of implementations, each a function that runs one
 * repetition and returns its figure; one call runs, interleaves, repeats
 * and reports it:
 *
 *     static double run_actx(const bench_rep *r) { ... }
 *     static double run_uv(const bench_rep *r) { ... }   // peers/uv-*.c
 *
 *     static const bench_impl_def impls[] = {
 *         {"actx", "actx", run_actx},
 *     #ifdef HAVE_LIBUV
 *         {"libuv idle", "uv", run_uv},
 *     #endif
 *         {NULL, NULL, NULL},
 *     };
 *     static const bench_spec spec = {
 *         .prog = "bench-foo", .what = "what it measures",
 *         .reps = 5, .rep_seconds = 0.3,
 *         .figures = "burst", .impls = "actx,uv",   // -only keys
 *     };
 *
 *     bench_init(&o, &spec, argc, argv);  // --help, --json, -n, -t, -q, -only
 *     bench_group("foo", "foo things (single thread)");
 *     bench_measure(&(bench_figure){
 *         .key = "burst", .name = "foo x1000", .unit = "ns/op",
 *         .dir = BENCH_LOWER, .impls = impls, .warmup = 1,
 *         .target_peer = "libuv idle", .target_ratio = 1.0,
 *     });
 *     return bench_finish();
 *
 * Figures whose repetitions are not independent runs (curves, several
 * figures from one run) use the lower layer: bench_fig_new, bench_add per
 * repetition and implementation, bench_target_*, bench_fig_done.
 *
 * "x faster" (the ratio column, in the table, the JSON and the report) is
 * peer/actx for BENCH_LOWER figures and actx/peer for BENCH_HIGHER ones:
 * above 1 always means actx is better.  Ratio targets are written the same
 * way.  A point of a scaling curve is a figure with bench_fig_x() set:
 * report.py draws the figures that share a curve name as one line per
 * implementation against x.
 *
 * Peers are compiled in when the build found them: HAVE_LIBUV,
 * HAVE_LIBEVENT, HAVE_GLIB (benchmarks/SConscript defines them from
 * pkg-config); a peer that is not compiled in has no row in its figures'
 * tables, so the figure shows "-" for it.
 *
 * Single-threaded: call everything here from the thread that runs main().
 */
#ifndef BENCH_HARNESS_H
#define BENCH_HARNESS_H

#include <math.h> /* NAN and isnan */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_NOINLINE __attribute__((noinline))
#define BENCH_UNUSED __attribute__((unused))
#define BENCH_CACHELINE 64

/* Keep the compiler from deleting work whose result is otherwise unused. */
#define BENCH_USE(x) __asm__ __volatile__("" : : "g"(x) : "memory")

/* Any thread.  CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Any thread.  The pause of a spin-wait loop. */
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

/* Any thread.  xorshift64: cheap random numbers, one state per user. */
static inline uint64_t bench_rnd(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

/* Any thread.  realloc, or exit(1) with a message. */
void *bench_xrealloc(void *p, size_t n);

/* Any thread.  Is name one of the comma-separated tokens of list? */
bool bench_list_has(const char *list, const char *name);

/* ---------------------------------------------------------------------- */
/* The command line.                                                        */

/*
 * A program-specific option.  Exactly one of value (an option with an
 * argument, metavar names it in --help) or flag (an option without one)
 * is set.
 */
typedef struct {
    const char *name;    /* "--syscall-check" */
    const char *metavar; /* "N"; NULL for a flag */
    const char *help;
    const char **value;
    bool *flag;
} bench_option;

typedef struct {
    const char *prog;          /* "bench-bh" */
    const char *what;          /* one line for --help */
    int reps;                  /* default -n */
    double rep_seconds;        /* default -t; 0: the program has no -t */
    const bench_option *extra; /* NULL-name terminated, or NULL */
    const char *usage_more;    /* more --help text, or NULL */
    /*
     * The keys -only LIST selects from (comma-separated), or NULL: figures
     * (or curves, scenarios) and implementations.  A kind that LIST does
     * not mention is selected entirely.  Without both, no -only option.
     */
    const char *figures;
    const char *impls;
} bench_spec;

typedef struct {
    int reps;           /* repetitions of each figure (-n) */
    double rep_seconds; /* seconds per repetition (-t) */
    double scale;       /* multiplies iteration counts (-q: 0.25) */
    bool quick;         /* -q */
    const char *only;   /* -only LIST, or NULL */
} bench_opts;

/*
 * Parse the common options (-h/--help, --json FILE, -n, -t, -q, -only
 * LIST) and the program's own (spec->extra), note the machine, measure
 * the host's costs and print the banner.  --help prints the usage and
 * exits 0; an unknown option or a missing/bad argument prints the usage to
 * stderr and exits 2.
 */
void bench_init(bench_opts *o, const bench_spec *spec, int argc, char **argv);

/* Is the figure (or curve, scenario) with this -only key selected? */
bool bench_want_fig(const char *key);
/* Is the implementation with this -only key selected? */
bool bench_want_impl(const char *key);

/*
 * The host's costs measured by bench_init (also in the banner and the
 * JSON): the median cost of one system call (getppid) in ns, and the
 * median round trip of an eventfd ping-pong between two threads blocked
 * in read(2), in us.
 */
double bench_host_syscall_ns(void);
double bench_host_wakeup_rt_us(void);

/* ---------------------------------------------------------------------- */
/* Figures.                                                                 */

typedef enum {
    BENCH_LOWER,  /* a time or a cost: lower is better */
    BENCH_HIGHER, /* a rate: higher is better */
} bench_dir;

enum bench_target_kind {
    BENCH_TARGET_NONE,
    BENCH_TARGET_ABS,   /* actx's median <= value (LOWER) or >= (HIGHER) */
    BENCH_TARGET_RATIO, /* actx x faster than a peer >= value */
};

#define BENCH_MAX_IMPLS 8
#define BENCH_MAX_TARGETS 4

typedef struct {
    const char *name;
    double *v;
    int n, cap;
} bench_impl;

typedef struct bench_fig {
    char name[96];
    const char *unit;
    bench_dir dir;
    const char *group;
    const char *group_title;
    const char *curve; /* a scaling curve's name, or NULL */
    const char *xlabel;
    double x;
    const char *curve_target;         /* see bench_curve_target, or NULL */
    bench_impl impl[BENCH_MAX_IMPLS]; /* impl[0] is "actx" */
    int nimpl;
    struct {
        enum bench_target_kind kind;
        double value;
        const char *peer;        /* a ratio target's */
    } target[BENCH_MAX_TARGETS]; /* all must be met */
    int ntargets;
    char note[256];
    char check[128]; /* what bench_fig_check verified, "" if nothing */
    int check_ok;    /* 1 ok, 0 failed, -1 not checked */
} bench_fig;

typedef struct {
    double min, median, max;
    int n;
} bench_stat;

/* What one repetition of an implementation is given. */
typedef struct {
    void *arg;      /* the figure's arg */
    double seconds; /* this repetition's length: -t / split */
    double scale;   /* multiplies iteration counts (-q: 0.25) */
    int rep;        /* 0, 1, ...; -1 for the warm-up */
} bench_rep;

/* One implementation of a figure.  run returns NAN if it measured nothing. */
typedef struct {
    const char *name; /* the table's column: "actx" first, then peers */
    const char *key;  /* its -only key ("actx", "uv", "raw") */
    double (*run)(const bench_rep *r);
} bench_impl_def;

/* A figure measured by bench_measure. */
typedef struct {
    const char *key; /* its -only key, or NULL: always measured */
    const char *name;
    const char *unit;
    bench_dir dir;
    const bench_impl_def *impls; /* {NULL}-terminated; "actx" first */
    void *arg;                   /* passed to every run */
    int split;  /* split x -n repetitions of -t / split each; 0 means 1 */
    int reps;   /* repetitions to use instead of -n (0: -n) */
    int warmup; /* untimed runs of each implementation before the first */
    const char *target_peer; /* ratio target: actx >= target_ratio x peer */
    double target_ratio;
    double target_abs; /* unless 0: actx's median <= (LOWER) or >= it */
    /* Called before the figure is reported: notes, checks.  May be NULL. */
    void (*finish)(bench_fig *f, void *arg);
} bench_figure;

/*
 * Run the figure: warm-up, then its repetitions, each running every
 * selected implementation once (in reverse order every other repetition),
 * then report it as bench_fig_done does.  Returns the figure (the run owns
 * it), or NULL if -only did not select it.
 */
bench_fig *bench_measure(const bench_figure *d);

/*
 * Start a group of figures: prints the table header; report.py draws one
 * bar chart per group.  id is short ("bh"), title is a sentence.
 */
void bench_group(const char *id, const char *title);

/* A new figure in the current group.  name is copied; unit must live on. */
bench_fig *bench_fig_new(const char *name, const char *unit, bench_dir dir);

/*
 * Make f a point of the scaling curve `curve` at x (xlabel names the x
 * axis, e.g. "producers").  curve and xlabel must live on.
 */
void bench_fig_x(bench_fig *f, const char *curve, const char *xlabel, double x);

/*
 * A target on the whole curve, evaluated over actx's medians by report.py
 * (set it on any of the curve's points): "flat X" (max/min over the curve
 * at most X); "log" (cost grows at most like log x: cost(x)/cost(x0) <=
 * ln(x)/ln(x0), x0 the first point, for BENCH_LOWER figures); "log PEER"
 * (cost grows at most 1.2x as much as PEER's, an O(log n) reference
 * measured in the same run: cache misses count for both).
 */
void bench_curve_target(bench_fig *f, const char *target);

/* The implementation named impl in f, added if new.  name must live on. */
bench_impl *bench_impl_of(bench_fig *f, const char *impl);

/*
 * One repetition's figure for implementation impl ("actx" or a peer's
 * name, which must live on).  NAN is ignored (not measured).
 */
void bench_add(bench_fig *f, const char *impl, double v);

/* Declare a peer without samples (e.g. not compiled in): the table says -. */
void bench_peer(bench_fig *f, const char *impl);

/*
 * Targets: a figure may have several (BENCH_MAX_TARGETS), all of which
 * must be met; a second ratio target on the same peer replaces the first.
 * On actx's own median: <= value (BENCH_LOWER) or >= (HIGHER).
 */
void bench_target_abs(bench_fig *f, double value);

/* Target: actx at least `times` x faster than peer (see "x faster"). */
void bench_target_ratio(bench_fig *f, const char *peer, double times);

/* A line of explanation printed under the figure and kept in the JSON. */
void bench_note(bench_fig *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Record a correctness check of the measured runs (e.g. "exactly once":
 * every completion ran once, none lost).  Checks of one figure accumulate:
 * the figure is verified if all passed.  A failed check is printed and
 * makes bench_finish() return 1.
 */
void bench_fig_check(bench_fig *f, bool ok, const char *what);

/* min, median, max of one implementation's samples. */
bench_stat bench_stat_of(const bench_impl *m);

/*
 * The figure is complete: print its table rows (median, min, max, x
 * faster per implementation, target), a progress line on stderr, and keep
 * it for the JSON file.  f belongs to the run from now on.
 */
void bench_fig_done(bench_fig *f);

/*
 * End of the run: write the JSON file if --json asked for one, free the
 * figures.  Returns main's exit status: 0, or 1 if a check failed or the
 * JSON file could not be written.
 */
int bench_finish(void);

#endif /* BENCH_HARNESS_H */
