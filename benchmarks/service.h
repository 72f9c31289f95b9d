/*
 * service.h - what bench-service's files share: the protocol, the state
 * both servers keep (service-server.c), the two servers (service-actx.c,
 * peers/uv-service.c) and the client (service-client.c).
 */
#ifndef BENCH_SERVICE_H
#define BENCH_SERVICE_H

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

/* The options (bench-service.c). */
extern int opt_conns;
extern long opt_requests;
extern int opt_lookup_pct;
extern int opt_xcall_pct;

typedef struct {
    char type; /* 'G', 'S', 'L', 'X' */
    uint64_t key, value;
} request;

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
typedef struct {
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
} srv_state;

extern srv_state srv;

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

extern conn *conns;

size_t fmt_line(char *buf, char prefix, uint64_t v);
uint64_t lookup_value(uint64_t key);
void srv_accepted(void);
bool srv_closed(void);
void srv_error(const char *what);
void srv_finish(void);
void srv_send(conn *c, const char *buf, size_t len);
bool srv_lines(conn *c, void (*handle)(conn *c, const request *rq));
bool srv_answer_local(conn *c, const request *rq,
                      void (*send)(conn *c, const char *buf, size_t len));
bool parse_request(const char *s, const char *end, request *rq);
long epoll_ctl_count(void);
double cpu_seconds(void);
void serve_actx(void);
void serve_uv(void);
void fd_limit(void);
long parse_count(const char *opt, const char *s, long lo, long hi);
void service_figs(const bench_opts *o, long nreq, int lookup_pct,
                  double target);

#endif /* BENCH_SERVICE_H */
