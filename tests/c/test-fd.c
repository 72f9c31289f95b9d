/*
 * test-fd.c - fd handlers (actx.h): level-triggered, dispatched only
 * while their context is current; an outer context's ready fd waits for
 * the pop (without a busy loop) and fires after it; handlers re-home at
 * pop, move when registered again, may remove themselves; closed fds are
 * reported and dropped, not spun on.
 */
#include "test.h"

#include "inject.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>

struct fdrec {
    int fd;
    int reads, writes;
    int ctx_id;
    long seq;
    bool drain;       /* read one byte per call */
    bool remove_self; /* remove the handler from inside it */
    pthread_t thread;
};

static void on_read(void *opaque)
{
    struct fdrec *r = opaque;
    char b;

    r->reads++;
    r->ctx_id = actx_context_id();
    r->seq = test_next_seq();
    r->thread = pthread_self();
    if (r->drain) {
        ASSERT_EQ(read(r->fd, &b, 1), 1);
    }
    if (r->remove_self) {
        ASSERT_EQ(actx_set_fd_handler(r->fd, NULL, NULL, NULL), 0);
    }
}

static void on_write(void *opaque)
{
    struct fdrec *r = opaque;

    r->writes++;
    r->ctx_id = actx_context_id();
    if (r->remove_self) {
        ASSERT_EQ(actx_set_fd_handler(r->fd, NULL, NULL, NULL), 0);
    }
}

