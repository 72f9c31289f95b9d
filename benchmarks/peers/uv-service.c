/*
 * uv-service.c - the key-value service on libuv (bench-service's peer;
 * service.h has what both servers share).
 */
#define _GNU_SOURCE
#include "service.h"

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

void serve_uv(void)
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
