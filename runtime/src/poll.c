/*
 * poll.c - running the loop: one iteration for the current context,
 * blocking, flush, run/stop, embedding.
 *
 * Only the current context's things run.  A message for another context is
 * appended to that context's queue by the drain (mailbox.c; O(1), nothing
 * is scanned per poll) and runs when it is current again.
 *
 * Fast path: with an empty mailbox, no fd handler and no timer, a
 * non-blocking poll is the BH list and the queue of the current context,
 * run inline with no syscall.
 */
#include "actx-internal.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>

/*
 * Everything of c that is due now: BHs, queue, ready fds, due timers.  Each
 * stage stops when a callback leaves another context current, and so does
 * the pass (actx__pass_ends): the rest of c waits for c.
 */
static int run_pass(actx__loop *loop, actx_ctx *c, bool *ran_idle)
{
    int progress = 0;

    if (c->bh_head) {
        progress |= actx__bh_poll_ctx(loop, c, ran_idle);
        if (actx__pass_ends(loop, c)) {
            return progress;
        }
    }
    if (c->q_head) {
        progress |= actx__run_queue(loop, c);
        if (actx__pass_ends(loop, c)) {
            return progress;
        }
    }
    if (ACTX__UNLIKELY(loop->nfds != 0)) {
        progress |= actx__fd_poll(loop, c);
        if (actx__pass_ends(loop, c)) {
            return progress;
        }
    }
    if (ACTX__UNLIKELY(c->timers != NULL)) {
        progress |= actx__timers_run(loop, c);
    }
    return progress;
}

