/*
 * service-client.c - bench-service's client: one request outstanding on
 * every connection, every answer checked; the runs and the figures.
 */
#define _GNU_SOURCE
#include "service.h"

/* ------------------------------------------------------------------------ */
/* The client (this process) and one run.                                    */

typedef enum { IMPL_ACTX, IMPL_UV } impl;

typedef struct {
    int fd;
    int inlen;
    uint64_t rng;
    uint64_t setv;   /* the value of this connection's key */
    uint64_t xcount; /* X calls made on this connection */
    char in[LINE_MAX_LEN];
    char expect[LINE_MAX_LEN];
    int elen;
} cconn;

typedef struct {
    bool ok;
    double cpu_per_10k; /* server CPU seconds per 10k requests */
    double rate;        /* requests per second (client's wall clock) */
    double ctl_per_req; /* server epoll_ctl calls per request, NAN if not */
    char why[160];      /* what went wrong, if !ok */
} run_result;

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Send c its next request and note the answer it must get. */
static bool client_send(cconn *c, int id, int lookup_pct)
{
    uint64_t r = xorshift(&c->rng);
    int pct = (int)(r % 100);
    char out[LINE_MAX_LEN];
    size_t len;

    if (pct < lookup_pct) {
        uint64_t key = (r >> 8) & 0xFFFFF;

        len = fmt_line(out, 'L', key);
        c->elen = (int)fmt_line(c->expect, 'V', lookup_value(key));
    } else if (pct < lookup_pct + opt_xcall_pct) {
        len = fmt_line(out, 'X', (uint64_t)id);
        c->elen = (int)fmt_line(c->expect, 'C', ++c->xcount);
    } else if ((r >> 40) & 1) {
        c->setv = (r >> 20) & 0xFFFFFFFFF;
        len = (size_t)snprintf(out, sizeof(out), "S %d %llu\n", id,
                               (unsigned long long)c->setv);
        memcpy(c->expect, "K\n", 2);
        c->elen = 2;
    } else {
        len = fmt_line(out, 'G', (uint64_t)id);
        c->elen = (int)fmt_line(c->expect, 'V', c->setv);
    }
    return write(c->fd, out, len) == (ssize_t)len;
}

/* Wait up to ms for fd to be readable; false on timeout or error. */
static bool wait_readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n;

    do {
        n = poll(&p, 1, ms);
    } while (n < 0 && errno == EINTR);
    return n == 1;
}