static void make_pipe(int p[2])
{
    ASSERT_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

static void put_byte(int fd)
{
    ASSERT_EQ(write(fd, "x", 1), 1);
}

static void close_pipe(int p[2])
{
    close(p[0]);
    close(p[1]);
}

/* Is fd readable right now? */
static bool readable(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};

    return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

/* --- arguments -------------------------------------------------------------- */

ACTX_TEST("/fd/args/bad")
{
    int p[2], fd;
    char path[] = "/tmp/actx-fd-XXXXXX";

    ASSERT_EQ(actx_set_fd_handler(-1, on_read, NULL, NULL), -EBADF);
    ASSERT_EQ(actx_set_fd_handler(-5, NULL, NULL, NULL), -EBADF);
    ASSERT_EQ(actx_thread_init(), 0); /* its fds exist before the pipe's */
    make_pipe(p);
    close_pipe(p);
    ASSERT_EQ(actx_set_fd_handler(p[0], on_read, NULL, NULL), -EBADF);
    /* Removing what is not registered is a no-op. */
    make_pipe(p);
    ASSERT_EQ(actx_set_fd_handler(p[0], NULL, NULL, NULL), 0);
    close_pipe(p);
    /* A regular file cannot be polled. */
    fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    unlink(path);
    ASSERT_EQ(actx_set_fd_handler(fd, on_read, NULL, NULL), -EPERM);
    close(fd);
    /* The loop's own fd is not the user's to register. */
    ASSERT_EQ(actx_set_fd_handler(actx_backend_fd(), on_read, NULL, NULL),
              -EINVAL);
    ASSERT_FALSE(actx_can_progress());
}

/* --- basic dispatch ---------------------------------------------------------- */

ACTX_TEST("/fd/read/level-triggered")
{
    struct fdrec r = {0};
    int p[2];

    make_pipe(p);
    r.fd = p[0];
    ASSERT_EQ(actx_set_fd_handler(p[0], on_read, NULL, &r), 0);
    ASSERT_TRUE(actx_can_progress());
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(r.reads, 0);
    put_byte(p[1]);
    put_byte(p[1]);
    /* Not drained: reported again at every poll. */
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(r.reads, 2);
    ASSERT_EQ(r.ctx_id, 0);
    ASSERT_ON_SELF(r.thread);
    r.drain = true;
    ASSERT_EQ(actx_poll(true), 1);
    ASSERT_EQ(actx_poll(true), 1);
    ASSERT_EQ(r.reads, 4);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(actx_set_fd_handler(p[0], NULL, NULL, NULL), 0);
    ASSERT_FALSE(actx_can_progress());
    ASSERT_EQ(actx_poll(true), 0); /* nothing left: returns at once */
    close_pipe(p);
}

ACTX_TEST("/fd/write/fires-and-updates")
{
    struct fdrec r = {0};
    int p[2];

    make_pipe(p);
    r.fd = p[1];
    ASSERT_EQ(actx_set_fd_handler(p[1], NULL, on_write, &r), 0);
    ASSERT_EQ(actx_poll(true), 1);
    ASSERT_EQ(r.writes, 1);
    /* Re-registering updates: now read-only on a never-readable end. */
    ASSERT_EQ(actx_set_fd_handler(p[1], on_read, NULL, &r), 0);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(r.writes, 1);
    ASSERT_EQ(r.reads, 0);
    /* And back, with a new opaque. */
    struct fdrec r2 = {.fd = p[1]};
    ASSERT_EQ(actx_set_fd_handler(p[1], NULL, on_write, &r2), 0);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(r2.writes, 1);
    ASSERT_EQ(r.writes, 1);
    ASSERT_EQ(actx_set_fd_handler(p[1], NULL, NULL, NULL), 0);
    close_pipe(p);
}

ACTX_TEST("/fd/remove/from-own-handler")
{
    struct fdrec r = {.remove_self = true};
    int p[2];

    make_pipe(p);
    r.fd = p[0];
    put_byte(p[1]);
    /* Readable and (HUP-free) not writable; both handlers set. */
    ASSERT_EQ(actx_set_fd_handler(p[0], on_read, on_write, &r), 0);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(r.reads, 1);
    ASSERT_EQ(r.writes, 0);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(r.reads, 1);
    ASSERT_FALSE(actx_can_progress());
    close_pipe(p);
}

/* A handler that removes another fd's handler whose event is in the same
 * batch: the removed one never runs. */
static struct fdrec *victim;
static void remove_victim(void *opaque)
{
    on_read(opaque);
    if (victim) {
        ASSERT_EQ(actx_set_fd_handler(victim->fd, NULL, NULL, NULL), 0);
        victim = NULL;
    }
}

ACTX_TEST("/fd/remove/other-in-same-batch")
{
    struct fdrec a = {0}, b = {0};
    int pa[2], pb[2];

    make_pipe(pa);
    make_pipe(pb);
    a.fd = pa[0];
    b.fd = pb[0];
    put_byte(pa[1]);
    put_byte(pb[1]);
    ASSERT_EQ(actx_set_fd_handler(pa[0], remove_victim, NULL, &a), 0);
    ASSERT_EQ(actx_set_fd_handler(pb[0], remove_victim, NULL, &b), 0);
    victim = &b; /* whichever handler runs first removes b */
    ASSERT_EQ(actx_poll(false), 1);
    /* b ran at most once (if first, it removed itself), never after. */
    ASSERT_LE(b.reads, 1);
    for (int i = 0; i < 3; i++) {
        actx_poll(false);
    }
    ASSERT_LE(b.reads, 1);
    ASSERT_GE(a.reads, 1);
    ASSERT_EQ(actx_set_fd_handler(pa[0], NULL, NULL, NULL), 0);
    close_pipe(pa);
    close_pipe(pb);
}

/* --- contexts ---------------------------------------------------------------- */

static void *write_after_sleep(void *arg)
{
    int *a = arg; /* {fd, tid} */

    wait_until_sleeping(a[1], 2000);
    put_byte(a[0]);
    return NULL;
}

ACTX_TEST("/fd/ctx/parent-handler-waits-for-pop")
{
    struct fdrec r = {0};
    struct cb_rec done = {0};
    struct actx_stats st0, st1;
    actx_req *req;
    int p[2];

    make_pipe(p);
    r.fd = p[0];
    r.drain = true;
    ASSERT_EQ(actx_set_fd_handler(p[0], on_read, NULL, &r), 0);
    ASSERT_EQ(actx_push(), 1);
    put_byte(p[1]); /* the parent's fd is ready from now on */
    req = actx_req_new(rec_done, &done);
    ASSERT_NOT_NULL(req);
    actx_stats(&st0);
    /* The child waits ~100 ms for its request while the parent's fd is
     * ready: the handler must not run, and the wait must sleep, not spin. */
    pthread_t t = later_complete(req, 7, 100000, 0, NULL);
    ASSERT_EQ(ACTX_WAIT_WHILE(done.runs == 0), 0);
    thread_join(t);
    actx_stats(&st1);
    ASSERT_EQ(r.reads, 0);
    ASSERT_EQ(done.ctx_id, 1);
    ASSERT_LE(st1.sleeps - st0.sleeps, 5);
    ASSERT_FALSE(actx_can_progress());
    ASSERT_EQ(actx_pop(), 0);
    /* Still ready after the pop: fires in the parent. */
    ASSERT_EQ(actx_poll(true), 1);
    ASSERT_EQ(r.reads, 1);
    ASSERT_EQ(r.ctx_id, 0);
    ASSERT_EQ(actx_set_fd_handler(p[0], NULL, NULL, NULL), 0);
    close_pipe(p);
}

ACTX_TEST("/fd/ctx/parent-handler-not-ready-after-pop")
{
    struct fdrec r = {0};
    int p[2];
    char b;

    make_pipe(p);
    r.fd = p[0];
    ASSERT_EQ(actx_set_fd_handler(p[0], on_read, NULL, &r), 0);
    ASSERT_EQ(actx_push(), 1);
    put_byte(p[1]);
    ASSERT_EQ(actx_poll(false), 0);  /* parks the parent's fd */
    ASSERT_EQ(read(p[0], &b, 1), 1); /* no longer ready */
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(r.reads, 0);
    put_byte(p[1]); /* armed again after the pop */
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(r.reads, 1);
    ASSERT_EQ(actx_set_fd_handler(p[0], NULL, NULL, NULL), 0);
    close_pipe(p);
}

ACTX_TEST("/fd/ctx/child-handler-fires-during-blocking-poll")
{
    struct fdrec r = {0}, pr = {0};
    int p[2], q[2];
    int arg[2];
    pthread_t t;

    make_pipe(p);
    make_pipe(q);
    pr.fd = q[0];
    ASSERT_EQ(actx_set_fd_handler(q[0], on_read, NULL, &pr), 0);
    put_byte(q[1]); /* the parent's is ready throughout */
    ASSERT_EQ(actx_push(), 1);
    r.fd = p[0];
    r.drain = true;
    ASSERT_EQ(actx_set_fd_handler(p[0], on_read, NULL, &r), 0);
    arg[0] = p[1];
    arg[1] = test_gettid();
    t = thread_start(write_after_sleep, arg);
    ASSERT_EQ(actx_poll(true), 1);
    thread_join(t);
    ASSERT_EQ(r.reads, 1);
    ASSERT_EQ(r.ctx_id, 1);
    ASSERT_EQ(pr.reads, 0);
    ASSERT_EQ(actx_set_fd_handler(p[0], NULL, NULL, NULL), 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(pr.reads, 1);
    ASSERT_EQ(pr.ctx_id, 0);
    ASSERT_EQ(actx_set_fd_handler(q[0], NULL, NULL, NULL), 0);
    close_pipe(p);
    close_pipe(q);
}

ACTX_TEST("/fd/ctx/rehomed-at-pop")
{
    struct fdrec r = {0};
    int p[2];

    make_pipe(p);
    r.fd = p[0];
    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_set_fd_handler(p[0], on_read, NULL, &r), 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_TRUE(actx_can_progress()); /* the handler counts for the root */
    put_byte(p[1]);
    ASSERT_EQ(actx_poll(true), 1);
    ASSERT_EQ(r.reads, 1);
    ASSERT_EQ(r.ctx_id, 0);
    ASSERT_EQ(actx_set_fd_handler(p[0], NULL, NULL, NULL), 0);
    ASSERT_FALSE(actx_can_progress());
    close_pipe(p);
}

ACTX_TEST("/fd/ctx/rehomed-while-parked")
{
    struct fdrec r = {0};
    int p[2];

    make_pipe(p);
    r.fd = p[0];
    ASSERT_EQ(actx_push(), 1);
    ASSERT_EQ(actx_set_fd_handler(p[0], on_read, NULL, &r), 0);
    ASSERT_EQ(actx_push(), 2);
    put_byte(p[1]);
    ASSERT_EQ(actx_poll(false), 0); /* parked on context 1 */
    ASSERT_EQ(actx_push(), 3);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(actx_pop(), 0); /* context 1 current: back in epoll */
    ASSERT_EQ(actx_pop(), 0); /* re-homed to the root */
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(r.reads, 1);
    ASSERT_EQ(r.ctx_id, 0);
    ASSERT_EQ(actx_set_fd_handler(p[0], NULL, NULL, NULL), 0);
    close_pipe(p);
}

ACTX_TEST("/fd/ctx/register-again-moves-to-current")
{
    struct fdrec r = {0};
    int p[2];

    make_pipe(p);
    r.fd = p[0];
    ASSERT_EQ(actx_set_fd_handler(p[0], on_read, NULL, &r), 0);
    ASSERT_EQ(actx_push(), 1);
    put_byte(p[1]);
    ASSERT_EQ(actx_poll(false), 0); /* the root's: parked */
    ASSERT_EQ(actx_set_fd_handler(p[0], on_read, NULL, &r), 0);
    ASSERT_TRUE(actx_can_progress());
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(r.ctx_id, 1);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(r.ctx_id, 0);
    ASSERT_EQ(r.reads, 2);
    ASSERT_EQ(actx_set_fd_handler(p[0], NULL, NULL, NULL), 0);
    close_pipe(p);
}

/* A child with nothing of its own does not wait on the parent's fd. */
ACTX_TEST("/fd/ctx/child-poll-returns-when-only-parent-has-fds")
{
    struct fdrec r = {0};
    struct actx_stats st0, st1;
    int p[2];

    make_pipe(p);
    r.fd = p[0];
    ASSERT_EQ(actx_set_fd_handler(p[0], on_read, NULL, &r), 0);
    ASSERT_EQ(actx_push(), 1);
    actx_stats(&st0);
    ASSERT_EQ(actx_poll(true), 0);
    actx_stats(&st1);
    ASSERT_EQ(st1.sleeps, st0.sleeps);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_set_fd_handler(p[0], NULL, NULL, NULL), 0);
    close_pipe(p);
}

/* A handler that does a nested synchronous wait on a child context. */
static void nested_wait_handler(void *opaque)
{
    struct fdrec *r = opaque;
    struct cb_rec done = {0};
    actx_req *req;

    on_read(r);
    ASSERT_EQ(actx_push(), 1);
    req = actx_req_new(rec_done, &done);
    pthread_t t = later_complete(req, 1, 1000, 0, NULL);
    ASSERT_EQ(ACTX_WAIT_WHILE(done.runs == 0), 0);
    thread_join(t);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(done.ctx_id, 1);
}

ACTX_TEST("/fd/ctx/nested-wait-in-handler")
{
    struct fdrec r = {0};
    int p[2];

    make_pipe(p);
    r.fd = p[0];
    r.drain = true;
    put_byte(p[1]);
    put_byte(p[1]);
    ASSERT_EQ(actx_set_fd_handler(p[0], nested_wait_handler, NULL, &r), 0);
    ASSERT_EQ(actx_poll(true), 1);
    ASSERT_EQ(r.reads, 1); /* not re-entered by the nested wait */
    ASSERT_EQ(actx_poll(true), 1);
    ASSERT_EQ(r.reads, 2);
    ASSERT_EQ(actx_set_fd_handler(p[0], NULL, NULL, NULL), 0);
    close_pipe(p);
}

/* --- closed fds ---------------------------------------------------------------- */

/*
 * An outer context's fd closed (a misuse) during a nested wait: nothing
 * spins meanwhile, the pop costs no system call, and the next epoll_ctl on
 * it (here: removing the handler) finds it closed and counts it.
 */
ACTX_TEST("/fd/closed/while-outer")
{
    struct fdrec r = {0};
    struct actx_stats st0, st1;
    int p[2];

    make_pipe(p);
    r.fd = p[0];
    ASSERT_EQ(actx_set_fd_handler(p[0], on_read, NULL, &r), 0);
    ASSERT_EQ(actx_push(), 1);
    put_byte(p[1]);
    ASSERT_EQ(actx_poll(false), 0); /* not this context's */
    close(p[0]);                    /* closed while registered */
    ASSERT_EQ(actx_poll(false), 0);
    ASSERT_EQ(actx_poll(true), 0); /* nothing of this context: no hang */
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_poll(false), 0); /* closed: epoll dropped it */
    ASSERT_EQ(r.reads, 0);
    actx_stats(&st0);
    ASSERT_EQ(actx_set_fd_handler(r.fd, NULL, NULL, NULL), 0);
    actx_stats(&st1);
    ASSERT_EQ(st1.fd_errors, st0.fd_errors + 1);
    ASSERT_FALSE(actx_can_progress()); /* the handler was removed */
    ASSERT_EQ(actx_poll(true), 0);
    close(p[1]);
}

