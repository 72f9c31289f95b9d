/*
 * bench-util.h - what every actx benchmark program shares: the command
 * line, timing, figures with their samples, the text table, progress lines
 * and the JSON file that benchmarks/report.py turns into charts.
 *
 * Every benchmark measures actx and its peers in the same process run,
 * repeated and interleaved (actx, peer, peer, actx, ...), and reports the
 * median of the repetitions with their min-max spread: on a shared, noisy
 * machine that shows both the typical figure and how much it moved.
 * Nothing asserts on timing; the table says "met" or "MISSED" and the
 * program exits 0 (1 only if a correctness check failed, see
 * bench_fig_check).
 *
 * A program looks like this:
 *
 *     int main(int argc, char **argv)
 *     {
 *         static const bench_spec spec = {
 *             .prog = "bench-foo", .what = "what it measures",
 *             .reps = 5, .rep_seconds = 0.3,
 *         };
 *         bench_opts o;
 *
 *         bench_init(&o, &spec, argc, argv);   // --help, --json, -n, ...
 *         bench_group("foo", "foo things (single thread)");
 *         bench_fig *f = bench_fig_new("foo x1000", "ns/op", BENCH_LOWER);
 *         for (int r = 0; r < o.reps; r++) {
 *             bench_add(f, "actx", run_actx());
 *             bench_add(f, "libuv idle", run_uv());
 *         }
 *         bench_target_abs(f, 8);               // optional
 *         bench_fig_done(f);                    // table row, progress, JSON
 *         return bench_finish();
 *     }
 *
 * A figure is: a name, a unit, a direction (BENCH_LOWER: times, lower is
 * better; BENCH_HIGHER: rates), samples for "actx" (always listed first)
 * and for each peer, in the order first added.  A peer that is not
 * compiled in simply gets no samples.  A point of a scaling curve is a
 * figure with bench_fig_x() set: report.py draws the figures that share a
 * curve name as one line per implementation against x.
 *
 * "x faster" (the ratio column, in the table, the JSON and the report) is
 * peer/actx for BENCH_LOWER figures and actx/peer for BENCH_HIGHER ones:
 * above 1 always means actx is better.  Ratio targets are written the same
 * way: bench_target_ratio(f, "libuv", 1.3) means "actx at least 1.3x
 * better than libuv".
 *
 * Peers are compiled in when the build found them: HAVE_LIBUV,
 * HAVE_LIBEVENT, HAVE_GLIB (the SCons build defines them from pkg-config).
 * BENCH_NO_ACTX builds the peers alone (for checking them without the
 * runtime).  BENCH_BUILD_MODE is the build mode ("release", "debug", ...)
 * as a string; benchmarks/SConscript defines it, and without it the mode
 * is guessed from NDEBUG and __OPTIMIZE__.
 *
 * Single-threaded: call everything here from the thread that runs main().
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
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define BENCH_NOINLINE __attribute__((noinline))
#define BENCH_UNUSED __attribute__((unused))
#define BENCH_CACHELINE 64

#ifndef BENCH_BUILD_MODE
#if defined(__SANITIZE_ADDRESS__)
#define BENCH_BUILD_MODE "asan"
#elif defined(__SANITIZE_THREAD__)
#define BENCH_BUILD_MODE "tsan"
#elif defined(__OPTIMIZE__) && defined(NDEBUG)
#define BENCH_BUILD_MODE "release"
#else
#define BENCH_BUILD_MODE "debug"
#endif
#endif

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

static inline void *bench_xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    return p;
}

/* Is name one of the comma-separated tokens of list (e.g. an -only LIST)? */
static inline bool bench_list_has(const char *list, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = list; (p = strstr(p, name)); p += n) {
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) {
            return true;
        }
    }
    return false;
}

/* ---------------------------------------------------------------------- */
/* The command line.                                                        */

/*
 * A program-specific option.  Exactly one of value (an option with an
 * argument, metavar names it in --help) or flag (an option without one)
 * is set.
 */
typedef struct {
    const char *name;    /* "-only", "--syscall-check" */
    const char *metavar; /* "LIST"; NULL for a flag */
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
} bench_spec;

typedef struct {
    int reps;           /* repetitions of each figure (-n) */
    double rep_seconds; /* seconds per repetition (-t) */
    double scale;       /* multiplies iteration counts (-q: 0.25) */
    bool quick;         /* -q */
} bench_opts;

