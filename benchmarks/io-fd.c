/*
 * io-fd.c - fd wake-up round trip (fd): a server thread sleeps in
 * actx_run() with a read handler on a pipe; the client writes a byte and
 * blocks reading the reply pipe; the handler reads and replies.  us per
 * round trip.  Peers: a raw epoll_wait loop (peers/raw-epoll.c), libuv
 * uv_poll (peers/uv-poll.c).  Target: actx within 1.1x of raw epoll.
 */
#include <stdio.h>
#include <stdlib.h>

#include "io.h"
#include "peers/raw-epoll.h"
#include "peers/uv-poll.h"

static void actx_on_req(void *opaque)
{
    struct rtt *r = opaque;

    if (rtt_serve_one(r)) {
        actx_set_fd_handler(r->req[0], NULL, NULL, NULL);
    }
}

static void *server_actx(void *arg)
{
    struct rtt *r = arg;

    if (actx_set_fd_handler(r->req[0], actx_on_req, NULL, r) < 0) {
        perror("actx_set_fd_handler");
        exit(1);
    }
    actx_run(); /* returns once the handler removed itself */
    actx_thread_shutdown();
    return NULL;
}

static double run_actx(const bench_rep *r)
{
    return rtt_run(server_actx, *(int *)r->arg);
}

static double run_raw(const bench_rep *r)
{
    return rtt_run(rtt_server_raw, *(int *)r->arg);
}

#ifdef HAVE_LIBUV
static double run_uv(const bench_rep *r)
{
    return rtt_run(rtt_server_uv, *(int *)r->arg);
}
#endif

static const bench_impl_def impls[] = {
    {"actx", "actx", run_actx},
    {"raw epoll loop", "raw", run_raw},
#ifdef HAVE_LIBUV
    {"libuv uv_poll", "uv", run_uv},
#endif
    {NULL, NULL, NULL},
};

static void finish(bench_fig *f, void *arg)
{
    (void)arg;
    bench_peer(f, "libuv uv_poll");
}

void io_fd(const io_setup *s)
{
    int n = s->rtt_iters;

    bench_measure(&(bench_figure){
        .key = "fd",
        .name = "fd wake-up round trip",
        .unit = "us/rtt",
        .dir = BENCH_LOWER,
        .impls = impls,
        .arg = &n,
        .split = 2,
        .target_peer = "raw epoll loop",
        .target_ratio = 1 / 1.1,
        .finish = finish,
    });
}