/*
 * A nested context's fd closed while registered (a misuse), then popped:
 * moving the handler to the parent finds it closed and removes it
 * (actx.h, actx_set_fd_handler).  Nothing of it may stay counted in the
 * parent, or the parent could make progress for ever: a blocking poll
 * would sleep with nothing to wait for, and a wait never report -EDEADLK.
 * Both with a root that has fd handlers of its own (the handler is moved
 * into the root's set) and one that has none.
 */
static void closed_in_child_then_popped(bool root_has_fds)
{
    struct fdrec r = {0}, o = {0};
    struct actx_stats st0, st1;
    int p[2], q[2];

    make_pipe(q);
    o.fd = q[0];
    if (root_has_fds) {
        ASSERT_EQ(actx_set_fd_handler(q[0], on_read, NULL, &o), 0);
    }
    ASSERT_EQ(actx_push(), 1);
    make_pipe(p);
    r.fd = p[0];
    ASSERT_EQ(actx_set_fd_handler(p[0], on_read, NULL, &r), 0);
    close(p[0]); /* closed while registered */
    actx_stats(&st0);
    ASSERT_EQ(actx_pop(), 0);
    actx_stats(&st1);
    ASSERT_EQ(st1.fd_errors, st0.fd_errors + 1); /* found closed: removed */
    if (root_has_fds) {
        ASSERT_EQ(actx_set_fd_handler(q[0], NULL, NULL, NULL), 0);
    }
    ASSERT_FALSE(actx_can_progress());
    ASSERT_EQ(actx_poll(true), 0); /* returns at once: nothing to wait for */
    ASSERT_EQ(ACTX_WAIT_WHILE(r.reads == 0), -EDEADLK);
    ASSERT_EQ(r.reads, 0);
    close(p[1]);
    close_pipe(q);
}

