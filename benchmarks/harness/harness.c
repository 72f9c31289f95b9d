/*
 * harness.c - the benchmark harness (see harness.h): the command line, the
 * host's costs, figures, the table, progress lines and the JSON file.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

/*
 * The build mode ("release", "debug", ...) as a string: benchmarks/SConscript
 * defines it; without it, it is guessed from the compiler's flags.
 */
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

void *bench_xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    return p;
}

/* Is name one of the comma-separated tokens of list (e.g. an -only LIST)? */
bool bench_list_has(const char *list, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = list; (p = strstr(p, name)); p += n) {
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) {
            return true;
        }
    }
    return false;
}

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
    double syscall_ns;   /* median getppid(), ns */
    double wakeup_rt_us; /* median eventfd ping-pong round trip, us */
    bool host_measured;
} bench_run;

static void bench_usage(FILE *out)
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
    if (s->figures || s->impls) {
        fprintf(out, "  %-22s %s\n", "-only LIST",
                "comma-separated keys: measure only these (for a profiler);");
        if (s->figures) {
            fprintf(out, "  %-22s figures: %s\n", "", s->figures);
        }
        if (s->impls) {
            fprintf(out, "  %-22s implementations: %s\n", "", s->impls);
        }
        fprintf(out, "  %-22s %s\n", "",
                "(a kind that LIST does not name is all measured)");
    }
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

