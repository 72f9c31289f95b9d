/*
 * mailbox.c - the cross-thread mailbox of a loop and its wake-up protocol,
 * both halves: posting (and waking the owner), and the owner's drain that
 * sorts arrived messages into their contexts' queues (actx__drain).
 *
 * A mailbox is an intrusive lock-free multi-producer single-consumer stack:
 * a post is one CAS of the head, the owner takes everything with one
 * exchange and reverses it into arrival order.  Closing swaps in a CLOSED
 * sentinel, which a CAS push can see, so a post after shutdown fails with
 * -EPIPE instead of disappearing.
 *
 * Mailboxes are type-stable: never freed, recycled through a global free
 * list once their reference count drops to zero (references: the loop, each
 * outstanding request, each context).  A poster reads notify_me after its
 * push, when the message may already have been consumed and its owner gone;
 * type stability makes that read safe (at worst a spurious wake-up of the
 * mailbox's next owner), and the reference count keeps a closed mailbox
 * from being reopened while anything could still post to it.
 *
 * Wake-ups (QEMU aio_notify style), all accesses sequentially consistent:
 *
 *   poster:  P1 CAS push msg        owner: O1 if (load(notified)) {
 *            P2 load notify_me                   read efd; store(notified, 0)
 *            P3 if (notify_me >= my level       }
 *                   && !xchg(notified, 1))   O2 store notify_me = level
 *                   write efd                O3 look for work (mailbox head,
 *                                               queues, BHs); none: sleep
 *                                            O4 store notify_me = 0
 *
 * Why no wake-up is lost.  Say the owner sleeps after O3 found no work and
 * missed msg.  O3's load of head then precedes P1 in the single total
 * order, so O2 < O3 < P1 < P2 and P2 sees notify_me set (O4 comes only after
 * the sleep).  If P3's exchange reads false, P writes the eventfd and the
 * sleep ends.  If it reads true, some poster Q's exchange read false and set
 * it after this O1's load (if O1 saw true it stored false after its read,
 * and only O1 stores false), and Q writes the eventfd after its exchange.
 * The owner reads the eventfd only inside O1 (before that store) and after a
 * wait reported it readable: neither happens between this O1 and this
 * sleep, so Q's write is still pending and the sleep ends at once.  Reading
 * before clearing matters: clear-then-read lets the read swallow the write
 * of a poster that set notified between the two, leaving notified set and
 * the eventfd empty (found by the spin model in tests/model/).  Reading the
 * eventfd whenever epoll reports it means a late write never leaves it
 * readable while notified is clear (no spinning).
 *
 * Posts that may be slow to be noticed use a lower wake level: an idle BH
 * scheduled from another thread wakes the owner only when it sleeps longer
 * than an idle BH may wait (notify_me's level ACTX__WAKE_UNBOUNDED).
 *
 * Posts for outer contexts.  A message can run only in the context it
 * resolves to.  While the owner sleeps in a context C of depth d, a
 * message for a context X can be for C only if X is C or was pushed after
 * C (and popped since, forwarding into C): either way X's depth is >= d.
 * A context of depth < d is an ancestor of C, or was popped into one, and
 * a context of depth d other than C was popped into C's parent: none can
 * run before C is popped.  So the owner publishes d with the level (O2)
 * and a poster whose message was made at a depth below d does not write
 * the eventfd (P3 is skipped): a nested wait is not woken by outer
 * completions, calls or BHs, and the owner queues them at its next drain,
 * which every poll does.  A message records the depth of the context it
 * was made for (a request's msg.aux, a BH's depth, a handle's context):
 * re-homing only ever moves things to shallower contexts, so that depth
 * never understates.  The argument above (O2 < P2 in the total order) is
 * unchanged: a poster that sees this sleep's notify_me sees its depth, and
 * skips only messages that cannot run in this sleep; a skipped one is
 * found by the O3 of any later sleep or by its drain.  Embedding
 * (actx_backend_timeout_ms) and the owner's own posts use depth 0 and
 * ACTX__DEPTH_ANY: they always wake.  tests/model/mailbox.pml -DDEPTH
 * checks it (a nested sleep, then the root sleep after the pop).
 *
 * Wake-ups coalesce (one eventfd write per sleep at most); posts never do.
 * A post while the owner is not about to sleep writes nothing.  An owner
 * that polls before sleeping (actx_set_poll_max_ns, poll.c) polls before
 * O1: notify_me is still 0, so posts during the window write nothing
 * either, and the sleep after it follows O1-O4 unchanged.  With fd
 * handlers the window's zero-timeout epoll waits may report and read an
 * eventfd write left from an earlier sleep (as a non-blocking poll with fd
 * handlers always could): that read is before O1, notified stays set
 * until O1 clears it, and the model covers it.
 *
 * Eventfd lifetime.  A mailbox has an eventfd only while its loop lives:
 * actx__mb_new makes one, and the loop's shutdown closes it
 * (actx__mb_close_efd), so recycled mailboxes hold no descriptor.  A
 * poster whose message was already consumed may still be between P2 and
 * P3's write, with the mailbox recycled under it; the write must never
 * reach a closed number, which another file may have taken.  P3 counts
 * itself in efd_writers, then loads efd; the closer exchanges efd for -1,
 * then waits for efd_writers to read 0 before it closes (all seq_cst).  A
 * poster whose load saw the old fd incremented before the exchange, so the
 * closer sees it counted until its write is done; a poster that loads
 * after the exchange sees -1 and writes nothing.  The wait is one write()
 * long at most, and only a poster racing with a shutdown ever causes it.
 * A stale poster can still write to the eventfd a recycled mailbox got
 * for its next owner: a spurious wake-up, as before.
 *
 * fork.  The child's copies of the parent's mailboxes are closed in the
 * child (actx__mb_atfork_child): posts from the child to a context of the
 * parent's loops fail with -EPIPE, and the child's copies of their
 * eventfds are closed, so the child never reads or writes the parent's.
 */
