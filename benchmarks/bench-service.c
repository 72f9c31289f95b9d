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
 */
#define _GNU_SOURCE
#include "actx.h"
#include "harness/harness.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef HAVE_LIBUV
#include <uv.h>
#endif

#define KEYS 65536 /* G/S/X keys: one per connection */
#define MAX_CONNS KEYS
#define IDLE_S 60                /* idle timeout: never reached in a run */
#define CLIENT_PATIENCE_MS 10000 /* no answer for that long: failed run */
#define LINE_MAX_LEN 64

static int opt_conns = 2000;
static long opt_requests = 50000;
static int opt_lookup_pct = 25;
static int opt_xcall_pct = 5;

/* ------------------------------------------------------------------------ */
/* Counting epoll_ctl (a diagnostic; the sanitizers intercept it).          */

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
static atomic_long epoll_ctl_calls;

/*
 * Defined in the executable, this epoll_ctl is the one libactx.so and
 * libuv.so call (the dynamic linker looks in the executable first).
 */
int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    atomic_fetch_add_explicit(&epoll_ctl_calls, 1, memory_order_relaxed);
    return (int)syscall(SYS_epoll_ctl, epfd, op, fd, ev);
}

static long epoll_ctl_count(void)
{
    return atomic_load_explicit(&epoll_ctl_calls, memory_order_relaxed);
}
#else
static long epoll_ctl_count(void)
{
    return -1;
}
#endif

/* ------------------------------------------------------------------------ */
/* What both servers share.                                                 */

/* The lookup the pool does: a stand-in for probing an on-disk index. */
static uint64_t lookup_value(uint64_t key)
{
    uint64_t x = key;

    for (int i = 0; i < 16; i++) {
        x += 0x9E3779B97F4A7C15ULL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
        x ^= x >> 31;
    }
    return x;
}

/* "<prefix> <decimal>\n" into buf; returns the length. */
static size_t fmt_line(char *buf, char prefix, uint64_t v)
{
    char digits[24];
    size_t n = 0, len = 0;

    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    buf[len++] = prefix;
    buf[len++] = ' ';
    while (n) {
        buf[len++] = digits[--n];
    }
    buf[len++] = '\n';
    return len;
}

/* A decimal number at *p, which then points past it; false if none. */
static bool parse_u64(const char **p, const char *end, uint64_t *v)
{
    const char *s = *p;
    uint64_t x = 0;

    while (s < end && *s == ' ') {
        s++;
    }
    if (s == end || *s < '0' || *s > '9') {
        return false;
    }
    while (s < end && *s >= '0' && *s <= '9') {
        x = x * 10 + (uint64_t)(*s - '0');
        s++;
    }
    *p = s;
    *v = x;
    return true;
}

typedef struct {
    char type; /* 'G', 'S', 'L', 'X' */
    uint64_t key, value;
} request;

/* One request line (without its '\n'); false if it is malformed. */
static bool parse_request(const char *s, const char *end, request *rq)
{
    if (end - s < 3 || s[1] != ' ') {
        return false;
    }
    rq->type = s[0];
    s += 1;
    if (!parse_u64(&s, end, &rq->key)) {
        return false;
    }
    switch (rq->type) {
    case 'S':
        if (!parse_u64(&s, end, &rq->value)) {
            return false;
        }
        /* fall through */
    case 'G':
    case 'X':
        return rq->key < KEYS && s == end;
    case 'L':
        return s == end;
    }
    return false;
}

/* What a server run reports to the client through the pipe, at its end. */
typedef struct {
    double cpu_s;     /* user+sys of the whole process during the window */
    long requests;    /* requests answered during the window */
    long epoll_ctl;   /* epoll_ctl calls during the window, -1: not counted */
    long errors;      /* protocol errors, failed writes, failed waits */
    long idle_closes; /* connections closed by their idle timer */
    char what[96];    /* the first error */
} srv_result;

/* The server's state (one server per process). */
static struct {
    int lfd;         /* listening socket */
    int pipe_fd;     /* to the client: "ready", then the srv_result */
    int nconns;      /* connections to accept */
    int accepted;    /* connections accepted so far */
    int open;        /* connections open */
    bool window;     /* measuring (all accepted, none closed yet) */
    double cpu0;     /* CPU seconds at the window's start */
    long epoll0;     /* epoll_ctl count at the window's start */
    long requests;   /* answered, since the window started */
    uint64_t *table; /* [KEYS]: G/S values (loop thread) */
    uint64_t *count; /* [KEYS]: X counters (store thread) */
    srv_result res;
} srv;

typedef struct conn conn;

