/*
 * poll.c - running the loop: draining the mailbox into contexts, one
 * iteration for the current context, blocking, flush, run/stop, embedding.
 *
 * Only the current context's things run.  A message for another context is
 * appended to that context's queue (O(1), nothing is scanned per poll) and
 * runs when it is current again.
 *
 * Fast path: with an empty mailbox, no fd handler and no timer, a
 * non-blocking poll is the BH list and the queue of the current context,
 * run inline with no syscall.
 */
#include "actx-internal.h"

#include <errno.h>

void actx__dispatch(actx__loop *loop, actx__msg *m)
{
    actx_ctx *c;

    switch (m->type) {
    case ACTX__MSG_REQ: {
        actx_req *req = (actx_req *)m;

        c = actx__obj_ctx(&req->ctx);
        if (c != loop->cur) {
            loop->st.completions_deferred++;
        }
        actx__queue_append(c, m);
        break;
    }
    case ACTX__MSG_CALL:
    case ACTX__MSG_STOP:
        /* The call keeps its reference on the context it named. */
        actx__queue_append(actx__ctx_resolve(((actx__call *)m)->ctx), m);
        break;
    case ACTX__MSG_BH:
        actx__bh_arrived(loop, ACTX__CONTAINER_OF(m, actx_bh, msg));
        break;
    case ACTX__MSG_RELEASE:
        actx__ctx_release_msg(loop,
                              ACTX__CONTAINER_OF(m, actx_ctx, release_msg));
        break;
    default:
        actx__assert(!"unknown message type");
    }
}

/*
 * Take everything from the mailbox, reverse it into arrival order and hand
 * each message to its context.  The common case - a batch of completions of
 * one live context - is spliced onto that context's queue whole, so the
 * batch is walked once here and once when it runs.  With close, the
 * mailbox is left CLOSED (shutdown): later posts are refused.
 */
void actx__drain(actx__loop *loop, bool close)
{
    actx__msg *lifo, *fifo = NULL, *last, *m;
    actx_ctx *same = NULL;
    long n = 0;

    /* Acquire (seq_cst) pairs with P1 of the posters (mailbox.c). */
    lifo = atomic_exchange(&loop->mb->head, close ? ACTX__MB_CLOSED : NULL);
    actx__assert(lifo != ACTX__MB_CLOSED);
    last = lifo;
    if (lifo && lifo->type == ACTX__MSG_REQ) {
        same = ((actx_req *)lifo)->ctx;
        if (same->fwd) {
            same = NULL;
        }
    }
    while (lifo) {
        actx__msg *next = lifo->next;

        if (same &&
            (lifo->type != ACTX__MSG_REQ || ((actx_req *)lifo)->ctx != same)) {
            same = NULL;
        }
        lifo->next = fifo;
        fifo = lifo;
        lifo = next;
        n++;
    }
    loop->st.mailbox_msgs += n;
    if (same) {
        *same->q_tail = fifo;
        same->q_tail = &last->next;
        same->q_len += n;
        if (same != loop->cur) {
            loop->st.completions_deferred += n;
        }
        return;
    }
    for (m = fifo; m; m = fifo) {
        fifo = m->next;
        actx__dispatch(loop, m);
    }
}

/* Everything of c that is due now: BHs, queue, ready fds, due timers. */
static int run_pass(actx__loop *loop, actx_ctx *c, bool *ran_idle)
{
    int progress = 0;

    if (c->bh_head) {
        progress |= actx__bh_poll_ctx(loop, c, ran_idle);
    }
    if (c->q_head) {
        progress |= actx__run_queue(loop, c);
    }
    if (ACTX__UNLIKELY(loop->nfds != 0)) {
        progress |= actx__fd_poll(loop, c);
    }
    if (ACTX__UNLIKELY(c->timers != NULL)) {
        progress |= actx__timers_run(loop, c);
    }
    return progress;
}

static bool can_progress(actx_ctx *c)
{
    return c->q_head || c->bh_head || c->npending > 0;
}

bool actx_can_progress(void)
{
    actx__loop *loop = actx__loop_get();

    return loop && can_progress(loop->cur);
}

/* Runnable now without waiting (idle BHs aside)? */
static bool work_now(actx__loop *loop, actx_ctx *c)
{
    /* seq_cst load: O3 of the wake-up protocol (mailbox.c). */
    return c->q_head || (uintptr_t)atomic_load(&loop->mb->head) > 1 ||
           actx__io_ready(loop) || (c->bh_head && actx__bh_has_nonidle(c)) ||
           (c->timers && actx__timers_next_ns(loop, c) == 0);
}

/* Sleep timeout for c, in ns; -1 for none. */
static int64_t sleep_timeout(actx__loop *loop, actx_ctx *c)
{
    int64_t t = c->timers ? actx__timers_next_ns(loop, c) : -1;

    if ((c->bh_head || ACTX__UNLIKELY(c->parked != NULL)) &&
        (t < 0 || t > (int64_t)ACTX__IDLE_NS)) {
        /* Idle BHs wait at most 10 ms; so does an fd re-arm retry (fd.c). */
        t = ACTX__IDLE_NS;
    }
    return t;
}

static inline void disarm_embedding(actx__loop *loop)
{
    if (ACTX__UNLIKELY(loop->notify_armed)) {
        actx__mb_end_sleep(loop);
        actx__mb_rearm(loop);
    }
}

