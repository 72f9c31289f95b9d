/*
 * bench-service.c - a small TCP key-value service with nested waits, on
 * actx and on libuv, under one load client: the server's CPU cost per
 * request (issue 18, item 2).
 *
 * The service is written from the public API only (actx.h, README.md,
 * docs/), as an outside user would write it:
 *
 *   - one loop thread, a listening socket on 127.0.0.1 (port 0), N
 *     persistent connections (default 2000), each with a read handler and
 *     an idle timer re-armed on every request (60 s: it never fires in a
 *     run, but its cost is paid: actx_timer_mod / uv_timer_start);
 *   - line-framed requests, one answer line each:
 *         G key        -> V value      the value last SET (0 at first)
 *         S key value  -> K
 *         L key        -> V f(key)     a lookup on the worker pool
 *         X key        -> C count      a call to the "store" thread, which
 *                                      counts the calls per key
 *   - L (default 25% of requests): actx does it as a *synchronous* pool
 *     lookup inside the read handler, actx_push(); actx_submit();
 *     ACTX_WAIT_WHILE(!done); actx_pop(), then answers.  libuv has no
 *     nested wait: it does the idiomatic uv_queue_work and answers in the
 *     after-work callback.
 *   - X (default 5%): a cross-thread call to a second loop thread that owns
 *     the counters and calls back; actx: actx_ctx_call to the store's
 *     context handle and back to the main one; libuv: a mutex-protected
 *     queue + uv_async_send each way.
 *
 * The client is the benchmark process itself; the server is a child forked
 * for each run (so its CPU time, getrusage(RUSAGE_SELF), covers its loop,
 * store and pool threads and nothing else).  The client opens the N
 * connections, waits until the server has accepted them all (the server
 * then takes its first CPU reading and says "ready" through a pipe), keeps
 * exactly one request outstanding on every connection (so under load most
 * connections are ready at once: that is what makes outer fds ready during
 * a nested wait), checks every answer against what it expects, and resets
 * the connections (SO_LINGER 0: no TIME_WAIT left behind) after the last
 * one; the server's first hang-up takes its second CPU reading.
 *
 * Figures: server CPU seconds per 10k requests with the nested lookups on
 * (target: actx at most libuv's CPU) and with the lookup share at 0
 * (target: actx at most 0.9x libuv's CPU); requests per second of each; and,
 * as a diagnostic, the server's epoll_ctl calls per request, counted by an
 * epoll_ctl defined in this program (it interposes on the runtime's and
 * libuv's calls; not in sanitizer builds).  A wrong, missing or extra
 * answer fails the figure's check (exit 1).
 *
 * Every run is bounded: the client gives up after 10 s without an answer,
 * kills the server and reports the failure; the server dies with its
 * parent (PR_SET_PDEATHSIG).
 *
 * Files (service.h): service-server.c (the protocol, the epoll_ctl
 * counter, what both servers share), service-actx.c (the server on
 * actx), peers/uv-service.c (the server on libuv), service-client.c (the
 * client, the runs, the figures; -only keys nested, flat and actx,
 * libuv); this file: the options and main.
 */
#define _GNU_SOURCE
#include "service.h"

int opt_conns = 2000;
long opt_requests = 50000;
int opt_lookup_pct = 25;
int opt_xcall_pct = 5;

int main(int argc, char **argv)
{
    static const char *conns_s, *reqs_s, *lookup_s, *xcall_s;
    static const bench_option extra[] = {
        {"--conns", "N", "persistent connections (default 2000)", &conns_s,
         NULL},
        {"--requests", "N", "requests a run (default 50000; -q: 10000)",
         &reqs_s, NULL},
        {"--lookup", "PCT",
         "share of requests doing a nested pool lookup (default 25)", &lookup_s,
         NULL},
        {"--xcall", "PCT",
         "share of requests calling the store thread (default 5)", &xcall_s,
         NULL},
        {NULL, NULL, NULL, NULL, NULL},
    };
    static const bench_spec spec = {
        .prog = "bench-service",
        .what = "a TCP key-value service (one loop thread, thousands of "
                "connections, synchronous\npool lookups in the read "
                "handler, a cross-thread call, idle timers) on actx and\n"
                "on libuv under one client process: server CPU per 10k "
                "requests.",
        .reps = 5,
        .extra = extra,
        .figures = "nested,flat",
        .impls = "actx,libuv",
        .usage_more = "Each repetition forks a fresh server per "
                      "implementation (interleaved actx, libuv,\nlibuv, "
                      "actx); the client (this process) keeps one request "
                      "outstanding per\nconnection and checks every "
                      "answer.  \"flat\" is the same load with the "
                      "lookup\nshare at 0.",
    };
    bench_opts o;
    long nreq;

    bench_init(&o, &spec, argc, argv);
    if (conns_s) {
        opt_conns = (int)parse_count("--conns", conns_s, 1, MAX_CONNS);
    }
    if (reqs_s) {
        opt_requests = parse_count("--requests", reqs_s, 1, 1000000000);
    }
    if (lookup_s) {
        opt_lookup_pct = (int)parse_count("--lookup", lookup_s, 0, 100);
    }
    if (xcall_s) {
        opt_xcall_pct = (int)parse_count("--xcall", xcall_s, 0, 100);
    }
    if (opt_lookup_pct + opt_xcall_pct > 100) {
        fprintf(stderr, "bench-service: --lookup + --xcall > 100\n");
        return 2;
    }
    nreq = opt_requests;
    if (o.quick && !reqs_s) {
        nreq = 10000; /* a smoke run: seconds even on today's runtime */
    }
    if (o.quick && !conns_s) {
        opt_conns /= 4;
    }
    fd_limit();
    signal(SIGPIPE, SIG_IGN);

    bench_group("service", "a TCP key-value service: server CPU per 10k "
                           "requests (one client process)");
    if (opt_lookup_pct && bench_want_fig("nested")) {
        service_figs(&o, nreq, opt_lookup_pct, 1.0);
    }
    if (bench_want_fig("flat")) {
        service_figs(&o, nreq, 0, 1 / 0.9);
    }
    return bench_finish();
}