/* A server connection: its unparsed input, its one request in flight. */
struct conn {
    int fd;
    int inlen;
    char in[2 * LINE_MAX_LEN];
    /* The pending cross-thread call (one request in flight at most). */
    conn *next;
    uint64_t key, result;
    actx_timer *timer;
#ifdef HAVE_LIBUV
    uv_tcp_t tcp;
    uv_timer_t utimer;
    uv_work_t work;
    int closing; /* handles still to close */
#endif
};

static conn *conns;

static double cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static void srv_error(const char *what)
{
    if (srv.res.errors++ == 0) {
        snprintf(srv.res.what, sizeof(srv.res.what), "%s", what);
    }
}

/* A connection was accepted: the window starts once all are. */
static void srv_accepted(void)
{
    char c = 'R';

    srv.accepted++;
    srv.open++;
    if (srv.accepted == srv.nconns) {
        srv.window = true;
        srv.requests = 0;
        srv.cpu0 = cpu_seconds();
        srv.epoll0 = epoll_ctl_count();
        if (write(srv.pipe_fd, &c, 1) != 1) {
            srv_error("write to the client's pipe");
        }
    }
}

/* A connection closed; true when it was the last one. */
static bool srv_closed(void)
{
    if (srv.window) {
        long e = epoll_ctl_count();

        srv.window = false;
        srv.res.cpu_s = cpu_seconds() - srv.cpu0;
        srv.res.requests = srv.requests;
        srv.res.epoll_ctl = e < 0 ? -1 : e - srv.epoll0;
    }
    return --srv.open == 0 && srv.accepted == srv.nconns;
}

/* Write one answer; the client reads each before its next request, so a
 * socket buffer can never be full here. */
static void srv_send(conn *c, const char *buf, size_t len)
{
    if (write(c->fd, buf, len) != (ssize_t)len) {
        srv_error("short write of an answer");
    }
    srv.requests++;
}

static void srv_finish(void)
{
    if (write(srv.pipe_fd, &srv.res, sizeof(srv.res)) != sizeof(srv.res)) {
        _exit(3);
    }
    _exit(0);
}

/*
 * Take the complete lines of c->in one by one and hand each to handle;
 * keep the tail.  false on a malformed line or an over-long one.
 */
static bool srv_lines(conn *c, void (*handle)(conn *c, const request *rq))
{
    char *s = c->in, *end = c->in + c->inlen, *nl;
    request rq;

    while ((nl = memchr(s, '\n', (size_t)(end - s)))) {
        if (!parse_request(s, nl, &rq)) {
            srv_error("malformed request");
            return false;
        }
        s = nl + 1;
        handle(c, &rq);
    }
    c->inlen = (int)(end - s);
    memmove(c->in, s, (size_t)c->inlen);
    if (c->inlen >= LINE_MAX_LEN) {
        srv_error("request line too long");
        return false;
    }
    return true;
}

/*
 * Answer the requests the loop thread answers itself (G, S) with send;
 * true if rq was one of them.
 */