ACTX_TEST("/fd/closed/in-child-then-popped")
{
    closed_in_child_then_popped(false);
}

ACTX_TEST("/fd/closed/in-child-then-popped-into-root-set")
{
    closed_in_child_then_popped(true);
}

ACTX_TEST("/fd/closed/then-removed")
{
    struct fdrec r = {0};
    struct actx_stats st0, st1;
    int p[2];

    make_pipe(p);
    r.fd = p[0];
    ASSERT_EQ(actx_set_fd_handler(p[0], on_read, NULL, &r), 0);
    close(p[0]);
    actx_stats(&st0);
    ASSERT_EQ(actx_set_fd_handler(p[0], NULL, NULL, NULL), 0);
    actx_stats(&st1);
    ASSERT_EQ(st1.fd_errors, st0.fd_errors + 1);
    ASSERT_FALSE(actx_can_progress());
    close(p[1]);
}

ACTX_TEST("/fd/closed/then-updated")
{
    struct fdrec r = {0};
    int p[2];

    make_pipe(p);
    r.fd = p[0];
    ASSERT_EQ(actx_set_fd_handler(p[0], on_read, NULL, &r), 0);
    close(p[0]);
    ASSERT_EQ(actx_set_fd_handler(p[0], on_read, on_write, &r), -EBADF);
    ASSERT_FALSE(actx_can_progress());
    close(p[1]);
}