/* The state of this run: one per process. */
typedef struct bench_fig bench_fig;
static struct {
    const bench_spec *spec;
    bench_opts opts;
    const char *json;
    const char *group;
    const char *group_title;
    bench_fig **figs;
    int nfigs;
    int failed_checks;
    char date[32];
    char cpu_model[128];
    char kernel[256];
    long cpus;
} bench_run;

static inline void bench_usage(FILE *out)
{
    const bench_spec *s = bench_run.spec;

    fprintf(out, "usage: %s [options]\n\n%s\n\noptions:\n", s->prog, s->what);
    fprintf(out, "  %-22s %s\n", "-h, --help", "print this help and exit");
    fprintf(out, "  %-22s %s\n", "--json FILE",
            "also write every figure, its samples and the machine to FILE");
    fprintf(out,
            "  -n REPS                repetitions of each figure "
            "(default %d)\n",
            s->reps);
    if (s->rep_seconds > 0) {
        fprintf(out,
                "  -t SECONDS             seconds per repetition "
                "(default %g)\n",
                s->rep_seconds);
    }
    fprintf(out, "  %-22s %s\n", "-q",
            "quick: 2 repetitions, a quarter of the work each");
    for (const bench_option *e = s->extra; e && e->name; e++) {
        char lhs[64];

        snprintf(lhs, sizeof(lhs), "%s%s%s", e->name, e->metavar ? " " : "",
                 e->metavar ? e->metavar : "");
        fprintf(out, "  %-22s %s\n", lhs, e->help);
    }
    if (s->usage_more) {
        fprintf(out, "\n%s\n", s->usage_more);
    }
    fprintf(out, "\nThe table shows the median of the repetitions and their "
                 "min-max; \"x faster\" is\npeer/actx for times and "
                 "actx/peer for rates: above 1 means actx is better.\n"
                 "Progress goes to stderr, one line per figure.\n");
}

static inline void bench_machine(void)
{
    struct utsname u;
    time_t now = time(NULL);
    struct tm tm;
    FILE *f;

    gmtime_r(&now, &tm);
    strftime(bench_run.date, sizeof(bench_run.date), "%Y-%m-%dT%H:%M:%SZ", &tm);
    bench_run.cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (uname(&u) == 0) {
        snprintf(bench_run.kernel, sizeof(bench_run.kernel), "%s %s %s",
                 u.sysname, u.release, u.machine);
    }
    snprintf(bench_run.cpu_model, sizeof(bench_run.cpu_model), "unknown");
    if ((f = fopen("/proc/cpuinfo", "r"))) {
        char line[256];

        while (fgets(line, sizeof(line), f)) {
            char *colon = strchr(line, ':');

            if (colon && !strncmp(line, "model name", 10)) {
                colon++;
                colon += strspn(colon, " \t");
                colon[strcspn(colon, "\n")] = '\0';
                snprintf(bench_run.cpu_model, sizeof(bench_run.cpu_model), "%s",
                         colon);
                break;
            }
        }
        fclose(f);
    }
}

/*
 * Parse the common options (-h/--help, --json FILE, -n, -t, -q) and the
 * program's own (spec->extra), note the machine, and print the banner
 * naming the build.  --help prints the usage and exits 0; an unknown
 * option or a missing/bad argument prints the usage to stderr and exits 2.
 */
