/*
 * service-server.c - what both servers of bench-service share: the
 * epoll_ctl counter, the protocol and the server's bookkeeping.
 */
#define _GNU_SOURCE
#include "service.h"

srv_state srv;
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

long epoll_ctl_count(void)
{
    return atomic_load_explicit(&epoll_ctl_calls, memory_order_relaxed);
}
#else
long epoll_ctl_count(void)
{
    return -1;
}
#endif

/* ------------------------------------------------------------------------ */
/* What both servers share.                                                 */

/* The lookup the pool does: a stand-in for probing an on-disk index. */
uint64_t lookup_value(uint64_t key)
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
size_t fmt_line(char *buf, char prefix, uint64_t v)
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

/* One request line (without its '\n'); false if it is malformed. */
bool parse_request(const char *s, const char *end, request *rq)
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

conn *conns;

double cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

void srv_error(const char *what)
{
    if (srv.res.errors++ == 0) {
        snprintf(srv.res.what, sizeof(srv.res.what), "%s", what);
    }
}

/* A connection was accepted: the window starts once all are. */
void srv_accepted(void)
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
bool srv_closed(void)
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
void srv_send(conn *c, const char *buf, size_t len)
{
    if (write(c->fd, buf, len) != (ssize_t)len) {
        srv_error("short write of an answer");
    }
    srv.requests++;
}

void srv_finish(void)
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
bool srv_lines(conn *c, void (*handle)(conn *c, const request *rq))
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
bool srv_answer_local(conn *c, const request *rq,
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