/* A blocking poll (the non-blocking one is inline in actx_poll). */
static __attribute__((noinline)) int poll_blocking(actx__loop *loop)
{
    bool ran_idle = false;
    actx_ctx *c;

    disarm_embedding(loop);
    c = loop->cur;
    actx__drain_if_any(loop);
    for (;;) {
        int64_t timeout;

        if (work_now(loop, c)) {
            actx__drain_if_any(loop);
            if (run_pass(loop, c, &ran_idle)) {
                return 1;
            }
            if (ran_idle) {
                return 0;
            }
        }
        if (!can_progress(c)) {
            return 0;
        }
        actx__io_flush(loop); /* the ring's batch, before sleeping */
        timeout = sleep_timeout(loop, c);
        /* Before preparing: the hook may run work (a nested poll) instead. */
        if (ACTX__UNLIKELY(loop->sleep_hook != NULL) &&
            !loop->sleep_hook(loop, true)) {
            if (actx__tls_loop != loop) {
                return 1; /* that work shut this thread's runtime down */
            }
            continue;
        }
        actx__mb_prepare_sleep(loop,
                               (timeout < 0 || timeout > (int64_t)ACTX__IDLE_NS)
                                   ? ACTX__WAKE_UNBOUNDED
                                   : ACTX__WAKE_ANY);
        if (!work_now(loop, c)) {
            loop->st.sleeps++;
            actx__backend_wait(loop, timeout);
        }
        actx__mb_end_sleep(loop);
        if (ACTX__UNLIKELY(loop->sleep_hook != NULL)) {
            loop->sleep_hook(loop, false);
        }
        actx__drain_if_any(loop);
        if (run_pass(loop, c, &ran_idle)) {
            return 1;
        }
        if (ran_idle) {
            return 0; /* only idle BHs were due: ran them, done */
        }
    }
}

int actx_poll(bool blocking)
{
    actx__loop *loop = actx__loop_get();
    int r;

    if (ACTX__UNLIKELY(!loop)) {
        return 0;
    }
    bool outer = actx__enter(loop);
    if (ACTX__LIKELY(!blocking)) {
        bool ran_idle;

        /* The hot path: no syscall with no fd handler and no timer. */
        disarm_embedding(loop);
        actx__drain_if_any(loop);
        r = run_pass(loop, loop->cur, &ran_idle);
    } else {
        r = poll_blocking(loop);
    }
    /* What this iteration submitted to the ring goes in with one syscall. */
    actx__io_flush(loop);
    actx__leave(loop, outer);
    return r;
}

int actx_process_queue(void)
{
    actx__loop *loop = actx__loop_get();
    int r = 0;

    if (ACTX__UNLIKELY(!loop)) {
        return 0;
    }
    bool outer = actx__enter(loop);
    actx__drain_if_any(loop);
    if (loop->cur->q_head) {
        r = actx__run_queue(loop, loop->cur);
    }
    actx__io_flush(loop);
    actx__leave(loop, outer);
    return r;
}

static int loop_flush(actx__loop *loop)
{
    actx_ctx *c = loop->cur;

    for (;;) {
        actx__drain_if_any(loop);
        if (c->nreq == 0 && !c->q_head &&
            !(c->bh_head && actx__bh_has_nonidle(c))) {
            return 0;
        }
        if (actx_poll(true) == 0 && !can_progress(c)) {
            return -EDEADLK;
        }
    }
}

int actx_flush(void)
{
    actx__loop *loop = actx__loop_get();
    int r;

    if (ACTX__UNLIKELY(!loop)) {
        return -errno;
    }
    bool outer = actx__enter(loop);
    r = loop_flush(loop);
    actx__leave(loop, outer);
    return r;
}

static int loop_run(actx__loop *loop)
{
    actx_ctx *c = loop->cur;

    if (c->stop) {
        /* Stopped while not running (uv_stop): one iteration, no wait. */
        c->stop = false;
        actx_poll(false);
        return 0;
    }
    for (;;) {
        int r = actx_poll(true);

        if (c->stop) {
            c->stop = false;
            return 0;
        }
        if (r == 0 && !can_progress(c)) {
            return 0;
        }
    }
}

int actx_run(void)
{
    actx__loop *loop = actx__loop_get();
    int r;

    if (ACTX__UNLIKELY(!loop)) {
        return -errno;
    }
    bool outer = actx__enter(loop);
    r = loop_run(loop);
    actx__leave(loop, outer);
    return r;
}

int actx_backend_fd(void)
{
    actx__loop *loop = actx__loop_get();

    return loop ? loop->epfd : -errno;
}

int actx_backend_timeout_ms(void)
{
    actx__loop *loop = actx__loop_get();
    actx_ctx *c;
    int64_t t;

    if (!loop) {
        return -1;
    }
    c = loop->cur;
    actx__io_flush(loop); /* the embedder is about to wait */
    actx__mb_prepare_sleep(loop, ACTX__WAKE_UNBOUNDED);
    loop->notify_armed = true;
    if (work_now(loop, c)) {
        return 0;
    }
    t = sleep_timeout(loop, c);
    if (t < 0) {
        return -1;
    }
    /* Round up: waking early would only spin. */
    return (int)((t + 999999) / 1000000);
}