/* Closed while a dup keeps the file open: epoll keeps reporting it under
 * the old registration.  Once the handler gives up on it, the loop must
 * neither call it again nor spin on the stale events. */
static void give_up_on_ebadf(void *opaque)
{
    struct fdrec *r = opaque;
    char b;

    r->reads++;
    if (read(r->fd, &b, 1) < 0 && errno == EBADF) {
        ASSERT_EQ(actx_set_fd_handler(r->fd, NULL, NULL, NULL), 0);
    }
}

/* A handler on p[0], whose number is closed while a dup (returned) keeps
 * the file open and readable. */
static int closed_but_dup_open(struct fdrec *r, int p[2])
{
    int d;

    make_pipe(p);
    r->fd = p[0];
    ASSERT_EQ(actx_set_fd_handler(p[0], give_up_on_ebadf, NULL, r), 0);
    d = dup(p[0]);
    ASSERT_GE(d, 0);
    close(p[0]);
    put_byte(p[1]); /* readable through the dup, forever */
    return d;
}

ACTX_TEST("/fd/closed/dup-keeps-file-open")
{
    struct fdrec r = {0};
    struct actx_stats st0, st1;
    int p[2], d, reads;

    d = closed_but_dup_open(&r, p);
    actx_stats(&st0);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(r.reads, 1);
    ASSERT_FALSE(actx_can_progress());
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(actx_poll(false), 0);
    }
    reads = r.reads;
    ASSERT_EQ(reads, 1);
    actx_stats(&st1);
    ASSERT_GE(st1.fd_errors, st0.fd_errors + 1);
    /* No stale registration is left: the backend fd is not readable. */
    ASSERT_FALSE(readable(actx_backend_fd()));
    /* And the loop still works for new fds. */
    struct fdrec r2 = {0};
    int q[2];
    make_pipe(q);
    r2.fd = q[0];
    ASSERT_EQ(actx_set_fd_handler(q[0], on_read, NULL, &r2), 0);
    put_byte(q[1]);
    ASSERT_EQ(actx_poll(true), 1);
    ASSERT_EQ(r2.reads, 1);
    ASSERT_EQ(actx_set_fd_handler(q[0], NULL, NULL, NULL), 0);
    close_pipe(q);
    close(d);
    close(p[1]);
}

