/* uv-poll.c - libuv's fd round-trip server (uv-poll.h). */
#include "uv-poll.h"

#ifdef HAVE_LIBUV
#include <uv.h>

#include "raw-epoll.h"

static void uv_on_req(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    if (rtt_serve_one(h->data)) {
        uv_poll_stop(h);
    }
}

void *rtt_server_uv(void *arg)
{
    struct rtt *r = arg;
    uv_loop_t loop;
    uv_poll_t h;

    uv_loop_init(&loop);
    uv_poll_init(&loop, &h, r->req[0]);
    h.data = r;
    uv_poll_start(&h, UV_READABLE, uv_on_req);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&h, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return NULL;
}
#endif