static void bench_machine(void)
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
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* The median of v[0..n) (sorts v). */
static double median_of(double *v, int n)
{
    if (n == 0) {
        return NAN;
    }
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/*
 * The cost of one system call that does no work: the median over blocks
 * of calls, so that a preemption inflates one block, not the figure.
 */
static double host_syscall_ns(int blocks)
{
    double v[32];

    for (int b = 0; b < blocks; b++) {
        uint64_t t0 = bench_now_ns();

        for (int i = 0; i < 1000; i++) {
            BENCH_USE(syscall(SYS_getppid));
        }
        v[b] = (double)(bench_now_ns() - t0) / 1000;
    }
    return median_of(v, blocks);
}

static int wake_efd[2]; /* [0]: to the pong thread, [1]: back */

static void *host_pong_main(void *arg)
{
    uint64_t x;

    (void)arg;
    for (;;) {
        if (read(wake_efd[0], &x, sizeof(x)) != sizeof(x)) {
            break;
        }
        if (x == UINT64_MAX - 1) { /* the stop word */
            break;
        }
        x = 1;
        if (write(wake_efd[1], &x, sizeof(x)) != sizeof(x)) {
            break;
        }
    }
    return NULL;
}

/*
 * A cross-thread wake-up: the median round trip of an eventfd ping-pong
 * between two threads that each block in read(2).  NAN if it cannot run.
 */
static double host_wakeup_rt_us(int n)
{
    double *v = bench_xrealloc(NULL, (size_t)n * sizeof(double));
    pthread_t th;
    uint64_t x;
    double med;
    int got = 0;

    wake_efd[0] = eventfd(0, EFD_CLOEXEC);
    wake_efd[1] = eventfd(0, EFD_CLOEXEC);
    if (wake_efd[0] < 0 || wake_efd[1] < 0 ||
        pthread_create(&th, NULL, host_pong_main, NULL)) {
        free(v);
        return NAN;
    }
    for (; got < n; got++) {
        uint64_t t0 = bench_now_ns();

        x = 1;
        if (write(wake_efd[0], &x, sizeof(x)) != sizeof(x) ||
            read(wake_efd[1], &x, sizeof(x)) != sizeof(x)) {
            break;
        }
        v[got] = (double)(bench_now_ns() - t0) / 1e3;
    }
    x = UINT64_MAX - 1;
    if (write(wake_efd[0], &x, sizeof(x)) != sizeof(x)) {
        BENCH_USE(errno);
    }
    pthread_join(th, NULL);
    close(wake_efd[0]);
    close(wake_efd[1]);
    med = median_of(v, got);
    free(v);
    return med;
}

static void host_costs(void);

double bench_host_syscall_ns(void)
{
    host_costs();
    return bench_run.syscall_ns;
}

double bench_host_wakeup_rt_us(void)
{
    host_costs();
    return bench_run.wakeup_rt_us;
}

/* Selected by -only?  A kind (keys) that LIST does not name is all in. */
static bool only_wants(const char *keys, const char *name)
{
    const char *only = bench_run.opts.only;
    char key[64];

    if (!only || !keys) {
        return true;
    }
    for (const char *p = keys; *p;) {
        size_t n = strcspn(p, ",");

        snprintf(key, sizeof(key), "%.*s", (int)n, p);
        if (bench_list_has(only, key)) {
            return bench_list_has(only, name);
        }
        p += n + (p[n] == ',');
    }
    return true;
}

bool bench_want_fig(const char *key)
{
    return only_wants(bench_run.spec->figures, key);
}

bool bench_want_impl(const char *key)
{
    return only_wants(bench_run.spec->impls, key);
}

void bench_init(bench_opts *o, const bench_spec *spec, int argc, char **argv)
{
    bench_run.spec = spec;
    o->reps = spec->reps;
    o->rep_seconds = spec->rep_seconds;
    o->scale = 1.0;
    o->quick = false;
    o->only = NULL;
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
        } else if (!strcmp(a, "-only") && arg &&
                   (spec->figures || spec->impls)) {
            o->only = arg;
            i++;
        } else {
            for (; e && e->name; e++) {
                if (!strcmp(a, e->name) && (!e->metavar || arg)) {
                    break;
                }
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
    bench_run.syscall_ns = NAN;
    bench_run.wakeup_rt_us = NAN;
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

/*
 * Measure and print the host's costs, once, before the first figure: not
 * in bench_init, so that a program's special modes (e.g. bench-bh
 * --syscall-check under strace) make no system call of their own first.
 */
static void host_costs(void)
{
    const char *prog = bench_run.spec->prog;

    if (bench_run.host_measured) {
        return;
    }
    bench_run.host_measured = true;
    bench_run.syscall_ns = host_syscall_ns(bench_run.opts.quick ? 5 : 15);
    bench_run.wakeup_rt_us =
        host_wakeup_rt_us(bench_run.opts.quick ? 200 : 1000);
    printf("%s: host: a system call (getppid) %.3f us, a cross-thread "
           "wake-up (eventfd ping-pong\n%s: between two threads blocked in "
           "read) %.1f us per round trip; medians\n",
           prog, bench_run.syscall_ns / 1e3, prog, bench_run.wakeup_rt_us);
    fflush(stdout);
}

void bench_group(const char *id, const char *title)
{
    host_costs();
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
bench_fig *bench_fig_new(const char *name, const char *unit, bench_dir dir)
{
    bench_fig *f;

    host_costs();
    f = calloc(1, sizeof(*f));
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
void bench_fig_x(bench_fig *f, const char *curve, const char *xlabel, double x)
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
void bench_curve_target(bench_fig *f, const char *target)
{
    f->curve_target = target;
}

/* The implementation named impl in f, added if new.  name must live on. */
bench_impl *bench_impl_of(bench_fig *f, const char *impl)
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
void bench_add(bench_fig *f, const char *impl, double v)
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
void bench_peer(bench_fig *f, const char *impl)
{
    bench_impl_of(f, impl);
}

/* Target on actx's own median: <= value (BENCH_LOWER) or >= (HIGHER). */
/* The target slot for kind (and peer): the one it replaces, or a new one. */
static int target_slot(bench_fig *f, enum bench_target_kind kind,
                       const char *peer)
{
    for (int i = 0; i < f->ntargets; i++) {
        if (f->target[i].kind == kind &&
            (kind == BENCH_TARGET_ABS || !strcmp(f->target[i].peer, peer))) {
            return i;
        }
    }
    if (f->ntargets == BENCH_MAX_TARGETS) {
        fprintf(stderr, "bench: more than %d targets in %s\n",
                BENCH_MAX_TARGETS, f->name);
        exit(1);
    }
    return f->ntargets++;
}

void bench_target_abs(bench_fig *f, double value)
{
    int i = target_slot(f, BENCH_TARGET_ABS, NULL);

    f->target[i].kind = BENCH_TARGET_ABS;
    f->target[i].value = value;
    f->target[i].peer = NULL;
}

void bench_target_ratio(bench_fig *f, const char *peer, double times)
{
    int i = target_slot(f, BENCH_TARGET_RATIO, peer);

    f->target[i].kind = BENCH_TARGET_RATIO;
    f->target[i].value = times;
    f->target[i].peer = peer;
}

/* A line of explanation printed under the figure and kept in the JSON. */
void bench_note(bench_fig *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void bench_note(bench_fig *f, const char *fmt, ...)
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
void bench_fig_check(bench_fig *f, bool ok, const char *what)
{
    snprintf(f->check, sizeof(f->check), "%s", what);
    if (!ok) {
        fprintf(stderr, "%s: %s: check FAILED: %s\n", bench_run.spec->prog,
                f->name, what);
    }
    f->check_ok = (f->check_ok != 0) && ok;
}

bench_stat bench_stat_of(const bench_impl *m)
{
    bench_stat s = {NAN, NAN, NAN, m->n};
    double *v;

    if (m->n == 0) {
        return s;
    }
    v = bench_xrealloc(NULL, (size_t)m->n * sizeof(double));
    memcpy(v, m->v, (size_t)m->n * sizeof(double));
    qsort(v, (size_t)m->n, sizeof(double), cmp_double);
    s.min = v[0];
    s.max = v[m->n - 1];
    s.median = m->n % 2 ? v[m->n / 2] : (v[m->n / 2 - 1] + v[m->n / 2]) / 2;
    free(v);
    return s;
}

/* How many times better actx is than a peer with median p (> 1: actx). */
static double bench_x_faster(const bench_fig *f, double actx, double p)
{
    if (isnan(actx) || isnan(p) || actx == 0 || p == 0) {
        return NAN;
    }
    return f->dir == BENCH_LOWER ? p / actx : actx / p;
}

/*
 * Every target of f as text ("; "-separated); 1 all met, 0 one missed, -1
 * none (or one not measured and none missed).
 */
static int bench_target_met(const bench_fig *f, char *text, size_t n)
{
    double a = bench_stat_of(&f->impl[0]).median;
    int all = f->ntargets ? 1 : -1;

    text[0] = '\0';
    for (int k = 0; k < f->ntargets; k++) {
        size_t len = strlen(text);
        double v = f->target[k].value;
        int met;

        if (f->target[k].kind == BENCH_TARGET_ABS) {
            snprintf(text + len, n - len, "%s%s %g %s", len ? "; " : "",
                     f->dir == BENCH_LOWER ? "<=" : ">=", v, f->unit);
            met = isnan(a) ? -1 : f->dir == BENCH_LOWER ? a <= v : a >= v;
        } else {
            double x = NAN;

            snprintf(text + len, n - len, "%s>= %.3gx %s", len ? "; " : "", v,
                     f->target[k].peer);
            for (int i = 1; i < f->nimpl; i++) {
                if (!strcmp(f->impl[i].name, f->target[k].peer)) {
                    x = bench_x_faster(f, a, bench_stat_of(&f->impl[i]).median);
                }
            }
            met = isnan(x) ? -1 : x >= v;
        }
        if (met == 0 || (met < 0 && all > 0)) {
            all = met;
        }
    }
    return all;
}

static void bench_fmt(char *buf, size_t n, double v)
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
void bench_fig_done(bench_fig *f)
{
    char t[192], med[32], lo[32], hi[32], xf[32];
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

static void bench_json_str(FILE *o, const char *s)
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

static void bench_json_num(FILE *o, double v)
{
    if (isnan(v) || isinf(v)) {
        fputs("null", o);
    } else {
        fprintf(o, "%.6g", v);
    }
}

static int bench_json_write(const char *path)
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
    fprintf(o, ", \"syscall_ns\": ");
    bench_json_num(o, bench_run.syscall_ns);
    fprintf(o, ", \"wakeup_rt_us\": ");
    bench_json_num(o, bench_run.wakeup_rt_us);
    fprintf(o, "},\n  \"options\": {\"reps\": %d, \"rep_seconds\": ",
            bench_run.opts.reps);
    bench_json_num(o, bench_run.opts.rep_seconds);
    fprintf(o, ", \"quick\": %s},\n  \"figures\": [",
            bench_run.opts.quick ? "true" : "false");
    for (int k = 0; k < bench_run.nfigs; k++) {
        const bench_fig *f = bench_run.figs[k];
        double a = bench_stat_of(&f->impl[0]).median;
        char t[192];
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
        if (f->ntargets == 0) {
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
int bench_finish(void)
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

bench_fig *bench_measure(const bench_figure *d)
{
    int split = d->split > 0 ? d->split : 1;
    int nimpl = 0;
    const bench_impl_def *run[BENCH_MAX_IMPLS];
    bench_rep r = {
        .arg = d->arg,
        .seconds = bench_run.opts.rep_seconds / split,
        .scale = bench_run.opts.scale,
        .rep = -1,
    };
    bench_fig *f;

    if (d->key && !bench_want_fig(d->key)) {
        return NULL;
    }
    f = bench_fig_new(d->name, d->unit, d->dir);
    for (const bench_impl_def *i = d->impls; i->name; i++) {
        if (bench_want_impl(i->key ? i->key : i->name) &&
            nimpl < BENCH_MAX_IMPLS) {
            run[nimpl++] = i;
            bench_peer(f, i->name); /* the table's order is the table's */
        }
    }
    for (int w = 0; w < d->warmup; w++) {
        for (int k = 0; k < nimpl; k++) {
            BENCH_USE(run[k]->run(&r));
        }
    }
    for (r.rep = 0; r.rep < split * (d->reps ? d->reps : bench_run.opts.reps);
         r.rep++) {
        /* Alternate the order so no implementation always runs first. */
        for (int k = 0; k < nimpl; k++) {
            const bench_impl_def *i = run[r.rep % 2 ? nimpl - 1 - k : k];

            bench_add(f, i->name, i->run(&r));
        }
    }
    if (d->target_peer) {
        bench_peer(f, d->target_peer);
        bench_target_ratio(f, d->target_peer, d->target_ratio);
    }
    if (d->target_abs != 0) {
        bench_target_abs(f, d->target_abs);
    }
    if (d->finish) {
        d->finish(f, d->arg);
    }
    bench_fig_done(f);
    return f;
}