static bool read_full(int fd, void *buf, size_t len)
{
    char *p = buf;

    while (len) {
        ssize_t n = read(fd, p, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static void server_main(impl which, int lfd, int pipe_fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    srv.lfd = lfd;
    srv.pipe_fd = pipe_fd;
    srv.nconns = opt_conns;
    srv.table = calloc(KEYS, sizeof(*srv.table));
    srv.count = calloc(KEYS, sizeof(*srv.count));
    conns = calloc((size_t)opt_conns, sizeof(*conns));
    if (!srv.table || !srv.count || !conns ||
        fcntl(lfd, F_SETFL, O_NONBLOCK) < 0) {
        srv_error("setting up the server");
        srv_finish();
    }
#ifdef HAVE_LIBUV
    if (which == IMPL_UV) {
        serve_uv();
    }
#endif
    (void)which;
    serve_actx();
}

#define FAIL(...)                                                              \
    do {                                                                       \
        snprintf(res.why, sizeof(res.why), __VA_ARGS__);                       \
        goto out;                                                              \
    } while (0)

/* One run: a fresh server process, the client's requests, the figures. */
static run_result run_once(impl which, long nreq, int lookup_pct)
{
    run_result res = {.ok = false, .ctl_per_req = NAN};
    struct sockaddr_in addr = {.sin_family = AF_INET};
    socklen_t alen = sizeof(addr);
    cconn *cc = calloc((size_t)opt_conns, sizeof(*cc));
    struct epoll_event evs[256];
    int lfd, pfd[2] = {-1, -1}, ep = -1, nopen = 0;
    long sent = 0, answered = 0, wrong = 0;
    uint64_t t0, t1;
    srv_result sr;
    pid_t pid = -1;
    char ready;

    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (!cc || lfd < 0 || bind(lfd, (struct sockaddr *)&addr, alen) < 0 ||
        listen(lfd, 4096) < 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0 ||
        pipe2(pfd, O_CLOEXEC) < 0) {
        FAIL("listening socket or pipe: %s", strerror(errno));
    }
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        FAIL("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(pfd[0]);
        server_main(which, lfd, pfd[1]);
        _exit(3);
    }
    close(lfd);
    lfd = -1;
    close(pfd[1]);
    pfd[1] = -1;

    for (int i = 0; i < opt_conns; i++) {
        int one = 1;
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        cconn *c = &cc[i];

        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
            FAIL("client socket %d: %s", i, strerror(errno));
        }
        nopen++;
        if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
            FAIL("connect %d: %s", i, strerror(errno));
        }
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        /* A reset at the end instead of TIME_WAIT: thousands of
         * connections per run, many runs. */
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        c->rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1);
    }
    if (!wait_readable(pfd[0], CLIENT_PATIENCE_MS) ||
        read(pfd[0], &ready, 1) != 1 || ready != 'R') {
        FAIL("the server did not accept the %d connections", opt_conns);
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        FAIL("epoll_create1: %s", strerror(errno));
    }
    for (int i = 0; i < opt_conns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cc[i]};

        if (epoll_ctl(ep, EPOLL_CTL_ADD, cc[i].fd, &ev) < 0) {
            FAIL("epoll_ctl: %s", strerror(errno));
        }
    }

    t0 = bench_now_ns();
    for (int i = 0; i < opt_conns && sent < nreq; i++, sent++) {
        if (!client_send(&cc[i], i, lookup_pct)) {
            FAIL("request write: %s", strerror(errno));
        }
    }
    while (answered < nreq) {
        int n = epoll_wait(ep, evs, 256, CLIENT_PATIENCE_MS);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            FAIL("no answer for %d ms (%ld of %ld answered)",
                 CLIENT_PATIENCE_MS, answered, nreq);
        }
        for (int k = 0; k < n; k++) {
            cconn *c = evs[k].data.ptr;
            int id = (int)(c - cc);
            ssize_t r =
                read(c->fd, c->in + c->inlen, sizeof(c->in) - (size_t)c->inlen);

            if (r <= 0) {
                FAIL("connection %d: %s", id, r ? strerror(errno) : "closed");
            }
            c->inlen += (int)r;
            if (!memchr(c->in, '\n', (size_t)c->inlen)) {
                if (c->inlen == (int)sizeof(c->in)) {
                    FAIL("connection %d: answer too long", id);
                }
                continue;
            }
            if (c->inlen != c->elen || memcmp(c->in, c->expect, c->elen)) {
                wrong++;
            }
            c->inlen = 0;
            answered++;
            if (sent < nreq) {
                sent++;
                if (!client_send(c, id, lookup_pct)) {
                    FAIL("request write: %s", strerror(errno));
                }
            }
        }
    }
    t1 = bench_now_ns();
    for (int i = 0; i < opt_conns; i++) {
        close(cc[i].fd);
        cc[i].fd = -1;
    }
    nopen = 0;
    if (!wait_readable(pfd[0], CLIENT_PATIENCE_MS) ||
        !read_full(pfd[0], &sr, sizeof(sr))) {
        FAIL("no result from the server");
    }
    if (sr.errors || sr.idle_closes) {
        FAIL("server: %ld errors (%s), %ld idle closes", sr.errors, sr.what,
             sr.idle_closes);
    }
    if (wrong || sr.requests != nreq) {
        FAIL("%ld wrong answers; the server answered %ld of %ld requests",
             wrong, sr.requests, nreq);
    }
    res.ok = true;
    res.cpu_per_10k = sr.cpu_s / (double)nreq * 1e4;
    res.rate = (double)nreq / ((double)(t1 - t0) * 1e-9);
    if (sr.epoll_ctl >= 0) {
        res.ctl_per_req = (double)sr.epoll_ctl / (double)nreq;
    }

out:
    for (int i = 0; i < nopen; i++) {
        close(cc[i].fd);
    }
    if (pid > 0) {
        int st;

        if (!res.ok) {
            kill(pid, SIGKILL);
        }
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        if (res.ok && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
            res.ok = false;
            snprintf(res.why, sizeof(res.why), "the server exited badly");
        }
    }
    if (ep >= 0) {
        close(ep);
    }
    if (lfd >= 0) {
        close(lfd);
    }
    if (pfd[0] >= 0) {
        close(pfd[0]);
    }
    if (pfd[1] >= 0) {
        close(pfd[1]);
    }
    free(cc);
    return res;
}

/* ------------------------------------------------------------------------ */