static bool can_progress(actx_ctx *c)
{
    return c->q_head || c->bh_head || c->npending > 0 || c->nreq > 0;
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

/*
 * Ready fds that a wait stashed and no run_pass has dispatched yet (the
 * polling window's zero-timeout waits, or a sleep): run_pass must follow.
 * Not part of work_now, which the window calls at every look.
 */
static inline bool fds_stashed(actx__loop *loop)
{
    return ACTX__UNLIKELY(loop->nfds != 0) && actx__fd_stashed(loop);
}

/* Sleep timeout for c, in ns; -1 for none. */
static int64_t sleep_timeout(actx__loop *loop, actx_ctx *c)
{
    int64_t t = c->timers ? actx__timers_next_ns(loop, c) : -1;

    if ((c->bh_head || ACTX__UNLIKELY(loop->fd_deferred != 0)) &&
        (t < 0 || t > (int64_t)ACTX__IDLE_NS)) {
        /* Idle BHs wait at most 10 ms; so does an fd re-arm retry (fd.c). */
        t = ACTX__IDLE_NS;
    }
    return t;
}

/*
 * A sleep timeout (ns, -1: none) shortened so that it ends by deadline:
 * 0 once it has passed, never a negative (endless) wait for a deadline
 * too far out to count in int64_t.
 */
static inline int64_t timeout_by(int64_t timeout, uint64_t deadline,
                                 uint64_t now)
{
    uint64_t left = now >= deadline ? 0 : deadline - now;

    if (left > (uint64_t)INT64_MAX) {
        left = INT64_MAX;
    }
    return timeout < 0 || (uint64_t)timeout > left ? (int64_t)left : timeout;
}

/*
 * Adaptive polling (actx_set_poll_max_ns).
 *
 * Before a blocking poll arms the wake-up protocol and sleeps, it looks for
 * work (work_now: the mailbox head, the queue, non-idle BHs, due timers of
 * the current context, ring completions) in a loop for up to a window of
 * loop->poll_ns.  The protocol is not armed meanwhile: notify_me stays 0,
 * so posters write no eventfd while the owner polls (they see an owner
 * that is not about to sleep).  When the window ends empty-handed the
 * owner proceeds exactly as without polling: O1/O2, the O3 re-check, sleep
 * - so a post that lands after the window is either seen by O3 or wakes
 * the sleep (the spin model tests/model/mailbox.pml -DPOLL checks both).
 * Polling only decides when the owner looks, never what runs: what it
 * finds is run by the same drain and run_pass as without it.
 *
 * Fd handlers are polled too: while the loop has any, the window waits on
 * the current context's epoll set with a zero timeout at most once per
 * POLL_FD_NS (a system call can cost a microsecond or more, so not at
 * every look; its time counts in the window).  That wait stashes the ready
 * fds as any wait does (fd.c); a fresh stash ends the window as any other
 * work does (work_now itself, called at every look, leaves fds out) and
 * the run_pass after it dispatches each event once.  Fds of other
 * contexts are in their own sets (fd.c), so they cannot keep the window
 * busy.  The wait may also report the eventfd (a write left from an
 * earlier sleep) and read it, before O1: the spin model
 * (tests/model/mailbox.pml -DPOLL) covers that read.
 *
 * The window adapts (the idea of QEMU's poll-grow/poll-shrink, with its own
 * rule).  The figure that tells whether polling pays is how long the wait
 * (the empty window and the sleep after it) lasted:
 *   - work found while polling (a ready fd included): the window was
 *     long enough.  If it was found in the second half, the window is
 *     doubled (the next wait may be a little longer); else it stays;
 *   - empty window, then a sleep, ending within poll_max_ns: a longer
 *     window would have caught it, so the window doubles (from 0 it starts
 *     at POLL_START_NS, or poll_max_ns if that is smaller);
 *   - empty window and sleep longer than poll_max_ns: polling could not
 *     have helped; the window halves, and drops to 0 below POLL_MIN_NS;
 *   - a wait longer than POLL_IDLE_FACTOR * poll_max_ns: the loop is idle,
 *     the window drops to 0 at once.
 * An idle loop stops polling after its first long sleep; the CPU spent
 * polling per sleep is at most the window, which only grows while sleeps
 * are short (so polling costs at most about as much CPU as sleeping would
 * have left idle).  The window never exceeds
 * poll_max_ns, nor the time until the context's next timer or idle BH.
 */
#define POLL_START_NS 4000
#define POLL_MIN_NS 500
#define POLL_IDLE_FACTOR 16
#define POLL_FD_NS 1000 /* the least time between two fd checks */
#define POLL_LIMIT_NS (10 * 1000 * 1000 * 1000LL)

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

static void poll_grow(actx__loop *loop)
{
    int64_t w = loop->poll_ns ? loop->poll_ns * 2 : POLL_START_NS;

    loop->poll_ns = w < loop->poll_max_ns ? w : loop->poll_max_ns;
}

/*
 * Poll for work for up to the window (measured from *start, which the
 * first call of one actx_poll sets: messages for other contexts do not
 * restart it).  True when work_now() or a zero-timeout wait for fd
 * handlers found something.  False when the window ran out: the time it
 * took is part of the wait, so *timeout (ns, -1: none), computed before
 * the window, is cut to what is left of it for the sleep that follows (a
 * deadline or a timer the window ran into is not slept for again).
 */
static bool poll_window(actx__loop *loop, actx_ctx *c, int64_t *timeout,
                        uint64_t *start)
{
    int64_t w = loop->poll_ns;
    uint64_t entry, end, fd_next = 0;
    unsigned i;

    if (*timeout >= 0 && *timeout < w) {
        w = *timeout;
    }
    if (w <= 0) {
        return false;
    }
    entry = actx_now_ns();
    if (*start == 0) {
        *start = entry;
    }
    end = *start + (uint64_t)w;
    for (i = 1;; i++) {
        if (work_now(loop, c)) {
            break;
        }
        if ((i & 7) == 0) {
            uint64_t now = actx_now_ns();

            if (now >= end) {
                if (*timeout > 0) {
                    uint64_t spent = now - entry;

                    *timeout = spent >= (uint64_t)*timeout
                                   ? 0
                                   : *timeout - (int64_t)spent;
                }
                return false;
            }
            if (ACTX__UNLIKELY(loop->nfds != 0) && now >= fd_next) {
                /* Ready fds are stashed for the run_pass that follows. */
                fd_next = now + POLL_FD_NS;
                actx__fd_wait(loop, 0);
                if (actx__fd_stashed(loop)) {
                    break;
                }
                continue;
            }
        }
        /*
         * Now and then give the CPU away: on a machine with more runnable
         * threads than CPUs the thread that will post (often the peer of a
         * round trip) may be waiting for this very CPU; spinning would
         * only make the window expire.  With nothing else runnable,
         * sched_yield returns at once.
         */
        if ((i & 63) == 0) {
            sched_yield();
        } else {
            cpu_relax();
        }
    }
    /* Found late in the window: let it grow (see above). */
    if (i > 1 && loop->poll_ns == w &&
        actx_now_ns() - *start > (uint64_t)w / 2) {
        poll_grow(loop);
    }
    return true;
}

/*
 * An empty window (maybe of 0 ns) was followed by a sleep; the whole wait,
 * window and sleep, took slept_ns: adapt the window.
 */
static void poll_adapt(actx__loop *loop, uint64_t slept_ns)
{
    if (slept_ns <= (uint64_t)loop->poll_max_ns) {
        poll_grow(loop);
    } else if (slept_ns / POLL_IDLE_FACTOR > (uint64_t)loop->poll_max_ns) {
        loop->poll_ns = 0;
    } else {
        loop->poll_ns /= 2;
        if (loop->poll_ns < POLL_MIN_NS) {
            loop->poll_ns = 0;
        }
    }
}

int actx_set_poll_max_ns(int64_t ns)
{
    actx__loop *loop;

    if (ns < 0) {
        return -EINVAL;
    }
    loop = actx__loop_get();
    if (!loop) {
        return -errno;
    }
    if (ns > POLL_LIMIT_NS) {
        ns = POLL_LIMIT_NS;
    }
    loop->poll_max_ns = ns;
    if (loop->poll_ns > ns) {
        loop->poll_ns = ns;
    }
    return 0;
}

static inline void disarm_embedding(actx__loop *loop)
{
    if (ACTX__UNLIKELY(loop->notify_armed)) {
        actx__mb_end_sleep(loop);
        actx__mb_rearm(loop);
    }
}

/*
 * A blocking poll (the non-blocking one is inline in actx_poll).  With a
 * deadline (actx_poll_timeout; NO_DEADLINE: none, but still interruptible)
 * the waiting, window included, ends by it (-ETIMEDOUT) and a signal that
 * interrupts the sleep ends the call (-EINTR), nothing run either way.
 */
#define NO_DEADLINE UINT64_MAX

static inline int wait_and_run(actx__loop *loop, uint64_t deadline)
{
    bool ran_idle = false, looked = false;
    uint64_t poll_start = 0;
    actx_ctx *c;

    disarm_embedding(loop);
    c = loop->cur;
    actx__drain_if_any(loop);
    for (;;) {
        int64_t timeout;
        uint64_t slept;
        int waited = 0;

        if (work_now(loop, c) || fds_stashed(loop)) {
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
        if (ACTX__UNLIKELY(deadline != 0) && deadline != NO_DEADLINE) {
            uint64_t now = actx_now_ns();

            if (now >= deadline) {
                /*
                 * Past it: ready fds are runnable too, but only a wait
                 * finds them, so look once without sleeping (timeout 0).
                 */
                if (looked || loop->nfds == 0) {
                    return -ETIMEDOUT;
                }
                looked = true;
                now = deadline;
            }
            timeout = timeout_by(timeout, deadline, now);
        }
        if (ACTX__UNLIKELY(loop->poll_max_ns != 0) &&
            poll_window(loop, c, &timeout, &poll_start)) {
            continue; /* found work: run it as usual */
        }
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
                                   : ACTX__WAKE_ANY,
                               c->depth);
        if (!work_now(loop, c)) {
            loop->st.sleeps++;
            /* The wait counts from the start of the window, if any. */
            slept = !loop->poll_max_ns ? 0
                    : poll_start       ? poll_start
                                       : actx_now_ns();
            waited = actx__fd_wait(loop, timeout);
            if (ACTX__UNLIKELY(slept != 0)) {
                poll_adapt(loop, actx_now_ns() - slept);
            }
        }
        actx__mb_end_sleep(loop);
        if (ACTX__UNLIKELY(loop->sleep_hook != NULL)) {
            loop->sleep_hook(loop, false);
        }
        actx__drain_if_any(loop);
        if (ACTX__UNLIKELY(deadline != 0) && !work_now(loop, c) &&
            !fds_stashed(loop)) {
            /* Nothing to run: a signal or the deadline ends the call. */
            if (waited == -EINTR) {
                return -EINTR;
            }
            if (deadline != NO_DEADLINE && actx_now_ns() >= deadline) {
                return -ETIMEDOUT;
            }
        }
        if (run_pass(loop, c, &ran_idle)) {
            return 1;
        }
        if (ran_idle) {
            return 0; /* only idle BHs were due: ran them, done */
        }
    }
}

static __attribute__((noinline)) int poll_blocking(actx__loop *loop,
                                                   uint64_t deadline)
{
    int r = wait_and_run(loop, deadline);

    /*
     * What a wait stashed is for the run_pass after it in this call
     * (fd.c).  A return that skipped that run_pass (the timeout or the
     * deadline passed) must not leave it to the next call, whose run_pass
     * would trust it and miss the fds that turned ready, or were
     * registered, since.  (loop is gone if work run here shut this
     * thread's runtime down; with no fd handler, the first registration
     * drops the stash.)
     */
    if (actx__tls_loop == loop && ACTX__UNLIKELY(loop->nfds != 0)) {
        actx__fd_stash_drop(loop);
    }
    return r;
}

/*
 * The effective deadline of the current context (actx_push_deadline) as a
 * poll_blocking deadline: 0 and NO_DEADLINE mean something else there.
 */
static inline uint64_t ctx_deadline(actx__loop *loop)
{
    uint64_t d = loop->cur->deadline;

    return d == 0 ? 1 : d == NO_DEADLINE ? NO_DEADLINE - 1 : d;
}

/*
 * actx_poll(true) in a context with a deadline: the sleep ends at the
 * deadline, and the call then returns 0 (nothing ran), having run what was
 * runnable.  A signal does not end it, as it does not without a deadline.
 */
static int poll_ctx_deadline(actx__loop *loop)
{
    int r;

    do {
        r = poll_blocking(loop, ctx_deadline(loop));
    } while (r == -EINTR);
    return r < 0 ? 0 : r;
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
    } else if (ACTX__LIKELY(loop->cur->deadline == NO_DEADLINE)) {
        r = poll_blocking(loop, 0);
    } else {
        r = poll_ctx_deadline(loop);
    }
    /* What this iteration submitted to the ring goes in with one syscall. */
    actx__io_flush(loop);
    actx__leave(loop, outer);
    return r;
}