static inline void bench_init_(bench_opts *o, const bench_spec *spec, int argc,
                               char **argv, bool strict)
{
    bench_run.spec = spec;
    o->reps = spec->reps;
    o->rep_seconds = spec->rep_seconds;
    o->scale = 1.0;
    o->quick = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *arg = i + 1 < argc ? argv[i + 1] : NULL;
        const bench_option *e = spec->extra;
        char *end;

        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            bench_usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--json") && arg) {
            bench_run.json = arg;
            i++;
        } else if (!strcmp(a, "-n") && arg) {
            o->reps = (int)strtol(arg, &end, 10);
            if (*end || o->reps < 1) {
                fprintf(stderr, "%s: -n wants a positive count\n", spec->prog);
                exit(2);
            }
            i++;
        } else if (!strcmp(a, "-t") && arg && spec->rep_seconds > 0) {
            o->rep_seconds = strtod(arg, &end);
            if (*end || !(o->rep_seconds > 0)) {
                fprintf(stderr, "%s: -t wants a positive duration\n",
                        spec->prog);
                exit(2);
            }
            i++;
        } else if (!strcmp(a, "-q")) {
            o->quick = true;
            o->reps = 2;
            o->rep_seconds /= 4;
            o->scale = 0.25;
        } else {
            for (; e && e->name; e++) {
                if (!strcmp(a, e->name) && (!e->metavar || arg)) {
                    break;
                }
            }
            if ((!e || !e->name) && !strict) {
                continue; /* the legacy caller parses the rest itself */
            }
            if (!e || !e->name) {
                fprintf(stderr,
                        "%s: unknown option or missing argument: "
                        "%s\n\n",
                        spec->prog, a);
                bench_usage(stderr);
                exit(2);
            }
            if (e->metavar) {
                *e->value = arg;
                i++;
            } else {
                *e->flag = true;
            }
        }
    }
    bench_run.opts = *o;
    bench_machine();
    printf("%s: %s build, %d repetitions; %s, %ld CPUs, %s, %s\n", spec->prog,
           BENCH_BUILD_MODE, o->reps, bench_run.cpu_model, bench_run.cpus,
           bench_run.kernel, bench_run.date);
    if (strcmp(BENCH_BUILD_MODE, "release") != 0) {
        printf("%s: NOT a release build: these figures say nothing about "
               "actx's speed (scons bench builds release)\n",
               spec->prog);
    }
    fflush(stdout);
}

static inline void bench_init(bench_opts *o, const bench_spec *spec, int argc,
                              char **argv)
{
    bench_init_(o, spec, argc, argv, true);
}

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

typedef struct {
    const char *name;
    double *v;
    int n, cap;
} bench_impl;

struct bench_fig {
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
    enum bench_target_kind target;
    double target_value;
    const char *target_peer;
    char note[256];
    char check[128]; /* what bench_fig_check verified, "" if nothing */
    int check_ok;    /* 1 ok, 0 failed, -1 not checked */
};

/*
 * Start a group of figures: prints the table header; report.py draws one
 * bar chart per group.  id is short ("bh"), title is a sentence.
 */
static inline void bench_group(const char *id, const char *title)
{
    bench_run.group = id;
    bench_run.group_title = title;
    printf("\n%s\n", title);
    printf("%-38s %-9s %-24s %10s %10s %10s %8s  %s\n", "benchmark", "unit",
           "implementation", "median", "min", "max", "x faster", "target");
    printf("%-38s %-9s %-24s %10s %10s %10s %8s  %s\n",
           "--------------------------------------", "---------",
           "------------------------", "----------", "----------", "----------",
           "--------", "------");
}

/* A new figure in the current group.  name is copied; unit must live on. */
static inline bench_fig *bench_fig_new(const char *name, const char *unit,
                                       bench_dir dir)
{
    bench_fig *f = calloc(1, sizeof(*f));

    if (!f) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    snprintf(f->name, sizeof(f->name), "%s", name);
    f->unit = unit;
    f->dir = dir;
    f->group = bench_run.group ? bench_run.group : bench_run.spec->prog;
    f->group_title = bench_run.group_title;
    f->impl[0].name = "actx";
    f->nimpl = 1;
    f->check_ok = -1;
    return f;
}

/*
 * Make f a point of the scaling curve `curve` at x (xlabel names the x
 * axis, e.g. "producers").  curve and xlabel must live on.
 */
static inline void bench_fig_x(bench_fig *f, const char *curve,
                               const char *xlabel, double x)
{
    f->curve = curve;
    f->xlabel = xlabel;
    f->x = x;
}

/*
 * A target on the whole curve, evaluated over actx's medians by report.py
 * (set it on any of the curve's points): "flat X" (max/min over the curve
 * at most X); "log" (cost grows at most like log x: cost(x)/cost(x0) <=
 * ln(x)/ln(x0), x0 the first point, for BENCH_LOWER figures); "log PEER"
 * (cost grows at most 1.2x as much as PEER's, an O(log n) reference
 * measured in the same run: cache misses count for both).
 */
static inline void bench_curve_target(bench_fig *f, const char *target)
{
    f->curve_target = target;
}