static bool srv_answer_local(conn *c, const request *rq,
                             void (*send)(conn *c, const char *buf, size_t len))
{
    char out[32];

    if (rq->type == 'G') {
        send(c, out, fmt_line(out, 'V', srv.table[rq->key]));
        return true;
    }
    if (rq->type == 'S') {
        srv.table[rq->key] = rq->value;
        send(c, "K\n", 2);
        return true;
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* The actx server.                                                          */

static actx_ctx *a_main_ctx;  /* the loop thread's root context */
static actx_ctx *a_store_ctx; /* the store thread's root context */
static pthread_barrier_t a_store_up;

typedef struct {
    uint64_t key, value;
    bool done;
} a_lookup;

static long a_lookup_work(void *opaque)
{
    a_lookup *st = opaque;

    st->value = lookup_value(st->key);
    return 0;
}

static void a_lookup_done(void *opaque, long ret)
{
    a_lookup *st = opaque;

    (void)ret;
    st->done = true;
}

/* On the loop thread: the store thread's answer. */
static void a_store_reply(void *opaque)
{
    conn *c = opaque;
    char out[32];

    srv_send(c, out, fmt_line(out, 'C', c->result));
}

/* On the store thread. */
static void a_store_call(void *opaque)
{
    conn *c = opaque;

    c->result = ++srv.count[c->key];
    if (actx_ctx_call(a_main_ctx, a_store_reply, c) < 0) {
        srv_error("actx_ctx_call back to the loop thread");
    }
}

static void a_handle(conn *c, const request *rq)
{
    char out[32];

    actx_timer_mod(c->timer, actx_now_ns() + IDLE_S * 1000000000ULL);
    if (srv_answer_local(c, rq, srv_send)) {
        return;
    }
    if (rq->type == 'L') {
        /* The synchronous lookup: only its completion runs meanwhile. */
        a_lookup st = {.key = rq->key};

        if (actx_push() < 0) {
            srv_error("actx_push"); /* unanswered: the client fails */
            return;
        }
        if (!actx_submit(a_lookup_work, a_lookup_done, &st)) {
            srv_error("actx_submit");
            st.done = true;
        }
        if (ACTX_WAIT_WHILE(!st.done) < 0) {
            srv_error("ACTX_WAIT_WHILE gave up");
        }
        actx_pop();
        srv_send(c, out, fmt_line(out, 'V', st.value));
        return;
    }
    c->key = rq->key;
    if (actx_ctx_call(a_store_ctx, a_store_call, c) < 0) {
        srv_error("actx_ctx_call to the store thread");
    }
}

static void a_close(conn *c)
{
    actx_set_fd_handler(c->fd, NULL, NULL, NULL);
    actx_timer_free(c->timer);
    c->timer = NULL;
    close(c->fd);
    c->fd = -1;
    if (srv_closed()) {
        actx_stop(a_main_ctx);
    }
}

static void a_on_read(void *opaque)
{
    conn *c = opaque;
    ssize_t n = read(c->fd, c->in + c->inlen, sizeof(c->in) - (size_t)c->inlen);

    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        a_close(c);
        return;
    }
    c->inlen += (int)n;
    if (!srv_lines(c, a_handle)) {
        a_close(c);
    }
}

static void a_on_idle(void *opaque)
{
    srv.res.idle_closes++;
    a_close(opaque);
}

static void a_on_accept(void *opaque)
{
    (void)opaque;
    for (;;) {
        int fd = accept4(srv.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        int one = 1;
        conn *c;

        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                srv_error("accept4");
            }
            return;
        }
        if (srv.accepted == srv.nconns) {
            srv_error("one connection too many");
            close(fd);
            continue;
        }
        c = &conns[srv.accepted];
        c->fd = fd;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->timer = actx_timer_new(a_on_idle, c);
        if (!c->timer || actx_set_fd_handler(fd, a_on_read, NULL, c) < 0) {
            srv_error("actx_timer_new or actx_set_fd_handler");
        } else {
            actx_timer_mod(c->timer, actx_now_ns() + IDLE_S * 1000000000ULL);
        }
        srv_accepted();
    }
}

static void *a_store_main(void *arg)
{
    (void)arg;
    a_store_ctx = actx_ctx_current();
    pthread_barrier_wait(&a_store_up);
    actx_run(); /* until actx_stop: the handle keeps it alive */
    return NULL;
}

static void serve_actx(void)
{
    pthread_t store;

    a_main_ctx = actx_ctx_current();
    pthread_barrier_init(&a_store_up, NULL, 2);
    if (!a_main_ctx || pthread_create(&store, NULL, a_store_main, NULL)) {
        srv_error("actx_ctx_current or pthread_create");
        srv_finish();
    }
    pthread_barrier_wait(&a_store_up);
    if (!a_store_ctx ||
        actx_set_fd_handler(srv.lfd, a_on_accept, NULL, NULL) < 0) {
        srv_error("the store thread's context or the listener's handler");
        srv_finish();
    }
    actx_run();
    actx_set_fd_handler(srv.lfd, NULL, NULL, NULL);
    actx_stop(a_store_ctx);
    pthread_join(store, NULL);
    actx_ctx_unref(a_store_ctx);
    actx_ctx_unref(a_main_ctx);
    srv_finish();
}

/* ------------------------------------------------------------------------ */
/* The libuv server.                                                         */

#ifdef HAVE_LIBUV
static uv_loop_t u_loop, u_store_loop;
static uv_tcp_t u_listener;
static uv_async_t u_main_async, u_store_async;
static pthread_mutex_t u_lock = PTHREAD_MUTEX_INITIALIZER;
static conn *u_to_store, *u_to_main; /* under u_lock */
static bool u_store_stop;            /* under u_lock */

static void u_send(conn *c, const char *buf, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);

    if (uv_try_write((uv_stream_t *)&c->tcp, &b, 1) != (int)len) {
        srv_error("short uv_try_write of an answer");
    }
    srv.requests++;
}

static void u_work(uv_work_t *w)
{
    conn *c = w->data;

    c->result = lookup_value(c->key);
}

static void u_after_work(uv_work_t *w, int status)
{
    conn *c = w->data;
    char out[32];

    if (status < 0) {
        srv_error("uv_queue_work");
    }
    u_send(c, out, fmt_line(out, 'V', c->result));
}

/* The store thread: take the queued calls, answer them in one batch. */
static void u_store_cb(uv_async_t *a)
{
    conn *in, *out = NULL, *next;
    bool stop;

    pthread_mutex_lock(&u_lock);
    in = u_to_store;
    u_to_store = NULL;
    stop = u_store_stop;
    pthread_mutex_unlock(&u_lock);
    for (conn *c = in; c; c = next) {
        next = c->next;
        c->result = ++srv.count[c->key];
        c->next = out;
        out = c;
    }
    if (out) {
        conn *last = in; /* the first taken is the last of out */

        pthread_mutex_lock(&u_lock);
        last->next = u_to_main;
        u_to_main = out;
        pthread_mutex_unlock(&u_lock);
        uv_async_send(&u_main_async);
    }
    if (stop) {
        uv_close((uv_handle_t *)a, NULL);
    }
}