int actx_poll_timeout(int64_t timeout_ns)
{
    actx__loop *loop = actx__loop_get();
    uint64_t deadline = NO_DEADLINE;
    int r;

    if (ACTX__UNLIKELY(!loop)) {
        return -errno;
    }
    if (timeout_ns >= 0) {
        deadline = actx_now_ns() + (uint64_t)timeout_ns;
        if (deadline == NO_DEADLINE) {
            deadline--; /* that means "none" */
        }
    }
    if (ACTX__UNLIKELY(loop->cur->deadline != NO_DEADLINE) &&
        ctx_deadline(loop) < deadline) {
        deadline = ctx_deadline(loop); /* the context's comes first */
    }
    bool outer = actx__enter(loop);
    r = poll_blocking(loop, deadline);
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

/* What actx_flush() waits for: an outstanding request, a queued completion
 * or call, or a scheduled non-idle BH of c (arrivals moved in first). */
static bool flush_pending(actx__loop *loop, actx_ctx *c)
{
    actx__drain_if_any(loop);
    return c->nreq != 0 || c->q_head || (c->bh_head && actx__bh_has_nonidle(c));
}

/* After the current context's deadline (what ran before it looked)? */
static inline bool ctx_expired(actx_ctx *c)
{
    return ACTX__UNLIKELY(c->deadline != NO_DEADLINE) &&
           actx_now_ns() >= c->deadline;
}

static int loop_flush(actx__loop *loop)
{
    actx_ctx *c = loop->cur;
    bool expired = false;

    for (;;) {
        if (!flush_pending(loop, c)) {
            return 0;
        }
        if (ACTX__UNLIKELY(expired)) {
            return -ETIMEDOUT;
        }
        /*
         * loop->cur, not c: a callback that left another context pushed
         * keeps c's work waiting until a callback of that context pops
         * it, and none will when it can make no progress.
         */
        if (actx_poll(true) == 0 && !can_progress(loop->cur)) {
            return -EDEADLK;
        }
        /* Also loop->cur's: a context left pushed whose deadline passed
         * sleeps no more, and the flush would spin on it. */
        expired = ctx_expired(c) || ctx_expired(loop->cur);
    }
}

bool actx_flush_pending(void)
{
    actx__loop *loop = actx__loop_get();

    return loop && flush_pending(loop, loop->cur);
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

/*
 * actx_cancel_context: cancel what has not started, then wait for every
 * request of the context, ignoring its deadline (poll_blocking with none):
 * their done callbacks may touch state on the caller's stack.
 */
int actx_cancel_context(void)
{
    actx__loop *loop = actx__loop_get();
    actx_ctx *c;
    long n;

    if (ACTX__UNLIKELY(!loop)) {
        return -errno;
    }
    bool outer = actx__enter(loop);
    c = loop->cur;
    n = actx__req_cancel_ctx(loop, c);
    actx__drain_if_any(loop);
    while (c->nreq != 0 && actx__tls_loop == loop) {
        /* A done callback that left a context pushed that can make no
         * progress keeps c's requests from finishing: as in loop_flush. */
        if (poll_blocking(loop, 0) == 0 && loop->cur != c &&
            !can_progress(loop->cur)) {
            break;
        }
    }
    if (actx__tls_loop == loop) {
        actx__io_flush(loop);
    }
    actx__leave(loop, outer);
    return n > INT_MAX ? INT_MAX : (int)n;
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
        if (r == 0 && !can_progress(loop->cur)) {
            return 0; /* loop->cur: as in loop_flush */
        }
        if (ctx_expired(c) || ctx_expired(loop->cur)) {
            return -ETIMEDOUT; /* loop->cur: as in loop_flush */
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

    return loop ? actx__fd_embed_fd(loop) : -errno;
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
    actx__fd_embed_sync(loop);
    actx__mb_prepare_sleep(loop, ACTX__WAKE_UNBOUNDED, 0);
    loop->notify_armed = true;
    if (work_now(loop, c)) {
        return 0;
    }
    t = sleep_timeout(loop, c);
    if (ACTX__UNLIKELY(c->deadline != NO_DEADLINE)) {
        /* The host's wait ends by the context's deadline, too. */
        t = timeout_by(t, c->deadline, actx_now_ns());
    }
    if (t < 0) {
        return -1;
    }
    /* Round up: waking early would only spin. */
    return actx__ns_to_ms_ceil(t);
}