typedef struct {
    bench_fig *cpu, *rate, *ctl;
    bool ok;
} figset;

static void add_run(figset *fs, impl which, const char *name, long nreq,
                    int lookup_pct)
{
    run_result r = run_once(which, nreq, lookup_pct);

    if (!r.ok) {
        fprintf(stderr, "bench-service: %s, %d%% lookups: run failed: %s\n",
                name, lookup_pct, r.why);
        fs->ok = false;
        return;
    }
    bench_add(fs->cpu, name, r.cpu_per_10k);
    bench_add(fs->rate, name, r.rate / 1e3);
    if (!isnan(r.ctl_per_req)) {
        bench_add(fs->ctl, name, r.ctl_per_req);
    }
}

void service_figs(const bench_opts *o, long nreq, int lookup_pct, double target)
{
    const char *uv_name = lookup_pct ? "libuv (uv_queue_work)" : "libuv";
    bool do_actx = bench_want_impl("actx");
    bool do_uv = bench_want_impl("libuv");
    char what[64], name[96];
    figset fs = {.ok = true};

    (void)do_uv; /* without libuv */
    if (lookup_pct) {
        snprintf(what, sizeof(what), "%d%% nested lookups", lookup_pct);
    } else {
        snprintf(what, sizeof(what), "no nested lookups");
    }
    snprintf(name, sizeof(name), "kv service CPU, %s", what);
    fs.cpu = bench_fig_new(name, "s/10k req", BENCH_LOWER);
    snprintf(name, sizeof(name), "kv service rate, %s", what);
    fs.rate = bench_fig_new(name, "k req/s", BENCH_HIGHER);
    fs.ctl = bench_fig_new("epoll_ctl", "calls/req", BENCH_LOWER);
    bench_peer(fs.cpu, uv_name);
    bench_peer(fs.rate, uv_name);
    bench_peer(fs.ctl, uv_name);
    for (int r = 0; r < o->reps; r++) {
        /* actx, libuv, libuv, actx, ...: drifting load falls on both. */
        for (int k = 0; k < 2; k++) {
            bool uv_turn = (r + k) % 2 == 1;

#ifdef HAVE_LIBUV
            if (uv_turn && do_uv) {
                add_run(&fs, IMPL_UV, uv_name, nreq, lookup_pct);
            }
#endif
            if (!uv_turn && do_actx) {
                add_run(&fs, IMPL_ACTX, "actx", nreq, lookup_pct);
            }
        }
    }
    bench_target_ratio(fs.cpu, uv_name, target);
    bench_note(fs.cpu,
               "%d conns, %ld req a run, %d%% cross-thread calls, "
               "idle timer re-armed per request",
               opt_conns, nreq, opt_xcall_pct);
    if (lookup_pct) {
        bench_note(fs.cpu, "actx waits nested (push, submit, ACTX_WAIT_WHILE, "
                           "pop); libuv has no nested wait: uv_queue_work");
    }
    if (fs.ctl->impl[0].n) {
        double uv_ctl = NAN;

        for (int i = 1; i < fs.ctl->nimpl; i++) {
            uv_ctl = bench_stat_of(&fs.ctl->impl[i]).median;
        }
        bench_note(fs.cpu, "server epoll_ctl/req: actx %.3g, libuv %.3g",
                   bench_stat_of(&fs.ctl->impl[0]).median, uv_ctl);
    }
    bench_fig_check(fs.cpu, fs.ok,
                    "every request answered exactly once, rightly");
    bench_fig_check(fs.rate, fs.ok,
                    "every request answered exactly once, rightly");
    bench_fig_done(fs.cpu);
    bench_fig_done(fs.rate);
    /* The epoll_ctl counts are a diagnostic (in the note), not a figure. */
    for (int i = 0; i < fs.ctl->nimpl; i++) {
        free(fs.ctl->impl[i].v);
    }
    free(fs.ctl);
}

/* Raise the fd limit to the hard one; fewer connections if still short. */
void fd_limit(void)
{
    struct rlimit rl;
    long need = opt_conns + 64;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        return;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < need) {
        opt_conns = (int)rl.rlim_cur - 64;
        printf("bench-service: RLIMIT_NOFILE is %ld: %d connections only\n",
               (long)rl.rlim_cur, opt_conns);
    }
}

long parse_count(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*end || v < lo || v > hi) {
        fprintf(stderr, "bench-service: %s wants a number from %ld to %ld\n",
                opt, lo, hi);
        exit(2);
    }
    return v;
}
