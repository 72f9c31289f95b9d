/*
 * test-fd-lifetime.c - close-and-free (actx.h, actx_set_fd_handler): once
 * a handler is removed, from inside any callback, the runtime never calls
 * it again and never touches its opaque, even for events already
 * collected in the same dispatch pass, and even when the fd number is
 * reused at once by a new registration.  Each test frees the connection
 * state where a user would (ASan and valgrind see any later use).
 */
#include "test.h"

#include <sys/socket.h>

struct conn {
    int fd, peer;
    int reads, writes;
    int *freed; /* set when freed */
};

static struct conn *conn_new(int *freed)
{
    struct conn *c = calloc(1, sizeof(*c));
    int sv[2];

    ASSERT_NOT_NULL(c);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    c->fd = sv[0];
    c->peer = sv[1];
    c->freed = freed;
    return c;
}

/* The pattern: remove the handler, close the fd, free the state. */
static void conn_close_free(struct conn *c)
{
    ASSERT_EQ(actx_set_fd_handler(c->fd, NULL, NULL, NULL), 0);
    close(c->fd);
    close(c->peer);
    (*c->freed)++;
    free(c);
}

static void on_read_close(void *opaque)
{
    struct conn *c = opaque;

    c->reads++;
    conn_close_free(c);
}

static void on_write_never(void *opaque)
{
    (void)opaque;
    ASSERT_TRUE(!"on_write of a freed connection");
}

/* Read and write due together: the read handler frees; no write call. */
ACTX_TEST("/fd/lifetime/read-frees-write-never-runs")
{
    int freed = 0;
    struct conn *c = conn_new(&freed);

    ASSERT_EQ(write(c->peer, "x", 1), 1); /* readable and writable */
    ASSERT_EQ(actx_set_fd_handler(c->fd, on_read_close, on_write_never, c), 0);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(freed, 1);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_FALSE(actx_can_progress());
}

/*
 * A BH runs before the fds of the same pass: it frees a connection whose
 * event a wait already collected.  The handler is not called.
 */
static struct conn *bh_victim;

static void bh_close(void *opaque)
{
    (void)opaque;
    conn_close_free(bh_victim);
}

static void on_read_never(void *opaque)
{
    (void)opaque;
    ASSERT_TRUE(!"on_read of a freed connection");
}

ACTX_TEST("/fd/lifetime/freed-by-bh-before-dispatch")
{
    int freed = 0;
    actx_bh *bh = actx_bh_new(bh_close, NULL);

    bh_victim = conn_new(&freed);
    ASSERT_EQ(
        actx_set_fd_handler(bh_victim->fd, on_read_never, NULL, bh_victim), 0);
    ASSERT_EQ(write(bh_victim->peer, "x", 1), 1);
    /* A blocking poll waits (collecting the fd's event) ... */
    actx_bh_schedule_idle(bh);
    ASSERT_EQ(actx_poll(true), 0); /* ... then runs the idle BH first */
    ASSERT_EQ(freed, 1);
    ASSERT_EQ(actx_poll(false), 0);
    actx_bh_delete(bh);
}

/*
 * Two connections ready in one pass; the first handler to run frees both
 * and opens a new connection that gets one of the freed numbers, with a
 * handler of its own.  Events collected for the old registrations never
 * reach the new one in that pass (they are matched by registration, not
 * by fd number); the new one runs once its own data arrives.
 */
struct pair_state {
    struct conn *a, *b, *fresh;
    int freed, fresh_reads, first_runs;
    int old_fds[4];
};

static struct pair_state ps;

static void fresh_read(void *opaque)
{
    struct conn *c = opaque;
    char ch;

    ASSERT_EQ(read(c->fd, &ch, 1), 1);
    ASSERT_EQ(ch, 'n');
    ps.fresh_reads++;
}

static void first_read(void *opaque)
{
    (void)opaque;
    ps.first_runs++;
    ASSERT_EQ(ps.first_runs, 1); /* the other one never runs */
    conn_close_free(ps.a);
    conn_close_free(ps.b);
    ps.fresh = conn_new(&ps.freed);
    ASSERT_EQ(actx_set_fd_handler(ps.fresh->fd, fresh_read, NULL, ps.fresh), 0);
}

ACTX_TEST("/fd/lifetime/number-reused-in-same-pass")
{
    ps.a = conn_new(&ps.freed);
    ps.b = conn_new(&ps.freed);
    ps.old_fds[0] = ps.a->fd;
    ps.old_fds[1] = ps.a->peer;
    ps.old_fds[2] = ps.b->fd;
    ps.old_fds[3] = ps.b->peer;
    ASSERT_EQ(actx_set_fd_handler(ps.a->fd, first_read, NULL, ps.a), 0);
    ASSERT_EQ(actx_set_fd_handler(ps.b->fd, first_read, NULL, ps.b), 0);
    ASSERT_EQ(write(ps.a->peer, "x", 1), 1);
    ASSERT_EQ(write(ps.b->peer, "x", 1), 1);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(ps.first_runs, 1);
    ASSERT_EQ(ps.freed, 2);
    ASSERT_EQ(ps.fresh_reads, 0); /* nothing was written to it yet */
    /* The new connection took a number freed in that pass. */
    ASSERT_TRUE(ps.fresh->fd == ps.old_fds[0] ||
                ps.fresh->fd == ps.old_fds[1] ||
                ps.fresh->fd == ps.old_fds[2] || ps.fresh->fd == ps.old_fds[3]);
    ASSERT_EQ(write(ps.fresh->peer, "n", 1), 1);
    ASSERT_EQ(actx_poll(true), 1);
    ASSERT_EQ(ps.fresh_reads, 1);
    conn_close_free(ps.fresh);
}

/*
 * A done callback (a completion) frees a connection during a nested wait
 * of another context; after the pop its collected events are gone too.
 */
static struct conn *done_victim;

static void done_close(void *opaque, long ret)
{
    (void)opaque, (void)ret;
    conn_close_free(done_victim);
}

ACTX_TEST("/fd/lifetime/freed-by-completion-before-pop")
{
    int freed = 0;
    actx_req *req;

    done_victim = conn_new(&freed);
    ASSERT_EQ(
        actx_set_fd_handler(done_victim->fd, on_read_never, NULL, done_victim),
        0);
    ASSERT_EQ(write(done_victim->peer, "x", 1), 1);
    req = actx_req_new(done_close, NULL); /* the root's */
    ASSERT_NOT_NULL(req);
    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(complete_from_thread(req, 0), 0);
    ASSERT_EQ(actx_poll(false), 0); /* not this context's */
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_poll(true), 1); /* the completion frees it first */
    ASSERT_EQ(freed, 1);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_FALSE(actx_can_progress());
}
