/* service-actx.c - the key-value service on actx. */
#define _GNU_SOURCE
#include "service.h"

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

void serve_actx(void)
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