/* The same when the epoll set that may hold the dead registration cannot
 * be replaced at once (epoll_create1 fails): the next poll replaces it,
 * and the handler never runs again meanwhile. */
ACTX_TEST("/fd/closed/dup-keeps-file-open-rebuild-retried")
{
    struct fdrec r = {0};
    int p[2], d;

    d = closed_but_dup_open(&r, p);
    inject_fail(&inject_epoll_create, 1);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(r.reads, 1);
    ASSERT_EQ(inject_epoll_create_hits, 1);
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(actx_poll(false), 0);
    }
    ASSERT_EQ(r.reads, 1);
    ASSERT_FALSE(readable(actx_backend_fd()));
    close(d);
    close(p[1]);
}

/* Many fds, more than one epoll batch, all dispatched. */
ACTX_TEST("/fd/many/200-eventfds")
{
    enum { N = 200 };
    struct fdrec r[N];
    int fds[N], total = 0;

    memset(r, 0, sizeof(r));
    for (int i = 0; i < N; i++) {
        fds[i] = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
        ASSERT_GE(fds[i], 0);
        r[i].fd = fds[i];
        r[i].remove_self = true;
        ASSERT_EQ(actx_set_fd_handler(fds[i], on_read, NULL, &r[i]), 0);
    }
    while (actx_poll(false)) {
    }
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(r[i].reads, 1);
        total += r[i].reads;
        close(fds[i]);
    }
    ASSERT_EQ(total, N);
    ASSERT_FALSE(actx_can_progress());
}

/* Owner thread only: another thread's call is refused, nothing changes. */
static void *set_from_other(void *arg)
{
    int *fd = arg;

    /* Another thread registers in its own loop: allowed, independent. */
    ASSERT_EQ(actx_set_fd_handler(*fd, on_read, NULL, NULL), 0);
    ASSERT_EQ(actx_set_fd_handler(*fd, NULL, NULL, NULL), 0);
    return NULL;
}