/* The implementation named impl in f, added if new.  name must live on. */
static inline bench_impl *bench_impl_of(bench_fig *f, const char *impl)
{
    for (int i = 0; i < f->nimpl; i++) {
        if (!strcmp(f->impl[i].name, impl)) {
            return &f->impl[i];
        }
    }
    if (f->nimpl == BENCH_MAX_IMPLS) {
        fprintf(stderr, "bench: more than %d implementations in %s\n",
                BENCH_MAX_IMPLS, f->name);
        exit(1);
    }
    f->impl[f->nimpl].name = impl;
    return &f->impl[f->nimpl++];
}

/*
 * One repetition's figure for implementation impl ("actx" or a peer's
 * name, which must live on).  NAN is ignored (not measured).
 */
static inline void bench_add(bench_fig *f, const char *impl, double v)
{
    bench_impl *m = bench_impl_of(f, impl);

    if (isnan(v)) {
        return;
    }
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 16;
        m->v = bench_xrealloc(m->v, (size_t)m->cap * sizeof(double));
    }
    m->v[m->n++] = v;
}

/* Declare a peer without samples (e.g. not compiled in): the table says -. */
static inline void bench_peer(bench_fig *f, const char *impl)
{
    bench_impl_of(f, impl);
}

/* Target on actx's own median: <= value (BENCH_LOWER) or >= (HIGHER). */
static inline void bench_target_abs(bench_fig *f, double value)
{
    f->target = BENCH_TARGET_ABS;
    f->target_value = value;
}

/* Target: actx at least `times` x faster than peer (see "x faster"). */
static inline void bench_target_ratio(bench_fig *f, const char *peer,
                                      double times)
{
    f->target = BENCH_TARGET_RATIO;
    f->target_value = times;
    f->target_peer = peer;
}