static void *u_store_main(void *arg)
{
    (void)arg;
    uv_run(&u_store_loop, UV_RUN_DEFAULT);
    return NULL;
}

/* The loop thread: the store thread's answers. */
static void u_main_cb(uv_async_t *a)
{
    conn *c, *next;
    char out[32];

    (void)a;
    pthread_mutex_lock(&u_lock);
    c = u_to_main;
    u_to_main = NULL;
    pthread_mutex_unlock(&u_lock);
    for (; c; c = next) {
        next = c->next;
        u_send(c, out, fmt_line(out, 'C', c->result));
    }
}

static void u_on_idle(uv_timer_t *t);

static void u_handle(conn *c, const request *rq)
{
    uv_timer_start(&c->utimer, u_on_idle, IDLE_S * 1000, 0);
    if (srv_answer_local(c, rq, u_send)) {
        return;
    }
    c->key = rq->key;
    if (rq->type == 'L') {
        c->work.data = c;
        if (uv_queue_work(&u_loop, &c->work, u_work, u_after_work) < 0) {
            srv_error("uv_queue_work");
        }
        return;
    }
    pthread_mutex_lock(&u_lock);
    c->next = u_to_store;
    u_to_store = c;
    pthread_mutex_unlock(&u_lock);
    uv_async_send(&u_store_async);
}

static void u_closed(uv_handle_t *h)
{
    conn *c = h->data;

    if (--c->closing > 0) {
        return;
    }
    if (srv_closed()) {
        pthread_mutex_lock(&u_lock);
        u_store_stop = true;
        pthread_mutex_unlock(&u_lock);
        uv_async_send(&u_store_async);
        uv_close((uv_handle_t *)&u_listener, NULL);
        uv_close((uv_handle_t *)&u_main_async, NULL);
    }
}

static void u_close(conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = 2;
    uv_close((uv_handle_t *)&c->tcp, u_closed);
    uv_close((uv_handle_t *)&c->utimer, u_closed);
}

static void u_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    conn *c = h->data;

    (void)hint;
    *buf = uv_buf_init(c->in + c->inlen,
                       (unsigned)(sizeof(c->in) - (size_t)c->inlen));
}

static void u_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    conn *c = s->data;

    (void)buf;
    if (n < 0) {
        u_close(c);
        return;
    }
    c->inlen += (int)n;
    if (!srv_lines(c, u_handle)) {
        u_close(c);
    }
}

static void u_on_idle(uv_timer_t *t)
{
    srv.res.idle_closes++;
    u_close(t->data);
}

static void u_on_connection(uv_stream_t *server, int status)
{
    conn *c;
    uv_os_fd_t fd;

    if (status < 0 || srv.accepted == srv.nconns) {
        srv_error("a failed or extra connection");
        return;
    }
    c = &conns[srv.accepted];
    uv_tcp_init(&u_loop, &c->tcp);
    uv_timer_init(&u_loop, &c->utimer);
    c->tcp.data = c;
    c->utimer.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 ||
        uv_fileno((uv_handle_t *)&c->tcp, &fd) < 0) {
        srv_error("uv_accept");
        return;
    }
    c->fd = fd;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, u_alloc, u_on_read);
    uv_timer_start(&c->utimer, u_on_idle, IDLE_S * 1000, 0);
    srv_accepted();
}

static void serve_uv(void)
{
    pthread_t store;

    if (uv_loop_init(&u_loop) < 0 || uv_loop_init(&u_store_loop) < 0 ||
        uv_async_init(&u_loop, &u_main_async, u_main_cb) < 0 ||
        uv_async_init(&u_store_loop, &u_store_async, u_store_cb) < 0 ||
        uv_tcp_init(&u_loop, &u_listener) < 0 ||
        uv_tcp_open(&u_listener, srv.lfd) < 0 ||
        uv_listen((uv_stream_t *)&u_listener, 4096, u_on_connection) < 0 ||
        pthread_create(&store, NULL, u_store_main, NULL)) {
        srv_error("setting up the libuv server");
        srv_finish();
    }
    uv_run(&u_loop, UV_RUN_DEFAULT);
    pthread_join(store, NULL);
    srv_finish();
}
#endif

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

static void service_figs(const bench_opts *o, long nreq, int lookup_pct,
                         double target)
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
static void fd_limit(void)
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

static long parse_count(const char *opt, const char *s, long lo, long hi)
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