ACTX_TEST("/fd/threads/independent-loops")
{
    struct fdrec r = {0};
    int p[2];

    make_pipe(p);
    r.fd = p[0];
    ASSERT_EQ(actx_set_fd_handler(p[0], on_read, NULL, &r), 0);
    thread_join(thread_start(set_from_other, &p[0]));
    put_byte(p[1]);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(r.reads, 1);
    ASSERT_EQ(actx_set_fd_handler(p[0], NULL, NULL, NULL), 0);
    close_pipe(p);
}

/*
 * A blocking poll that slept (only an idle BH scheduled) wakes with the fd
 * ready; the idle BH, run before the fds, polls again and that nested wait
 * reports the same fd.  Its handler must run once per readiness: the
 * nested poll must not also dispatch the outer wait's (now stale) event,
 * which would call on_read on an empty pipe.  Found by tests/fuzz.
 */
static void poll_blocking_once(void *opaque)
{
    int *ran = opaque;

    ASSERT_EQ(actx_poll(true), 1);
    (*ran)++;
}

ACTX_TEST("/fd/read/nested-poll-no-stale-event")
{
    struct fdrec r = {.drain = true};
    actx_bh *bh;
    int p[2], ran = 0;

    make_pipe(p);
    r.fd = p[0];
    put_byte(p[1]);
    ASSERT_EQ(actx_set_fd_handler(p[0], on_read, NULL, &r), 0);
    bh = actx_bh_new(poll_blocking_once, &ran);
    actx_bh_schedule_idle(bh);
    actx_poll(true);
    ASSERT_EQ(ran, 1);
    ASSERT_EQ(r.reads, 1); /* on_read asserts the byte was there */
    ASSERT_FALSE(readable(p[0]));
    actx_bh_delete(bh);
    ASSERT_EQ(actx_set_fd_handler(p[0], NULL, NULL, NULL), 0);
    close_pipe(p);
}

/* --- after a wait that ran nothing ------------------------------------------ */

/*
 * A blocking wait that ends with nothing run (actx_poll_timeout's timeout,
 * a signal, the context's deadline) must not make the next iteration
 * miss a handler whose fd is ready by then: one iteration runs the
 * current context's ready fd handlers (actx.h, actx_poll).
 */

static void count(void *opaque)
{
    (*(int *)opaque)++;
}

enum made_ready {
    REGISTERED_READY, /* a handler registered for an fd already ready */
    WRITTEN_AFTER,    /* a registered handler's fd written to */
};

/* fd: an eventfd; make it a ready fd of the current context. */
static void make_ready(int fd, enum made_ready how, int *runs)
{
    uint64_t one = 1;

    ASSERT_EQ(write(fd, &one, sizeof(one)), (long)sizeof(one));
    if (how == REGISTERED_READY) {
        ASSERT_EQ(actx_set_fd_handler(fd, count, NULL, runs), 0);
    }
}

/* actx_poll_timeout(timeout_ns) with nothing ready: -ETIMEDOUT. */
static void poll_times_out(int64_t timeout_ns)
{
    int r;

    do {
        r = actx_poll_timeout(timeout_ns);
    } while (r == -EINTR);
    ASSERT_EQ(r, -ETIMEDOUT);
}