#include "actx-internal.h"

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static pthread_mutex_t mb_lock = PTHREAD_MUTEX_INITIALIZER;
static actx__mailbox *mb_free;
static actx__mailbox *mb_all; /* under mb_lock; mailboxes are never freed */
static _Atomic unsigned long refused_all;

actx__mailbox *actx__mb_new(int *err)
{
    actx__mailbox *mb;
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    if (efd < 0) {
        *err = -errno;
        return NULL;
    }
    actx__own_fd_add(efd);
    pthread_mutex_lock(&mb_lock);
    mb = mb_free;
    if (mb) {
        mb_free = mb->free_next;
    }
    pthread_mutex_unlock(&mb_lock);

    if (!mb) {
        mb = aligned_alloc(ACTX__CACHELINE, sizeof(*mb));
        if (!mb) {
            actx__own_close(efd);
            *err = -ENOMEM;
            return NULL;
        }
        memset(mb, 0, sizeof(*mb));
        atomic_init(&mb->efd_writers, 0);
        pthread_mutex_lock(&mb_lock);
        mb->all_next = mb_all;
        mb_all = mb;
        pthread_mutex_unlock(&mb_lock);
    }
    /*
     * Stores, not atomic_init: a recycled mailbox may still be read by a
     * stale poster (notify_me, notified: see "Eventfd lifetime" above),
     * and atomic_init is a plain store under some compilers.
     */
    atomic_store_explicit(&mb->head, NULL, memory_order_relaxed);
    atomic_store_explicit(&mb->notify_me, 0, memory_order_relaxed);
    atomic_store_explicit(&mb->notified, false, memory_order_relaxed);
    atomic_store_explicit(&mb->refused, 0, memory_order_relaxed);
    atomic_store_explicit(&mb->refs, ACTX__MB_BULK, memory_order_relaxed);
    /* Stale posters may load it at once: a spurious wake-up at worst. */
    atomic_store(&mb->efd, efd);
    mb->free_next = NULL;
    return mb;
}

/* See "Eventfd lifetime" above.  Any thread; once per mailbox life. */
void actx__mb_close_efd(actx__mailbox *mb)
{
    int efd = atomic_exchange(&mb->efd, -1);

    if (efd < 0) {
        return;
    }
    while (atomic_load(&mb->efd_writers) != 0) {
        sched_yield();
    }
    actx__own_close(efd);
}

void actx__mb_unref(actx__mailbox *mb, long n)
{
    /*
     * acq_rel: the last holder must see every other holder's use of the
     * mailbox before it recycles it.
     */
    if (atomic_fetch_sub_explicit(&mb->refs, n, memory_order_acq_rel) != n) {
        return;
    }
    actx__mb_close_efd(mb); /* a loop that failed to start never closed it */
    pthread_mutex_lock(&mb_lock);
    mb->free_next = mb_free;
    mb_free = mb;
    pthread_mutex_unlock(&mb_lock);
}

/*
 * fork: the forking thread holds mb_lock across fork (atfork prepare), so
 * no other thread was inside it.  In the child every inherited mailbox is
 * closed and the child's copy of its eventfd too, so nothing in the child
 * reaches the parent's.
 */