/* A line of explanation printed under the figure and kept in the JSON. */
static inline void bench_note(bench_fig *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void bench_note(bench_fig *f, const char *fmt, ...)
{
    va_list ap;
    size_t len = strlen(f->note);

    if (len && len + 3 < sizeof(f->note)) {
        strcpy(f->note + len, "; ");
        len += 2;
    }
    va_start(ap, fmt);
    vsnprintf(f->note + len, sizeof(f->note) - len, fmt, ap);
    va_end(ap);
}

/*
 * Record a correctness check of the measured runs (e.g. "exactly once":
 * every completion ran once, none lost).  Checks of one figure accumulate:
 * the figure is verified if all passed.  A failed check is printed and
 * makes bench_finish() return 1.
 */
static inline void bench_fig_check(bench_fig *f, bool ok, const char *what)
{
    snprintf(f->check, sizeof(f->check), "%s", what);
    if (!ok) {
        fprintf(stderr, "%s: %s: check FAILED: %s\n", bench_run.spec->prog,
                f->name, what);
    }
    f->check_ok = (f->check_ok != 0) && ok;
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

typedef struct {
    double min, median, max;
    int n;
} bench_stat;

static inline bench_stat bench_stat_of(const bench_impl *m)
{
    bench_stat s = {NAN, NAN, NAN, m->n};
    double *v;

    if (m->n == 0) {
        return s;
    }
    v = bench_xrealloc(NULL, (size_t)m->n * sizeof(double));
    memcpy(v, m->v, (size_t)m->n * sizeof(double));
    qsort(v, (size_t)m->n, sizeof(double), bench_cmp_double);
    s.min = v[0];
    s.max = v[m->n - 1];
    s.median = m->n % 2 ? v[m->n / 2] : (v[m->n / 2 - 1] + v[m->n / 2]) / 2;
    free(v);
    return s;
}

/* How many times better actx is than a peer with median p (> 1: actx). */
static inline double bench_x_faster(const bench_fig *f, double actx, double p)
{
    if (isnan(actx) || isnan(p) || actx == 0 || p == 0) {
        return NAN;
    }
    return f->dir == BENCH_LOWER ? p / actx : actx / p;
}

/* 1 met, 0 missed, -1 not applicable / not measured. */
static inline int bench_target_met(const bench_fig *f, char *text, size_t n)
{
    double a = bench_stat_of(&f->impl[0]).median;

    text[0] = '\0';
    if (f->target == BENCH_TARGET_ABS) {
        snprintf(text, n, "%s %g %s",
                 f->dir == BENCH_LOWER ? "<=" : ">=", f->target_value, f->unit);
        if (isnan(a)) {
            return -1;
        }
        return f->dir == BENCH_LOWER ? a <= f->target_value
                                     : a >= f->target_value;
    }
    if (f->target == BENCH_TARGET_RATIO) {
        double x = NAN;

        snprintf(text, n, ">= %.3gx %s", f->target_value, f->target_peer);
        for (int i = 1; i < f->nimpl; i++) {
            if (!strcmp(f->impl[i].name, f->target_peer)) {
                x = bench_x_faster(f, a, bench_stat_of(&f->impl[i]).median);
            }
        }
        return isnan(x) ? -1 : x >= f->target_value;
    }
    return -1;
}

static inline void bench_fmt(char *buf, size_t n, double v)
{
    double a = v < 0 ? -v : v;

    if (isnan(v)) {
        snprintf(buf, n, "-");
    } else if (v == 0) {
        snprintf(buf, n, "0");
    } else if (a < 10) {
        snprintf(buf, n, "%.3f", v);
    } else if (a < 100) {
        snprintf(buf, n, "%.2f", v);
    } else if (a < 1e6) {
        snprintf(buf, n, "%.1f", v);
    } else {
        snprintf(buf, n, "%.3g", v);
    }
}

/*
 * The figure is complete: print its table rows (median, min, max, x
 * faster per implementation, target), a progress line on stderr, and keep
 * it for the JSON file.  f belongs to the run from now on.
 */
static inline void bench_fig_done(bench_fig *f)
{
    char t[96], med[32], lo[32], hi[32], xf[32];
    int met = bench_target_met(f, t, sizeof(t));
    double a = bench_stat_of(&f->impl[0]).median;

    if (met >= 0) {
        size_t len = strlen(t);

        snprintf(t + len, sizeof(t) - len, "  %s", met ? "met" : "MISSED");
    }
    for (int i = 0; i < f->nimpl; i++) {
        bench_stat s = bench_stat_of(&f->impl[i]);

        bench_fmt(med, sizeof(med), s.median);
        bench_fmt(lo, sizeof(lo), s.min);
        bench_fmt(hi, sizeof(hi), s.max);
        if (i == 0) {
            xf[0] = '\0';
        } else {
            double x = bench_x_faster(f, a, s.median);

            if (isnan(x)) {
                snprintf(xf, sizeof(xf), "-");
            } else {
                snprintf(xf, sizeof(xf), "%.2fx", x);
            }
        }
        printf("%-38s %-9s %-24s %10s %10s %10s %8s  %s\n",
               i == 0 ? f->name : "", i == 0 ? f->unit : "", f->impl[i].name,
               med, lo, hi, xf, i == 0 ? t : "");
    }
    if (f->note[0]) {
        printf("%-38s   (%s)\n", "", f->note);
    }
    if (f->check_ok >= 0) {
        printf("%-38s   check: %s: %s\n", "", f->check,
               f->check_ok ? "ok" : "FAILED");
    }
    fflush(stdout);

    bench_fmt(med, sizeof(med), a);
    fprintf(stderr, "[%s %d] %s: actx %s %s", bench_run.spec->prog,
            bench_run.nfigs + 1, f->name, med, f->unit);
    for (int i = 1; i < f->nimpl; i++) {
        bench_stat s = bench_stat_of(&f->impl[i]);

        bench_fmt(med, sizeof(med), s.median);
        fprintf(stderr, ", %s %s", f->impl[i].name, med);
    }
    fprintf(stderr, " (median of %d)\n", f->impl[0].n);

    if (f->check_ok == 0) {
        bench_run.failed_checks++;
    }
    bench_run.figs = bench_xrealloc(
        bench_run.figs, (size_t)(bench_run.nfigs + 1) * sizeof(bench_fig *));
    bench_run.figs[bench_run.nfigs++] = f;
}

/* ---------------------------------------------------------------------- */
/* The JSON file.                                                           */

static inline void bench_json_str(FILE *o, const char *s)
{
    fputc('"', o);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            fprintf(o, "\\%c", c);
        } else if (c < 0x20) {
            fprintf(o, "\\u%04x", c);
        } else {
            fputc(c, o);
        }
    }
    fputc('"', o);
}

static inline void bench_json_num(FILE *o, double v)
{
    if (isnan(v) || isinf(v)) {
        fputs("null", o);
    } else {
        fprintf(o, "%.6g", v);
    }
}