static void ready_after_timeout(enum made_ready how, bool blocking_next)
{
    static const int64_t timeouts[] = {0, 1000, 5 * 1000 * 1000};
    int idle = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), idle_runs = 0;

    ASSERT_GE(idle, 0);
    /* Something of the context to wait for, never ready. */
    ASSERT_EQ(actx_set_fd_handler(idle, count, NULL, &idle_runs), 0);
    for (int polling = 0; polling < 2; polling++) {
        ASSERT_EQ(actx_set_poll_max_ns(polling ? 100 * 1000 : 0), 0);
        for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++) {
            int e = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), runs = 0;
            struct cb_rec bh_rec = {0};
            actx_bh *bh = actx_bh_new(rec_fn, &bh_rec);

            ASSERT_GE(e, 0);
            ASSERT_NOT_NULL(bh);
            if (how == WRITTEN_AFTER) {
                ASSERT_EQ(actx_set_fd_handler(e, count, NULL, &runs), 0);
            }
            poll_times_out(timeouts[i]);
            make_ready(e, how, &runs);
            if (blocking_next) {
                /* Something else runnable too: the poll does not sleep. */
                actx_bh_schedule(bh);
                ASSERT_EQ(actx_poll(true), 1);
                ASSERT_EQ(bh_rec.runs, 1);
            } else {
                ASSERT_EQ(actx_poll(false), 1);
            }
            ASSERT_EQ(runs, 1);
            actx_bh_delete(bh);
            ASSERT_EQ(actx_set_fd_handler(e, NULL, NULL, NULL), 0);
            close(e);
        }
    }
    ASSERT_EQ(idle_runs, 0);
    ASSERT_EQ(actx_set_fd_handler(idle, NULL, NULL, NULL), 0);
    close(idle);
}

ACTX_TEST("/fd/after-timeout/registered-ready-runs-at-next-poll")
{
    ready_after_timeout(REGISTERED_READY, false);
}

ACTX_TEST("/fd/after-timeout/written-runs-at-next-poll")
{
    ready_after_timeout(WRITTEN_AFTER, false);
}

ACTX_TEST("/fd/after-timeout/ready-runs-at-next-blocking-poll")
{
    ready_after_timeout(REGISTERED_READY, true);
    ready_after_timeout(WRITTEN_AFTER, true);
}

/* The context's deadline passes in ACTX_WAIT_WHILE, actx_poll(true) and
 * actx_poll_timeout: then a ready handler runs at the next poll. */
ACTX_TEST("/fd/after-deadline/ready-runs-at-next-poll")
{
    for (int waiter = 0; waiter < 3; waiter++) {
        int idle = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), idle_runs = 0;
        int e = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), runs = 0;

        ASSERT_GE(idle, 0);
        ASSERT_GE(e, 0);
        ASSERT_EQ(actx_push_deadline(actx_now_ns() + 1000 * 1000), 1);
        ASSERT_EQ(actx_set_fd_handler(idle, count, NULL, &idle_runs), 0);
        if (waiter == 0) {
            ASSERT_EQ(ACTX_WAIT_WHILE(idle_runs == 0), -ETIMEDOUT);
        } else if (waiter == 1) {
            while (actx_now_ns() < actx_deadline()) {
                ASSERT_EQ(actx_poll(true), 0);
            }
            ASSERT_EQ(actx_poll(true), 0); /* past it: looks, runs nothing */
        } else {
            poll_times_out(-1);
        }
        make_ready(e, REGISTERED_READY, &runs);
        ASSERT_EQ(actx_poll(false), 1);
        ASSERT_EQ(runs, 1);
        ASSERT_EQ(idle_runs, 0);
        ASSERT_EQ(actx_set_fd_handler(e, NULL, NULL, NULL), 0);
        ASSERT_EQ(actx_set_fd_handler(idle, NULL, NULL, NULL), 0);
        ASSERT_EQ(actx_pop(), 0);
        close(e);
        close(idle);
    }
}

/* A signal ends actx_poll_timeout's sleep: a ready handler runs at the
 * next poll. */
ACTX_TEST("/fd/after-signal/ready-runs-at-next-poll")
{
    int idle = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), idle_runs = 0;
    int e = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), runs = 0;

    ASSERT_GE(idle, 0);
    ASSERT_GE(e, 0);
    ASSERT_EQ(actx_set_fd_handler(idle, count, NULL, &idle_runs), 0);
    ASSERT_EQ(actx_set_poll_max_ns(100 * 1000), 0);
    poll_until_signalled();
    make_ready(e, REGISTERED_READY, &runs);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(runs, 1);
    ASSERT_EQ(idle_runs, 0);
    ASSERT_EQ(actx_set_fd_handler(e, NULL, NULL, NULL), 0);
    ASSERT_EQ(actx_set_fd_handler(idle, NULL, NULL, NULL), 0);
    close(e);
    close(idle);
}