void actx__mb_atfork_prepare(void)
{
    pthread_mutex_lock(&mb_lock);
}

void actx__mb_atfork_parent(void)
{
    pthread_mutex_unlock(&mb_lock);
}

void actx__mb_atfork_child(void)
{
    actx__mailbox *mb;

    /* Held by this thread since prepare: unlock, as after any section. */
    pthread_mutex_unlock(&mb_lock);
    for (mb = mb_all; mb; mb = mb->all_next) {
        int efd = atomic_exchange(&mb->efd, -1);

        if (efd >= 0) {
            actx__own_close(efd);
        }
        /* Recycled ones are reset by actx__mb_new; the rest stay closed. */
        atomic_store(&mb->head, ACTX__MB_CLOSED);
        atomic_store(&mb->notify_me, 0);
        atomic_store(&mb->efd_writers, 0);
    }
}

/* P3 (the caller did P2 and found the owner about to sleep). */
void actx__mb_wake(actx__mailbox *mb)
{
    uint64_t one = 1;

    /* One write per sleep; O1 re-arms it. */
    if (!atomic_exchange(&mb->notified, true)) {
        int efd;

        /* Counted before the load: see "Eventfd lifetime" above. */
        atomic_fetch_add(&mb->efd_writers, 1);
        efd = atomic_load(&mb->efd);
        if (efd >= 0) {
            ssize_t r = write(efd, &one, sizeof(one));
            (void)r; /* EAGAIN only at a counter of 2^64-2: still readable */
        }
        atomic_fetch_sub(&mb->efd_writers, 1);
    }
}

void actx__mb_notify(actx__mailbox *mb, int wake_level, int depth)
{
    actx__mb_notify_inline(mb, wake_level, depth);
}

int actx__mb_post(actx__mailbox *mb, actx__msg *msg, int wake_level, int depth)
{
    return actx__mb_post_inline(mb, msg, wake_level, depth);
}

void actx__mb_refused(actx__mailbox *mb)
{
    /*
     * Release, paired with the acquire loads in actx_stats: a thread that
     * sees a refusal counted also sees what the refused poster did before
     * (its work function's accesses), as it would have through the
     * completion.
     */
    atomic_fetch_add_explicit(&mb->refused, 1, memory_order_release);
    atomic_fetch_add_explicit(&refused_all, 1, memory_order_release);
}

unsigned long actx__refused_all(void)
{
    return atomic_load_explicit(&refused_all, memory_order_acquire);
}

/*
 * The owner reads the eventfd: a wake-up received.  A read that got the
 * write also ends the poster's `notified' (as O1 would, read first, then
 * clear): the next sleep's O1 then has nothing to read, where it would
 * otherwise make a read that can only fail (one system call per sleep).
 * The spin model checks this clear at the wake-up and in the polling
 * window (tests/model/mailbox.pml, bh-idle.pml).
 */
void actx__mb_ack(actx__loop *loop)
{
    uint64_t v;

    if (read(atomic_load_explicit(&loop->mb->efd, memory_order_relaxed), &v,
             sizeof(v)) == sizeof(v)) {
        loop->st.wakeups++;
        atomic_store(&loop->mb->notified, false);
    }
}

/* fd.c's callback for the eventfd (a loop-wide registration). */
void actx__mb_on_event(void *loop)
{
    actx__mb_ack(loop);
}

/* O1: consume a pending wake-up, then let posters write again. */
void actx__mb_rearm(actx__loop *loop)
{
    actx__mailbox *mb = loop->mb;

    /* Read, then clear: see "Reading before clearing" above. */
    if (atomic_load(&mb->notified)) {
        actx__mb_ack(loop);
        atomic_store(&mb->notified, false);
    }
}

/*
 * O1 + O2 for a sleep in a context of this depth (0: wake for anything).
 * The caller then looks for work (O3) before it sleeps.
 */
void actx__mb_prepare_sleep(actx__loop *loop, int level, int depth)
{
    int max = INT32_MAX >> ACTX__WAKE_DEPTH_SHIFT;

    actx__mb_rearm(loop);
    /* Deeper than max: as max, so it wakes more often, never less. */
    atomic_store(&loop->mb->notify_me, level | (depth < max ? depth : max)
                                                   << ACTX__WAKE_DEPTH_SHIFT);
}

/* O4. */
void actx__mb_end_sleep(actx__loop *loop)
{
    atomic_store_explicit(&loop->mb->notify_me, 0, memory_order_relaxed);
    loop->notify_armed = false;
}

/* ------------------------------------------------------------------------ */
/* The receiving half: arrived messages into their contexts' queues.         */

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