static inline int bench_json_write(const char *path)
{
    FILE *o = fopen(path, "w");

    if (!o) {
        perror(path);
        return -1;
    }
    fprintf(o, "{\n  \"format\": \"actx-bench-1\",\n  \"program\": ");
    bench_json_str(o, bench_run.spec->prog);
    fprintf(o, ",\n  \"build\": ");
    bench_json_str(o, BENCH_BUILD_MODE);
    fprintf(o, ",\n  \"date\": ");
    bench_json_str(o, bench_run.date);
    fprintf(o, ",\n  \"machine\": {\"cpu_model\": ");
    bench_json_str(o, bench_run.cpu_model);
    fprintf(o, ", \"cpus\": %ld, \"kernel\": ", bench_run.cpus);
    bench_json_str(o, bench_run.kernel);
    fprintf(o, "},\n  \"options\": {\"reps\": %d, \"rep_seconds\": ",
            bench_run.opts.reps);
    bench_json_num(o, bench_run.opts.rep_seconds);
    fprintf(o, ", \"quick\": %s},\n  \"figures\": [",
            bench_run.opts.quick ? "true" : "false");
    for (int k = 0; k < bench_run.nfigs; k++) {
        const bench_fig *f = bench_run.figs[k];
        double a = bench_stat_of(&f->impl[0]).median;
        char t[96];
        int met = bench_target_met(f, t, sizeof(t));

        fprintf(o, "%s\n    {\"group\": ", k ? "," : "");
        bench_json_str(o, f->group);
        fprintf(o, ", \"group_title\": ");
        bench_json_str(o, f->group_title);
        fprintf(o, ",\n     \"name\": ");
        bench_json_str(o, f->name);
        fprintf(o, ", \"unit\": ");
        bench_json_str(o, f->unit);
        fprintf(o, ", \"better\": \"%s\"",
                f->dir == BENCH_LOWER ? "lower" : "higher");
        if (f->curve) {
            fprintf(o, ",\n     \"curve\": ");
            bench_json_str(o, f->curve);
            fprintf(o, ", \"xlabel\": ");
            bench_json_str(o, f->xlabel);
            fprintf(o, ", \"x\": ");
            bench_json_num(o, f->x);
            fprintf(o, ", \"curve_target\": ");
            if (f->curve_target) {
                bench_json_str(o, f->curve_target);
            } else {
                fputs("null", o);
            }
        }
        fprintf(o, ",\n     \"target\": ");
        if (f->target == BENCH_TARGET_NONE) {
            fputs("null", o);
        } else {
            fputs("{\"text\": ", o);
            bench_json_str(o, t);
            fprintf(o, ", \"met\": %s}",
                    met < 0 ? "null"
                    : met   ? "true"
                            : "false");
        }
        fprintf(o, ", \"note\": ");
        bench_json_str(o, f->note);
        fprintf(o, ", \"check\": ");
        if (f->check_ok < 0) {
            fputs("null", o);
        } else {
            fputs("{\"what\": ", o);
            bench_json_str(o, f->check);
            fprintf(o, ", \"ok\": %s}", f->check_ok ? "true" : "false");
        }
        fprintf(o, ",\n     \"impls\": [");
        for (int i = 0; i < f->nimpl; i++) {
            const bench_impl *m = &f->impl[i];
            bench_stat s = bench_stat_of(m);

            fprintf(o, "%s\n       {\"name\": ", i ? "," : "");
            bench_json_str(o, m->name);
            fprintf(o, ", \"actx\": %s, \"n\": %d, \"median\": ",
                    i == 0 ? "true" : "false", s.n);
            bench_json_num(o, s.median);
            fprintf(o, ", \"min\": ");
            bench_json_num(o, s.min);
            fprintf(o, ", \"max\": ");
            bench_json_num(o, s.max);
            fprintf(o, ", \"x_faster\": ");
            bench_json_num(o, i ? bench_x_faster(f, a, s.median) : NAN);
            fprintf(o, ", \"samples\": [");
            for (int j = 0; j < m->n; j++) {
                if (j) {
                    fputs(", ", o);
                }
                bench_json_num(o, m->v[j]);
            }
            fputs("]}", o);
        }
        fputs("]}", o);
    }
    fputs("\n  ]\n}\n", o);
    if (fclose(o) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

/*
 * End of the run: write the JSON file if --json asked for one, free the
 * figures.  Returns main's exit status: 0, or 1 if a check failed or the
 * JSON file could not be written.
 */
static inline int bench_finish(void)
{
    int rc = bench_run.failed_checks ? 1 : 0;

    if (bench_run.json) {
        if (bench_json_write(bench_run.json) < 0) {
            rc = 1;
        } else {
            fprintf(stderr, "[%s] %d figures written to %s\n",
                    bench_run.spec->prog, bench_run.nfigs, bench_run.json);
        }
    }
    for (int k = 0; k < bench_run.nfigs; k++) {
        for (int i = 0; i < bench_run.figs[k]->nimpl; i++) {
            free(bench_run.figs[k]->impl[i].v);
        }
        free(bench_run.figs[k]);
    }
    free(bench_run.figs);
    bench_run.figs = NULL;
    bench_run.nfigs = 0;
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Legacy: the best-of-N row API of actx 1.0's benchmarks.  Kept so that a  */
/* figure written against it still prints and reaches the JSON file (as a   */
/* figure with one sample per implementation, its best); new code uses      */
/* bench_fig_new / bench_add / bench_fig_done.                              */

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

enum bench_legacy_target {
    BENCH_TARGET_ABS_MAX = 16, /* actx figure <= value */
    BENCH_TARGET_RATIO_MAX,    /* actx/peer <= value (times) */
    BENCH_TARGET_RATIO_MIN,    /* actx/peer >= value (rates) */
    BENCH_TARGET_ABS_EQ0,      /* actx figure == 0 (e.g. mallocs) */
};

typedef struct {
    const char *name;
    double fig;
} bench_peer_fig;

typedef struct {
    const char *name;
    const char *unit;
    double actx;
    bench_peer_fig peer[4];
    int npeers;
    int target; /* 0 or an enum bench_legacy_target */
    double target_value;
    int target_peer; /* for ratio targets */
    const char *note;
} bench_row;

static inline void bench_row_peer(bench_row *r, const char *name, double v)
{
    r->peer[r->npeers].name = name;
    r->peer[r->npeers].fig = v;
    r->npeers++;
}

static inline void bench_table_header(const char *title)
{
    bench_group(bench_run.spec->prog, title);
}

static inline void bench_table_row(const bench_row *r)
{
    bool higher = r->target == BENCH_TARGET_RATIO_MIN ||
                  (r->target != BENCH_TARGET_RATIO_MAX &&
                   r->target != BENCH_TARGET_ABS_MAX && strstr(r->unit, "/s"));
    bench_fig *f =
        bench_fig_new(r->name, r->unit, higher ? BENCH_HIGHER : BENCH_LOWER);

    bench_add(f, "actx", r->actx);
    for (int i = 0; i < r->npeers; i++) {
        bench_peer(f, r->peer[i].name);
        bench_add(f, r->peer[i].name, r->peer[i].fig);
    }
    switch (r->target) {
    case BENCH_TARGET_ABS_MAX:
        bench_target_abs(f, r->target_value);
        break;
    case BENCH_TARGET_ABS_EQ0:
        bench_target_abs(f, 0);
        break;
    case BENCH_TARGET_RATIO_MAX:
        bench_target_ratio(f, r->peer[r->target_peer].name,
                           1 / r->target_value);
        break;
    case BENCH_TARGET_RATIO_MIN:
        bench_target_ratio(f, r->peer[r->target_peer].name, r->target_value);
        break;
    }
    if (r->note) {
        bench_note(f, "%s", r->note);
    }
    bench_fig_done(f);
}

/*
 * Legacy: actx 1.0's entry point.  The common options as bench_init takes
 * them (--help, --json, -n, -t, -q), but options it does not know are left
 * to the caller (no exit 2), and the JSON file is written at exit.
 */
static inline void bench_legacy_finish(void)
{
    if (bench_run.figs) {
        (void)bench_finish();
    }
}

static inline void bench_parse(bench_opts *o, int argc, char **argv, int reps,
                               double rep_seconds)
{
    static bench_spec spec;
    const char *slash = strrchr(argv[0], '/');

    spec.prog = slash ? slash + 1 : argv[0];
    spec.what = "(this program's options are described in its source)";
    spec.reps = reps;
    spec.rep_seconds = rep_seconds;
    bench_init_(o, &spec, argc, argv, false);
    atexit(bench_legacy_finish);
}

#endif /* BENCH_UTIL_H */
